"""From config to checked, normalised splits with integer labels: everything before tokenisation."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Optional

from datasets import Dataset

from ..errors import KorclfError, where
from ..text.normalize import NORMALIZER_REVISION, TextNormalizer
from .loading import build_label_list, check_labels, find_empty_texts, load_splits, require_columns, stratified_split
from .processing import ColumnNormalizer, cached_map

logger = logging.getLogger(__name__)


def text_columns_of(model_args, data_args) -> list[str]:
    """The text columns a run reads (normalised and checked for empty values)."""
    if model_args.model_kind == "multi_encoder":
        return list(data_args.text_columns)
    columns = [data_args.text_column]
    if data_args.text_pair_column:
        columns.append(data_args.text_pair_column)
    return columns


def entity_columns_of(data_args) -> list[str]:
    return [data_args.subject_column, data_args.object_column] if data_args.entity_format == "klue" else []


@dataclass
class PreparedSplits:
    """Checked and normalised raw splits, the label list and what happened to the rows."""

    splits: dict[str, Dataset]
    sources: dict[str, str]
    label_names: list[str]
    text_columns: list[str]
    normalizer: Optional[TextNormalizer]
    report: dict = field(default_factory=dict)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}

    def labels(self, split: str, label_column: str) -> Optional[list[int]]:
        dataset = self.splits.get(split)
        if dataset is None or label_column not in dataset.column_names:
            return None
        mapping = self.label2id
        return [mapping[label] for label in check_labels(dataset[label_column], self.sources[split], label_column,
                                                          self.label_names)]


def _handle_empty(dataset: Dataset, columns: list[str], source: str, policy: str, stage: str,
                  report: dict) -> Dataset:
    """Stop on (or drop and count) rows whose text is empty; ``stage`` says whether before or after normalising."""
    bad: set[int] = set()
    for column in columns:
        empty = find_empty_texts(dataset[column], source, column)
        if empty and policy == "error":
            after = " after normalisation" if stage == "normalized" else ""
            raise KorclfError(
                f"{where(source, empty[0] + 1, column)}: the text is empty or whitespace-only{after} "
                f"({len(empty)} such row(s) in this file). Fix the data or set 'empty_text: drop'."
            )
        bad.update(empty)
    if bad:
        report[f"dropped_empty_{stage}"] = len(bad)
        logger.warning("%s: dropped %d row(s) with empty text (%s)", source, len(bad), stage)
        keep = [i for i in range(len(dataset)) if i not in bad]
        if not keep:
            raise KorclfError(f"file '{source}': no rows left after dropping empty texts")
        dataset = dataset.select(keep)
    return dataset


def _no_barrier(desc: str = "") -> nullcontext:
    """Stand-in for ``TrainingArguments.main_process_first`` outside a distributed run."""
    return nullcontext()


def prepare_splits(model_args, data_args, seed: int, main_process_first=_no_barrier,
                   hold_out_validation: bool = True) -> PreparedSplits:
    """Load, check, normalise and label the splits; split validation off train when needed.

    ``hold_out_validation=False`` (k-fold) keeps every training row in train: the folds hold out their own.
    """
    raw = load_splits(data_args, model_args.cache_dir)
    columns = text_columns_of(model_args, data_args)
    normalization = data_args.normalization()
    normalizer = TextNormalizer.from_dict(normalization)
    report: dict = {"normalization": normalization, "splits": {}}
    splits: dict[str, Dataset] = {}
    for name, dataset in raw.splits.items():
        source = raw.sources[name]
        needed = columns + entity_columns_of(data_args)
        if name in ("train", "validation"):
            needed = needed + [data_args.label_column]
        require_columns(dataset, needed, source)
        split_report = {"rows_read": len(dataset)}
        dataset = _handle_empty(dataset, columns, source, data_args.empty_text, "raw", split_report)
        if normalizer is not None:
            with main_process_first(desc=f"normalising {name}"):
                dataset = cached_map(dataset, ColumnNormalizer(normalizer, columns),
                                     ("normalize", NORMALIZER_REVISION, normalization, columns), f"Normalising {name}",
                                     overwrite=data_args.overwrite_cache,
                                     num_proc=data_args.preprocessing_num_workers)
            differs = [[a != b for a, b in zip(dataset[c], dataset[f"_raw_{c}"])] for c in columns]
            changed = sum(any(flags) for flags in zip(*differs))
            split_report["rows_changed_by_normalization"] = changed
            logger.info("%s: normalisation changed the text of %d of %d row(s)", source, changed, len(dataset))
            dataset = _handle_empty(dataset, columns, source, data_args.empty_text, "normalized", split_report)
        split_report["rows_used"] = len(dataset)
        report["splits"][name] = split_report
        splits[name] = dataset
    label_names = None
    if "train" in splits:
        label_names = build_label_list(splits["train"][data_args.label_column], raw.sources["train"],
                                       data_args.label_column, data_args.label_list)
    elif data_args.label_list:
        label_names = [str(name) for name in data_args.label_list]
    prepared = PreparedSplits(splits, dict(raw.sources), label_names or [], columns, normalizer, report)
    for name in ("validation", "test"):  # unknown labels stop the run here, before any training
        if name in splits and data_args.label_column in splits[name].column_names and label_names:
            prepared.labels(name, data_args.label_column)
    if "train" in splits and "validation" not in splits and hold_out_validation:
        labels = prepared.labels("train", data_args.label_column)
        train_idx, val_idx = stratified_split(labels, data_args.validation_split_ratio, seed)
        splits["validation"] = splits["train"].select(val_idx)
        splits["train"] = splits["train"].select(train_idx)
        prepared.sources["validation"] = f"{raw.sources['train']} (held-out {data_args.validation_split_ratio:g})"
        report["validation_split"] = {"ratio": data_args.validation_split_ratio, "stratified": True,
                                      "train_rows": len(train_idx), "validation_rows": len(val_idx)}
        logger.info("No validation file: held out %d of %d training rows (stratified, seed %d)",
                    len(val_idx), len(labels), seed)
    return prepared
