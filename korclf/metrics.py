"""Evaluation metrics: classification scores, confusion matrices and relation-extraction scores.

Scores come from scikit-learn. Class indices are always passed as ``labels=range(k)`` so
that a class absent from a (small) evaluation set still counts, with zero, in macro
averages and still has its row in the confusion matrix.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
from scipy.special import softmax as _scipy_softmax
from sklearn.metrics import (
    accuracy_score,
    auc,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_recall_fscore_support,
)

from .errors import KorclfError

IGNORE_INDEX = -100
NORMALIZE_MODES = (None, "true", "pred", "all")
# Tried in order for the confusion-matrix PNG; DejaVu Sans (matplotlib's default) has no Hangul.
KOREAN_FONTS = ("NanumGothic", "Noto Sans CJK KR", "Noto Sans KR", "Malgun Gothic", "AppleGothic", "UnDotum")


def metric_keys(label_names: Sequence[str]) -> list[str]:
    """Label names made safe for metric keys (whitespace runs become ``_``), checked to stay distinct."""
    keys = [re.sub(r"\s+", "_", str(name).strip()) for name in label_names]
    if len(set(keys)) != len(keys):
        raise KorclfError(f"label names {list(label_names)} collide once spaces become '_' in metric names")
    return keys


def classification_metrics(y_true, y_pred, label_names: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro/weighted F1, macro precision/recall, and recall and F1 per class."""
    labels = list(range(len(label_names)))
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1.mean()),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
    }
    for key, class_recall, class_f1 in zip(metric_keys(label_names), recall, f1):
        metrics[f"recall_{key}"] = float(class_recall)
        metrics[f"f1_{key}"] = float(class_f1)
    return metrics


def classification_report_dict(y_true, y_pred, label_names: Sequence[str]) -> dict:
    """scikit-learn's ``classification_report`` as a dict keyed by label name (for the JSON report)."""
    return classification_report(
        y_true,
        y_pred,
        labels=list(range(len(label_names))),
        target_names=list(label_names),
        output_dict=True,
        zero_division=0,
    )


def confusion(y_true, y_pred, num_labels: int, normalize: Optional[str] = None) -> np.ndarray:
    """Confusion matrix, rows = true class; ``normalize="true"`` divides each row by its support."""
    if normalize not in NORMALIZE_MODES:
        raise KorclfError(f"normalize {normalize!r} is not one of {NORMALIZE_MODES}")
    return confusion_matrix(y_true, y_pred, labels=list(range(num_labels)), normalize=normalize)


def save_confusion_matrix_png(y_true, y_pred, label_names: Sequence[str], path: Union[str, Path]) -> Path:
    """Write counts and row-normalised rates side by side in one PNG.

    The figure is built with ``matplotlib.figure.Figure`` (not pyplot), which renders with
    Agg without switching the process-wide backend. Missing-glyph warnings (Hangul with
    the default font) are silenced; a Korean font is used when one is installed.
    """
    from matplotlib import font_manager, rc_context
    from matplotlib.figure import Figure

    num_labels = len(label_names)
    counts = confusion(y_true, y_pred, num_labels)
    panels = (  # title, matrix, cell format, top of the colour scale
        ("Counts", counts, "d", max(int(counts.max()), 1)),
        ("Normalised by true class", confusion(y_true, y_pred, num_labels, normalize="true"), ".2f", 1.0),
    )
    installed = {font.name for font in font_manager.fontManager.ttflist}
    fonts = [name for name in KOREAN_FONTS if name in installed] + ["DejaVu Sans"]
    side = max(4.0, 0.45 * num_labels + 2.0)
    cell_font = max(5.0, min(10.0, 120.0 / num_labels))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rc_context({"font.family": fonts}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from", category=UserWarning)
        fig = Figure(figsize=(2 * side + 1.5, side), layout="constrained")
        for ax, (title, matrix, fmt, vmax) in zip(fig.subplots(1, 2), panels):
            image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=vmax)
            fig.colorbar(image, ax=ax, shrink=0.8)
            ticks = range(num_labels)
            ax.set(title=title, xlabel="Predicted", ylabel="True", xticks=ticks, yticks=ticks)
            ax.set_xticklabels(label_names, rotation=45, ha="right")
            ax.set_yticklabels(label_names)
            for (row, col), value in np.ndenumerate(matrix):
                color = "white" if value > vmax / 2 else "black"
                ax.text(col, row, format(value, fmt), ha="center", va="center", color=color, fontsize=cell_font)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _first(output):
    """Models that return extra outputs give a tuple; the logits (or labels) come first."""
    return output[0] if isinstance(output, (tuple, list)) else output


RELATION_METRICS = (None, "klue", "semeval")


def make_compute_metrics(label_names: Sequence[str], relation_metrics: Optional[str] = None) -> Callable:
    """``compute_metrics`` for the Trainer: argmax of the logits, then :func:`classification_metrics`.

    Examples whose label is ``-100`` are left out, as the losses leave them out. Per-class
    ``recall_<label>`` and ``f1_<label>`` come with every evaluation, so the Trainer log shows
    which classes a model gives up on. ``relation_metrics="klue"`` adds ``klue_micro_f1`` and
    ``klue_auprc`` (on softmax probabilities), ``"semeval"`` adds ``semeval_f1``; their labels
    (``no_relation`` / ``Other``) are checked here, before training.
    """
    label_names = list(label_names)
    if relation_metrics not in RELATION_METRICS:
        raise KorclfError(f"relation_metrics {relation_metrics!r} is not one of {list(RELATION_METRICS)}")
    if relation_metrics == "klue" and "no_relation" not in label_names:
        raise KorclfError("KLUE-RE metrics need a 'no_relation' label, which the label list lacks")
    if relation_metrics == "semeval" and "Other" not in label_names:
        raise KorclfError("SemEval-2010 Task 8 metrics need an 'Other' label, which the label list lacks")

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits = np.asarray(_first(eval_prediction.predictions))
        y_true = np.asarray(_first(eval_prediction.label_ids))
        keep = y_true != IGNORE_INDEX
        logits, y_true = logits[keep], y_true[keep]
        y_pred = logits.argmax(axis=-1)
        metrics = classification_metrics(y_true, y_pred, label_names)
        if relation_metrics is not None:
            metrics.update(relation_scores(relation_metrics, y_true, softmax(logits), label_names))
        return metrics

    return compute_metrics


def relation_scores(kind: str, y_true, probabilities: np.ndarray, label_names: Sequence[str]) -> dict[str, float]:
    """The standard RE scores: KLUE-RE micro-F1 and AUPRC (``kind="klue"``) or SemEval's official F1."""
    y_pred = np.asarray(probabilities).argmax(axis=-1)
    if kind == "klue":
        return {"klue_micro_f1": klue_re_micro_f1(y_true, y_pred, label_names),
                "klue_auprc": klue_re_auprc(y_true, probabilities, len(label_names))}
    return {"semeval_f1": semeval_official_f1(y_true, y_pred, label_names)}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, in float64; scipy subtracts the max so large logits do not overflow."""
    return _scipy_softmax(np.asarray(logits, dtype=np.float64), axis=-1)


def klue_re_micro_f1(y_true, y_pred, label_names: Sequence[str], no_relation: str = "no_relation") -> float:
    """KLUE-RE micro-F1 (x100) over every relation except ``no_relation``, as KLUE's official script."""
    label_names = list(label_names)
    if no_relation not in label_names:
        raise KorclfError(f"no_relation label {no_relation!r} is not among the label names")
    labels = [index for index, name in enumerate(label_names) if name != no_relation]
    return float(f1_score(y_true, y_pred, labels=labels, average="micro", zero_division=0) * 100.0)


def klue_re_auprc(y_true, probs, num_labels: int) -> float:
    """KLUE-RE AUPRC (x100): area under each class's one-vs-rest precision-recall curve, averaged.

    As KLUE's official script, the area is ``auc(recall, precision)`` of
    ``precision_recall_curve`` (trapezoidal), which is not ``average_precision_score``
    (step-wise), and ``no_relation`` is included. Pass probabilities (:func:`softmax`),
    not logits: the ranking within a column differs. A class with no example in
    ``y_true`` has no defined area (the official script gave ``nan`` with the scikit-learn
    of its day, ``0.5`` with today's), so it is left out of the average; on the full KLUE
    dev set, where every class occurs, this equals the official number.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    if probs.shape != (len(y_true), num_labels):
        raise KorclfError(f"probs must have shape ({len(y_true)}, {num_labels}), got {probs.shape}")
    areas = []
    for label in np.unique(y_true):
        precision, recall, _ = precision_recall_curve(y_true == label, probs[:, label])
        areas.append(auc(recall, precision))
    if not areas:
        raise KorclfError("klue_re_auprc needs at least one example")
    return float(np.mean(areas) * 100.0)


_DIRECTION = re.compile(r"\(e[12],e[12]\)$")


def semeval_official_f1(y_true, y_pred, label_names: Sequence[str], other: str = "Other") -> float:
    """SemEval-2010 Task 8 official score (x100), as ``semeval2010_task8_scorer-v1.2.pl``.

    "(9+1)-way, directionality taken into account": for each relation type ``R`` (label
    without its ``(e1,e2)``/``(e2,e1)`` suffix) found in ``y_true``, other than ``other``:

    - correct = predictions equal to the gold label (type and direction) with gold type R
    - precision = correct / predictions of type R, wrong-direction ones included
      (the scorer's ``P = correct / (proposed + xDIRx)``)
    - recall = correct / gold examples of type R

    The score is the mean F1 over those types. As in the scorer, a type absent from
    ``y_true`` is not averaged (its predictions count like ``other``): on the official
    test set all nine types occur, on a smaller set the mean is over fewer types.
    """
    label_names = list(label_names)
    if other not in label_names:
        raise KorclfError(f"other label {other!r} is not among the label names")
    types = np.array([_DIRECTION.sub("", name) for name in label_names])
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    gold_type, pred_type = types[y_true], types[y_pred]
    exact = y_true == y_pred
    scores = []
    for relation in sorted(set(gold_type) - {other}):
        correct = np.sum(exact & (gold_type == relation))
        proposed = np.sum(pred_type == relation)
        precision = correct / proposed if proposed else 0.0
        recall = correct / np.sum(gold_type == relation)
        scores.append(2 * precision * recall / (precision + recall) if correct else 0.0)
    return float(np.mean(scores) * 100.0) if scores else 0.0
