"""Normalisation, tokenisation and padding of the checked splits.

Both ``datasets.map`` steps get an explicit fingerprint made from what determines their output
(parent data, normaliser settings, tokenizer, max length, labels), so an identical second run
loads the Arrow cache instead of re-computing, and the log says which happened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from datasets import Dataset
from datasets.fingerprint import Hasher

from .. import __version__
from ..errors import KorclfError
from .loading import canonical_label

logger = logging.getLogger(__name__)

ROW_COLUMN = "row_idx"
LENGTH_COLUMN = "length"
AUTO_LENGTH_SAMPLE = 20_000


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of everything that decides a tokenizer's output (vocabulary, normaliser, special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # truncation / padding are call-time state (the last call's max_length), not the tokenizer
        state = {key: value for key, value in json.loads(backend.to_str()).items()
                 if key not in ("truncation", "padding")}
        return hashlib.sha1(json.dumps(state, sort_keys=True).encode("utf-8")).hexdigest()
    return Hasher.hash(tokenizer)


def cached_map(dataset: Dataset, function: Callable, parts: tuple, description: str, overwrite: bool = False,
               **map_kwargs) -> Dataset:
    """``dataset.map(batched=True)`` keyed on ``parts``; logs whether the result came from the cache."""
    fingerprint = Hasher.hash((dataset._fingerprint, __version__) + tuple(parts))
    cached = False
    if dataset.cache_files and not overwrite:
        cached = os.path.exists(dataset._get_cache_file_path(fingerprint))
    if cached:
        logger.info("%s: loaded from the datasets cache (fingerprint %s), nothing recomputed", description, fingerprint)
    else:
        logger.info("%s: processing %d rows (fingerprint %s)", description, len(dataset), fingerprint)
    return dataset.map(function, batched=True, new_fingerprint=fingerprint, load_from_cache_file=not overwrite,
                       desc=description, **map_kwargs)


class ColumnNormalizer:
    """``map`` function applying a :class:`~korclf.text.normalize.TextNormalizer` to some columns.

    The text as read is kept in ``_raw_<column>`` so that predictions show what the user wrote.
    """

    def __init__(self, normalizer, columns: Sequence[str]):
        self.normalizer = normalizer
        self.columns = list(columns)

    def __call__(self, batch: dict) -> dict:
        out = {f"_raw_{column}": batch[column] for column in self.columns}
        out.update({column: self.normalizer(batch[column]) for column in self.columns})
        return out


class TextEncoder:
    """``map`` function for single texts and sentence pairs.

    Writes ``input_ids`` (and ``token_type_ids`` for pairs), the token ``length`` for
    length-grouped batching, the source ``row_idx`` and integer ``labels`` when the split has
    labels. The attention mask is left to the collator: it is implied by the lengths.
    """

    def __init__(self, tokenizer, text_column: str, max_length: int, pair_column: Optional[str] = None,
                 label_column: Optional[str] = None, label2id: Optional[dict] = None):
        self.tokenizer = tokenizer
        self.text_column = text_column
        self.pair_column = pair_column
        self.max_length = max_length
        self.label_column = label_column
        self.label2id = label2id

    def fingerprint_parts(self) -> tuple:
        return ("text", tokenizer_fingerprint(self.tokenizer), self.text_column, self.pair_column, self.max_length,
                self.label_column, sorted((self.label2id or {}).items()))

    def __call__(self, batch: dict, indices: list[int]) -> dict:
        pairs = batch[self.pair_column] if self.pair_column else None
        encoded = self.tokenizer(batch[self.text_column], pairs, truncation=True, max_length=self.max_length,
                                 return_attention_mask=False, return_token_type_ids=pairs is not None)
        out = {"input_ids": encoded["input_ids"], LENGTH_COLUMN: [len(ids) for ids in encoded["input_ids"]],
               ROW_COLUMN: indices}
        if pairs is not None:
            out["token_type_ids"] = encoded["token_type_ids"]
        if self.label_column and self.label2id and self.label_column in batch:
            out["labels"] = [self.label2id[canonical_label(value)] for value in batch[self.label_column]]
        return out


def model_max_length(tokenizer, config=None) -> Optional[int]:
    """Longest input the model accepts: position embeddings (less RoBERTa's offset) and the tokenizer's limit."""
    limits = []
    if config is not None:
        positions = getattr(config, "max_position_embeddings", None)
        if positions:
            offset = 2 if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
            limits.append(positions - offset)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit and tokenizer_limit < 1_000_000:
        limits.append(int(tokenizer_limit))
    return min(limits) if limits else None


def token_lengths(tokenizer, texts: list[str], pairs: Optional[list[str]] = None, batch_size: int = 2000) -> np.ndarray:
    """Token counts with special tokens, without truncation."""
    lengths = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        pair_chunk = pairs[start:start + batch_size] if pairs is not None else None
        encoded = tokenizer(chunk, pair_chunk, add_special_tokens=True, return_attention_mask=False,
                            return_token_type_ids=False)
        lengths.extend(len(ids) for ids in encoded["input_ids"])
    return np.asarray(lengths)


def length_statistics(lengths: np.ndarray) -> dict:
    return {"rows": int(len(lengths)), "mean": float(lengths.mean()), "min": int(lengths.min()),
            **{f"p{int(q * 100)}": int(np.quantile(lengths, q, method="higher")) for q in (0.5, 0.9, 0.96, 0.99)},
            "max": int(lengths.max())}


def resolve_max_length(requested, tokenizer, config, texts: list[str], pairs: Optional[list[str]], percentile: float,
                       seed: int, key: str = "max_length") -> tuple[int, dict]:
    """The max length to tokenize with, and the length statistics that chose it.

    ``auto`` takes the ``percentile`` of token lengths over (a seeded sample of at most
    20,000) training texts; an explicit value is checked against what the model allows.
    """
    limit = model_max_length(tokenizer, config)
    sample = np.arange(len(texts))
    if len(texts) > AUTO_LENGTH_SAMPLE:
        sample = np.sort(np.random.default_rng(seed).choice(len(texts), AUTO_LENGTH_SAMPLE, replace=False))
    lengths = token_lengths(tokenizer, [texts[i] for i in sample], [pairs[i] for i in sample] if pairs else None)
    stats = length_statistics(lengths)
    if requested == "auto":
        chosen = int(np.quantile(lengths, percentile, method="higher"))
        if limit is not None and chosen > limit:
            chosen = limit
        stats["chosen_by"] = f"p{percentile * 100:g} of training token lengths"
    else:
        chosen = int(requested)
        if limit is not None and chosen > limit:
            raise KorclfError(f"config key '{key}': {chosen} is larger than the model allows ({limit} tokens)")
        stats["chosen_by"] = "config"
    stats["max_length"] = chosen
    stats["share_truncated"] = float((lengths > chosen).mean())
    logger.info(
        "Token lengths (%d training texts%s): mean %.1f, p50 %d, p90 %d, p96 %d, p99 %d, max %d → %s %d "
        "(%.1f%% of texts truncated)",
        stats["rows"], " sampled" if len(sample) < len(texts) else "", stats["mean"], stats["p50"], stats["p90"],
        stats["p96"], stats["p99"], stats["max"], key, chosen, 100 * stats["share_truncated"])
    return chosen, stats


class PaddingCollator:
    """Dynamic padding to the longest sequence of each batch.

    Pads every ``*input_ids`` field with the tokenizer's pad id, builds the matching
    ``*attention_mask``, pads ``*token_type_ids`` and entity masks with zeros, and drops
    bookkeeping columns (``length``, ``row_idx``) that the model does not take.
    """

    drop = (LENGTH_COLUMN, ROW_COLUMN, "windowed")

    def __init__(self, pad_token_id, pad_to_multiple_of: Optional[int] = None):
        """``pad_token_id``: one id, or ``{field: id}`` when columns come from different tokenizers."""
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def _pad_id(self, key: str) -> int:
        if isinstance(self.pad_token_id, dict):
            return self.pad_token_id[key]
        return self.pad_token_id

    def _width(self, sequences) -> int:
        width = max(len(seq) for seq in sequences)
        if self.pad_to_multiple_of:
            width = int(math.ceil(width / self.pad_to_multiple_of) * self.pad_to_multiple_of)
        return width

    def __call__(self, features: list[dict]) -> dict:
        batch = {}
        keys = [key for key in features[0] if key not in self.drop]
        for key in keys:
            values = [feature[key] for feature in features]
            if key.endswith("input_ids"):
                width = self._width(values)
                ids = torch.full((len(values), width), self._pad_id(key), dtype=torch.long)
                mask = torch.zeros((len(values), width), dtype=torch.long)
                for i, seq in enumerate(values):
                    ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
                    mask[i, : len(seq)] = 1
                batch[key] = ids
                batch[key[: -len("input_ids")] + "attention_mask"] = mask
            elif isinstance(values[0], (list, tuple)):
                width = self._width(values)
                padded = torch.zeros((len(values), width), dtype=torch.long)
                for i, seq in enumerate(values):
                    padded[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
                batch[key] = padded
            elif not isinstance(values[0], str):
                batch[key] = torch.as_tensor(values)
        return batch
