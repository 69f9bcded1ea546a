"""Any ``AutoModel`` encoder with a choice of pooling and a classification head (``korclf-encoder``).

``BertForSequenceClassification`` always classifies ``pooler_output``. Encoders without a trained
pooler (ELECTRA and DistilBERT have none; multilingual-e5 exported to BERT format has an identity one)
classify better from the first token or the masked mean, which this model makes a config choice.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import can_return_tuple, logging

from .configuration_encoder import EncoderClassifierConfig
from .encoder_utils import (
    ClassificationHead,
    build_encoder,
    encoder_config_from_dict,
    encoder_config_to_dict,
    encoder_forward_kwargs,
    drop_unused_pooler,
    init_head_weights,
    load_pretrained_encoder,
    newly_initialized_parameters,
    pool,
)

logger = logging.get_logger(__name__)


class EncoderForSequenceClassification(PreTrainedModel):
    """Encoder → pooling (``config.pooling``) → head (``config.head``) → logits.

    Pass ``encoder`` to wrap an already loaded encoder (see :meth:`from_encoder_pretrained`);
    otherwise a randomly initialised one is built from ``config.encoder``.
    """

    config_class = EncoderClassifierConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    # The loss is a per-batch mean that ignores ``num_items_in_batch``; this tells Trainer to scale it.
    accepts_loss_kwargs = False

    def __init__(self, config: EncoderClassifierConfig, encoder: PreTrainedModel | None = None):
        super().__init__(config)
        if encoder is None:
            if config.encoder is None:
                raise ValueError(
                    "EncoderClassifierConfig.encoder is not set: pass encoder=<encoder config> or use "
                    "EncoderForSequenceClassification.from_encoder_pretrained(path)"
                )
            encoder = build_encoder(encoder_config_from_dict(config.encoder))
        self.num_labels = config.num_labels
        self.encoder = encoder
        hidden_size = encoder.config.hidden_size
        self.classifier = ClassificationHead(
            hidden_size,
            config.num_labels,
            hidden_size=hidden_size if config.head == "mlp" else None,
            dropout=config.classifier_dropout,
            activation="tanh",
        )
        drop_unused_pooler(encoder, [config.pooling])
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        """Head layers only: the encoder is a sub-model that initialises itself or comes from a checkpoint."""
        init_head_weights(module, std=getattr(self.encoder.config, "initializer_range", 0.02))

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.encoder.set_input_embeddings(value)

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """Resize the encoder's embeddings and record the new size in ``config.encoder`` so reloading works."""
        embeddings = self.encoder.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        self.config.encoder = encoder_config_to_dict(self.encoder.config)
        return embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """``labels`` (batch,) class ids give a cross-entropy ``loss``; other kwargs go to the encoder."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = encoder_forward_kwargs(self.encoder, input_ids, attention_mask, token_type_ids)
        outputs = self.encoder(**inputs, return_dict=True, **kwargs)
        logits = self.classifier(pool(outputs, attention_mask, self.config.pooling))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )

    @classmethod
    def from_encoder_pretrained(
        cls, path: str, encoder_dropout: float | None = None, **config_kwargs
    ) -> EncoderForSequenceClassification:
        """Start fine-tuning from an encoder checkpoint (``AutoModel.from_pretrained(path)``).

        Every encoder weight comes from the checkpoint, in float32 (mixed precision is the Trainer's
        job); the names of the parameters it did not provide (the head, plus any encoder keys the
        checkpoint lacked) are logged and kept in ``model.newly_initialized_keys``. ``config_kwargs``
        go to :class:`EncoderClassifierConfig` (``num_labels``, ``pooling``, ``head``, ...);
        ``encoder_dropout`` replaces the checkpoint's dropout inside the encoder.
        """
        encoder, missing = load_pretrained_encoder(path, encoder_dropout, dtype=torch.float32)
        config = cls.config_class(encoder=encoder_config_to_dict(encoder.config), **config_kwargs)
        model = cls(config, encoder=encoder)
        model.newly_initialized_keys = newly_initialized_parameters(model, {"encoder": missing})
        return model


__all__ = ["EncoderForSequenceClassification"]
