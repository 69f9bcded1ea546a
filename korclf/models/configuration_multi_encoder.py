"""Configuration of the multi-column encoder ensemble (``korclf-multi-encoder``)."""

from __future__ import annotations

from transformers import PretrainedConfig

from .encoder_utils import POOLING_MODES, check_choice, encoder_config_to_dict

FUSION_TYPES = ("logits_mlp", "concat_mlp")
CONCAT_FUSION_HIDDEN_SIZE = 256


class MultiEncoderConfig(PretrainedConfig):
    r"""Configuration of [`MultiEncoderForSequenceClassification`]: one text column → one encoder, fused.

    Args:
        text_columns (`list[str]`):
            Names of the text columns; they prefix the model's inputs (`{column}_input_ids`, ...).
        encoders (`list[dict]`):
            One encoder config per column (as written by `encoder_config_to_dict`; `PretrainedConfig`s are
            converted), or a single entry when `share_encoder=True`. Columns may use different backbones.
        share_encoder (`bool`, defaults to `False`):
            One encoder for every column (fewer parameters, one tokenizer) instead of one per column.
        pooling (`str` or `list[str]`, defaults to `"pooler"`):
            `"pooler"`, `"first"` or `"mean"` (see `EncoderClassifierConfig`), one per column or one for all.
        fusion (`str`, defaults to `"logits_mlp"`):
            `"logits_mlp"`: a linear classifier per column, their logits concatenated → fc1 → ReLU → fc2 (the
            original per-column ensemble). `"concat_mlp"`: pooled vectors concatenated → dropout → fc1 → ReLU →
            dropout → fc2 (lets the fusion see features, not just per-column decisions).
        fusion_hidden_size (`int`, *optional*):
            Width of fc1. Default: 256 for `concat_mlp`, `4 * len(text_columns) * num_labels` for `logits_mlp`
            (its input is only `len(text_columns) * num_labels` wide). Filled in when the model is built.
        classifier_dropout (`float`, defaults to 0.1):
            Dropout before the per-column classifiers (`logits_mlp`) or around fc1 (`concat_mlp`).
    """

    model_type = "korclf-multi-encoder"

    text_columns: list[str] | None = None
    encoders: list[dict] | None = None
    share_encoder: bool = False
    pooling: str | list[str] = "pooler"
    fusion: str = "logits_mlp"
    fusion_hidden_size: int | None = None
    classifier_dropout: float | int = 0.1

    def __post_init__(self, **kwargs):
        if self.encoders is not None:
            self.encoders = [
                encoder_config_to_dict(encoder) if isinstance(encoder, PretrainedConfig) else dict(encoder)
                for encoder in self.encoders
            ]
        if self.text_columns is not None:
            self.text_columns = list(self.text_columns)
            if len(set(self.text_columns)) != len(self.text_columns):
                raise ValueError(f"text_columns must be distinct, got {self.text_columns}")
            n_columns = len(self.text_columns)
            if self.encoders is not None:
                expected = 1 if self.share_encoder else n_columns
                if len(self.encoders) != expected:
                    rule = "a single entry with share_encoder=True" if self.share_encoder else "one per text column"
                    raise ValueError(
                        f"encoders has {len(self.encoders)} entries but text_columns has {n_columns} columns "
                        f"{self.text_columns}; expected {expected} ({rule})"
                    )
            if isinstance(self.pooling, (list, tuple)) and len(self.pooling) != n_columns:
                raise ValueError(
                    f"pooling has {len(self.pooling)} entries but text_columns has {n_columns} columns "
                    f"{self.text_columns}; give one pooling per column or a single string"
                )
        poolings = [self.pooling] if isinstance(self.pooling, str) else list(self.pooling)
        for mode in poolings:
            check_choice("pooling", mode, POOLING_MODES)
        check_choice("fusion", self.fusion, FUSION_TYPES)
        super().__post_init__(**kwargs)

    def column_poolings(self) -> list[str]:
        """The pooling mode of each text column (a single ``pooling`` string is broadcast)."""
        if isinstance(self.pooling, str):
            return [self.pooling] * len(self.text_columns)
        return list(self.pooling)

    def column_encoder_index(self, column_index: int) -> int:
        """Index into ``encoders`` of the encoder that reads text column ``column_index``."""
        return 0 if self.share_encoder else column_index

    def default_fusion_hidden_size(self) -> int:
        """fc1 width used when ``fusion_hidden_size`` is unset (see the class docstring)."""
        if self.fusion == "concat_mlp":
            return CONCAT_FUSION_HIDDEN_SIZE
        return 4 * len(self.text_columns) * self.num_labels


__all__ = ["MultiEncoderConfig"]
