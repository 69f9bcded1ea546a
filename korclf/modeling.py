"""Build the tokenizer and classifier a run asks for: from scratch, from a hub id or a local folder."""

from __future__ import annotations

import logging
import os
from typing import Optional

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from .arguments import SCRATCH
from .errors import KorclfError
from .scratch import scratch_config, train_tokenizer

logger = logging.getLogger(__name__)


def _head_kwargs(model_args, label_names: list[str]) -> dict:
    kwargs = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
              "label2id": {name: i for i, name in enumerate(label_names)}}
    if model_args.classifier_dropout is not None:
        kwargs["classifier_dropout"] = model_args.classifier_dropout
    return kwargs


def _check_source(name_or_path: str) -> None:
    """A path that looks local but is missing gets a clear message instead of a hub look-up."""
    looks_local = name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path.strip("/").split("/", 1)[-1]
    if looks_local and not os.path.isdir(os.path.expanduser(name_or_path)):
        raise KorclfError(f"config key 'model_name_or_path': folder '{name_or_path}' does not exist")


def _load(loader, name_or_path: str, what: str, **kwargs):
    _check_source(name_or_path)
    try:
        return loader(name_or_path, **kwargs)
    except OSError as error:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise KorclfError(
            f"could not load the {what} '{name_or_path}'"
            f"{' (HF_HUB_OFFLINE=1: only local folders and the hub cache are available)' if offline else ''}: "
            f"{str(error).splitlines()[0]}"
        ) from None


def trains_own_tokenizer(model_args) -> bool:
    """``scratch`` without a ``tokenizer_name``: the tokenizer is trained on the training texts."""
    return model_args.model_name_or_path == SCRATCH and not model_args.tokenizer_name


def load_tokenizer(model_args, train_texts: Optional[list[str]] = None):
    """The model's tokenizer, or one trained on ``train_texts`` for ``scratch``."""
    if trains_own_tokenizer(model_args):
        if not train_texts:
            raise KorclfError("model_name_or_path: scratch needs training data to train its tokenizer")
        return train_tokenizer(train_texts, model_args.scratch_tokenizer, model_args.scratch_vocab_size,
                               model_args.scratch_max_position)
    name = model_args.tokenizer_name or model_args.model_name_or_path
    tokenizer = _load(AutoTokenizer.from_pretrained, name, "tokenizer", cache_dir=model_args.cache_dir,
                      trust_remote_code=model_args.trust_remote_code)
    if not getattr(tokenizer, "is_fast", False):
        raise KorclfError(f"tokenizer '{name}' has no fast (Rust) version; korclf needs offset mappings and speed")
    return tokenizer


def _custom_kind_kwargs(model_args, data_args) -> dict:
    if model_args.model_kind == "rbert":
        return {"use_pooler": model_args.rbert_use_pooler, "entity_layer": model_args.rbert_entity_layer,
                "activation": model_args.rbert_activation, "concat": model_args.rbert_concat,
                "entity_include_markers": data_args.entity_include_markers}
    if model_args.model_kind == "multi_encoder":
        kwargs = {"share_encoder": model_args.share_encoder, "fusion": model_args.fusion,
                  "pooling": model_args.pooling or "pooler"}
        if model_args.fusion_hidden_size:
            kwargs["fusion_hidden_size"] = model_args.fusion_hidden_size
        return kwargs
    return {"pooling": model_args.pooling}


def _custom_classes(kind: str):
    if kind == "rbert":
        from .models.configuration_rbert import RBertConfig
        from .models.modeling_rbert import RBertForSequenceClassification

        return RBertConfig, RBertForSequenceClassification
    if kind == "multi_encoder":
        from .models.configuration_multi_encoder import MultiEncoderConfig
        from .models.modeling_multi_encoder import MultiEncoderForSequenceClassification

        return MultiEncoderConfig, MultiEncoderForSequenceClassification
    from .models.configuration_encoder import EncoderClassifierConfig
    from .models.modeling_encoder import EncoderForSequenceClassification

    return EncoderClassifierConfig, EncoderForSequenceClassification


def _check_encoder_dropout(model_args) -> None:
    """``encoder_dropout`` needs encoders whose config has dropout settings korclf knows."""
    from .models.encoder_utils import ENCODER_DROPOUT_KEYS, encoder_dropout_keys

    if model_args.encoder_dropout is None or model_args.model_name_or_path == SCRATCH:
        return
    for path in model_args.encoder_paths or [model_args.model_name_or_path]:
        config = _load(AutoConfig.from_pretrained, path, "config", cache_dir=model_args.cache_dir,
                       trust_remote_code=model_args.trust_remote_code)
        if not encoder_dropout_keys(config):
            raise KorclfError(f"config key 'encoder_dropout': the {config.model_type!r} encoder '{path}' has none of "
                              f"the dropout settings {', '.join(ENCODER_DROPOUT_KEYS)}; leave encoder_dropout unset")


def _scratch_encoder_config(model_args, tokenizer):
    from .models.encoder_utils import set_encoder_dropout

    config = scratch_config(model_args, tokenizer)
    return config if model_args.encoder_dropout is None else set_encoder_dropout(config, model_args.encoder_dropout)


def build_model(model_args, data_args, tokenizer, label_names: list[str]):
    """The classifier: a stock ``AutoModelForSequenceClassification`` or one of korclf's heads."""
    from . import models  # noqa: F401  (registers korclf's model types)
    from .models.encoder_utils import encoder_config_to_dict, set_encoder_dropout

    _check_encoder_dropout(model_args)
    head = _head_kwargs(model_args, label_names)
    kind = model_args.model_kind
    custom = kind != "sequence" or model_args.pooling is not None
    scratch = model_args.model_name_or_path == SCRATCH
    if not custom:
        if scratch:
            config = _scratch_encoder_config(model_args, tokenizer)
            for key, value in head.items():
                setattr(config, key, value)
            return AutoModelForSequenceClassification.from_config(config)
        load_kwargs = {"cache_dir": model_args.cache_dir, "trust_remote_code": model_args.trust_remote_code}
        config_kwargs = head  # the head's settings, or a whole config that also carries the encoder dropout
        if model_args.encoder_dropout is not None:
            config = AutoConfig.from_pretrained(model_args.model_name_or_path, **load_kwargs, **head)
            config_kwargs = {"config": set_encoder_dropout(config, model_args.encoder_dropout)}
        return _load(AutoModelForSequenceClassification.from_pretrained, model_args.model_name_or_path, "model",
                     **load_kwargs, **config_kwargs)
    config_class, model_class = _custom_classes(kind)
    kwargs = {**_custom_kind_kwargs(model_args, data_args), **head}
    if kind == "multi_encoder":
        kwargs["text_columns"] = list(data_args.text_columns)
    if scratch:
        encoder = encoder_config_to_dict(_scratch_encoder_config(model_args, tokenizer))
        if kind == "multi_encoder":
            kwargs["encoders"] = [encoder] * (1 if model_args.share_encoder else len(data_args.text_columns))
        else:
            kwargs["encoder"] = encoder
        return model_class(config_class(**kwargs))
    if kind == "multi_encoder":
        paths = model_args.encoder_paths or [model_args.model_name_or_path]
        for path in paths:
            _check_source(path)
        kwargs.pop("text_columns")
        share = kwargs.pop("share_encoder")
        return model_class.from_encoders_pretrained(paths if len(paths) > 1 else paths[0], list(data_args.text_columns),
                                                    share_encoder=share, encoder_dropout=model_args.encoder_dropout,
                                                    **kwargs)
    _check_source(model_args.model_name_or_path)
    return model_class.from_encoder_pretrained(model_args.model_name_or_path,
                                               encoder_dropout=model_args.encoder_dropout, **kwargs)


COLUMN_TOKENIZER_FOLDER = "tokenizer_{column}"


def load_column_tokenizers(model_args, data_args, tokenizer) -> Optional[list]:
    """One tokenizer per text column when the multi-encoder's columns use different backbones, else None."""
    paths = model_args.encoder_paths or []
    if model_args.model_kind != "multi_encoder" or len(set(paths)) < 2:
        return None
    if len(paths) != len(data_args.text_columns):
        raise KorclfError(f"config key 'encoder_paths' has {len(paths)} entries but 'text_columns' has "
                          f"{len(data_args.text_columns)}; give one checkpoint per column")
    tokenizers = []
    for path in paths:
        if path == (model_args.tokenizer_name or model_args.model_name_or_path):
            tokenizers.append(tokenizer)
            continue
        loaded = _load(AutoTokenizer.from_pretrained, path, "tokenizer", cache_dir=model_args.cache_dir)
        if not getattr(loaded, "is_fast", False):
            raise KorclfError(f"tokenizer '{path}' has no fast (Rust) version")
        tokenizers.append(loaded)
    return tokenizers


def column_tokenizer_folders(builder) -> dict:
    """``{column: subfolder}`` for columns whose tokenizer is not the model folder's main one."""
    tokenizers = getattr(builder, "tokenizers", None) or []
    columns = getattr(builder, "columns", [])
    return {column: COLUMN_TOKENIZER_FOLDER.format(column=column)
            for column, tokenizer in zip(columns, tokenizers) if tokenizer is not builder.tokenizer}


def save_column_tokenizers(builder, output_dir: str) -> None:
    """Save the extra per-column tokenizers next to the model (the main one is saved by the Trainer)."""
    folders = column_tokenizer_folders(builder)
    for column, tokenizer in zip(getattr(builder, "columns", []), getattr(builder, "tokenizers", [])):
        if column in folders:
            tokenizer.save_pretrained(os.path.join(output_dir, folders[column]))


def load_saved_tokenizers(folder: str, settings: dict):
    """The tokenizer of a saved korclf model folder: one, or a list (one per column) for mixed backbones."""
    main = AutoTokenizer.from_pretrained(folder)
    folders = settings.get("column_tokenizers") or {}
    if not folders:
        return main
    return [AutoTokenizer.from_pretrained(os.path.join(folder, folders[column])) if column in folders else main
            for column in settings["text_columns"]]
