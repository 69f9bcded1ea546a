"""The training recipe: config → checked data → tokenizer and model → Trainer → model folder and reports.

``recipes/run.py`` and ``korclf train`` call :func:`main`; under ``accelerate launch`` every process runs
it and the Trainer does the distribution, while only the main process writes files.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional

import datasets
import numpy as np
import transformers
from transformers import set_seed
from transformers.trainer_utils import get_last_checkpoint

from . import __version__
from .arguments import arguments_to_dict, parse_config
from .data.prepare import PreparedSplits, prepare_splits
from .data.features import add_marker_tokens, input_builder
from .data.processing import ROW_COLUMN
from .errors import KorclfError
from .hub import defer_push, publish
from .metrics import klue_re_auprc, klue_re_micro_f1, make_compute_metrics, semeval_official_f1, softmax
from .model_card import write_model_card
from .modeling import (build_model, column_tokenizer_folders, load_column_tokenizers, load_tokenizer,
                       save_column_tokenizers)
from .reporting import evaluation_report, format_metrics_table, write_predictions, write_run_files
from .trainer import KorclfTrainer, early_stopping_callbacks, loss_from_arguments

logger = logging.getLogger("korclf")


def setup_logging(training_args) -> None:
    """korclf logs at INFO on the main process; library chatter stays at WARNING."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)], force=True)
    level = logging.INFO if training_args.should_log else logging.WARNING
    logger.setLevel(level)
    transformers.utils.logging.set_verbosity_warning()
    datasets.utils.logging.set_verbosity_warning()


def check_output_dir(training_args) -> Optional[str]:
    """Refuse to write into a non-empty folder unless told to; return the checkpoint to resume from."""
    output_dir = training_args.output_dir
    resume = training_args.resume_from_checkpoint
    if resume and resume not in ("true", "True", "last"):
        if not os.path.isdir(resume):
            raise KorclfError(f"config key 'resume_from_checkpoint': checkpoint folder '{resume}' does not exist")
        return resume
    if resume:
        last = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        if last is None:
            raise KorclfError(f"resume_from_checkpoint: true, but '{output_dir}' holds no checkpoint-* folder")
        return last
    if (training_args.do_train and os.path.isdir(output_dir) and os.listdir(output_dir)
            and not training_args.overwrite_output_dir):
        raise KorclfError(f"output_dir '{output_dir}' is not empty; set overwrite_output_dir: true to write into it, "
                          "or resume_from_checkpoint: true to continue its run")
    return None


def korclf_settings(model_args, data_args, normalization) -> dict:
    """What a reloaded model needs to read and prepare text like the run did (stored in its config).

    ``max_length`` is filled in once resolved (a list for the multi-encoder, one per column).
    """
    return {
        "version": __version__,
        "model_kind": model_args.model_kind,
        "normalization": normalization,
        "text_column": data_args.text_column,
        "text_pair_column": data_args.text_pair_column,
        "text_columns": data_args.text_columns,
        "label_column": data_args.label_column,
        "id_column": data_args.id_column,
        "max_length": data_args.max_length,
        "entity_format": data_args.entity_format,
        "entity_marker": data_args.entity_marker,
        "subject_column": data_args.subject_column,
        "object_column": data_args.object_column,
        "entity_include_markers": data_args.entity_include_markers,
        "entity_overflow": data_args.entity_overflow,
    }


def _row_ids(dataset, id_column: Optional[str]) -> list:
    if id_column and id_column in dataset.column_names:
        return list(dataset[id_column])
    return list(range(1, len(dataset) + 1))


def _position_config(model):
    """The config that holds the encoder's position limit (the encoder's own for korclf heads)."""
    return getattr(model.config, "encoder_config", model.config)


def build_tokenizer_and_model(model_args, data_args, prepared: PreparedSplits, builder):
    """Tokenizer(s) and classifier; R-BERT's ``plain`` marker tokens are added and embeddings resized."""
    train = prepared.splits.get("train")
    train_texts = builder.tokenizer_texts(train) if train is not None else None
    tokenizer = load_tokenizer(model_args, train_texts)
    if model_args.model_kind == "rbert":
        added = add_marker_tokens(tokenizer, data_args.entity_marker)
        if added:
            logger.info("Added %d entity marker tokens to the tokenizer", added)
    tokenizers = load_column_tokenizers(model_args, data_args, tokenizer)
    builder.set_tokenizer(tokenizers or tokenizer)
    builder.settings["column_tokenizers"] = column_tokenizer_folders(builder)
    model = build_model(model_args, data_args, tokenizer, prepared.label_names)
    embeddings = model.get_input_embeddings()
    if embeddings is not None and len(tokenizer) > embeddings.num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
        logger.info("Resized the input embeddings to %d tokens", len(tokenizer))
    return tokenizer, model


def encode_splits(builder, prepared: PreparedSplits, data_args, training_args) -> dict:
    """Tokenised copies of every split (cached by ``datasets``); what encoding changed goes to the data report."""
    tokenized = {}
    for name, dataset in prepared.splits.items():
        with training_args.main_process_first(desc=f"tokenizing {name}"):
            tokenized[name] = builder.encode(dataset, name, prepared.sources.get(name, name),
                                             overwrite=data_args.overwrite_cache,
                                             num_proc=data_args.preprocessing_num_workers)
        changes = builder.check_encoded(tokenized[name], dataset, name, data_args.id_column)
        if changes:
            prepared.report["splits"].setdefault(name, {}).update(changes)
    return tokenized


def _compute_metrics(prepared: PreparedSplits, settings: dict):
    relation = settings["entity_format"] if settings["model_kind"] == "rbert" else None
    return make_compute_metrics(prepared.label_names, **({"relation_metrics": relation} if relation else {}))


def run(model_args, data_args, training_args) -> dict:
    """Train / evaluate / predict as the arguments say; return every metric computed."""
    setup_logging(training_args)
    resume_from = check_output_dir(training_args)
    set_seed(training_args.seed)
    prepared = prepare_splits(model_args, data_args, training_args.seed, training_args.main_process_first)
    if not prepared.label_names:
        raise KorclfError("no label list: provide a train split or 'label_list'")
    settings = korclf_settings(model_args, data_args, prepared.report["normalization"])
    builder = input_builder(settings, None, prepared.label2id)
    tokenizer, model = build_tokenizer_and_model(model_args, data_args, prepared, builder)
    max_length, length_stats = builder.resolve_max_length(prepared.splits.get("train"), _position_config(model),
                                                          data_args.max_length_percentile, training_args.seed)
    settings["max_length"] = max_length
    prepared.report["token_lengths"] = length_stats
    model.config.korclf = settings
    tokenized = encode_splits(builder, prepared, data_args, training_args)
    resolved_config = arguments_to_dict(model_args, data_args, training_args)  # before defer_push changes it
    push = defer_push(training_args)
    train_labels = [int(label) for label in tokenized["train"]["labels"]] if "train" in tokenized else None
    trainer = KorclfTrainer(
        model=model,
        args=training_args,
        train_dataset=tokenized.get("train") if training_args.do_train else None,
        eval_dataset=tokenized.get("validation"),
        processing_class=tokenizer,
        data_collator=builder.collator(training_args.pad_to_multiple_of),
        compute_metrics=_compute_metrics(prepared, settings),
        callbacks=early_stopping_callbacks(training_args),
        loss_fn=loss_from_arguments(training_args, len(prepared.label_names), train_labels),
        signature_columns=builder.signature_columns(model),
    )
    output_dir = training_args.output_dir
    if trainer.is_world_process_zero():
        write_run_files(output_dir, resolved_config, prepared.report)
    results: dict = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=resume_from)
        trainer.save_model()
        trainer.save_state()
        if trainer.is_world_process_zero():
            save_column_tokenizers(builder, output_dir)
        metrics = dict(train_result.metrics, train_samples=len(tokenized["train"]))
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        results.update(metrics)
    for name, prefix, enabled in (("validation", "eval", training_args.do_eval), ("test", "test", training_args.do_predict)):
        if not enabled or name not in tokenized:
            continue
        results.update(_evaluate_or_predict(trainer, prepared, builder, tokenized[name], name, prefix, data_args,
                                            settings, output_dir))
    if training_args.do_train and trainer.is_world_process_zero():
        write_model_card(output_dir, base_model=model_args.encoder_paths or model_args.model_name_or_path,
                         model_kind=model_args.model_kind, label_names=prepared.label_names,
                         data=data_args.dataset_name or {"train": data_args.train_file,
                                                         "validation": data_args.validation_file,
                                                         "test": data_args.test_file},
                         config=resolved_config, metrics=results, repo_id=push.repo_id)
    if push.enabled and training_args.do_train:  # every process calls it; only the main one uploads
        results["hub"] = publish(trainer, push, output_dir)
    return results


def relation_report(settings: dict, labels, probabilities: np.ndarray, label_names: list[str], prefix: str) -> dict:
    """The standard RE scores next to accuracy / macro-F1: KLUE-RE micro-F1 and AUPRC, or SemEval's official F1."""
    if settings.get("model_kind") != "rbert":
        return {}
    predicted = probabilities.argmax(-1)
    if settings["entity_format"] == "klue":
        return {f"{prefix}_klue_micro_f1": klue_re_micro_f1(labels, predicted, label_names),
                f"{prefix}_klue_auprc": klue_re_auprc(labels, probabilities, len(label_names))}
    return {f"{prefix}_semeval_f1": semeval_official_f1(labels, predicted, label_names)}


def _evaluate_or_predict(trainer, prepared, builder, dataset, split, prefix, data_args, settings, output_dir) -> dict:
    """Predict a split; with labels, write ``{prefix}_results.json`` and the confusion matrix; for test, predictions.tsv."""
    output = trainer.predict(dataset, metric_key_prefix=prefix)
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    probabilities = softmax(np.asarray(logits, dtype=np.float64))
    main = trainer.is_world_process_zero()
    metrics = {k: v for k, v in output.metrics.items() if not k.startswith(f"{prefix}_recall_")
               and not k.startswith(f"{prefix}_f1_")}
    if "labels" in dataset.column_names:
        labels = dataset["labels"]
        metrics.update(evaluation_report(labels, probabilities.argmax(-1), prepared.label_names,
                                         output_dir if main else None, prefix))
        metrics.update(relation_report(settings, labels, probabilities, prepared.label_names, prefix))
    metrics[f"{prefix}_samples"] = len(dataset)
    if main:
        trainer.save_metrics(prefix, metrics)
        print(format_metrics_table(metrics, prefix, prepared.label_names), flush=True)
        if split == "test":
            source = prepared.splits[split].select(dataset[ROW_COLUMN])
            write_predictions(os.path.join(output_dir, "predictions.tsv"), _row_ids(source, data_args.id_column),
                              builder.display_texts(source), probabilities, prepared.label_names)
    return metrics


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``recipes/run.py`` and ``korclf train``: a clear one-line error instead of a traceback."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        run(*parse_config(argv))
    except KorclfError as error:
        print(f"korclf: error: {error}", file=sys.stderr)
        return 2
    return 0
