"""EncoderForSequenceClassification (korclf-encoder) against hand computations from the encoder's outputs.

Also home of the tiny-model helpers that tests/test_multi_encoder.py imports; loading a saved folder
with trust_remote_code where korclf cannot be imported is tested there, for both models in one process.
"""

import json
import os

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertModel,
    ElectraConfig,
    PreTrainedTokenizerFast,
)

from korclf.models import EncoderClassifierConfig, EncoderForSequenceClassification

TEXTS = [
    "인공지능 기반 반도체 설계 자동화 기술 개발",
    "차세대 전력 반도체 소자 공정 연구",
    "바이오 신약 후보 물질 발굴 플랫폼",
    "유전체 분석 기반 정밀 의료 서비스",
    "자율 주행 차량 센서 융합 인식 기술",
    "해양 플라스틱 저감 친환경 소재 개발",
]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(texts=TEXTS, special_tokens=SPECIAL_TOKENS, vocab_size=120) -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer trained in-process (the order of ``special_tokens`` fixes their ids)."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special_tokens)
    tokenizer.train_from_iterator(texts, trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def tiny_bert_config(vocab_size=256, **overrides) -> BertConfig:
    kwargs = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
    return BertConfig(vocab_size=vocab_size, **{**kwargs, **overrides})


def tiny_electra_config(vocab_size=256, **overrides) -> ElectraConfig:
    kwargs = dict(embedding_size=16, hidden_size=24, num_hidden_layers=2, num_attention_heads=2, intermediate_size=30)
    return ElectraConfig(vocab_size=vocab_size, **{**kwargs, **overrides})


def encode(tokenizer, texts=TEXTS[:4]):
    """Right-padded batch of real text (rows of different lengths, so masks matter)."""
    return tokenizer(list(texts), padding=True, return_tensors="pt", return_token_type_ids=False)


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core box OpenMP spinning costs seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer()


def manual_pool(hidden, mask, mode, pooler=None):
    """Reference pooling written row by row, independent of korclf.models.encoder_utils."""
    if mode == "mean":
        return torch.stack([hidden[i, mask[i].bool()].mean(dim=0) for i in range(hidden.shape[0])])
    if mode == "pooler" and pooler is not None:
        return torch.tanh(hidden[:, 0] @ pooler.dense.weight.T + pooler.dense.bias)
    return hidden[:, 0]


@pytest.mark.parametrize("encoder_config", [tiny_bert_config, tiny_electra_config], ids=["bert", "electra"])
@pytest.mark.parametrize("head", ["linear", "mlp"])
@pytest.mark.parametrize("pooling", ["pooler", "first", "mean"])
def test_logits_equal_hand_computation_from_last_hidden_state(tokenizer, encoder_config, head, pooling):
    torch.manual_seed(0)
    config = EncoderClassifierConfig(encoder=encoder_config(), pooling=pooling, head=head, num_labels=3)
    model = EncoderForSequenceClassification(config).eval()
    batch = encode(tokenizer)
    assert batch["attention_mask"].sum(1).unique().numel() > 1  # padding present

    with torch.no_grad():
        out = model(**batch)
        hidden = model.encoder(**batch).last_hidden_state
    pooled = manual_pool(hidden, batch["attention_mask"], pooling, getattr(model.encoder, "pooler", None))
    clf = model.classifier
    if head == "mlp":
        pooled = torch.tanh(pooled @ clf.dense.weight.T + clf.dense.bias)
    expected = pooled @ clf.out_proj.weight.T + clf.out_proj.bias
    torch.testing.assert_close(out.logits, expected)
    assert out.logits.shape == (4, 3) and out.loss is None


def test_loss_is_cross_entropy_and_gradients_reach_the_encoder(tokenizer):
    torch.manual_seed(0)
    model = EncoderForSequenceClassification(EncoderClassifierConfig(encoder=tiny_bert_config(), pooling="first"))
    labels = torch.tensor([0, 1, 1, 0])
    out = model(**encode(tokenizer), labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    out.loss.backward()
    # pooling="first" reads no pooler, so it is dropped rather than left without a gradient (DDP fails on those).
    assert model.encoder.pooler is None
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_config_rejects_unknown_choices():
    with pytest.raises(ValueError, match="pooling.*'cls'"):
        EncoderClassifierConfig(encoder=tiny_bert_config(), pooling="cls")
    with pytest.raises(ValueError, match="head.*'deep'"):
        EncoderClassifierConfig(encoder=tiny_bert_config(), head="deep")


def test_save_and_auto_load_give_identical_logits(tokenizer, tmp_path):
    torch.manual_seed(0)
    config = EncoderClassifierConfig(encoder=tiny_electra_config(), pooling="mean", head="mlp", num_labels=4)
    model = EncoderForSequenceClassification(config).eval()
    batch = encode(tokenizer)
    model.save_pretrained(tmp_path)

    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForSequenceClassification"].endswith("EncoderForSequenceClassification")
    assert {"modeling_encoder.py", "configuration_encoder.py", "encoder_utils.py"} <= set(os.listdir(tmp_path))

    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is EncoderForSequenceClassification
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, model(**batch).logits)


def test_from_encoder_pretrained_loads_every_encoder_weight(tmp_path):
    torch.manual_seed(0)
    checkpoint = BertModel(tiny_bert_config())
    checkpoint.save_pretrained(tmp_path)

    model = EncoderForSequenceClassification.from_encoder_pretrained(str(tmp_path), num_labels=5, head="mlp")
    reference = checkpoint.state_dict()
    loaded = model.encoder.state_dict()
    assert reference.keys() == loaded.keys()
    for key, tensor in reference.items():
        assert torch.equal(loaded[key], tensor), key
    head = {name for name, _ in model.named_parameters() if name.startswith("classifier.")}
    assert set(model.newly_initialized_keys) == head
    assert head == {f"classifier.{layer}.{kind}" for layer in ("dense", "out_proj") for kind in ("weight", "bias")}
    assert model.config.num_labels == 5 and model.classifier.out_proj.out_features == 5
    assert model.config.encoder["hidden_size"] == 32


def test_from_encoder_pretrained_reports_encoder_keys_missing_from_the_checkpoint(tmp_path):
    BertModel(tiny_bert_config(), add_pooling_layer=False).save_pretrained(tmp_path)
    model = EncoderForSequenceClassification.from_encoder_pretrained(str(tmp_path))
    assert {"encoder.pooler.dense.weight", "encoder.pooler.dense.bias"} <= set(model.newly_initialized_keys)


def test_resize_token_embeddings_is_recorded_in_the_config(tmp_path):
    model = EncoderForSequenceClassification(EncoderClassifierConfig(encoder=tiny_bert_config(vocab_size=256)))
    model.resize_token_embeddings(270, mean_resizing=False)
    assert model.get_input_embeddings().num_embeddings == 270
    assert model.config.encoder["vocab_size"] == 270
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert reloaded.get_input_embeddings().num_embeddings == 270
