"""How each model kind turns rows into model inputs, shared by training and prediction.

A run's ``config.korclf`` settings (:func:`korclf.run.korclf_settings`) say which columns a model
reads and how; :func:`input_builder` turns them into one of three builders:

* :class:`TextInputs`: one text, or a sentence pair (``AutoModelForSequenceClassification``,
  ``korclf-encoder``);
* :class:`RelationInputs`: a sentence with two entities, marked and windowed (``korclf-rbert``);
* :class:`ColumnInputs`: several text columns tokenised separately (``korclf-multi-encoder``).

Each builder resolves ``max_length`` (``auto`` = a percentile of training token lengths), encodes a
split with a cached ``datasets.map`` (rows keep their source position in ``row_idx``) and pads
batches with :class:`~korclf.data.processing.PaddingCollator`. Training and ``korclf predict`` use the
same builder, so a reloaded model reads text exactly as the run did.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np
from datasets import Dataset

from ..errors import KorclfError, where
from .entities import (
    encode_relation_batch,
    mark_entities,
    parse_klue_row,
    parse_tagged_sentence,
    special_marker_tokens,
)
from .loading import canonical_label
from .processing import (
    LENGTH_COLUMN,
    ROW_COLUMN,
    PaddingCollator,
    TextEncoder,
    cached_map,
    resolve_max_length,
    tokenizer_fingerprint,
)

logger = logging.getLogger(__name__)

WINDOWED_COLUMN = "windowed"


def _label_ids(batch: dict, label_column: Optional[str], label2id: Optional[dict], keep: Sequence[int]) -> list:
    return [label2id[canonical_label(batch[label_column][i])] for i in keep]


def _has_labels(batch_or_columns, label_column: Optional[str], label2id: Optional[dict]) -> bool:
    return bool(label_column and label2id and label_column in batch_or_columns)


class InputBuilder:
    """Common interface; subclasses say which columns they read and how they encode them."""

    kind = "sequence"

    def __init__(self, settings: dict, tokenizer=None, label2id: Optional[dict] = None):
        self.settings = settings
        self.label2id = label2id
        self.label_column = settings.get("label_column")
        self.max_length = settings.get("max_length")
        self.set_tokenizer(tokenizer)

    #: the training file, named in errors found while reading training texts before encoding
    train_source: str = ""

    def set_tokenizer(self, tokenizer) -> None:
        """The tokenizer is known only after the texts are (a from-scratch tokenizer trains on them)."""
        self.tokenizer = tokenizer

    # -- what the builder reads
    def input_columns(self) -> list[str]:
        raise NotImplementedError

    def text_columns(self) -> list[str]:
        """The free-text columns among :meth:`input_columns` (checked for empty values, normalised)."""
        return self.input_columns()

    def display_texts(self, dataset: Dataset) -> list[str]:
        """The text shown in ``predictions.tsv``: what the user wrote, before normalisation."""
        columns = self.input_columns()
        shown = [f"_raw_{c}" if f"_raw_{c}" in dataset.column_names else c for c in columns]
        values = [dataset[c] for c in shown]
        return [" | ".join("" if v is None else str(v) for v in parts) for parts in zip(*values)]

    def feature_texts(self, dataset: Dataset) -> list[str]:
        """One (normalised) text per row for classical features: TF-IDF resampling, the baseline."""
        values = [dataset[c] for c in self.text_columns()]
        return [" ".join("" if v is None else str(v) for v in parts) for parts in zip(*values)]

    def tokenizer_texts(self, dataset: Dataset) -> list[str]:
        """Texts to train a from-scratch tokenizer on."""
        return [text for column in self.input_columns() for text in dataset[column]]

    # -- max length
    def resolve_max_length(self, train: Optional[Dataset], model_config, percentile: float, seed: int):
        raise NotImplementedError

    # -- encoding
    def encoder(self, source: str):
        """The ``map`` function (with a ``fingerprint_parts()`` method) for one split."""
        raise NotImplementedError

    def encode(self, dataset: Dataset, name: str, source: str = "", overwrite: bool = False,
               num_proc: Optional[int] = None) -> Dataset:
        """Tokenised copy of ``dataset`` (cached by ``datasets``), aligned to its rows by ``row_idx``."""
        function = self.encoder(source)
        return cached_map(dataset, function, function.fingerprint_parts(), f"Tokenizing {name}", overwrite=overwrite,
                          with_indices=True, remove_columns=dataset.column_names, num_proc=num_proc)

    def collator(self, pad_to_multiple_of: Optional[int] = None) -> PaddingCollator:
        return PaddingCollator(self.tokenizer.pad_token_id, pad_to_multiple_of)

    def check_encoded(self, encoded: Dataset, dataset: Dataset, name: str, id_column: Optional[str]) -> dict:
        """Counts of what encoding changed in a split (logged and kept for ``data_report.json``)."""
        return {}

    def signature_columns(self, model) -> list[str]:
        """Dataset columns the Trainer must keep for the model (beyond its forward signature)."""
        return []


class TextInputs(InputBuilder):
    """One text column, or a sentence pair (``text_pair_column``)."""

    def input_columns(self) -> list[str]:
        pair = self.settings.get("text_pair_column")
        return [self.settings["text_column"]] + ([pair] if pair else [])

    def resolve_max_length(self, train, model_config, percentile, seed):
        text_column, pair = self.settings["text_column"], self.settings.get("text_pair_column")
        texts = train[text_column] if train is not None else []
        pairs = train[pair] if pair and train is not None else None
        self.max_length, stats = resolve_max_length(self.settings["max_length"], self.tokenizer, model_config, texts,
                                                    pairs, percentile, seed)
        return self.max_length, stats

    def encoder(self, source: str):
        return TextEncoder(self.tokenizer, self.settings["text_column"], self.max_length,
                           self.settings.get("text_pair_column"), self.label_column, self.label2id)


# --------------------------------------------------------------------------- relations


def relation_examples(batch: dict, settings: dict, source: str, row_numbers: Sequence[int]) -> list:
    """Parse a batch of rows into :class:`~korclf.data.entities.RelationExample` (errors name file and row)."""
    text_column, id_column = settings["text_column"], settings.get("id_column")
    examples = []
    for i, number in enumerate(row_numbers):
        row_id = batch[id_column][i] if id_column and id_column in batch else number
        if settings["entity_format"] == "klue":
            row = {column: values[i] for column, values in batch.items()}
            examples.append(parse_klue_row(row, row_id=row_id, file=source, sentence_column=text_column,
                                           subject_column=settings["subject_column"],
                                           object_column=settings["object_column"]))
        else:
            examples.append(parse_tagged_sentence(batch[text_column][i], row_id=row_id, file=source,
                                                  column=text_column))
    return examples


class RelationEncoder:
    """``map`` function for R-BERT: parse entities, insert markers, tokenise with entity-aware windows."""

    def __init__(self, tokenizer, settings: dict, max_length: int, label2id: Optional[dict], source: str):
        self.tokenizer, self.settings, self.max_length = tokenizer, settings, max_length
        self.label2id, self.source = label2id, source

    def fingerprint_parts(self) -> tuple:
        keys = ("text_column", "entity_format", "entity_marker", "subject_column", "object_column",
                "entity_include_markers", "entity_overflow", "label_column", "id_column")
        return ("relation", tokenizer_fingerprint(self.tokenizer), self.max_length, self.source,
                [self.settings.get(k) for k in keys], sorted((self.label2id or {}).items()))

    def __call__(self, batch: dict, indices: list[int]) -> dict:
        examples = relation_examples(batch, self.settings, self.source, [i + 1 for i in indices])
        marked = [mark_entities(example, self.settings["entity_marker"], file=self.source) for example in examples]
        encoded = encode_relation_batch(
            self.tokenizer, [text for text, _ in marked], [spans for _, spans in marked], self.max_length,
            include_markers=self.settings.get("entity_include_markers", False),
            on_overflow=self.settings.get("entity_overflow", "error"), ids=[e.id for e in examples], file=self.source)
        stats = encoded.pop("stats")
        keep = encoded.pop("row_index")
        windowed = set(stats["windowed_ids"])
        out = {key: values for key, values in encoded.items() if key != "attention_mask"}
        out[LENGTH_COLUMN] = [len(ids) for ids in out["input_ids"]]
        out[ROW_COLUMN] = [indices[i] for i in keep]
        out[WINDOWED_COLUMN] = [int(examples[i].id in windowed) for i in keep]
        if _has_labels(batch, self.settings.get("label_column"), self.label2id):
            out["labels"] = _label_ids(batch, self.settings["label_column"], self.label2id, keep)
        return out


class RelationInputs(InputBuilder):
    """A sentence with a subject (``e1``) and an object (``e2``) entity, KLUE-RE or SemEval style."""

    kind = "rbert"

    def __init__(self, settings: dict, tokenizer=None, label2id: Optional[dict] = None):
        if settings.get("normalization"):
            raise KorclfError("model_kind 'rbert' reads entity positions from the raw text; text normalisation "
                              "(normalize / morpheme_* options) would move them. Turn normalisation off.")
        if not settings.get("entity_format"):
            raise KorclfError("model_kind 'rbert' needs 'entity_format' ('klue' or 'semeval')")
        super().__init__(settings, tokenizer, label2id)

    def input_columns(self) -> list[str]:
        columns = [self.settings["text_column"]]
        if self.settings["entity_format"] == "klue":
            columns += [self.settings["subject_column"], self.settings["object_column"]]
        return columns

    def text_columns(self) -> list[str]:
        return [self.settings["text_column"]]

    def display_texts(self, dataset: Dataset) -> list[str]:
        return [str(text) for text in dataset[self.settings["text_column"]]]

    def marked_texts(self, dataset: Dataset, source: Optional[str] = None) -> list[str]:
        source = self.train_source if source is None else source
        examples = relation_examples(dataset[:], self.settings, source, range(1, len(dataset) + 1))
        return [mark_entities(example, self.settings["entity_marker"], file=source)[0] for example in examples]

    def tokenizer_texts(self, dataset: Dataset) -> list[str]:
        return self.marked_texts(dataset)

    def resolve_max_length(self, train, model_config, percentile, seed):
        texts = self.marked_texts(train) if train is not None else []
        self.max_length, stats = resolve_max_length(self.settings["max_length"], self.tokenizer, model_config, texts,
                                                    None, percentile, seed)
        return self.max_length, stats

    def encoder(self, source: str):
        return RelationEncoder(self.tokenizer, self.settings, self.max_length, self.label2id, source)

    def check_encoded(self, encoded: Dataset, dataset: Dataset, name: str, id_column: Optional[str]) -> dict:
        if not len(encoded):
            raise KorclfError(f"split '{name}': no rows left after entity-aware truncation (every row's entities "
                              f"are further apart than max_length {self.max_length} allows); raise max_length")
        kept = set(encoded[ROW_COLUMN])
        skipped = [i for i in range(len(dataset)) if i not in kept]
        ids = dataset[id_column] if id_column and id_column in dataset.column_names else None
        skipped_ids = [ids[i] if ids is not None else i + 1 for i in skipped]
        windowed = int(np.sum(encoded[WINDOWED_COLUMN])) if len(encoded) else 0
        if windowed:
            logger.info("%s: %d of %d row(s) were longer than max_length %d and kept as a window around both "
                        "entities", name, windowed, len(dataset), self.max_length)
        if skipped_ids:
            logger.warning("%s: skipped %d row(s) whose two entities do not fit in max_length %d "
                           "(entity_overflow: skip): ids %s", name, len(skipped_ids), self.max_length, skipped_ids)
        return {"windowed": windowed, "skipped_entity_overflow": len(skipped_ids),
                "skipped_ids": skipped_ids}


def add_marker_tokens(tokenizer, marker: str) -> int:
    """Add the special marker tokens ``plain`` markers need; returns how many were new."""
    tokens = special_marker_tokens(marker)
    return tokenizer.add_tokens(tokens, special_tokens=True) if tokens else 0


# --------------------------------------------------------------------------- several text columns


class ColumnEncoder:
    """``map`` function tokenising each text column with its own tokenizer and max length."""

    def __init__(self, tokenizers: list, columns: list[str], max_lengths: list[int], label_column, label2id):
        self.tokenizers, self.columns, self.max_lengths = tokenizers, columns, max_lengths
        self.label_column, self.label2id = label_column, label2id

    def fingerprint_parts(self) -> tuple:
        return ("columns", [tokenizer_fingerprint(t) for t in self.tokenizers], self.columns, self.max_lengths,
                self.label_column, sorted((self.label2id or {}).items()))

    def __call__(self, batch: dict, indices: list[int]) -> dict:
        from .multi_column import tokenize_columns

        encoded = tokenize_columns(batch, self.tokenizers, self.columns, self.max_lengths)
        # the collator builds each attention mask from the ids' lengths
        out = {key: value for key, value in encoded.items() if key.endswith("input_ids")}
        out[LENGTH_COLUMN] = np.sum([[len(ids) for ids in column] for column in out.values()], axis=0).tolist()
        out[ROW_COLUMN] = indices
        if _has_labels(batch, self.label_column, self.label2id):
            out["labels"] = _label_ids(batch, self.label_column, self.label2id, range(len(indices)))
        return out


class ColumnInputs(InputBuilder):
    """Several text columns, one encoder each (``korclf-multi-encoder``); ``tokenizer`` may be a list."""

    kind = "multi_encoder"

    def __init__(self, settings: dict, tokenizer=None, label2id: Optional[dict] = None):
        self.columns = list(settings["text_columns"])
        super().__init__(settings, tokenizer, label2id)

    def set_tokenizer(self, tokenizer) -> None:
        """One tokenizer for every column, or a list with one per column (different backbones)."""
        tokenizers = tokenizer if isinstance(tokenizer, (list, tuple)) else [tokenizer] * len(self.columns)
        if len(tokenizers) != len(self.columns):
            raise KorclfError(f"{len(tokenizers)} tokenizers for {len(self.columns)} text columns {self.columns}")
        self.tokenizers = list(tokenizers)
        self.tokenizer = self.tokenizers[0]

    def input_columns(self) -> list[str]:
        return list(self.columns)

    def resolve_max_length(self, train, model_config, percentile, seed):
        from .multi_column import validate_max_lengths

        requested = validate_max_lengths(self.settings["max_length"], self.columns)
        configs = getattr(model_config, "encoders", None) or [None]
        chosen, stats = [], {}
        for i, (column, tokenizer, length) in enumerate(zip(self.columns, self.tokenizers, requested)):
            encoder_config = _encoder_config(configs[min(i, len(configs) - 1)])
            texts = train[column] if train is not None else []
            value, stats[column] = resolve_max_length(length, tokenizer, encoder_config, texts, None, percentile,
                                                      seed, key=f"max_length[{column}]")
            chosen.append(value)
        self.max_length = chosen
        return chosen, stats

    def encoder(self, source: str):
        return ColumnEncoder(self.tokenizers, self.columns, list(self.max_length), self.label_column, self.label2id)

    def collator(self, pad_to_multiple_of: Optional[int] = None) -> PaddingCollator:
        from ..models.modeling_multi_encoder import column_input_name

        pad_ids = {column_input_name(c, "input_ids"): t.pad_token_id for c, t in zip(self.columns, self.tokenizers)}
        return PaddingCollator(pad_ids, pad_to_multiple_of)

    def signature_columns(self, model) -> list[str]:
        names = getattr(model, "input_names", None)
        return list(names()) if callable(names) else []


def _encoder_config(encoder):
    """An encoder config from a dict in ``MultiEncoderConfig.encoders`` (for its position limit)."""
    if encoder is None or not isinstance(encoder, dict):
        return encoder
    from ..models.encoder_utils import encoder_config_from_dict

    return encoder_config_from_dict(encoder)


BUILDERS = {"sequence": TextInputs, "rbert": RelationInputs, "multi_encoder": ColumnInputs}


def input_builder(settings: dict, tokenizer, label2id: Optional[dict] = None) -> InputBuilder:
    """The builder for ``settings["model_kind"]``."""
    kind = settings.get("model_kind", "sequence")
    if kind not in BUILDERS:
        raise KorclfError(f"unknown model_kind {kind!r} in the saved korclf settings; expected one of {list(BUILDERS)}")
    return BUILDERS[kind](settings, tokenizer, label2id)


def missing_columns(builder: InputBuilder, dataset: Dataset, source: str) -> None:
    """Stop with a clear message when a column the model reads is not in the data."""
    missing = [c for c in builder.input_columns() if c not in dataset.column_names]
    if missing:
        raise KorclfError(f"{where(source, column=missing[0])}: column missing; the model reads "
                          f"{builder.input_columns()} and the file has {dataset.column_names}")
