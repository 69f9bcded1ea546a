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
from .data.processing import ROW_COLUMN, PaddingCollator, TextEncoder, cached_map, resolve_max_length
from .errors import KorclfError
from .metrics import make_compute_metrics, softmax
from .modeling import build_model, load_tokenizer
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


def korclf_settings(model_args, data_args, max_length, normalization) -> dict:
    """What a reloaded model needs to read and prepare text like the run did (stored in its config)."""
    return {
        "version": __version__,
        "model_kind": model_args.model_kind,
        "normalization": normalization,
        "text_column": data_args.text_column,
        "text_pair_column": data_args.text_pair_column,
        "text_columns": data_args.text_columns,
        "label_column": data_args.label_column,
        "id_column": data_args.id_column,
        "max_length": max_length,
        "entity_format": data_args.entity_format,
        "entity_marker": data_args.entity_marker,
        "subject_column": data_args.subject_column,
        "object_column": data_args.object_column,
    }


def tokenize_splits(prepared: PreparedSplits, tokenizer, data_args, max_length, training_args) -> dict:
    """Tokenised copies of every split (cached by ``datasets``), aligned to their source rows by ``row_idx``."""
    encoder = TextEncoder(tokenizer, data_args.text_column, max_length, data_args.text_pair_column,
                          data_args.label_column, prepared.label2id)
    tokenized = {}
    for name, dataset in prepared.splits.items():
        with training_args.main_process_first(desc=f"tokenizing {name}"):
            tokenized[name] = cached_map(dataset, encoder, encoder.fingerprint_parts(), f"Tokenizing {name}",
                                         overwrite=data_args.overwrite_cache, with_indices=True,
                                         remove_columns=dataset.column_names,
                                         num_proc=data_args.preprocessing_num_workers)
    return tokenized


def _row_ids(dataset, id_column: Optional[str]) -> list:
    if id_column and id_column in dataset.column_names:
        return list(dataset[id_column])
    return list(range(1, len(dataset) + 1))


def run(model_args, data_args, training_args) -> dict:
    """Train / evaluate / predict as the arguments say; return every metric computed."""
    setup_logging(training_args)
    resume_from = check_output_dir(training_args)
    set_seed(training_args.seed)
    prepared = prepare_splits(model_args, data_args, training_args.seed, training_args.main_process_first)
    if not prepared.label_names:
        raise KorclfError("no label list: provide a train split or 'label_list'")
    train_texts = prepared.splits["train"][prepared.text_columns[0]] if "train" in prepared.splits else None
    tokenizer = load_tokenizer(model_args, train_texts)
    model = build_model(model_args, data_args, tokenizer, prepared.label_names)
    pairs = (prepared.splits["train"][data_args.text_pair_column]
             if data_args.text_pair_column and "train" in prepared.splits else None)
    max_length, length_stats = resolve_max_length(
        data_args.max_length, tokenizer, model.config, train_texts or [], pairs, data_args.max_length_percentile,
        training_args.seed)
    prepared.report["token_lengths"] = length_stats
    model.config.korclf = korclf_settings(model_args, data_args, max_length, prepared.report["normalization"])
    tokenized = tokenize_splits(prepared, tokenizer, data_args, max_length, training_args)
    train_labels = prepared.labels("train", data_args.label_column) if "train" in prepared.splits else None
    trainer = KorclfTrainer(
        model=model,
        args=training_args,
        train_dataset=tokenized.get("train") if training_args.do_train else None,
        eval_dataset=tokenized.get("validation"),
        processing_class=tokenizer,
        data_collator=PaddingCollator(tokenizer.pad_token_id, training_args.pad_to_multiple_of),
        compute_metrics=make_compute_metrics(prepared.label_names),
        callbacks=early_stopping_callbacks(training_args),
        loss_fn=loss_from_arguments(training_args, len(prepared.label_names), train_labels),
    )
    output_dir = training_args.output_dir
    if trainer.is_world_process_zero():
        write_run_files(output_dir, arguments_to_dict(model_args, data_args, training_args), prepared.report)
    results: dict = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=resume_from)
        trainer.save_model()
        trainer.save_state()
        metrics = dict(train_result.metrics, train_samples=len(tokenized["train"]))
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        results.update(metrics)
    for name, prefix, enabled in (("validation", "eval", training_args.do_eval), ("test", "test", training_args.do_predict)):
        if not enabled or name not in tokenized:
            continue
        results.update(_evaluate_or_predict(trainer, prepared, tokenized[name], name, prefix, data_args, output_dir))
    return results


def _evaluate_or_predict(trainer, prepared, dataset, split, prefix, data_args, output_dir) -> dict:
    """Predict a split; with labels, write ``{prefix}_results.json`` and the confusion matrix; for test, predictions.tsv."""
    output = trainer.predict(dataset, metric_key_prefix=prefix)
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    probabilities = softmax(np.asarray(logits, dtype=np.float64))
    main = trainer.is_world_process_zero()
    metrics = {k: v for k, v in output.metrics.items() if not k.startswith(f"{prefix}_recall_")
               and not k.startswith(f"{prefix}_f1_")}
    if "labels" in dataset.column_names:
        metrics.update(evaluation_report(dataset["labels"], probabilities.argmax(-1), prepared.label_names,
                                         output_dir if main else None, prefix))
    metrics[f"{prefix}_samples"] = len(dataset)
    if main:
        trainer.save_metrics(prefix, metrics)
        print(format_metrics_table(metrics, prefix, prepared.label_names), flush=True)
        if split == "test":
            source = prepared.splits[split].select(dataset[ROW_COLUMN])
            text_column = prepared.text_columns[0]
            texts_column = f"_raw_{text_column}" if f"_raw_{text_column}" in source.column_names else text_column
            write_predictions(os.path.join(output_dir, "predictions.tsv"), _row_ids(source, data_args.id_column),
                              source[texts_column], probabilities, prepared.label_names)
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
