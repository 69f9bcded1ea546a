"""MultiEncoderForSequenceClassification (korclf-multi-encoder) and its multi-column data pipeline."""

import os
import random
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from test_encoder_classifier import (  # noqa: F401  (single_thread is an autouse fixture)
    TEXTS,
    single_thread,
    tiny_bert_config,
    tiny_electra_config,
    train_tokenizer,
)
from transformers import AutoModelForSequenceClassification, BertModel, ElectraModel

from korclf.data.features import ColumnInputs
from korclf.data.multi_column import tokenize_columns, validate_max_lengths
from korclf.errors import KorclfError
from korclf.models import (
    EncoderClassifierConfig,
    EncoderForSequenceClassification,
    MultiEncoderConfig,
    MultiEncoderForSequenceClassification,
    column_input_name,
)

COLUMNS = ["title", "goal", "keywords"]
ROWS = {
    "title": ["전력 반도체 소자", "바이오 신약 개발", "자율 주행 인식 기술 고도화 연구", "정밀 의료"],
    "goal": [
        "공정 수율 향상",
        "후보 물질 발굴 플랫폼 구축 및 검증",
        "센서 융합",
        "유전체 분석 서비스 상용화",
    ],
    "keywords": ["반도체", "신약, 바이오", "자율주행, 센서, 인식", None],
    "label": [0, 1, 2, 1],
    "project_id": [11, 12, 13, 14],
}


@pytest.fixture(scope="module")
def tokenizer():
    tokenizer = train_tokenizer(TEXTS + [text for column in COLUMNS for text in ROWS[column] if text])
    assert len(tokenizer) <= tiny_bert_config().vocab_size
    return tokenizer


def collate(tokenizers, features, pad_to_multiple_of=None):
    """The recipe's collator for these columns (``ColumnInputs.collator``)."""
    return ColumnInputs({"text_columns": COLUMNS}, tokenizers).collator(pad_to_multiple_of)(features)


def make_batch(tokenizers, max_lengths=(16, 16, 16), pad_to_multiple_of=None):
    """ROWS through tokenize_columns and the recipe's collator, as a Trainer would see them."""
    encoded = tokenize_columns(ROWS, tokenizers, COLUMNS, list(max_lengths))
    extra = ("project_id", "title")  # a numeric field and a raw string
    features = [
        {**{key: values[i] for key, values in encoded.items()}, "labels": ROWS["label"][i],
         **{key: ROWS[key][i] for key in extra}}
        for i in range(len(ROWS["label"]))
    ]
    return collate(tokenizers, features, pad_to_multiple_of)


def build(fusion="logits_mlp", share_encoder=False, pooling="pooler", encoders=None, num_labels=3, **kwargs):
    torch.manual_seed(0)
    encoders = encoders or [tiny_bert_config()] * (1 if share_encoder else len(COLUMNS))
    config = MultiEncoderConfig(
        text_columns=COLUMNS,
        encoders=encoders,
        share_encoder=share_encoder,
        pooling=pooling,
        fusion=fusion,
        num_labels=num_labels,
        **kwargs,
    )
    return MultiEncoderForSequenceClassification(config)


def pooled_by_hand(encoder, batch, column, mode):
    """Reference pooling from the encoder's own outputs, row by row."""
    ids, mask = batch[column_input_name(column, "input_ids")], batch[column_input_name(column, "attention_mask")]
    outputs = encoder(input_ids=ids, attention_mask=mask)
    hidden = outputs.last_hidden_state
    if mode == "mean":
        return torch.stack([hidden[i, mask[i].bool()].mean(0) for i in range(len(ids))])
    if mode == "pooler" and getattr(outputs, "pooler_output", None) is not None:
        return outputs.pooler_output
    return hidden[:, 0]


def linear(x, layer):
    return x @ layer.weight.T + layer.bias


@pytest.mark.parametrize("pooling", ["pooler", "first", "mean"])
@pytest.mark.parametrize("share_encoder", [False, True], ids=["per-column", "shared"])
@pytest.mark.parametrize("fusion", ["logits_mlp", "concat_mlp"])
def test_shapes_and_every_trainable_parameter_gets_a_gradient(tokenizer, fusion, share_encoder, pooling):
    model = build(fusion, share_encoder, pooling)
    assert len(model.encoders) == (1 if share_encoder else 3)
    batch = make_batch(tokenizer)
    out = model(**batch)
    assert out.logits.shape == (4, 3)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, batch["labels"]))
    out.loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    # One copy of the encoder's parameters per encoder (the shared one counted once); a pooler no column reads
    # is dropped, as it would get no gradient.
    reference = BertModel(tiny_bert_config(), add_pooling_layer=pooling == "pooler")
    n_encoder_params = sum(p.numel() for p in reference.parameters())
    assert sum(p.numel() for p in model.encoders.parameters()) == n_encoder_params * len(model.encoders)


@pytest.mark.parametrize("fusion", ["logits_mlp", "concat_mlp"])
def test_logits_equal_hand_computation_with_mixed_backbones(fusion):
    """BERT (hidden 32) for title and goal, ELECTRA (hidden 24) for keywords, each with its own tokenizer."""
    bert_tokenizer = train_tokenizer(TEXTS + ROWS["title"] + ROWS["goal"])
    keywords = [text for text in ROWS["keywords"] if text]
    keyword_tokenizer = train_tokenizer(keywords, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"])
    assert keyword_tokenizer.pad_token_id != bert_tokenizer.pad_token_id
    pooling = ["pooler", "mean", "pooler"]  # "pooler" on ELECTRA (no pooler) falls back to the first token
    model = build(
        fusion,
        pooling=pooling,
        encoders=[tiny_bert_config(), tiny_bert_config(), tiny_electra_config(vocab_size=len(keyword_tokenizer))],
    ).eval()
    assert isinstance(model.encoders[2], ElectraModel)
    batch = make_batch([bert_tokenizer, bert_tokenizer, keyword_tokenizer])

    with torch.no_grad():
        logits = model(**batch).logits
        pooled = [pooled_by_hand(model.encoders[i], batch, c, pooling[i]) for i, c in enumerate(COLUMNS)]
        if fusion == "logits_mlp":
            pooled = [linear(p, clf.out_proj) for p, clf in zip(pooled, model.column_classifiers)]
        features = torch.cat(pooled, dim=-1)
        expected = linear(torch.relu(linear(features, model.fusion_head.dense)), model.fusion_head.out_proj)
    torch.testing.assert_close(logits, expected)
    fusion_width = 3 * 3 if fusion == "logits_mlp" else 32 + 32 + 24
    assert model.fusion_head.dense.in_features == fusion_width
    assert model.config.fusion_hidden_size == (4 * 3 * 3 if fusion == "logits_mlp" else 256)


def test_config_validation_names_both_lengths():
    with pytest.raises(ValueError, match=r"encoders has 2 entries but text_columns has 3 columns"):
        MultiEncoderConfig(text_columns=COLUMNS, encoders=[tiny_bert_config()] * 2)
    with pytest.raises(ValueError, match=r"encoders has 3 entries.*share_encoder=True"):
        MultiEncoderConfig(text_columns=COLUMNS, encoders=[tiny_bert_config()] * 3, share_encoder=True)
    with pytest.raises(ValueError, match=r"pooling has 2 entries but text_columns has 3 columns"):
        MultiEncoderConfig(text_columns=COLUMNS, encoders=[tiny_bert_config()] * 3, pooling=["mean", "first"])
    with pytest.raises(ValueError, match="fusion"):
        MultiEncoderConfig(text_columns=COLUMNS, encoders=[tiny_bert_config()] * 3, fusion="attention")


def test_missing_column_input_names_the_column(tokenizer):
    model = build()
    batch = make_batch(tokenizer)
    del batch["goal_attention_mask"]
    with pytest.raises(ValueError, match=r"text column 'goal'.*goal_attention_mask"):
        model(**batch)


@pytest.mark.parametrize("share_encoder", [False, True], ids=["mixed-backbones", "shared"])
def test_save_and_auto_load_give_identical_logits(tokenizer, tmp_path, share_encoder):
    encoders = None if share_encoder else [tiny_bert_config(), tiny_electra_config(), tiny_bert_config()]
    model = build("concat_mlp", share_encoder, pooling=["first", "mean", "pooler"], encoders=encoders).eval()
    batch = make_batch(tokenizer)
    model.save_pretrained(tmp_path)
    assert {"modeling_multi_encoder.py", "configuration_multi_encoder.py", "encoder_utils.py"} <= set(
        os.listdir(tmp_path)
    )
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is MultiEncoderForSequenceClassification
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, model(**batch).logits)


def test_saved_folders_load_with_trust_remote_code_without_korclf(tokenizer, tmp_path):
    """Both models' copied code must import only torch/transformers/siblings: load it where korclf is absent."""
    torch.manual_seed(0)
    multi = build("logits_mlp", pooling="mean").eval()
    single = EncoderForSequenceClassification(EncoderClassifierConfig(encoder=tiny_bert_config(), pooling="mean"))
    batch = make_batch(tokenizer)
    single_batch = {"input_ids": batch["title_input_ids"], "attention_mask": batch["title_attention_mask"]}
    expected = {}
    with torch.no_grad():
        for name, model, inputs in (("multi", multi, batch), ("single", single.eval(), single_batch)):
            model.save_pretrained(tmp_path / name)
            expected[name] = {"inputs": dict(inputs), "logits": model(**inputs).logits}
    torch.save(expected, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        sys.modules["korclf"] = None  # any korclf import now raises ImportError
        from transformers import AutoModelForSequenceClassification
        for name, case in torch.load({str(tmp_path / "expected.pt")!r}).items():
            path = {str(tmp_path)!r} + "/" + name
            model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
            assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
            with torch.no_grad():
                assert torch.equal(model(**case["inputs"]).logits, case["logits"]), name
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Three tiny BertModel checkpoints with different weights (and one ELECTRA)."""
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        path = tmp_path_factory.mktemp(f"bert{seed}")
        BertModel(tiny_bert_config()).save_pretrained(path)
        paths.append(str(path))
    path = tmp_path_factory.mktemp("electra")
    ElectraModel(tiny_electra_config()).save_pretrained(path)
    return paths + [str(path)]


def assert_encoder_equals_checkpoint(encoder, path):
    reference = (ElectraModel if "electra" in path else BertModel).from_pretrained(path).state_dict()
    state = encoder.state_dict()
    assert state.keys() == reference.keys()
    for key, tensor in reference.items():
        assert torch.equal(state[key], tensor), key


def head_parameters(model):
    return {name for name, _ in model.named_parameters() if not name.startswith("encoders.")}


def test_from_encoders_pretrained_one_checkpoint_per_column(checkpoints):
    paths = [checkpoints[0], checkpoints[1], checkpoints[3]]
    model = MultiEncoderForSequenceClassification.from_encoders_pretrained(paths, COLUMNS, num_labels=4)
    for encoder, path in zip(model.encoders, paths):
        assert_encoder_equals_checkpoint(encoder, path)
    assert set(model.newly_initialized_keys) == head_parameters(model)
    assert all(name.startswith(("column_classifiers.", "fusion_head.")) for name in model.newly_initialized_keys)
    assert [e["model_type"] for e in model.config.encoders] == ["bert", "bert", "electra"]


@pytest.mark.parametrize("share_encoder", [False, True], ids=["copied", "shared"])
def test_from_encoders_pretrained_one_checkpoint_for_all_columns(checkpoints, share_encoder):
    model = MultiEncoderForSequenceClassification.from_encoders_pretrained(
        checkpoints[2], COLUMNS, share_encoder=share_encoder, fusion="concat_mlp"
    )
    assert len(model.encoders) == (1 if share_encoder else 3)
    for encoder in model.encoders:
        assert_encoder_equals_checkpoint(encoder, checkpoints[2])
    pointers = {encoder.get_input_embeddings().weight.data_ptr() for encoder in model.encoders}
    assert len(pointers) == len(model.encoders)  # copies are independent, not tied
    assert set(model.newly_initialized_keys) == head_parameters(model) == {
        f"fusion_head.{layer}.{kind}" for layer in ("dense", "out_proj") for kind in ("weight", "bias")
    }


def test_from_encoders_pretrained_rejects_wrong_number_of_paths(checkpoints):
    with pytest.raises(ValueError, match="paths has 2 entries but text_columns has 3 columns"):
        MultiEncoderForSequenceClassification.from_encoders_pretrained(checkpoints[:2], COLUMNS)
    with pytest.raises(ValueError, match="share_encoder=True"):
        MultiEncoderForSequenceClassification.from_encoders_pretrained(checkpoints[:3], COLUMNS, share_encoder=True)


def test_tokenize_columns_truncates_each_column_to_its_own_limit(tokenizer):
    encoded = tokenize_columns(ROWS, tokenizer, COLUMNS, [4, 6, 16])
    assert set(encoded) == {column_input_name(c, f) for c in COLUMNS for f in ("input_ids", "attention_mask")}
    for column, limit in zip(COLUMNS, [4, 6, 16]):
        reference = [tokenizer(text or "", truncation=True, max_length=limit)["input_ids"] for text in ROWS[column]]
        assert encoded[f"{column}_input_ids"] == reference
        assert max(map(len, reference)) <= limit
    assert max(len(ids) for ids in encoded["goal_input_ids"]) == 6  # the goal column was really cut


def test_collator_pads_each_column_to_its_own_batch_max(tokenizer):
    encoded = tokenize_columns(ROWS, tokenizer, COLUMNS, [32, 32, 32])
    batch = make_batch(tokenizer, max_lengths=(32, 32, 32))
    for column in COLUMNS:
        lengths = [len(ids) for ids in encoded[f"{column}_input_ids"]]
        ids, mask = batch[f"{column}_input_ids"], batch[f"{column}_attention_mask"]
        assert ids.shape == (4, max(lengths))
        for row, length in enumerate(lengths):
            assert ids[row, :length].tolist() == encoded[f"{column}_input_ids"][row]
            assert (ids[row, length:] == tokenizer.pad_token_id).all()
            assert mask[row].tolist() == [1] * length + [0] * (max(lengths) - length)
    assert len({batch[f"{c}_input_ids"].shape[1] for c in COLUMNS}) > 1  # columns really differ in length
    assert torch.equal(batch["labels"], torch.tensor(ROWS["label"]))
    assert torch.equal(batch["project_id"], torch.tensor(ROWS["project_id"]))
    assert "title" not in batch  # raw strings are dropped

    padded = make_batch(tokenizer, max_lengths=(32, 32, 32), pad_to_multiple_of=8)
    assert all(padded[f"{c}_input_ids"].shape[1] % 8 == 0 for c in COLUMNS)


def test_max_length_validation():
    assert validate_max_lengths(128, COLUMNS) == [128, 128, 128]
    assert validate_max_lengths("auto", COLUMNS) == ["auto"] * 3
    assert validate_max_lengths([32, 256, "auto"], COLUMNS) == [32, 256, "auto"]
    with pytest.raises(KorclfError, match=r"max_length has 2 entries but there are 3 text columns"):
        validate_max_lengths([32, 256], COLUMNS)
    with pytest.raises(KorclfError, match=r"max_length.*column 'goal'"):
        validate_max_lengths([32, 0, 16], COLUMNS)


def synthetic_task(n=24, seed=0):
    """Label 1 iff the title is about biology; goal and keywords are noise shared by both classes."""
    rng = random.Random(seed)
    topics = [["반도체", "소자", "공정", "전력"], ["신약", "바이오", "유전체", "의료"]]
    noise = ["기술", "개발", "연구", "플랫폼", "구축", "고도화", "서비스"]
    rows = {column: [] for column in COLUMNS} | {"label": []}
    for i in range(n):
        label = i % 2
        rows["title"].append(" ".join(rng.sample(topics[label], 2) + rng.sample(noise, 2)))
        rows["goal"].append(" ".join(rng.sample(noise, 4)))
        rows["keywords"].append(", ".join(rng.sample(noise, 2)))
        rows["label"].append(label)
    return rows


def test_short_training_loop_fits_a_separable_task():
    rows = synthetic_task()
    tokenizer = train_tokenizer([text for column in COLUMNS for text in rows[column]])
    encoded = tokenize_columns(rows, tokenizer, COLUMNS, [12, 12, 8])
    features = [{**{k: v[i] for k, v in encoded.items()}, "labels": rows["label"][i]} for i in range(24)]
    batch = collate(tokenizer, features)
    model = build("logits_mlp", pooling="mean", num_labels=2)

    def eval_loss():
        model.eval()
        with torch.no_grad():
            return model(**batch).loss.item()

    initial = eval_loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for _ in range(30):
        model.train()
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    final = eval_loss()
    assert initial > 0.6 and final < 0.1, (initial, final)
