"""Files a run leaves in its output folder besides the model: reports, predictions, versions."""

from __future__ import annotations

import csv
import json
import os
import platform
from importlib import metadata
from typing import Optional, Sequence

import numpy as np
import yaml

from .metrics import classification_metrics, classification_report_dict, save_confusion_matrix_png

PACKAGES = ("korclf", "torch", "transformers", "datasets", "accelerate", "tokenizers", "scikit-learn",
            "imbalanced-learn", "kiwipiepy", "numpy")


def write_json(path: str, data) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2, default=str)


def package_versions() -> dict:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_run_files(output_dir: str, resolved_config: dict, data_report: dict) -> None:
    """``run_config.yaml`` (every option as resolved), ``versions.json`` and ``data_report.json``."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "run_config.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(resolved_config, handle, allow_unicode=True, sort_keys=False)
    write_json(os.path.join(output_dir, "versions.json"), package_versions())
    write_json(os.path.join(output_dir, "data_report.json"), data_report)


def evaluation_report(y_true: Sequence[int], y_pred: Sequence[int], label_names: list[str], output_dir: Optional[str],
                      prefix: str) -> dict:
    """Metrics with the ``prefix`` (``eval``/``test``), the per-class report and a confusion-matrix PNG."""
    metrics = {f"{prefix}_{key}": value for key, value in classification_metrics(y_true, y_pred, label_names).items()}
    metrics[f"{prefix}_report"] = classification_report_dict(y_true, y_pred, label_names)
    if output_dir:
        save_confusion_matrix_png(y_true, y_pred, label_names, os.path.join(output_dir, f"{prefix}_confusion_matrix.png"))
    return metrics


def format_metrics_table(metrics: dict, prefix: str, label_names: list[str]) -> str:
    """Headline metrics and the per-class precision / recall / F1, as printed at the end of a run."""
    head = [("accuracy", "accuracy"), ("macro-F1", "macro_f1"), ("weighted-F1", "weighted_f1")]
    lines = [f"{prefix} metrics", "-" * 44]
    lines += [f"{name:<14}{metrics[f'{prefix}_{key}']:>10.4f}" for name, key in head if f"{prefix}_{key}" in metrics]
    report = metrics.get(f"{prefix}_report")
    if report:
        lines += ["", f"{'label':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
        for name in label_names:
            row = report.get(name, {})
            lines.append(f"{name:<16}{row.get('precision', 0):>10.3f}{row.get('recall', 0):>10.3f}"
                         f"{row.get('f1-score', 0):>10.3f}{int(row.get('support', 0)):>9d}")
    return "\n".join(lines)


def write_predictions(path: str, ids: Sequence, texts: Sequence[str], probabilities: np.ndarray,
                      label_names: list[str]) -> None:
    """``predictions.tsv``: id, text, predicted label and one probability column per label."""
    predicted = probabilities.argmax(axis=-1)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(["id", "text", "label"] + [f"prob_{name}" for name in label_names])
        for row_id, text, label, probs in zip(ids, texts, predicted, probabilities):
            writer.writerow([row_id, text, label_names[label]] + [f"{p:.6f}" for p in probs])
