"""R-BERT relation classification (Wu & He, 2019, "Enriching Pre-trained Language Model with
Entity Information for Relation Classification") on any ``AutoModel`` encoder.

The classifier sees the sentence vector and the averaged hidden states of the two entities,
each passed through its own dropout -> activation -> linear layer.

This file is copied next to the weights by ``save_pretrained`` (``register_for_auto_class``),
so it imports only ``torch``, ``transformers`` and its siblings in ``korclf/models``.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_rbert import RBertConfig
from .encoder_utils import (
    ACTIVATIONS,
    build_encoder,
    encoder_forward_kwargs,
    has_pooler,
    load_pretrained_encoder,
    masked_mean,
    newly_initialized_parameters,
)

logger = logging.getLogger(__name__)

# How many hidden_size-wide blocks each concat mode hands to the classifier.
_CONCAT_WIDTH = {
    "cls_e1_e2": 3,
    "cls_e1_e2_absdiff": 4,
    "cls_e1_e2_prod": 4,
    "cls_e1_e2_absdiff_prod": 5,
    "clsxe1_clsxe2": 2,
}


class RBertFCLayer(nn.Module):
    """Dropout -> activation -> linear, the block R-BERT applies to each vector."""

    def __init__(self, hidden_size: int, dropout: float, activation: str):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.activation = ACTIVATIONS[activation]()
        self.linear = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(self.activation(self.dropout(hidden)))


class RBertPreTrainedModel(PreTrainedModel):
    config_class = RBertConfig
    config: RBertConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    # The loss ignores `num_items_in_batch`, so the Trainer must scale it for gradient accumulation.
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module):
        """Initialise the head's linear layers like BERT's classifier.

        Encoder modules never reach this method: ``initialize_weights`` hands them to the
        encoder's own ``_init_weights``, and the ``transformers.initialization`` functions skip
        tensors flagged ``_is_hf_initialized`` (loaded from a checkpoint).
        """
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.encoder.get("initializer_range", 0.02))
            if module.bias is not None:
                init.zeros_(module.bias)


class RBertForSequenceClassification(RBertPreTrainedModel):
    """R-BERT: classify the relation between two marked entities of a sentence.

    ``forward`` needs ``e1_mask`` and ``e2_mask``: (batch, seq) 0/1 masks of each entity's tokens.
    """

    def __init__(self, config: RBertConfig, encoder: PreTrainedModel | None = None):
        """``encoder`` lets :meth:`from_encoder_pretrained` hand in an already loaded encoder."""
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = encoder if encoder is not None else build_encoder(config.encoder_config)

        hidden, dropout, activation = config.hidden_size, config.classifier_dropout, config.activation
        self.cls_fc = RBertFCLayer(hidden, dropout, activation)
        if config.entity_layer == "shared":
            self.entity_fc = RBertFCLayer(hidden, dropout, activation)
        else:
            self.e1_fc = RBertFCLayer(hidden, dropout, activation)
            self.e2_fc = RBertFCLayer(hidden, dropout, activation)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(_CONCAT_WIDTH[config.concat] * hidden, config.num_labels)

        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.encoder.set_input_embeddings(value)

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """Resize the encoder's embeddings and record the new vocabulary in ``config.encoder``.

        The encoder is rebuilt from ``config.encoder`` on load, so its ``vocab_size`` must follow
        the resize or a saved model would not load.
        """
        embeddings = self.encoder.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        self.config.encoder["vocab_size"] = self.encoder.config.vocab_size
        return embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        e1_mask: torch.Tensor | None = None,
        e2_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        if e1_mask is None or e2_mask is None:
            raise ValueError(
                "R-BERT needs `e1_mask` and `e2_mask` (batch, seq) masks of the entity tokens; "
                "build them with korclf.data.entities.encode_relation_batch."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # Only the output switches reach the encoder; Trainer extras such as `num_items_in_batch` do not.
        extra = {k: kwargs[k] for k in ("output_attentions", "output_hidden_states") if k in kwargs}
        outputs = self.encoder(
            **encoder_forward_kwargs(self.encoder, input_ids, attention_mask, token_type_ids), return_dict=True, **extra
        )
        hidden = outputs.last_hidden_state
        if self.config.use_pooler and has_pooler(self.encoder) and outputs.get("pooler_output") is not None:
            sentence = outputs.pooler_output
        else:
            sentence = hidden[:, 0]

        h = self.cls_fc(sentence)
        if self.config.entity_layer == "shared":
            e1_fc = e2_fc = self.entity_fc
        else:
            e1_fc, e2_fc = self.e1_fc, self.e2_fc
        e1 = e1_fc(masked_mean(hidden, e1_mask))
        e2 = e2_fc(masked_mean(hidden, e2_mask))

        concat = self.config.concat
        if concat == "clsxe1_clsxe2":
            parts = [h * e1, h * e2]
        else:
            parts = [h, e1, e2]
            if "absdiff" in concat:
                parts.append((e1 - e2).abs())
            if concat.endswith("prod"):
                parts.append(e1 * e2)
        logits = self.classifier(self.dropout(torch.cat(parts, dim=-1)))

        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))

        return SequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.get("hidden_states"),
            attentions=outputs.get("attentions"),
        )

    @classmethod
    def from_encoder_pretrained(
        cls,
        encoder_name_or_path: str,
        *,
        encoder_kwargs: dict | None = None,
        encoder_dropout: float | None = None,
        **config_kwargs,
    ) -> "RBertForSequenceClassification":
        """Start fine-tuning: pretrained encoder weights, freshly initialised R-BERT head.

        ``config_kwargs`` go to :class:`RBertConfig` (``num_labels``, ``id2label``, ``concat``...),
        ``encoder_kwargs`` to ``AutoModel.from_pretrained``; ``encoder_dropout`` replaces the checkpoint's
        dropout inside the encoder. The names of the parameters that were not in the checkpoint are logged
        and kept in ``model.newly_initialized_keys``.
        """
        encoder, missing = load_pretrained_encoder(encoder_name_or_path, encoder_dropout, **(encoder_kwargs or {}))
        config = RBertConfig(encoder=encoder.config, **config_kwargs)
        model = cls(config, encoder=encoder)
        model.config.name_or_path = str(encoder_name_or_path)

        model.newly_initialized_keys = newly_initialized_parameters(model, {"encoder": missing})
        logger.info("R-BERT parameters newly initialised on top of %s: %s", encoder_name_or_path,
                    ", ".join(model.newly_initialized_keys))
        return model


__all__ = ["RBertForSequenceClassification", "RBertPreTrainedModel"]
