"""Loading and checking the raw splits.

Files are read with ``datasets.load_dataset`` (Arrow cache included); every check that can fail
on user data runs here, before any model is built, and names the file, row and column.
"""

from __future__ import annotations

import codecs
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Optional

import datasets
import numpy as np
from datasets import Dataset, DatasetDict

from ..errors import KorclfError, where

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def file_format(path: str) -> str:
    """``datasets`` builder name for a data file, from its extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise KorclfError(f"file '{path}': unsupported extension '{ext}'; use one of {sorted(FORMATS)}")
    return FORMATS[ext]


def _builder_kwargs(path: str) -> dict:
    """Read delimited files as plain strings: no 'NA' → NaN, no type guessing (labels are parsed later).

    Tab-separated files are read without quote handling, as such files usually are written.
    """
    if file_format(path) != "csv":
        return {}
    import csv

    tab = path.lower().endswith((".tsv", ".txt"))
    with open(path, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle, delimiter="\t" if tab else ",", quoting=csv.QUOTE_NONE if tab else 0), [])
    if len(set(header)) != len(header):
        raise KorclfError(f"file '{path}': the header has duplicate column names {header}")
    kwargs = {"na_filter": False, "features": datasets.Features({name: datasets.Value("string") for name in header})}
    if tab:
        kwargs.update(sep="\t", quoting=3)
    return kwargs


def load_file(path: str, cache_dir: Optional[str] = None) -> Dataset:
    """One local file as a ``Dataset``, with errors that name the file."""
    if not os.path.isfile(path):
        raise KorclfError(f"file '{path}' does not exist")
    if file_format(path) != "parquet":  # parquet is binary; only text formats must be UTF-8
        try:
            with open(path, "rb") as handle:
                head = handle.read(1 << 16)
            # incremental decoder: a character cut by the 64 KiB boundary is not an error
            codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < (1 << 16))
        except UnicodeDecodeError as error:
            raise KorclfError(f"file '{path}' is not UTF-8 text (byte {error.start}); re-save it as UTF-8") from None
    kwargs = _builder_kwargs(path)  # its own errors (duplicate header names) already name the file
    try:
        loaded = datasets.load_dataset(
            file_format(path), data_files={"data": path}, split="data", cache_dir=cache_dir, **kwargs
        )
    except Exception as error:  # datasets wraps parser errors in many types
        cause = error.__cause__ or error
        if isinstance(cause, UnicodeDecodeError):
            raise KorclfError(f"file '{path}' is not UTF-8 text; re-save it as UTF-8") from None
        raise KorclfError(f"file '{path}' could not be read as {file_format(path)}: {cause}") from None
    if len(loaded) == 0:
        raise KorclfError(f"file '{path}' has no rows")
    return loaded


def load_hub(name: str, config_name: Optional[str], cache_dir: Optional[str] = None) -> DatasetDict:
    """A hub data set; without network this fails with one message that says so."""
    try:
        return datasets.load_dataset(name, config_name, cache_dir=cache_dir)
    except Exception as error:
        raise KorclfError(
            f"hub data set '{name}'{f' ({config_name})' if config_name else ''} could not be loaded: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. Without network access, "
            "download it elsewhere and point train_file/validation_file/test_file at local files."
        ) from None


def class_labels_as_names(dataset: Dataset) -> Dataset:
    """Hub data sets store labels as ``ClassLabel`` ids; korclf reports and saves the names instead."""
    columns = {name: feature for name, feature in dataset.features.items() if isinstance(feature, datasets.ClassLabel)}
    if not columns:
        return dataset

    def to_names(batch: dict) -> dict:
        return {name: [feature.int2str(v) if v is not None and v >= 0 else None for v in batch[name]]
                for name, feature in columns.items()}

    features = dataset.features.copy()
    for name in columns:
        features[name] = datasets.Value("string")
    return dataset.map(to_names, batched=True, features=features, desc="Label ids to names")


@dataclass
class RawSplits:
    """The splits of a run, with the file each came from (for error messages)."""

    splits: dict[str, Dataset]
    sources: dict[str, str]
    report: dict = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.splits

    def __getitem__(self, name: str) -> Dataset:
        return self.splits[name]


def load_splits(data_args, cache_dir: Optional[str] = None) -> RawSplits:
    """Train / validation / test from local files or a hub data set."""
    splits, sources = {}, {}
    if data_args.dataset_name:
        hub = load_hub(data_args.dataset_name, data_args.dataset_config_name, cache_dir)
        aliases = {"train": ["train"], "validation": ["validation", "dev", "valid"], "test": ["test"]}
        for split, names in aliases.items():
            for name in names:
                if name in hub:
                    splits[split] = class_labels_as_names(hub[name])
                    sources[split] = f"{data_args.dataset_name}[{name}]"
                    break
    for split, path in (("train", data_args.train_file), ("validation", data_args.validation_file),
                        ("test", data_args.test_file)):
        if path:
            splits[split] = load_file(path, cache_dir)
            sources[split] = path
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
              "test": data_args.max_predict_samples}
    for split, limit in limits.items():
        if split in splits and limit is not None and limit < len(splits[split]):
            splits[split] = splits[split].select(range(limit))
    return RawSplits(splits, sources)


def require_columns(dataset: Dataset, columns: list[str], source: str) -> None:
    missing = [column for column in columns if column not in dataset.column_names]
    if missing:
        raise KorclfError(
            f"file '{source}': missing column(s) {missing}; the file has {dataset.column_names}. "
            "Set text_column / label_column (or text_columns) in the config."
        )


def find_empty_texts(texts: list, source: str, column: str) -> list[int]:
    """Row indices (0-based) whose text is missing, empty or whitespace-only."""
    empty = []
    for i, text in enumerate(texts):
        if text is None or (isinstance(text, float) and math.isnan(text)) or not str(text).strip():
            empty.append(i)
    return empty


def canonical_label(value) -> Optional[str]:
    """Labels compare as strings; ``1``, ``"1"`` and ``1.0`` are the same label; missing → None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _sort_key(label: str):
    """Integer-like labels sort numerically (2 before 10); the rest alphabetically after them."""
    try:
        return (0, int(label), "")
    except ValueError:
        return (1, 0, label)


def build_label_list(train_labels: list, source: str, column: str, given: Optional[list] = None) -> list[str]:
    """The label names in a stable order: as given in the config, else sorted from the training data."""
    labels = check_labels(train_labels, source, column, None)
    if given:
        names = [canonical_label(name) for name in given]
        unknown = sorted(set(labels) - set(names), key=_sort_key)
        if unknown:
            row = next(i for i, label in enumerate(labels) if label in unknown)
            raise KorclfError(f"{where(source, row + 1, column)}: label '{labels[row]}' is not in label_list {names}")
        return names
    return sorted(set(labels), key=_sort_key)


def check_labels(values: list, source: str, column: str, label_names: Optional[list[str]]) -> list[str]:
    """Canonical label strings; a missing label, or one outside ``label_names``, stops with its row."""
    labels = []
    known = set(label_names) if label_names is not None else None
    for i, value in enumerate(values):
        label = canonical_label(value)
        if label is None:
            raise KorclfError(f"{where(source, i + 1, column)}: the label is missing (empty or NaN)")
        if known is not None and label not in known:
            raise KorclfError(
                f"{where(source, i + 1, column)}: label '{label}' never occurs in the training data "
                f"(known labels: {label_names})"
            )
        labels.append(label)
    return labels


def stratified_split(labels: list[int], ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified train / validation split; plain random if a class has a single row."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    if stratify is None:
        logger.warning("A class has a single training row: the validation split is random, not stratified.")
    train_idx, val_idx = train_test_split(indices, test_size=ratio, random_state=seed, stratify=stratify)
    return np.sort(train_idx), np.sort(val_idx)
