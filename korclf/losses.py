"""Losses for single-label classification, built from the training options.

Every loss takes ``(logits, labels)`` with logits ``(batch, num_labels)`` and labels
``(batch,)``, skips labels equal to ``-100`` (the Hugging Face ignore index) and returns
the mean over the remaining examples. A batch with no remaining example gives ``0``
rather than ``nan``. Logits of any floating dtype are accepted; the loss is computed in
float32 because ``log_softmax`` and ``(1 - p) ** gamma`` lose too much in fp16/bf16.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import KorclfError

LOSSES = ("ce", "focal", "dice")
WEIGHT_SCHEMES = ("balanced", "effective_number")
IGNORE_INDEX = -100


def compute_class_weights(
    labels: Sequence[int],
    num_labels: int,
    scheme: Union[str, Sequence[float]],
    beta: float = 0.999,
) -> torch.Tensor:
    """Per-class loss weights from the training labels, or checked explicit ones.

    ``"balanced"`` is ``n / (num_labels * count_c)``, as scikit-learn's
    ``compute_class_weight``. ``"effective_number"`` is ``(1 - beta) / (1 - beta**count_c)``
    (Cui et al. 2019) rescaled to sum to ``num_labels``, so the loss keeps its scale.
    A list gives one weight per class as is. Labels equal to ``-100`` are not counted.
    """
    if not isinstance(scheme, str):
        return _weight_vector(scheme, num_labels, "class_weights")
    if scheme not in WEIGHT_SCHEMES:
        raise KorclfError(
            f"class_weights {scheme!r} is not one of {', '.join(WEIGHT_SCHEMES)} (or a list of one weight per label)"
        )
    counts = _class_counts(labels, num_labels)
    if scheme == "balanced":
        weights = counts.sum() / (num_labels * counts)
    else:
        if not 0.0 <= beta < 1.0:
            raise KorclfError(f"class weight beta must be in [0, 1), got {beta}")
        effective = (1.0 - beta) / (1.0 - np.power(beta, counts))
        weights = effective * num_labels / effective.sum()
    return torch.tensor(weights, dtype=torch.float32)


def _class_counts(labels: Sequence[int], num_labels: int) -> np.ndarray:
    """Examples per class; an empty class is an error because its weight would be infinite."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    labels = labels[labels != IGNORE_INDEX]
    bad = labels[(labels < 0) | (labels >= num_labels)]
    if bad.size:
        raise KorclfError(f"label {int(bad[0])} is outside 0..{num_labels - 1} (num_labels={num_labels})")
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise KorclfError(
            f"class {int(empty[0])} has no training examples, so its class weight would be infinite; "
            "give explicit class_weights or add examples of that class"
        )
    return counts


def _weight_vector(values, num_labels: int, option: str) -> torch.Tensor:
    """One finite, non-negative float32 value per class, or a KorclfError naming ``option``."""
    try:
        weights = torch.as_tensor(values, dtype=torch.float32).detach().clone()
    except (TypeError, ValueError, RuntimeError):
        raise KorclfError(f"{option} must be numbers, one per label, got {values!r}") from None
    if weights.dim() != 1 or weights.numel() != num_labels:
        raise KorclfError(f"{option} must have one value per label ({num_labels} values), got {weights.numel()}")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise KorclfError(f"{option} must be finite and non-negative, got {weights.tolist()}")
    return weights


class CrossEntropyLoss(nn.Module):
    """``F.cross_entropy`` with optional class weights and label smoothing.

    With weights the mean is torch's weighted mean, ``sum(w_y * ce) / sum(w_y)``.
    """

    def __init__(self, weight: Optional[torch.Tensor] = None, label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(logits.device)
        loss = F.cross_entropy(
            logits.float(), labels, weight=weight, ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing
        )
        # torch gives nan (0 / 0) when every label is ignored; `where` avoids a host sync.
        return torch.where(labels.ne(IGNORE_INDEX).any(), loss, torch.zeros_like(loss))


class _PerExampleLoss(nn.Module):
    """Shared plumbing: true-class log-probability, per-class factor, masked plain mean.

    ``weight`` (class weights times focal alpha) multiplies each example's loss by the
    factor of its true class; the mean is over non-ignored examples, ``sum(w_y * l) / N``
    (not torch's ``/ sum(w_y)``), so the factors change the loss scale as in the papers.
    """

    def __init__(self, weight: Optional[torch.Tensor] = None):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)

    def per_example(self, log_p: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        valid = labels.ne(IGNORE_INDEX)
        target = labels.masked_fill(~valid, 0)
        log_p = F.log_softmax(logits.float(), dim=-1).gather(1, target.unsqueeze(1)).squeeze(1)
        loss = self.per_example(log_p)
        if self.weight is not None:
            loss = loss * self.weight.to(loss.device)[target]
        loss = torch.where(valid, loss, torch.zeros_like(loss))
        return loss.sum() / valid.sum().clamp(min=1)


def _one_minus_p(log_p: torch.Tensor) -> torch.Tensor:
    """``1 - p`` accurately (``-expm1``), kept above 0 so ``(1 - p) ** g`` with ``g < 1`` has a finite gradient."""
    return (-torch.expm1(log_p)).clamp(min=torch.finfo(log_p.dtype).tiny)


class FocalLoss(_PerExampleLoss):
    """Focal loss ``-alpha_y * (1 - p_y) ** gamma * log p_y`` (Lin et al. 2017), softmax form."""

    def __init__(self, gamma: float = 2.0, weight: Optional[torch.Tensor] = None):
        super().__init__(weight)
        self.gamma = gamma

    def per_example(self, log_p: torch.Tensor) -> torch.Tensor:
        return -(_one_minus_p(log_p) ** self.gamma) * log_p


class SelfAdjustingDiceLoss(_PerExampleLoss):
    """Self-adjusting dice loss of Li et al. 2020 ("Dice Loss for Data-imbalanced NLP Tasks").

    With ``p`` the softmax probability of the true class and ``q = (1 - p) ** alpha * p``::

        loss = 1 - (2 * q + gamma) / (q + 1 + gamma)

    ``alpha`` down-weights easy examples (as focal's gamma does) and ``gamma`` smooths.
    """

    def __init__(self, alpha: float = 1.0, gamma: float = 1.0, weight: Optional[torch.Tensor] = None):
        super().__init__(weight)
        self.alpha = alpha
        self.gamma = gamma

    def per_example(self, log_p: torch.Tensor) -> torch.Tensor:
        q = _one_minus_p(log_p) ** self.alpha * log_p.exp()
        return 1.0 - (2.0 * q + self.gamma) / (q + 1.0 + self.gamma)


def build_loss(
    name: str,
    num_labels: int,
    class_weights: Optional[Union[torch.Tensor, Sequence[float]]] = None,
    focal_gamma: float = 2.0,
    focal_alpha: Union[None, float, Sequence[float]] = None,
    label_smoothing: float = 0.0,
    dice_alpha: float = 1.0,
    dice_gamma: float = 1.0,
) -> nn.Module:
    """The loss module called as ``loss_fn(logits, labels)`` by the trainer.

    ``focal_alpha`` may be one value per class, or a scalar. In the binary detection
    paper a scalar alpha weighs the positive class (and ``1 - alpha`` the negative), which
    has no multiclass meaning; here a scalar is the same factor for every class, so it only
    scales the loss. Give a list to re-weight classes. ``class_weights``, if also given,
    multiply in. ``label_smoothing`` applies to ``ce`` only.
    """
    if name not in LOSSES:
        raise KorclfError(f"loss {name!r} is not one of {', '.join(LOSSES)}")
    if label_smoothing and name != "ce":
        raise KorclfError(f"label_smoothing applies to ce only, not to loss {name!r}")
    if focal_alpha is not None and name != "focal":
        raise KorclfError(f"focal_alpha applies to focal only, not to loss {name!r}")
    _check_range("label_smoothing", label_smoothing, 0.0, 1.0)
    for option, value in (("focal_gamma", focal_gamma), ("dice_alpha", dice_alpha), ("dice_gamma", dice_gamma)):
        _check_range(option, value, 0.0, math.inf)
    weight = None if class_weights is None else _weight_vector(class_weights, num_labels, "class_weights")

    if name == "ce":
        return CrossEntropyLoss(weight, label_smoothing)
    if name == "dice":
        return SelfAdjustingDiceLoss(dice_alpha, dice_gamma, weight)
    if focal_alpha is not None:
        if isinstance(focal_alpha, (int, float)):
            focal_alpha = [float(focal_alpha)] * num_labels
        alpha = _weight_vector(focal_alpha, num_labels, "focal_alpha")
        weight = alpha if weight is None else weight * alpha
    return FocalLoss(focal_gamma, weight)


def _check_range(option: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise KorclfError(f"{option} must be between {low} and {high}, got {value}")
