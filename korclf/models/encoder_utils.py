"""Building blocks shared by korclf's custom heads.

This file is copied next to the modeling code when a model is saved with
``register_for_auto_class`` so it must import only ``torch`` and ``transformers``
(and nothing from ``korclf``).
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import logging

logger = logging.get_logger(__name__)

POOLING_MODES = ("pooler", "first", "mean")
# Dropout settings of the encoder itself (BERT, RoBERTa/XLM-R, ELECTRA, ALBERT; DistilBERT), not of a head.
ENCODER_DROPOUT_KEYS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout")
ACTIVATIONS = {"tanh": torch.nn.Tanh, "gelu": torch.nn.GELU, "relu": torch.nn.ReLU}


def encoder_config_from_dict(encoder: dict | PretrainedConfig) -> PretrainedConfig:
    """Rebuild an encoder config stored as a plain dict inside a korclf config."""
    if isinstance(encoder, PretrainedConfig):
        return encoder
    encoder = dict(encoder)
    model_type = encoder.pop("model_type")
    return AutoConfig.for_model(model_type, **encoder)


def encoder_config_to_dict(encoder: PretrainedConfig) -> dict:
    """Store an encoder config as a JSON-ready dict (``model_type`` included)."""
    data = encoder.to_dict()
    data["model_type"] = encoder.model_type
    for key in ("architectures", "id2label", "label2id", "transformers_version", "_name_or_path"):
        data.pop(key, None)
    return data


def build_encoder(encoder_config: PretrainedConfig) -> PreTrainedModel:
    """A randomly initialised encoder; weights come later from ``from_pretrained``.

    ``add_pooling_layer`` is left to the architecture's default so that the parameter
    names match a checkpoint saved by ``AutoModel``.
    """
    return AutoModel.from_config(encoder_config)


def has_pooler(encoder: PreTrainedModel) -> bool:
    """Whether the encoder produces a trained ``pooler_output`` (BERT, ALBERT do; ELECTRA, DistilBERT do not)."""
    return getattr(encoder, "pooler", None) is not None


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average ``hidden`` (batch, seq, dim) over positions where ``mask`` (batch, seq) is non-zero.

    Rows with an all-zero mask give a zero vector instead of NaN.
    """
    mask = mask.to(hidden.dtype).unsqueeze(-1)
    total = (hidden * mask).sum(dim=1)
    count = mask.sum(dim=1).clamp(min=1.0)
    return total / count


def pool(outputs, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """One vector per sequence from an encoder's outputs.

    ``pooler`` uses ``pooler_output`` and falls back to the first token when the encoder has
    none (pooler-less encoders such as ELECTRA or DistilBERT); ``first`` is
    ``last_hidden_state[:, 0]``; ``mean`` averages the last hidden state over the attention mask.
    """
    if mode not in POOLING_MODES:
        raise ValueError(f"pooling must be one of {POOLING_MODES}, got {mode!r}")
    hidden = outputs.last_hidden_state
    if mode == "mean":
        return masked_mean(hidden, attention_mask)
    if mode == "pooler" and getattr(outputs, "pooler_output", None) is not None:
        return outputs.pooler_output
    return hidden[:, 0]


def encoder_forward_kwargs(encoder: PreTrainedModel, input_ids, attention_mask, token_type_ids=None) -> dict:
    """Keyword arguments the encoder's forward accepts (DistilBERT takes no token_type_ids)."""
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None and getattr(encoder.config, "type_vocab_size", 0):
        kwargs["token_type_ids"] = token_type_ids
    return kwargs


def encoder_dropout_keys(config: PretrainedConfig) -> list[str]:
    """The encoder-dropout settings ``config`` has (see ``ENCODER_DROPOUT_KEYS``)."""
    return [key for key in ENCODER_DROPOUT_KEYS if hasattr(config, key)]


def set_encoder_dropout(config: PretrainedConfig, dropout: float) -> PretrainedConfig:
    """Set every encoder-dropout setting of ``config`` to ``dropout``; it must have at least one."""
    keys = encoder_dropout_keys(config)
    if not keys:
        raise ValueError(f"encoder_dropout: the {config.model_type!r} config has none of {', '.join(ENCODER_DROPOUT_KEYS)}")
    for key in keys:
        setattr(config, key, float(dropout))
    return config


def load_pretrained_encoder(
    path: str, encoder_dropout: float | None = None, **kwargs
) -> tuple[PreTrainedModel, list[str]]:
    """``AutoModel.from_pretrained(path)`` plus the checkpoint keys it had to initialise.

    A non-empty list means the checkpoint lacked part of the encoder (typically a BERT-format
    export without pooler weights), which callers must report instead of hiding. ``encoder_dropout``
    replaces the checkpoint's dropout settings before the modules are built.
    """
    if encoder_dropout is not None:
        kwargs["config"] = set_encoder_dropout(AutoConfig.from_pretrained(path), encoder_dropout)
    encoder, info = AutoModel.from_pretrained(path, output_loading_info=True, **kwargs)
    return encoder, sorted(info["missing_keys"])


def newly_initialized_parameters(model: torch.nn.Module, pretrained: dict[str, list[str]]) -> list[str]:
    """Names of ``model``'s parameters that no checkpoint provided.

    ``pretrained`` maps the attribute path of each sub-model loaded from a checkpoint (``"encoder"``,
    ``"encoders.1"``) to the keys that checkpoint lacked (see :func:`load_pretrained_encoder`);
    every parameter outside those sub-models (the head) is new.
    """
    new = []
    for name, _ in model.named_parameters():
        owner = next((path for path in pretrained if name.startswith(path + ".")), None)
        if owner is None or name[len(owner) + 1 :] in pretrained[owner]:
            new.append(name)
    logger.info("%s: newly initialised parameters (train before use): %s", type(model).__name__, new)
    return new


def check_choice(name: str, value, choices) -> None:
    """Raise a ``ValueError`` naming the config field when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


class ClassificationHead(torch.nn.Module):
    """``dropout → [dense → activation → dropout] → out_proj`` over a pooled vector.

    Without ``hidden_size`` this is BERT's linear classifier; with it, RoBERTa's two-layer head
    (``activation="tanh"``) or an MLP fusion layer (``"relu"``). One module so that every korclf
    head has the same parameter names (``dense``, ``out_proj``) and initialisation.
    """

    def __init__(
        self,
        input_size: int,
        num_labels: int,
        hidden_size: int | None = None,
        dropout: float = 0.1,
        activation: str = "tanh",
    ):
        super().__init__()
        self.dropout = torch.nn.Dropout(dropout)
        self.dense = None
        if hidden_size:
            self.dense = torch.nn.Linear(input_size, hidden_size)
            self.activation = ACTIVATIONS[activation]()
            input_size = hidden_size
        self.out_proj = torch.nn.Linear(input_size, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(features)
        if self.dense is not None:
            hidden = self.dropout(self.activation(self.dense(hidden)))
        return self.out_proj(hidden)


def init_head_weights(module: torch.nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation for a head's ``nn.Linear`` layers (normal weights, zero bias).

    Meant for a model's ``_init_weights``: encoders are ``PreTrainedModel`` sub-models that
    ``post_init`` dispatches to their own ``_init_weights``, so checkpoint weights are never touched.
    """
    if isinstance(module, torch.nn.Linear):
        init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            init.zeros_(module.bias)


def drop_unused_pooler(encoder: PreTrainedModel, pooling_modes) -> None:
    """Remove a pooler that none of ``pooling_modes`` reads (its forward then returns no ``pooler_output``).

    Left in place it would get no gradient, which breaks DDP (unused parameters), and would be saved
    for nothing. Done in the model's ``__init__``, so saved models never contain it and reload cleanly.
    """
    if has_pooler(encoder) and "pooler" not in set(pooling_modes):
        encoder.pooler = None
