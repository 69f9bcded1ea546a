"""Classify one example from several text columns, one encoder per column (``korclf-multi-encoder``).

Generalises an R&D-project classifier that read title, goal and keywords with one BERT each and fused
the per-column logits with a small MLP: any number of columns, per-column backbones (or one shared
encoder), per-column pooling, and fusion of either logits or pooled vectors.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import can_return_tuple

from .configuration_multi_encoder import MultiEncoderConfig
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

COLUMN_INPUT_FIELDS = ("input_ids", "attention_mask", "token_type_ids")


def column_input_name(column: str, field: str) -> str:
    """Model input name of ``field`` for text column ``column``: ``("title", "input_ids") -> "title_input_ids"``.

    The single naming rule shared by the model, ``tokenize_columns`` and the collator of ``ColumnInputs``.
    """
    return f"{column}_{field}"


class MultiEncoderForSequenceClassification(PreTrainedModel):
    """One encoder per text column (or one shared), pooled per column and fused into one prediction.

    Pass ``encoders`` to wrap already loaded encoders (see :meth:`from_encoders_pretrained`); otherwise
    they are built, randomly initialised, from ``config.encoders``.
    """

    config_class = MultiEncoderConfig
    base_model_prefix = "encoders"
    supports_gradient_checkpointing = True
    # The loss is a per-batch mean that ignores ``num_items_in_batch``; this tells Trainer to scale it.
    accepts_loss_kwargs = False

    def __init__(self, config: MultiEncoderConfig, encoders: list[PreTrainedModel] | None = None):
        super().__init__(config)
        if not config.text_columns:
            raise ValueError("MultiEncoderConfig.text_columns is not set")
        if encoders is None:
            if config.encoders is None:
                raise ValueError(
                    "MultiEncoderConfig.encoders is not set: pass encoder configs or use "
                    "MultiEncoderForSequenceClassification.from_encoders_pretrained(paths, text_columns)"
                )
            encoders = [build_encoder(encoder_config_from_dict(encoder)) for encoder in config.encoders]
        n_columns, num_labels = len(config.text_columns), config.num_labels
        expected = 1 if config.share_encoder else n_columns
        if len(encoders) != expected:
            raise ValueError(f"got {len(encoders)} encoders for {n_columns} text columns; expected {expected}")
        self.num_labels = num_labels
        self.encoders = nn.ModuleList(encoders)
        # Trainer reads this to count tokens; the first column stands for the example.
        self.main_input_name = column_input_name(config.text_columns[0], "input_ids")

        poolings = config.column_poolings()
        for index, encoder in enumerate(self.encoders):
            drop_unused_pooler(
                encoder, [mode for column, mode in enumerate(poolings) if config.column_encoder_index(column) == index]
            )
        hidden_sizes = [self.column_encoder(column).config.hidden_size for column in range(n_columns)]
        if config.fusion_hidden_size is None:
            config.fusion_hidden_size = config.default_fusion_hidden_size()
        if config.fusion == "logits_mlp":
            self.column_classifiers = nn.ModuleList(
                ClassificationHead(size, num_labels, dropout=config.classifier_dropout) for size in hidden_sizes
            )
            fusion_input, fusion_dropout = n_columns * num_labels, 0.0
        else:
            self.column_classifiers = None
            fusion_input, fusion_dropout = sum(hidden_sizes), config.classifier_dropout
        self.fusion_head = ClassificationHead(
            fusion_input, num_labels, config.fusion_hidden_size, dropout=fusion_dropout, activation="relu"
        )
        self.post_init()

    def column_encoder(self, column_index: int) -> PreTrainedModel:
        """The encoder that reads text column ``column_index``."""
        return self.encoders[self.config.column_encoder_index(column_index)]

    @torch.no_grad()
    def _init_weights(self, module):
        """Head layers only: encoders are sub-models that initialise themselves or come from checkpoints."""
        init_head_weights(module, std=getattr(self.encoders[0].config, "initializer_range", 0.02))

    def get_input_embeddings(self) -> nn.Module:
        """The first encoder's embeddings (the only ones when ``share_encoder=True``)."""
        return self.encoders[0].get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.encoders[0].set_input_embeddings(value)

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """Resize every encoder's embeddings: only meaningful when all columns use one tokenizer."""
        for index, encoder in enumerate(self.encoders):
            embeddings = encoder.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
            self.config.encoders[index] = encoder_config_to_dict(encoder.config)
        return embeddings

    def input_names(self) -> list[str]:
        """Every input name ``forward`` reads, e.g. for a Trainer's ``_signature_columns``."""
        return [column_input_name(c, field) for c in self.config.text_columns for field in COLUMN_INPUT_FIELDS]

    def _column_inputs(self, column: str, inputs: dict) -> tuple:
        names = [column_input_name(column, field) for field in COLUMN_INPUT_FIELDS]
        missing = [name for name in names[:2] if inputs.get(name) is None]
        if missing:
            raise ValueError(
                f"missing input for text column '{column}': {missing} (inputs are named {{column}}_input_ids, "
                f"{{column}}_attention_mask for text_columns {self.config.text_columns}); got {sorted(inputs)}"
            )
        return tuple(inputs.get(name) for name in names)

    @can_return_tuple
    def forward(self, labels: torch.Tensor | None = None, **inputs) -> SequenceClassifierOutput:
        """Classify from named per-column tensors.

        For every column ``c`` of ``config.text_columns``: ``c_input_ids`` and ``c_attention_mask`` (batch, seq_c),
        optionally ``c_token_type_ids`` (see :func:`column_input_name`); each column has its own length.
        ``labels`` (batch,) class ids give a cross-entropy ``loss``. Other inputs are ignored, so extra
        dataset fields a collator passes through do no harm.
        """
        pooled = []
        for index, (column, mode) in enumerate(zip(self.config.text_columns, self.config.column_poolings())):
            input_ids, attention_mask, token_type_ids = self._column_inputs(column, inputs)
            encoder = self.column_encoder(index)
            outputs = encoder(
                **encoder_forward_kwargs(encoder, input_ids, attention_mask, token_type_ids), return_dict=True
            )
            pooled.append(pool(outputs, attention_mask, mode))
        if self.column_classifiers is not None:
            pooled = [classifier(vector) for classifier, vector in zip(self.column_classifiers, pooled)]
        logits = self.fusion_head(torch.cat(pooled, dim=-1))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)

    @classmethod
    def from_encoders_pretrained(
        cls,
        paths: str | list[str],
        text_columns: list[str],
        share_encoder: bool = False,
        encoder_dropout: float | None = None,
        **config_kwargs,
    ) -> MultiEncoderForSequenceClassification:
        """Start fine-tuning from encoder checkpoints (``AutoModel.from_pretrained``).

        ``paths``: one checkpoint for every column (shared, or copied per column when ``share_encoder`` is
        False) or one per column. Every encoder weight comes from its checkpoint, in float32; the names of
        parameters no checkpoint provided (the head, plus encoder keys a checkpoint lacked) are logged and
        kept in ``model.newly_initialized_keys``. ``encoder_dropout`` replaces the checkpoints' dropout inside
        the encoders; ``config_kwargs`` go to :class:`MultiEncoderConfig`.
        """
        text_columns = list(text_columns)
        paths = [paths] if isinstance(paths, str) else list(paths)
        if share_encoder and len(paths) != 1:
            raise ValueError(f"paths has {len(paths)} entries but share_encoder=True takes a single checkpoint")
        if len(paths) not in (1, len(text_columns)):
            raise ValueError(
                f"paths has {len(paths)} entries but text_columns has {len(text_columns)} columns; "
                "give one checkpoint for all columns or one per column"
            )
        loaded = [load_pretrained_encoder(path, encoder_dropout, dtype=torch.float32) for path in paths]
        if not share_encoder and len(loaded) == 1:
            loaded = loaded + [copy.deepcopy(loaded[0]) for _ in text_columns[1:]]
        encoders = [encoder for encoder, _ in loaded]
        config = cls.config_class(
            text_columns=text_columns,
            encoders=[encoder_config_to_dict(encoder.config) for encoder in encoders],
            share_encoder=share_encoder,
            **config_kwargs,
        )
        model = cls(config, encoders=encoders)
        model.newly_initialized_keys = newly_initialized_parameters(
            model, {f"encoders.{index}": missing for index, (_, missing) in enumerate(loaded)}
        )
        return model


__all__ = ["MultiEncoderForSequenceClassification", "column_input_name"]
