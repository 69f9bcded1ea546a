"""R-BERT head on tiny encoders: head arithmetic, pooler fallback, saving, pretrained start, resizing."""

import ast
import itertools
import json
import logging
import os

import pytest
import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertModel,
    DistilBertConfig,
    PreTrainedTokenizerFast,
)
from transformers.dynamic_module_utils import get_class_from_dynamic_module

from korclf.data.entities import encode_relation_batch, mark_entities, parse_tagged_sentence, special_marker_tokens
from korclf.models import RBertConfig, RBertForSequenceClassification  # importing korclf.models registers them
from korclf.models.configuration_rbert import CONCAT_MODES

VOCAB = 60


def tiny_bert(vocab_size=VOCAB):
    return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                      vocab_size=vocab_size)


def tiny_distilbert():
    return DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=37, vocab_size=VOCAB)


def rbert(encoder=None, **kwargs):
    torch.manual_seed(0)
    return RBertForSequenceClassification(RBertConfig(encoder=encoder or tiny_bert(), num_labels=3, **kwargs)).eval()


def batch():
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, VOCAB, (3, 9), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 7:] = 0  # a padded row
    e1 = torch.zeros_like(input_ids)
    e2 = torch.zeros_like(input_ids)
    e1[0, 1:3], e2[0, 5] = 1, 1
    e1[1, 6], e2[1, 2:5] = 1, 1  # object first
    e1[2, 1], e2[2, 3:6] = 1, 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "e1_mask": e1, "e2_mask": e2}


def reference_logits(model, inputs, sentence):
    """The R-BERT head written out step by step from its definition (eval mode, so no dropout)."""
    act = torch.tanh if model.config.activation == "tanh" else torch.nn.functional.gelu
    hidden = model.encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state

    def fc(layer, x):
        return act(x) @ layer.linear.weight.T + layer.linear.bias

    def average(mask):
        return torch.stack([hidden[b, mask[b].bool()].mean(dim=0) for b in range(hidden.shape[0])])

    e1_layer, e2_layer = ((model.entity_fc, model.entity_fc) if model.config.entity_layer == "shared"
                          else (model.e1_fc, model.e2_fc))
    h = fc(model.cls_fc, sentence(hidden))
    e1, e2 = fc(e1_layer, average(inputs["e1_mask"])), fc(e2_layer, average(inputs["e2_mask"]))
    parts = {
        "cls_e1_e2": [h, e1, e2],
        "cls_e1_e2_absdiff": [h, e1, e2, (e1 - e2).abs()],
        "cls_e1_e2_prod": [h, e1, e2, e1 * e2],
        "cls_e1_e2_absdiff_prod": [h, e1, e2, (e1 - e2).abs(), e1 * e2],
        "clsxe1_clsxe2": [h * e1, h * e2],
    }[model.config.concat]
    return torch.cat(parts, dim=-1) @ model.classifier.weight.T + model.classifier.bias


@pytest.mark.parametrize("concat, entity_layer, activation",
                         list(itertools.product(CONCAT_MODES, ["shared", "split"], ["tanh", "gelu"])))
def test_head_matches_its_definition(concat, entity_layer, activation):
    model = rbert(concat=concat, entity_layer=entity_layer, activation=activation)
    inputs = batch()
    with torch.no_grad():
        logits = model(**inputs).logits
        pooler = model.encoder.pooler
        expected = reference_logits(model, inputs, lambda hidden: torch.tanh(pooler.dense(hidden[:, 0])))
    assert logits.shape == (3, 3)
    blocks = {"cls_e1_e2": 3, "cls_e1_e2_absdiff": 4, "cls_e1_e2_prod": 4, "cls_e1_e2_absdiff_prod": 5,
              "clsxe1_clsxe2": 2}
    assert model.classifier.in_features == blocks[concat] * 32
    torch.testing.assert_close(logits, expected)
    assert hasattr(model, "entity_fc") == (entity_layer == "shared")


@pytest.mark.parametrize("use_pooler", [True, False])
def test_pooler_less_encoder_uses_the_first_token(use_pooler):
    model = rbert(encoder=tiny_distilbert(), use_pooler=use_pooler)
    inputs = batch()
    inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])  # DistilBERT must not receive them
    with torch.no_grad():
        logits = model(**inputs).logits
        expected = reference_logits(model, inputs, lambda hidden: hidden[:, 0])
    torch.testing.assert_close(logits, expected)
    assert model.config.hidden_size == 32


def test_bert_without_pooler_option_uses_the_first_token():
    model = rbert(use_pooler=False)
    inputs = batch()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, reference_logits(model, inputs, lambda h: h[:, 0]))


def test_gradient_reaches_encoder_and_head():
    model = rbert(entity_layer="split").train()
    out = model(**batch(), labels=torch.tensor([0, 2, 1]))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2, 1])))
    out.loss.backward()
    for name in ("encoder.embeddings.word_embeddings.weight", "encoder.encoder.layer.0.attention.self.query.weight",
                 "cls_fc.linear.weight", "e1_fc.linear.weight", "e2_fc.linear.weight", "classifier.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_config_validates_choices():
    for bad in ({"concat": "cls_only"}, {"entity_layer": "both"}, {"activation": "relu"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RBertConfig(encoder=tiny_bert(), **bad)
    with pytest.raises(ValueError, match="encoder"):
        RBertConfig()
    with pytest.raises(ValueError, match="e1_mask"):
        rbert()(input_ids=batch()["input_ids"])


def assert_same_model(original, loaded, inputs):
    """Equal tensors, then bit-identical logits.

    Loaded weights are views into the memory-mapped safetensors file; at unaligned addresses CPU
    matmuls take other kernels that differ in the last bit. Once every tensor is shown equal, the
    loaded ones are copied into fresh memory so that the logits can be compared exactly.
    """
    expected, actual = original.state_dict(), loaded.state_dict()
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name
    with torch.no_grad():
        for tensor in itertools.chain(loaded.parameters(), loaded.buffers()):
            tensor.data = tensor.data.clone()
        assert torch.equal(original.eval()(**inputs).logits, loaded.eval()(**inputs).logits)


def test_save_and_load_through_auto_classes(tmp_path):
    model = rbert(concat="cls_e1_e2_absdiff_prod", entity_layer="split", activation="gelu",
                  id2label={0: "no_relation", 1: "org:founded_by", 2: "per:origin"})
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForSequenceClassification"] == "modeling_rbert.RBertForSequenceClassification"
    assert {"configuration_rbert.py", "modeling_rbert.py", "encoder_utils.py"} <= set(os.listdir(tmp_path))

    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert isinstance(loaded, RBertForSequenceClassification)
    assert loaded.config.id2label[1] == "org:founded_by" and loaded.config.concat == "cls_e1_e2_absdiff_prod"
    assert_same_model(model, loaded, batch())


def test_saved_code_is_self_contained(tmp_path):
    """Saved folders load with trust_remote_code where korclf is not installed."""
    model = rbert()
    model.save_pretrained(tmp_path)
    for name in ("configuration_rbert.py", "modeling_rbert.py", "encoder_utils.py"):
        for node in ast.walk(ast.parse((tmp_path / name).read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= {"__future__", "logging", "typing", "torch", "transformers"}, (name, roots)

    # The registered korclf class would win over the saved code, so load the saved code explicitly.
    remote_class = get_class_from_dynamic_module("modeling_rbert.RBertForSequenceClassification", tmp_path)
    assert remote_class.__module__.startswith("transformers_modules")
    assert_same_model(model, remote_class.from_pretrained(tmp_path), batch())


@pytest.fixture
def transformers_logs(caplog):
    """Let transformers' own log records (loading reports) reach caplog."""
    transformers.logging.enable_propagation()
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_info()
    caplog.set_level(logging.INFO)
    yield caplog
    transformers.logging.set_verbosity(previous)
    transformers.logging.disable_propagation()


def test_pretrained_start_loads_encoder_and_initialises_only_the_head(tmp_path, transformers_logs):
    torch.manual_seed(3)
    encoder = BertModel(tiny_bert())
    encoder.save_pretrained(tmp_path)
    transformers_logs.clear()

    model = RBertForSequenceClassification.from_encoder_pretrained(tmp_path, num_labels=4, concat="clsxe1_clsxe2")

    checkpoint = encoder.state_dict()
    loaded = model.encoder.state_dict()
    assert checkpoint.keys() == loaded.keys()
    for name, tensor in checkpoint.items():
        assert torch.equal(loaded[name], tensor), name
    head = {name for name, _ in model.named_parameters() if not name.startswith("encoder.")}
    assert set(model.newly_initialized_keys) == head
    assert {"cls_fc.linear.weight", "entity_fc.linear.bias", "classifier.weight"} <= head
    assert model.classifier.out_features == 4 and model.classifier.bias.abs().sum() == 0
    assert 0.01 < model.classifier.weight.std() < 0.03  # normal(0, initializer_range=0.02)

    warnings = [r.getMessage() for r in transformers_logs.records if r.levelno >= logging.WARNING]
    assert not warnings, warnings
    ours = [r.getMessage() for r in transformers_logs.records if r.name == "korclf.models.modeling_rbert"]
    assert len(ours) == 1 and "classifier.weight" in ours[0] and "encoder." not in ours[0]


def test_pretrained_start_reports_encoder_weights_missing_from_the_checkpoint(tmp_path, transformers_logs):
    BertModel(tiny_bert(), add_pooling_layer=False).save_pretrained(tmp_path)
    model = RBertForSequenceClassification.from_encoder_pretrained(tmp_path, num_labels=2)
    encoder_new = [n for n in model.newly_initialized_keys if n.startswith("encoder.")]
    assert sorted(encoder_new) == ["encoder.pooler.dense.bias", "encoder.pooler.dense.weight"]
    # transformers' own report does reach the captured logs (so the test above is not vacuous).
    warnings = [r.getMessage() for r in transformers_logs.records if r.levelno >= logging.WARNING]
    assert any("pooler.dense.weight" in message for message in warnings)


def test_resize_for_plain_markers_then_save_and_reload(tmp_path):
    vocab = {tok: i for i, tok in enumerate(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "bill", "was", "born", "in", "seattle", "."])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")
    tokenizer.add_tokens(special_marker_tokens("plain"), special_tokens=True)

    model = rbert(encoder=tiny_bert(vocab_size=len(vocab)))
    model.resize_token_embeddings(len(tokenizer))
    assert model.get_input_embeddings().num_embeddings == len(tokenizer) == len(vocab) + 4
    assert model.config.encoder["vocab_size"] == len(tokenizer)

    text, spans = mark_entities(parse_tagged_sentence("<e1>bill</e1> was born in <e2>seattle</e2> ."), "plain")
    enc = encode_relation_batch(tokenizer, [text], [spans], max_length=32, include_markers=True)
    inputs = {k: torch.tensor(enc[k]) for k in ("input_ids", "attention_mask", "e1_mask", "e2_mask")}
    assert inputs["input_ids"].max() >= len(vocab)  # the marker ids are the new rows
    model.save_pretrained(tmp_path)
    assert_same_model(model, AutoModelForSequenceClassification.from_pretrained(tmp_path), inputs)
