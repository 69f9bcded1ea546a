"""Run configuration: three dataclasses parsed with ``HfArgumentParser``.

A run is described by a YAML or JSON file whose top-level keys are the fields of
:class:`ModelArguments`, :class:`DataArguments` and :class:`KorclfTrainingArguments`, with
``--key value`` overrides on the command line. Unknown keys and values of the wrong type stop
the run before anything is loaded, with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import yaml
from transformers import HfArgumentParser, TrainingArguments

from .errors import KorclfError

SCRATCH = "scratch"


@dataclass
class ModelArguments:
    """Which model to fine-tune, and the options of korclf's own heads."""

    model_name_or_path: str = field(
        default=SCRATCH,
        metadata={"help": "Hub id or local folder of a pretrained encoder, or 'scratch' to train a small BERT "
                  "and its tokenizer from the training texts."},
    )
    model_kind: str = field(
        default="sequence",
        metadata={"help": "Classifier to build.", "choices": ["sequence", "rbert", "multi_encoder"]},
    )
    pooling: Optional[str] = field(
        default=None,
        metadata={"help": "Sentence vector of the classifier: null keeps the architecture's own head "
                  "(AutoModelForSequenceClassification); 'pooler', 'first' or 'mean' build korclf's pooled head, "
                  "needed for encoders without a trained pooler.",
                  "choices": [None, "pooler", "first", "mean"]},
    )
    tokenizer_name: Optional[str] = field(default=None, metadata={"help": "Tokenizer if not the model's own."})
    classifier_dropout: Optional[float] = field(default=None, metadata={"help": "Dropout before the classifier."})
    encoder_dropout: Optional[float] = field(
        default=None,
        metadata={"help": "Dropout inside the encoder (its hidden and attention dropout); null keeps the checkpoint's. "
                  "0 trains ~10 % faster on CPU and suits a single pass over fresh data (bench/README.md)."},
    )
    cache_dir: Optional[str] = field(default=None, metadata={"help": "Where hub downloads are cached."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow code from the model folder."})
    # from-scratch encoder
    scratch_tokenizer: str = field(
        default="wordpiece", metadata={"help": "Tokenizer trained for 'scratch'.", "choices": ["wordpiece", "unigram"]}
    )
    scratch_vocab_size: int = field(default=8000, metadata={"help": "Vocabulary size of the scratch tokenizer."})
    scratch_hidden_size: int = field(default=128, metadata={"help": "Hidden size of the scratch encoder."})
    scratch_num_layers: int = field(default=2, metadata={"help": "Layers of the scratch encoder."})
    scratch_num_heads: int = field(default=2, metadata={"help": "Attention heads of the scratch encoder."})
    scratch_intermediate_size: int = field(default=512, metadata={"help": "Feed-forward size of the scratch encoder."})
    scratch_max_position: int = field(default=512, metadata={"help": "Longest sequence the scratch encoder accepts."})
    # R-BERT head
    rbert_entity_layer: str = field(default="split", metadata={"help": "R-BERT entity FC.", "choices": ["shared", "split"]})
    rbert_activation: str = field(default="tanh", metadata={"help": "R-BERT activation.", "choices": ["tanh", "gelu"]})
    rbert_concat: str = field(
        default="cls_e1_e2",
        metadata={"help": "R-BERT vector concatenation.",
                  "choices": ["cls_e1_e2", "cls_e1_e2_absdiff", "cls_e1_e2_prod", "cls_e1_e2_absdiff_prod",
                              "clsxe1_clsxe2"]},
    )
    rbert_use_pooler: bool = field(default=True, metadata={"help": "Sentence vector from the pooler where there is one."})
    # multi-encoder head
    share_encoder: bool = field(default=False, metadata={"help": "One encoder for all text columns."})
    fusion: str = field(default="logits_mlp", metadata={"help": "Multi-encoder fusion.", "choices": ["logits_mlp", "concat_mlp"]})
    fusion_hidden_size: Optional[int] = field(default=None, metadata={"help": "Hidden size of the fusion MLP."})
    encoder_paths: Optional[list[str]] = field(
        default=None, metadata={"help": "One pretrained encoder per text column (multi-encoder)."}
    )


@dataclass
class DataArguments:
    """Where the data is, which columns to read, and how to prepare the text."""

    train_file: Optional[str] = field(default=None, metadata={"help": "csv / tsv / json / jsonl / parquet file."})
    validation_file: Optional[str] = field(default=None, metadata={"help": "Validation file; split from train if absent."})
    test_file: Optional[str] = field(default=None, metadata={"help": "File to predict (labels optional)."})
    dataset_name: Optional[str] = field(default=None, metadata={"help": "Hub data set name instead of files."})
    dataset_config_name: Optional[str] = field(default=None, metadata={"help": "Hub data set configuration."})
    text_column: str = field(default="text", metadata={"help": "Column with the text."})
    text_pair_column: Optional[str] = field(default=None, metadata={"help": "Second text of a sentence pair."})
    text_columns: Optional[list[str]] = field(default=None, metadata={"help": "Columns read by the multi-encoder."})
    label_column: str = field(default="label", metadata={"help": "Column with the label (string or integer)."})
    id_column: Optional[str] = field(default="id", metadata={"help": "Row id written to predictions; row number if absent."})
    label_list: Optional[list[str]] = field(default=None, metadata={"help": "Label list; default: sorted training labels."})
    validation_split_ratio: float = field(default=0.1, metadata={"help": "Share of train held out (stratified) "
                                                               "when there is no validation file."})
    max_length: Union[int, str, list[Any]] = field(
        default="auto", metadata={"help": "Tokens per text: an integer, or 'auto' for the max_length_percentile of "
                                  "training lengths (a list per column for the multi-encoder)."}
    )
    max_length_percentile: float = field(default=0.96, metadata={"help": "Length percentile used by max_length: auto."})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "Use only the first N validation rows."})
    max_predict_samples: Optional[int] = field(default=None, metadata={"help": "Use only the first N test rows."})
    empty_text: str = field(default="error", metadata={"help": "Empty or whitespace-only text: stop, or drop the row "
                                                       "(counted in data_report.json).", "choices": ["error", "drop"]})
    normalize: bool = field(default=False, metadata={"help": "Apply Korean text normalisation."})
    normalize_nfc: bool = field(default=True, metadata={"help": "Unicode NFC."})
    normalize_collapse_whitespace: bool = field(default=True, metadata={"help": "Collapse runs of whitespace."})
    normalize_max_repeat: Optional[int] = field(default=2, metadata={"help": "Squeeze runs of one character to this length."})
    normalize_keep_chars: Optional[str] = field(
        default=None, metadata={"help": "Keep only these classes, e.g. 'hangul,latin,digits,punct' (others → space)."}
    )
    morpheme_keep_pos: Optional[list[str]] = field(default=None, metadata={"help": "Kiwi tags to keep (J*, E*, NNG…)."})
    morpheme_drop_pos: Optional[list[str]] = field(default=None, metadata={"help": "Kiwi tags to drop."})
    morpheme_lemma: bool = field(default=False, metadata={"help": "Output verbs/adjectives as dictionary forms."})
    preprocessing_num_workers: Optional[int] = field(default=None, metadata={"help": "Processes for datasets.map."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Re-run cached preprocessing."})
    # resampling (imbalanced data)
    resample: str = field(default="none", metadata={"help": "Resample the training split.",
                                                  "choices": ["none", "enn", "smoteenn", "random_under", "random_over"]})
    resample_features: str = field(default="tfidf", metadata={"help": "Feature space of the sampler.",
                                                            "choices": ["tfidf", "encoder"]})
    resample_kwargs: Optional[dict] = field(default=None, metadata={"help": "Parameters passed to the sampler."})
    # relation extraction
    entity_format: Optional[str] = field(default=None, metadata={"help": "'klue' (entity dict columns) or 'semeval' "
                                                               "(<e1> tags in the text).", "choices": [None, "klue", "semeval"]})
    subject_column: str = field(default="subject_entity", metadata={"help": "KLUE-style subject entity column."})
    object_column: str = field(default="object_entity", metadata={"help": "KLUE-style object entity column."})
    entity_marker: str = field(default="typed_punct", metadata={"help": "Entity markers.",
                                                               "choices": ["plain", "punct", "typed_punct"]})
    entity_include_markers: bool = field(default=False, metadata={"help": "Average marker tokens into entity vectors."})
    entity_overflow: str = field(default="error", metadata={"help": "When both entities cannot fit in max_length.",
                                                          "choices": ["error", "skip"]})

    def normalization(self) -> Optional[dict]:
        """Settings of :class:`korclf.text.normalize.TextNormalizer`, or None when off."""
        morphemes = None
        if self.morpheme_keep_pos or self.morpheme_drop_pos or self.morpheme_lemma:
            morphemes = {"keep_pos": self.morpheme_keep_pos, "drop_pos": self.morpheme_drop_pos,
                         "lemma": self.morpheme_lemma}
        if not self.normalize and morphemes is None:
            return None
        if not self.normalize:
            return {"nfc": False, "collapse_whitespace": False, "max_repeat": None, "keep_chars": None,
                    "morphemes": morphemes}
        return {"nfc": self.normalize_nfc, "collapse_whitespace": self.normalize_collapse_whitespace,
                "max_repeat": self.normalize_max_repeat, "keep_chars": self.normalize_keep_chars,
                "morphemes": morphemes}


@dataclass
class KorclfTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus korclf's loss, early-stopping and ensembling options."""

    output_dir: str = field(default="outputs/run", metadata={"help": "Where the model and reports are written."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Allow writing into a non-empty output_dir."})
    loss: str = field(default="ce", metadata={"help": "Loss function.", "choices": ["ce", "focal", "dice"]})
    class_weights: Optional[Union[list[float], str]] = field(
        default=None, metadata={"help": "'balanced', 'effective_number' or an explicit list, one per label."}
    )
    class_weight_beta: float = field(default=0.999, metadata={"help": "Beta of the effective-number weights."})
    focal_gamma: float = field(default=2.0, metadata={"help": "Focusing parameter of the focal loss."})
    focal_alpha: Optional[Union[float, str, list[float]]] = field(
        default=None, metadata={"help": "Focal alpha: a scalar or one value per label."}
    )
    label_smoothing: float = field(default=0.0, metadata={"help": "Label smoothing of the ce loss."})
    dice_alpha: float = field(default=1.0, metadata={"help": "Self-adjusting factor of the dice loss."})
    dice_gamma: float = field(default=1.0, metadata={"help": "Smoothing term of the dice loss."})
    early_stopping_patience: Optional[int] = field(default=None, metadata={"help": "Evaluations without improvement "
                                                                         "before stopping (needs load_best_model_at_end)."})
    early_stopping_threshold: float = field(default=0.0, metadata={"help": "Minimum improvement that counts."})
    n_folds: Optional[int] = field(default=None, metadata={"help": "Stratified k-fold training with fold ensembling."})
    fold_ensemble: str = field(default="mean", metadata={"help": "Combine fold predictions.", "choices": ["mean", "vote"]})
    report_baseline: bool = field(default=False, metadata={"help": "Also train the TF-IDF + logistic regression floor."})
    baseline_features: str = field(
        default="char", metadata={"help": "Baseline features: character 1-3-grams, or Kiwi morphemes without "
                                  "particles, endings and symbols.", "choices": ["char", "morph"]}
    )
    pad_to_multiple_of: Optional[int] = field(default=None, metadata={"help": "Pad batches to a multiple (8 on GPUs)."})
    report_to: Union[list[str], str, None] = field(default="none", metadata={"help": "Loggers: 'tensorboard', 'none', …"})


ARGUMENT_CLASSES = (ModelArguments, DataArguments, KorclfTrainingArguments)


def _fields() -> dict[str, dataclasses.Field]:
    out = {}
    for cls in ARGUMENT_CLASSES:
        for f in dataclasses.fields(cls):
            if f.init:
                out[f.name] = f
    return out


def _type_ok(value: Any, annotation: Any) -> bool:
    """Whether a YAML value fits a dataclass annotation (ints count as floats; enums accept their values)."""
    if annotation is Any:
        return True
    if isinstance(annotation, str):
        annotation = eval(annotation, {**vars(typing), **vars(__import__("transformers.training_args").training_args)},
                          {"Optional": Optional, "Union": Union})
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if isinstance(annotation, type) and issubclass(annotation, __import__("enum").Enum):
        return isinstance(value, str) and value in {member.value for member in annotation}
    if annotation is list:
        return isinstance(value, (list, tuple))
    return True


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is not None:  # Optional[list[str]], not "Optional"
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _coerce_number(value: Any, annotation: Any) -> Any:
    """YAML 1.1 reads ``3e-5`` as a string: accept it where the field is numeric."""
    if not isinstance(value, str):
        return value
    wanted = typing.get_args(annotation) or (annotation,)
    for kind in (int, float):
        if kind in wanted:
            try:
                return kind(value)
            except ValueError:
                continue
    return value


def _check_values(values: dict, source: str) -> None:
    """Reject unknown keys and ill-typed values; numeric strings are converted in place."""
    fields = _fields()
    hints = {}
    for cls in ARGUMENT_CLASSES:
        hints.update(typing.get_type_hints(cls))
    for key in list(values):
        value = values[key]
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise KorclfError(f"unknown config key '{key}' in {source}{hint}")
        annotation = hints.get(key, fields[key].type)
        value = values[key] = _coerce_number(value, annotation)
        if key == "resume_from_checkpoint" and isinstance(value, bool):
            value = values[key] = "last" if value else None
        elif isinstance(value, bool) and not _type_ok(value, annotation) and _type_ok("no", annotation):
            # YAML 1.1 reads `save_strategy: no` as False; these fields take the word
            value = values[key] = "yes" if value else "no"
        if not _type_ok(value, annotation):
            raise KorclfError(
                f"config key '{key}' in {source}: expected {_type_name(annotation)}, got {value!r} "
                f"({type(value).__name__})"
            )
        choices = fields[key].metadata.get("choices")
        if choices and value not in choices and not isinstance(value, list):
            raise KorclfError(f"config key '{key}' in {source}: {value!r} is not one of {list(choices)}")


def _read_config_file(path: str) -> dict:
    if not os.path.isfile(path):
        raise KorclfError(f"config file '{path}' does not exist")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise KorclfError(f"config file '{path}' is not valid {'JSON' if path.endswith('.json') else 'YAML'}: {error}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KorclfError(f"config file '{path}' must hold a mapping of option: value, got {type(data).__name__}")
    return data


def _parse_overrides(tokens: list[str]) -> dict:
    """``--key value``, ``--key=value`` and bare ``--flag`` (true); values are read as YAML scalars."""
    values, i = {}, 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise KorclfError(f"unexpected command-line argument '{token}': overrides look like --key value")
        key, _, raw = token[2:].partition("=")
        key = key.replace("-", "_")
        if not _:
            if i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                raw = tokens[i + 1]
                i += 1
            else:
                raw = "true"
        values[key] = yaml.safe_load(raw) if raw != "" else ""
        i += 1
    return values


def resolve_config(argv: list[str]) -> tuple[dict, str]:
    """The merged option dict (file, then overrides) and a description of its source."""
    source = "the command line"
    values: dict = {}
    if argv and not argv[0].startswith("--"):
        source = f"'{argv[0]}'"
        values = _read_config_file(argv[0])
        _check_values(values, source)
        argv = argv[1:]
    overrides = _parse_overrides(argv)
    _check_values(overrides, "the command line")
    values.update(overrides)
    return values, source


def parse_config(argv: list[str]) -> tuple[ModelArguments, DataArguments, KorclfTrainingArguments]:
    """Parse ``CONFIG.yaml [--key value ...]`` into the three argument dataclasses."""
    values, source = resolve_config(argv)
    if "label_smoothing_factor" in values:
        raise KorclfError(f"config key 'label_smoothing_factor' in {source}: use korclf's 'label_smoothing'")
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    try:
        model_args, data_args, training_args = parser.parse_dict(values, allow_extra_keys=False)
    except (ValueError, TypeError) as error:
        raise KorclfError(f"invalid configuration in {source}: {error}") from None
    validate_arguments(model_args, data_args, training_args)
    return model_args, data_args, training_args


PATH_OPTIONS = ("model_name_or_path", "tokenizer_name", "encoder_paths", "cache_dir", "train_file",
                "validation_file", "test_file", "output_dir", "resume_from_checkpoint")


def _expand_home(*objects) -> None:
    """``~/models/e5`` works in configs as in a shell (transformers would read it as a hub id)."""
    for obj in objects:
        for name in PATH_OPTIONS:
            value = getattr(obj, name, None)
            if isinstance(value, str) and value.startswith("~"):
                setattr(obj, name, os.path.expanduser(value))
            elif isinstance(value, list):
                setattr(obj, name, [os.path.expanduser(v) if isinstance(v, str) else v for v in value])


def validate_arguments(model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
    """Cross-field checks that dataclass typing cannot express."""
    _expand_home(model_args, data_args, training_args)
    if not (data_args.train_file or data_args.dataset_name or data_args.test_file):
        raise KorclfError("no data: set 'train_file' (and optionally validation_file/test_file) or 'dataset_name'")
    if training_args.do_train and not (data_args.train_file or data_args.dataset_name):
        raise KorclfError("do_train needs 'train_file' or 'dataset_name'")
    if not 0.0 < data_args.max_length_percentile <= 1.0:
        raise KorclfError(f"max_length_percentile must be in (0, 1], got {data_args.max_length_percentile}")
    if not 0.0 < data_args.validation_split_ratio < 1.0:
        raise KorclfError(f"validation_split_ratio must be in (0, 1), got {data_args.validation_split_ratio}")
    for name in ("classifier_dropout", "encoder_dropout"):
        value = getattr(model_args, name)
        if value is not None and not 0.0 <= value < 1.0:
            raise KorclfError(f"{name} must be in [0, 1), got {value}")
    if model_args.model_kind == "multi_encoder":
        if not data_args.text_columns or len(data_args.text_columns) < 1:
            raise KorclfError("model_kind: multi_encoder needs 'text_columns' (a list of column names)")
    elif not isinstance(data_args.max_length, (int, str)) or (
        isinstance(data_args.max_length, str) and data_args.max_length != "auto"
    ):
        raise KorclfError(f"max_length must be a positive integer or 'auto', got {data_args.max_length!r}")
    if isinstance(data_args.max_length, int) and data_args.max_length < 8:
        raise KorclfError(f"max_length must be at least 8 tokens, got {data_args.max_length}")
    if model_args.model_kind == "rbert" and not data_args.entity_format:
        raise KorclfError("model_kind: rbert needs 'entity_format' ('klue' or 'semeval')")
    if training_args.early_stopping_patience is not None and not training_args.load_best_model_at_end:
        raise KorclfError("early_stopping_patience needs 'load_best_model_at_end: true' "
                          "(and matching eval_strategy/save_strategy)")
    if training_args.n_folds is not None and training_args.n_folds < 2:
        raise KorclfError(f"n_folds must be at least 2, got {training_args.n_folds}")


def arguments_to_dict(*args) -> dict:
    """The resolved configuration as written to ``run_config.yaml`` (JSON-safe values only)."""
    out: dict = {}
    for obj in args:
        if isinstance(obj, TrainingArguments):
            out["training"] = obj.to_sanitized_dict()
        else:
            out[type(obj).__name__.replace("Arguments", "").lower()] = dataclasses.asdict(obj)
    return json.loads(json.dumps(out, default=str))


def options_reference() -> str:
    """The configuration tables of the README, generated from the dataclasses (a test keeps them in sync)."""
    base = {f.name for f in dataclasses.fields(TrainingArguments)}
    sections = [("Model options", ModelArguments, None), ("Data options", DataArguments, None),
                ("Training options (korclf's additions; every `transformers.TrainingArguments` option is accepted "
                 "too)", KorclfTrainingArguments, base)]
    lines = []
    for title, cls, skip in sections:
        lines += [f"### {title}", "", "| option | default | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            if not f.init or (skip is not None and f.name in skip and f.name not in cls.__dict__.get(
                    "__annotations__", {})):
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            meaning = f.metadata.get("help", "").replace("|", "\\|")
            if f.metadata.get("choices"):
                meaning += " One of: " + ", ".join(f"`{c}`" for c in f.metadata["choices"]) + "."
            lines.append(f"| `{f.name}` | `{default}` | {meaning} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
