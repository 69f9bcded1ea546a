"""``encoder_dropout``: the encoder's own dropout replaced before its modules are built, for every model kind.

The check is behavioural: in training mode an encoder without dropout gives the same hidden states twice,
one with the checkpoint's dropout does not; the saved config records the setting.
"""

import json
from pathlib import Path

import pytest
import torch
from helpers import ARCHITECTURES, LABELS, make_checkpoint, run_config, tiny_tokenizer

from korclf.arguments import DataArguments, ModelArguments
from korclf.errors import KorclfError
from korclf.modeling import build_model
from korclf.models.encoder_utils import ENCODER_DROPOUT_KEYS


def checkpoint_with_dropout(folder, architecture, dropout=0.1) -> str:
    """A tiny checkpoint whose every encoder-dropout setting is ``dropout`` (ALBERT's default is 0)."""
    checkpoint = make_checkpoint(folder, architecture)
    path = Path(checkpoint) / "config.json"
    config = json.loads(path.read_text())
    config.update({key: dropout for key in ENCODER_DROPOUT_KEYS if key in config})
    path.write_text(json.dumps(config))
    return checkpoint


def encoders_of(model) -> list:
    """The encoder module(s) inside a classifier of any kind."""
    if hasattr(model, "encoders"):
        return list(model.encoders)
    if hasattr(model, "encoder") and hasattr(model.encoder, "config"):
        return [model.encoder]
    return [getattr(model, model.base_model_prefix)]


def random_in_training(encoder) -> bool:
    """Whether two training-mode forward passes over the same batch differ (dropout is active)."""
    torch.manual_seed(0)
    ids = torch.randint(5, 300, (3, 12))
    encoder.train()
    with torch.no_grad():
        first, second = (encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state for _ in "ab")
    return not torch.equal(first, second)


def build(checkpoint, kind="sequence", pooling=None, **options):
    model_args = ModelArguments(model_name_or_path=checkpoint, model_kind=kind, pooling=pooling, **options)
    data_args = DataArguments(text_columns=["a", "b"] if kind == "multi_encoder" else None, entity_format="klue")
    return build_model(model_args, data_args, tiny_tokenizer(), LABELS)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_stock_model_of_every_architecture(tmp_path, architecture):
    checkpoint = checkpoint_with_dropout(tmp_path / architecture, architecture)
    assert random_in_training(encoders_of(build(checkpoint))[0])

    model = build(checkpoint, encoder_dropout=0.0)
    assert not random_in_training(encoders_of(model)[0])
    keys = [key for key in ENCODER_DROPOUT_KEYS if hasattr(model.config, key)]
    assert keys and all(getattr(model.config, key) == 0.0 for key in keys)
    assert model.config.num_labels == len(LABELS) and model.config.id2label[1] == LABELS[1]


@pytest.mark.parametrize("kind,pooling", [("sequence", "mean"), ("rbert", None), ("multi_encoder", "first")])
def test_korclf_heads_keep_their_classifier_dropout(tmp_path, kind, pooling):
    checkpoint = checkpoint_with_dropout(tmp_path / "bert", "bert")
    model = build(checkpoint, kind, pooling, encoder_dropout=0.0, classifier_dropout=0.3)
    encoders = encoders_of(model)
    assert encoders and not any(random_in_training(encoder) for encoder in encoders)
    stored = model.config.to_dict()
    stored = stored.get("encoders") or [stored["encoder"]]
    assert all(encoder["hidden_dropout_prob"] == 0.0 for encoder in stored)
    assert model.config.classifier_dropout == 0.3


def test_scratch_encoder_and_saved_run(tmp_path):
    result = run_config(tmp_path, encoder_dropout=0.0, max_steps=2)
    assert result.rc == 0
    reloaded = build(result.output_dir)  # the saved folder keeps the setting
    assert reloaded.config.hidden_dropout_prob == 0.0 and reloaded.config.attention_probs_dropout_prob == 0.0


def test_encoder_without_dropout_settings(tmp_path, monkeypatch):
    checkpoint = make_checkpoint(tmp_path / "bert", "bert")
    monkeypatch.setattr("korclf.models.encoder_utils.ENCODER_DROPOUT_KEYS", ("no_such_setting",))
    with pytest.raises(KorclfError, match="config key 'encoder_dropout': the 'bert' encoder .* has none of"):
        build(checkpoint, encoder_dropout=0.0)
