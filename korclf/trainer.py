"""The ``Trainer`` subclass that applies korclf's losses to any classifier's logits."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from transformers import EarlyStoppingCallback, Trainer

from .data.processing import LENGTH_COLUMN
from .errors import KorclfError
from .losses import build_loss, compute_class_weights


def loss_from_arguments(args, num_labels: int, train_labels: Optional[list[int]] = None) -> torch.nn.Module:
    """The loss module described by the ``loss`` / ``class_weights`` / ``focal_*`` / ``dice_*`` options."""
    weights = None
    if args.class_weights is not None:
        weights = compute_class_weights(train_labels or [], num_labels, args.class_weights, beta=args.class_weight_beta)
    alpha = args.focal_alpha
    if isinstance(alpha, str):  # "0.25" or "0.25,0.75" from the command line
        try:
            values = [float(part) for part in alpha.split(",")]
        except ValueError:
            raise KorclfError(f"config key 'focal_alpha': expected a number or a list of numbers, got {alpha!r}") from None
        alpha = values[0] if len(values) == 1 else values
    return build_loss(args.loss, num_labels, class_weights=weights, focal_gamma=args.focal_gamma,
                      focal_alpha=alpha, label_smoothing=args.label_smoothing,
                      dice_alpha=args.dice_alpha, dice_gamma=args.dice_gamma)


def early_stopping_callbacks(args) -> list:
    """``EarlyStoppingCallback`` when ``early_stopping_patience`` is set."""
    if args.early_stopping_patience is None:
        return []
    return [EarlyStoppingCallback(early_stopping_patience=args.early_stopping_patience,
                                  early_stopping_threshold=args.early_stopping_threshold)]


class KorclfTrainer(Trainer):
    """A ``Trainer`` whose loss is ``loss_fn(logits, labels)`` instead of the model's own.

    The loss is a per-batch mean, so the Trainer scales it for gradient accumulation
    (``loss_is_scaled_for_ga = False``). The ``length`` column is kept for the
    length-grouped sampler; the collator drops it before the model sees the batch.
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, loss_fn: Optional[torch.nn.Module] = None, signature_columns: Sequence[str] = (),
                 **kwargs):
        """``signature_columns``: inputs a model takes through ``**kwargs`` (the multi-encoder's per-column ids)."""
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn
        self.extra_signature_columns = list(signature_columns)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        for column in (LENGTH_COLUMN, *self.extra_signature_columns):
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    def _get_eval_sampler(self, eval_dataset):
        """Evaluation keeps dataset order, so predictions line up with their rows (predictions.tsv)."""
        return torch.utils.data.SequentialSampler(eval_dataset) if eval_dataset is not None else None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.loss_fn is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels", None)
        outputs = model(**inputs)
        loss = self.loss_fn(outputs.logits, labels) if labels is not None else None
        if loss is not None:
            outputs["loss"] = loss
        return (loss, outputs) if return_outputs else loss
