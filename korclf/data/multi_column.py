"""Tokenisation for models that read several text columns separately.

Each column keeps its own tokenizer and truncation length (``ColumnInputs.collator`` pads each
column with its own pad id), and its inputs are named with
:func:`~korclf.models.modeling_multi_encoder.column_input_name` (``title_input_ids``, ...), which is
what :class:`~korclf.models.modeling_multi_encoder.MultiEncoderForSequenceClassification` reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from korclf.errors import KorclfError, where
from korclf.models.modeling_multi_encoder import column_input_name

TOKENIZED_FIELDS = ("input_ids", "attention_mask")


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
