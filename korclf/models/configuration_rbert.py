"""Configuration for R-BERT relation classification (Wu & He, 2019) on any encoder.

This file is copied next to the weights by ``save_pretrained`` (``register_for_auto_class``),
so it imports only ``transformers`` and its siblings in ``korclf/models``.
"""

from __future__ import annotations

from typing import Literal

from transformers import PretrainedConfig

from .encoder_utils import encoder_config_from_dict, encoder_config_to_dict

ENTITY_LAYERS = ("shared", "split")
RBERT_ACTIVATIONS = ("tanh", "gelu")
CONCAT_MODES = (
    "cls_e1_e2",
    "cls_e1_e2_absdiff",
    "cls_e1_e2_prod",
    "cls_e1_e2_absdiff_prod",
    "clsxe1_clsxe2",
)


class RBertConfig(PretrainedConfig):
    r"""
    R-BERT head on top of an arbitrary encoder.

    Args:
        encoder (`dict` or `PretrainedConfig`):
            The encoder's configuration. Stored as a plain dict (with `model_type`) so that the
            R-BERT config stays one JSON file and any `AutoModel` architecture can be used.
        use_pooler (`bool`, defaults to `True`):
            Sentence vector = `pooler_output` when the encoder has a pooler; otherwise, or when
            `False`, the first token's last hidden state.
        entity_layer (`"shared"` or `"split"`, defaults to `"shared"`):
            One fully connected layer for both entity vectors (as in the paper) or one each.
        activation (`"tanh"` or `"gelu"`, defaults to `"tanh"`):
            Applied to the sentence and entity vectors before their fully connected layers.
        concat (defaults to `"cls_e1_e2"`):
            What the classifier sees, with `h` the sentence vector and `e1`, `e2` the entity
            vectors after their layers:
            `cls_e1_e2` = [h; e1; e2] (the paper), `cls_e1_e2_absdiff` adds |e1 - e2|,
            `cls_e1_e2_prod` adds e1 * e2, `cls_e1_e2_absdiff_prod` adds both, and
            `clsxe1_clsxe2` = [h * e1; h * e2] (elementwise products: each entity gated by the
            sentence, 2 * hidden_size wide instead of 3).
        entity_include_markers (`bool`, defaults to `False`):
            Whether the entity vectors average over the marker tokens as well as the entity's own
            tokens. The model only reads `e1_mask` / `e2_mask`; this records how they were built so
            inference builds them the same way.
        classifier_dropout (`float`, defaults to 0.1):
            Dropout before every head layer.
    """

    model_type = "korclf-rbert"

    encoder: dict | PretrainedConfig | None = None
    use_pooler: bool = True
    entity_layer: Literal["shared", "split"] = "shared"
    activation: Literal["tanh", "gelu"] = "tanh"
    concat: Literal[
        "cls_e1_e2", "cls_e1_e2_absdiff", "cls_e1_e2_prod", "cls_e1_e2_absdiff_prod", "clsxe1_clsxe2"
    ] = "cls_e1_e2"
    entity_include_markers: bool = False
    classifier_dropout: float = 0.1

    def __post_init__(self, **kwargs):
        if self.encoder is None:
            raise ValueError("RBertConfig needs `encoder`: the encoder's config (a PretrainedConfig or its dict).")
        if isinstance(self.encoder, PretrainedConfig):
            self.encoder = encoder_config_to_dict(self.encoder)
        elif isinstance(self.encoder, dict):
            if "model_type" not in self.encoder:
                raise ValueError("RBertConfig `encoder` dict must contain `model_type` (e.g. 'bert').")
            self.encoder = dict(self.encoder)
        else:
            raise ValueError(f"RBertConfig `encoder` must be a PretrainedConfig or a dict, got {type(self.encoder)}")
        for name, allowed in (
            ("entity_layer", ENTITY_LAYERS),
            ("activation", RBERT_ACTIVATIONS),
            ("concat", CONCAT_MODES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"RBertConfig `{name}` must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0.0 <= float(self.classifier_dropout) < 1.0:
            raise ValueError(f"RBertConfig `classifier_dropout` must be in [0, 1), got {self.classifier_dropout!r}")
        super().__post_init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        """Width of the encoder's hidden states, which every head layer keeps."""
        return self.encoder_config.hidden_size

    @property
    def encoder_config(self) -> PretrainedConfig:
        """The encoder's config rebuilt as its own class (``BertConfig``, ``ElectraConfig``...)."""
        return encoder_config_from_dict(self.encoder)


__all__ = ["RBertConfig", "CONCAT_MODES", "ENTITY_LAYERS", "RBERT_ACTIVATIONS"]
