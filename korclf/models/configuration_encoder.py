"""Configuration of the pooled single-encoder classifier (``korclf-encoder``)."""

from __future__ import annotations

from transformers import PretrainedConfig

from .encoder_utils import POOLING_MODES, check_choice, encoder_config_to_dict

HEAD_TYPES = ("linear", "mlp")


class EncoderClassifierConfig(PretrainedConfig):
    r"""Configuration of [`EncoderForSequenceClassification`].

    Args:
        encoder (`dict`):
            The encoder's config as written by `encoder_config_to_dict` (`model_type` included). A
            `PretrainedConfig` is accepted and converted, so the whole model saves as one `config.json`.
        pooling (`str`, defaults to `"pooler"`):
            How one vector per text is obtained: `"pooler"` (the encoder's `pooler_output`, first token for
            encoders without a pooler), `"first"` (first token's last hidden state, for encoders whose pooler
            is untrained, e.g. multilingual-e5 exported to BERT format) or `"mean"` (masked average).
        classifier_dropout (`float`, defaults to 0.1):
            Dropout before each linear layer of the head.
        head (`str`, defaults to `"linear"`):
            `"linear"` (BERT's classifier) or `"mlp"` (dense → tanh → dropout → linear, RoBERTa's head).
    """

    model_type = "korclf-encoder"

    encoder: dict | None = None
    pooling: str = "pooler"
    classifier_dropout: float | int = 0.1
    head: str = "linear"

    def __post_init__(self, **kwargs):
        if isinstance(self.encoder, PretrainedConfig):
            self.encoder = encoder_config_to_dict(self.encoder)
        check_choice("pooling", self.pooling, POOLING_MODES)
        check_choice("head", self.head, HEAD_TYPES)
        super().__post_init__(**kwargs)


__all__ = ["EncoderClassifierConfig"]
