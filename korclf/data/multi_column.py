"""Tokenisation and batching for models that read several text columns separately.

Each column keeps its own tokenizer, truncation length and padding, and its inputs are named with
:func:`~korclf.models.modeling_multi_encoder.column_input_name` (``title_input_ids``, ...), which is
what :class:`~korclf.models.modeling_multi_encoder.MultiEncoderForSequenceClassification` reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.data.data_collator import pad_without_fast_tokenizer_warning

from korclf.errors import KorclfError, where
from korclf.models.modeling_multi_encoder import column_input_name

TOKENIZED_FIELDS = ("input_ids", "attention_mask")
LABEL_KEYS = ("labels", "label", "label_ids")


def _per_column(value, text_columns: Sequence[str], name: str) -> list:
    """Broadcast a single value to every column, or check a list has one entry per column."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(text_columns):
            raise KorclfError(
                f"{name} has {len(value)} entries but there are {len(text_columns)} text columns "
                f"{list(text_columns)}; give one per column or a single value"
            )
        return list(value)
    return [value] * len(text_columns)


def validate_max_lengths(max_length, text_columns: Sequence[str]) -> list:
    """One maximum length per text column.

    An int or ``"auto"`` applies to every column; a list must have one entry per column (short
    keyword columns and long goal columns rarely want the same limit). ``"auto"`` is passed through
    for the caller to resolve.
    """
    lengths = _per_column(max_length, text_columns, "max_length")
    for column, length in zip(text_columns, lengths):
        valid_int = isinstance(length, int) and not isinstance(length, bool) and length > 0
        if not (valid_int or length == "auto"):
            raise KorclfError(
                f"max_length for {where(column=column)} must be a positive int or 'auto', got {length!r}"
            )
    return lengths


def tokenize_columns(batch: dict[str, list], tokenizers, text_columns: Sequence[str], max_lengths) -> dict:
    """Tokenise each text column with its own tokenizer and truncation length, without padding.

    For ``datasets.Dataset.map(batched=True)``. ``tokenizers`` is one tokenizer for all columns or one per
    column (when their backbones differ); ``max_lengths`` is validated by :func:`validate_max_lengths` and
    must hold ints by now. Missing texts (``None``) become empty strings. Returns
    ``{column}_input_ids`` and ``{column}_attention_mask`` lists for every column.
    """
    tokenizers = _per_column(tokenizers, text_columns, "tokenizers")
    max_lengths = validate_max_lengths(max_lengths, text_columns)
    encoded = {}
    for column, tokenizer, max_length in zip(text_columns, tokenizers, max_lengths):
        if max_length == "auto":
            raise KorclfError(f"max_length 'auto' for {where(column=column)} must be resolved before tokenising")
        if column not in batch:
            raise KorclfError(f"text {where(column=column)} is missing; the data has columns {sorted(batch)}")
        texts = ["" if text is None else str(text) for text in batch[column]]
        tokens = tokenizer(texts, truncation=True, max_length=max_length, return_token_type_ids=False)
        for field in TOKENIZED_FIELDS:
            encoded[column_input_name(column, field)] = tokens[field]
    return encoded


class MultiColumnCollator:
    """Pad each text column of a batch to that column's longest sequence, with its own tokenizer.

    ``tokenizers``: one for all columns or one per column (their pad ids and padding sides are used).
    ``labels`` (also read from ``label``/``label_ids``) are stacked into a tensor; other fields that
    convert to a tensor (numbers, equal-length lists) pass through, the rest (raw strings) are dropped.
    """

    def __init__(self, tokenizers, text_columns: Sequence[str], pad_to_multiple_of: int | None = None):
        self.text_columns = list(text_columns)
        self.tokenizers = _per_column(tokenizers, self.text_columns, "tokenizers")
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch, used = {}, set()
        for column, tokenizer in zip(self.text_columns, self.tokenizers):
            names = {
                field: column_input_name(column, field)
                for field in (*TOKENIZED_FIELDS, "token_type_ids")
                if column_input_name(column, field) in features[0]
            }
            if "input_ids" not in names:
                raise KorclfError(
                    f"batch has no '{column_input_name(column, 'input_ids')}' for text {where(column=column)}; "
                    "tokenise with tokenize_columns first"
                )
            padded = pad_without_fast_tokenizer_warning(
                tokenizer,
                [{field: feature[name] for field, name in names.items()} for feature in features],
                padding=True,
                pad_to_multiple_of=self.pad_to_multiple_of,
                return_tensors="pt",
            )
            batch.update({name: padded[field] for field, name in names.items()})
            used.update(names.values())
        for key in features[0]:
            if key in used:
                continue
            try:
                value = torch.tensor([feature[key] for feature in features])
            except (TypeError, ValueError, RuntimeError):
                continue  # strings, None, ragged lists: nothing a model can take
            batch["labels" if key in LABEL_KEYS else key] = value
        return batch
