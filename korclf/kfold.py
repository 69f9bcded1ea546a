"""Stratified k-fold pieces: fold indices, fold ensembling and out-of-fold predictions.

Pure functions on arrays; the training loop over folds lives in :mod:`korclf.run`.
"""

from __future__ import annotations

import csv
from collections import Counter
from typing import Optional, Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold

from .errors import KorclfError

ENSEMBLE_MODES = ("mean", "vote")


def fold_indices(labels: Sequence[int], n_folds: int, seed: int,
                 label_names: Optional[Sequence[str]] = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_idx, val_idx)`` per fold: ``StratifiedKFold(shuffle=True, random_state=seed)``.

    Each row is in exactly one validation fold and every fold keeps the class proportions, so
    every class needs at least ``n_folds`` rows (scikit-learn only warns; korclf stops).
    """
    labels = np.asarray(labels)
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise KorclfError(f"n_folds must be an integer of at least 2, got {n_folds!r}")
    if len(labels) < n_folds:
        raise KorclfError(f"n_folds {n_folds}: the training split has only {len(labels)} rows")
    small = {label: count for label, count in sorted(Counter(labels.tolist()).items()) if count < n_folds}
    if small:
        named = {(label_names[label] if label_names is not None else label): count for label, count in small.items()}
        raise KorclfError(f"n_folds {n_folds}: class(es) with fewer training rows than folds {named}; "
                          "every fold needs each class in its validation part. Lower n_folds or add data.")
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(train, val) for train, val in splitter.split(np.zeros(len(labels)), labels)]


def ensemble_probabilities(probabilities: Sequence[np.ndarray], mode: str = "mean") -> np.ndarray:
    """Combine the fold models' class probabilities for the same rows.

    ``mean``: the average probability of each class.

    ``vote``: each model votes for its argmax; the class with most votes wins and ties go to the
    tied class with the highest mean probability. The returned columns are
    ``(votes for the class + its mean probability) / (models + 1)``: rows sum to 1 and their
    argmax is the vote's winner (a vote outweighs any difference of mean probability), but they
    are scores, not calibrated probabilities.
    """
    if mode not in ENSEMBLE_MODES:
        raise KorclfError(f"fold_ensemble {mode!r}: choose one of {list(ENSEMBLE_MODES)}")
    if len(probabilities) == 0:
        raise KorclfError("ensemble_probabilities needs at least one model's probabilities")
    shapes = {np.shape(p) for p in probabilities}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise KorclfError(f"ensemble_probabilities: every model must give a (rows, labels) array; got shapes "
                          f"{sorted(shapes)}")
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in probabilities])
    mean = stacked.mean(axis=0)
    if mode == "mean":
        return mean
    num_models, _, num_labels = stacked.shape
    votes = np.eye(num_labels)[stacked.argmax(axis=-1)].sum(axis=0)
    return (votes + mean) / (num_models + 1)


def assemble_oof(n_rows: int, folds: Sequence[tuple[np.ndarray, np.ndarray]],
                 fold_probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Out-of-fold probabilities: fold ``i``'s predictions on its validation rows, put back in row order.

    Every row must be predicted exactly once, by the one model that did not train on it.
    """
    if len(folds) != len(fold_probabilities):
        raise KorclfError(f"assemble_oof: {len(folds)} folds but {len(fold_probabilities)} prediction arrays")
    seen = np.zeros(n_rows, dtype=np.int64)
    out = None
    for number, ((_, val_idx), probs) in enumerate(zip(folds, fold_probabilities), start=1):
        val_idx = np.asarray(val_idx, dtype=np.int64)
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or len(probs) != len(val_idx):
            raise KorclfError(f"assemble_oof: fold {number} has {len(val_idx)} validation rows but predictions of "
                              f"shape {probs.shape}")
        if len(val_idx) and (val_idx.min() < 0 or val_idx.max() >= n_rows):
            raise KorclfError(f"assemble_oof: fold {number} has row indices outside 0..{n_rows - 1}")
        if out is None:
            out = np.zeros((n_rows, probs.shape[1]))
        elif probs.shape[1] != out.shape[1]:
            raise KorclfError(f"assemble_oof: fold {number} predicts {probs.shape[1]} labels, fold 1 "
                              f"{out.shape[1]}")
        np.add.at(seen, val_idx, 1)
        out[val_idx] = probs
    missing, repeated = np.flatnonzero(seen == 0), np.flatnonzero(seen > 1)
    if len(missing) or len(repeated):
        raise KorclfError(f"assemble_oof: every row must be predicted exactly once; {len(missing)} row(s) never "
                          f"(first: {missing[:5].tolist()}), {len(repeated)} more than once "
                          f"(first: {repeated[:5].tolist()})")
    return out if out is not None else np.zeros((n_rows, 0))


def write_oof_predictions(path: str, ids: Sequence, texts: Sequence[str], labels_true: Sequence,
                          probabilities: np.ndarray, label_names: Sequence[str]) -> None:
    """``oof_predictions.tsv``: id, text, true_label, predicted_label and one probability column per label.

    Same format as ``predictions.tsv`` (tab-separated, minimal quoting, 6 decimals); ``labels_true``
    are label ids or names.
    """
    label_names = [str(name) for name in label_names]
    probabilities = np.asarray(probabilities)
    if not len(ids) == len(texts) == len(labels_true) == len(probabilities):
        raise KorclfError(f"write_oof_predictions: {len(ids)} ids, {len(texts)} texts, {len(labels_true)} labels, "
                          f"{len(probabilities)} prediction rows")
    predicted = probabilities.argmax(axis=-1)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(["id", "text", "true_label", "predicted_label"] + [f"prob_{name}" for name in label_names])
        for row_id, text, true, pred, probs in zip(ids, texts, labels_true, predicted, probabilities):
            true = label_names[true] if isinstance(true, (int, np.integer)) else str(true)
            writer.writerow([row_id, text, true, label_names[pred]] + [f"{p:.6f}" for p in probs])
