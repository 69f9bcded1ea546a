"""Loading, checking, splitting, length choice, tokenisation cache and padding of the data."""

import logging
import random
from collections import Counter

import numpy as np
import pytest
import torch
import yaml
from helpers import LABELS, SAMPLE_TRAIN, sample_rows, tiny_tokenizer, write_table
from transformers import BertConfig, XLMRobertaConfig

from korclf.arguments import parse_config
from korclf.data.loading import load_file, load_hub, stratified_split
from korclf.data.prepare import prepare_splits
from korclf.data.processing import PaddingCollator, TextEncoder, resolve_max_length
from korclf.errors import KorclfError
from korclf.data.features import input_builder
from korclf.run import encode_splits, korclf_settings

ROWS = [
    {"id": "a1", "text": "NA", "label": "food"},
    {"id": "a2", "text": "null", "label": "sports"},
    {"id": "a3", "text": "코스피, 외국인 매수에 상승", "label": "economy"},
    {"id": "a4", "text": "None", "label": "food"},
    {"id": "a5", "text": "내일 전국에 비 \"우산\" 챙기세요", "label": "weather"},
    {"id": "a6", "text": "nan", "label": "sports"},
]


def configure(tmp_path, **values):
    """The three argument objects of a config with ``values`` (through the real parser)."""
    config = {"output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "hf_cache"), **values}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return parse_config([str(path)])


def prepare(tmp_path, seed=0, **values):
    model_args, data_args, training_args = configure(tmp_path, **values)
    return prepare_splits(model_args, data_args, seed)


def error_of(tmp_path, **values) -> str:
    with pytest.raises(KorclfError) as info:
        prepare(tmp_path, **values)
    return str(info.value)


# ------------------------------------------------------------------------------------ formats, labels


@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl", "json", "parquet"])
def test_every_format_loads_and_texts_stay_text(tmp_path, ext):
    train = write_table(tmp_path / f"train.{ext}", ROWS)
    validation = write_table(tmp_path / f"validation.{ext}", ROWS[2:])
    prepared = prepare(tmp_path, train_file=train, validation_file=validation)
    texts = prepared.splits["train"]["text"]
    # "NA", "null", "None", "nan" are texts, not missing values; commas and quotes survive
    assert texts == [row["text"] for row in ROWS]
    assert all(isinstance(text, str) for text in texts)
    assert prepared.label_names == ["economy", "food", "sports", "weather"]
    assert prepared.labels("train", "label") == [1, 2, 0, 1, 3, 2]
    assert prepared.labels("validation", "label") == [0, 1, 3, 2]
    assert [str(i) for i in prepared.splits["train"]["id"]] == [row["id"] for row in ROWS]


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_integer_labels_sort_numerically(tmp_path, ext):
    labels = [10, 2, 1, 10, 2, 1, 2]
    rows = [{"text": f"문장 {i}", "label": label} for i, label in enumerate(labels)]
    path = write_table(tmp_path / f"train.{ext}", rows)
    if ext == "jsonl":  # really integers in the file, not strings
        assert '"label": 10' in open(path, encoding="utf-8").read()
    prepared = prepare(tmp_path, train_file=path, validation_file=path)
    assert prepared.label_names == ["1", "2", "10"]  # not ["1", "10", "2"]
    assert prepared.labels("train", "label") == [2, 1, 0, 2, 1, 0, 1]


def test_label_list_is_sorted_and_independent_of_row_order(tmp_path):
    rows = sample_rows("train", 40)
    names = []
    for seed in (1, 2):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert shuffled != rows
        path = write_table(tmp_path / f"train{seed}.tsv", shuffled)
        names.append(prepare(tmp_path, train_file=path, validation_file=path).label_names)
    assert names[0] == names[1] == sorted({row["label"] for row in rows}) == LABELS


def test_label_list_from_config_is_kept_in_its_order(tmp_path):
    path = write_table(tmp_path / "train.tsv", sample_rows("train", 40))
    order = ["weather", "economy", "sports", "food"]
    prepared = prepare(tmp_path, train_file=path, validation_file=path, label_list=order)
    assert prepared.label_names == order
    expected = [order.index(row["label"]) for row in sample_rows("train", 40)]
    assert prepared.labels("train", "label") == expected


def test_label_list_missing_a_training_label(tmp_path):
    rows = sample_rows("train", 40)
    path = write_table(tmp_path / "train.tsv", rows)
    first_food = next(i for i, row in enumerate(rows) if row["label"] == "food") + 1
    message = error_of(tmp_path, train_file=path, validation_file=path, label_list=["economy", "sports", "weather"])
    assert "'food'" in message and "label_list" in message and f"row {first_food}" in message


# ------------------------------------------------------------------------------------- bad input


def test_missing_file_is_named(tmp_path):
    missing = str(tmp_path / "nope.tsv")
    message = error_of(tmp_path, train_file=missing)
    assert missing in message and "does not exist" in message


def test_missing_column_names_file_and_column(tmp_path):
    path = write_table(tmp_path / "train.csv", [{"sentence": "문장", "label": "a"}])
    message = error_of(tmp_path, train_file=path)
    assert path in message and "'text'" in message and "sentence" in message


@pytest.mark.parametrize("blank", ["", "   ", "\u3000"])
def test_empty_text_names_file_and_row(tmp_path, blank):
    rows = sample_rows("train", 10)
    rows[2]["text"] = blank
    path = write_table(tmp_path / "train.jsonl", rows)
    message = error_of(tmp_path, train_file=path)
    assert path in message and "row 3" in message and "'text'" in message and "empty" in message
    assert "empty_text: drop" in message


def test_empty_text_drop_is_counted(tmp_path):
    rows = sample_rows("train", 40)
    for i in (0, 5, 6):
        rows[i]["text"] = " \t " if i == 5 else ""
    path = write_table(tmp_path / "train.jsonl", rows)
    validation = write_table(tmp_path / "validation.jsonl", sample_rows("train")[100:110])
    prepared = prepare(tmp_path, train_file=path, validation_file=validation, empty_text="drop")
    kept = [row["id"] for i, row in enumerate(rows) if i not in (0, 5, 6)]
    assert prepared.splits["train"]["id"] == kept
    assert prepared.report["splits"]["train"] == {"rows_read": 40, "dropped_empty_raw": 3, "rows_used": 37}
    assert prepared.report["splits"]["validation"] == {"rows_read": 10, "rows_used": 10}


def test_text_empty_after_normalisation(tmp_path):
    rows = sample_rows("train", 20)
    rows[3]["text"] = "😀😀 !!"
    path = write_table(tmp_path / "train.jsonl", rows)
    message = error_of(tmp_path, train_file=path, normalize=True, normalize_keep_chars="hangul")
    assert "row 4" in message and "after normalisation" in message
    prepared = prepare(tmp_path, train_file=path, validation_file=path, normalize=True,
                       normalize_keep_chars="hangul", empty_text="drop")
    assert prepared.report["splits"]["train"]["dropped_empty_normalized"] == 1
    assert rows[3]["id"] not in prepared.splits["train"]["id"]
    # every row whose text normalisation altered is counted (an independent count of the same rule)
    from korclf.text.normalize import TextNormalizer

    normalizer = TextNormalizer.from_dict(prepared.report["normalization"])
    altered = sum(normalizer([row["text"]])[0] != row["text"] for row in rows)
    assert prepared.report["splits"]["train"]["rows_changed_by_normalization"] == altered > 0


@pytest.mark.parametrize("ext,missing", [("csv", ""), ("jsonl", None), ("jsonl", float("nan")), ("tsv", "  ")])
def test_missing_label_names_the_row(tmp_path, ext, missing):
    rows = sample_rows("train", 10)
    rows[6]["label"] = missing
    path = write_table(tmp_path / f"train.{ext}", rows)
    message = error_of(tmp_path, train_file=path)
    assert path in message and "row 7" in message and "'label'" in message and "missing" in message


@pytest.mark.parametrize("split", ["validation", "test"])
def test_label_never_seen_in_training(tmp_path, split):
    train = write_table(tmp_path / "train.tsv", [r for r in sample_rows("train", 60) if r["label"] != "weather"])
    other = sample_rows("test", 20)
    row = next(i for i, r in enumerate(other) if r["label"] == "weather") + 1
    other_path = write_table(tmp_path / f"{split}.tsv", other)
    message = error_of(tmp_path, train_file=train, **{f"{split}_file": other_path})
    assert other_path in message and f"row {row}" in message and "'weather'" in message
    assert "never occurs in the training data" in message


def test_test_file_without_labels_is_fine(tmp_path):
    train = write_table(tmp_path / "train.tsv", sample_rows("train", 40))
    test = write_table(tmp_path / "test.tsv", [{"id": r["id"], "text": r["text"]} for r in sample_rows("test", 5)])
    prepared = prepare(tmp_path, train_file=train, test_file=test)
    assert prepared.labels("test", "label") is None and len(prepared.splits["test"]) == 5


def test_cp949_file_is_a_clear_error(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes("id\ttext\tlabel\n1\t오늘 날씨 맑음\tweather\n".encode("cp949"))
    message = error_of(tmp_path, train_file=str(path))
    assert str(path) in message and "not UTF-8" in message


def test_utf8_file_cut_inside_a_character_at_64k_loads(tmp_path):
    """The encoding check reads the first 64 KiB; a Hangul character split by that boundary is not an error."""
    lines = "".join(f"{i:04d}\t가나다라마바사아자차카타파하\ta\n" for i in range(3000))

    def cut_inside(header):  # the first 64 KiB end in the middle of a 3-byte character
        return 0x80 <= (header + lines).encode("utf-8")[1 << 16] < 0xC0

    header = next(h for h in ("id\ttext\tlabel\n", "idx\ttext\tlabel\n", "idxx\ttext\tlabel\n") if cut_inside(h))
    data = (header + lines).encode("utf-8")
    with pytest.raises(UnicodeDecodeError):  # the boundary does fall inside a character
        data[: 1 << 16].decode("utf-8")
    path = tmp_path / "big.tsv"
    path.write_bytes(data)
    assert len(load_file(str(path), cache_dir=str(tmp_path / "c"))) == 3000


def test_parquet_is_not_checked_as_text(tmp_path):
    path = write_table(tmp_path / "train.parquet", sample_rows("train", 30))
    assert load_file(path, cache_dir=str(tmp_path / "c"))["text"] == [r["text"] for r in sample_rows("train", 30)]


@pytest.mark.timeout(60)
def test_hub_dataset_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    message = error_of(tmp_path, dataset_name="klue", dataset_config_name="ynat")
    assert "'klue'" in message and "network" in message and "local files" in message
    with pytest.raises(KorclfError, match="train_file"):
        load_hub("nobody/no-such-dataset", None, cache_dir=str(tmp_path / "c"))


# ----------------------------------------------------------------------------------- validation split


def test_stratified_validation_split(tmp_path):
    rows = sample_rows("train", 203)
    path = write_table(tmp_path / "train.tsv", rows)
    ratio = 0.2
    first = prepare(tmp_path, seed=13, train_file=path, validation_split_ratio=ratio)
    train_ids, val_ids = first.splits["train"]["id"], first.splits["validation"]["id"]
    # disjoint and covering
    assert not set(train_ids) & set(val_ids)
    assert sorted(list(train_ids) + list(val_ids)) == sorted(row["id"] for row in rows)
    # class proportions kept within one row per class
    total = Counter(row["label"] for row in rows)
    held = Counter(first.splits["validation"]["label"])
    for label, count in total.items():
        assert abs(held[label] - count * ratio) <= 1, (label, held[label], count)
    assert first.report["validation_split"]["validation_rows"] == len(val_ids)
    # reproducible with the seed, different with another
    again = prepare(tmp_path, seed=13, train_file=path, validation_split_ratio=ratio)
    assert again.splits["validation"]["id"] == val_ids
    other = prepare(tmp_path, seed=14, train_file=path, validation_split_ratio=ratio)
    assert other.splits["validation"]["id"] != val_ids


def test_stratified_split_function_with_uneven_classes():
    labels = [0] * 50 + [1] * 30 + [2] * 9 + [3] * 11
    train_idx, val_idx = stratified_split(labels, 0.25, seed=3)
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(100))
    held = Counter(np.asarray(labels)[val_idx].tolist())
    for label, count in Counter(labels).items():
        assert abs(held[label] - 0.25 * count) <= 1
    again = stratified_split(labels, 0.25, seed=3)
    assert np.array_equal(again[1], val_idx)


# ---------------------------------------------------------------------------------------- max length


def test_auto_max_length_is_the_higher_percentile_of_token_lengths():
    tokenizer = tiny_tokenizer()
    texts = [row["text"] for row in sample_rows("train", 150)]
    lengths = np.array([len(tokenizer(text)["input_ids"]) for text in texts])  # one at a time, with [CLS]/[SEP]
    config = BertConfig(max_position_embeddings=512)
    discriminating = False
    for percentile in (0.5, 0.9, 0.96, 0.97, 0.98):
        expected = int(np.percentile(lengths, percentile * 100, method="higher"))
        chosen, stats = resolve_max_length("auto", tokenizer, config, texts, None, percentile, seed=0)
        assert chosen == expected == stats["max_length"]
        assert stats["share_truncated"] == pytest.approx(float((lengths > expected).mean()))
        discriminating |= np.percentile(lengths, percentile * 100) != expected
    assert discriminating  # "higher" differs from linear interpolation for at least one percentile
    assert stats["max"] == lengths.max() and stats["mean"] == pytest.approx(lengths.mean())


def test_auto_max_length_is_capped_by_the_model():
    tokenizer = tiny_tokenizer()
    texts = [row["text"] for row in sample_rows("train", 50)]
    chosen, _ = resolve_max_length("auto", tokenizer, BertConfig(max_position_embeddings=9), texts, None, 1.0, 0)
    assert chosen == 9


def test_explicit_max_length_above_the_model_limit():
    tokenizer = tiny_tokenizer()  # model_max_length 64
    texts = ["짧은 문장"]
    with pytest.raises(KorclfError, match=r"'max_length'.*100.*64"):
        resolve_max_length(100, tokenizer, BertConfig(max_position_embeddings=512), texts, None, 0.96, 0)
    assert resolve_max_length(64, tokenizer, BertConfig(max_position_embeddings=512), texts, None, 0.96, 0)[0] == 64
    # RoBERTa-style models lose two positions to the padding offset
    xlmr = XLMRobertaConfig(max_position_embeddings=34)
    assert resolve_max_length(32, tokenizer, xlmr, texts, None, 0.96, 0)[0] == 32
    with pytest.raises(KorclfError, match="max_length"):
        resolve_max_length(33, tokenizer, xlmr, texts, None, 0.96, 0)


# ------------------------------------------------------------------------------------ tokenise cache


def test_tokenization_is_cached_and_max_length_invalidates(tmp_path, monkeypatch, caplog):
    train = write_table(tmp_path / "train.tsv", sample_rows("train", 60))
    test = write_table(tmp_path / "test.tsv", sample_rows("test", 12))
    tokenizer = tiny_tokenizer()
    calls = []
    original = TextEncoder.__call__

    def counting(self, batch, indices):
        calls.append(len(indices))
        return original(self, batch, indices)

    monkeypatch.setattr(TextEncoder, "__call__", counting)
    caplog.set_level(logging.INFO, logger="korclf")

    def tokenize(max_length):
        model_args, data_args, training_args = configure(tmp_path, train_file=train, test_file=test, normalize=True)
        prepared = prepare_splits(model_args, data_args, 0)
        settings = dict(korclf_settings(model_args, data_args, None), max_length=max_length)
        return encode_splits(input_builder(settings, tokenizer, prepared.label2id), prepared, data_args, training_args)

    first = tokenize(16)
    assert sum(calls) == 60 + 12  # train (54) + validation (6) + test
    assert not any("loaded from the datasets cache" in r.getMessage() and "Tokenizing" in r.getMessage()
                   for r in caplog.records)
    calls.clear()
    caplog.clear()
    second = tokenize(16)
    assert calls == []
    cached = [r.getMessage() for r in caplog.records if "loaded from the datasets cache" in r.getMessage()]
    assert {m.split(":")[0] for m in cached} >= {"Tokenizing train", "Tokenizing validation", "Tokenizing test"}
    for name in ("train", "validation", "test"):
        assert second[name]["input_ids"] == first[name]["input_ids"]
    calls.clear()
    caplog.clear()
    third = tokenize(8)
    assert sum(calls) == 72
    assert max(third["train"]["length"]) == 8 and max(first["train"]["length"]) > 8
    assert not any("Tokenizing" in r.getMessage() and "loaded from the datasets cache" in r.getMessage()
                   for r in caplog.records)


def test_text_encoder_output_matches_the_tokenizer():
    tokenizer = tiny_tokenizer()
    encoder = TextEncoder(tokenizer, "text", 10, label_column="label", label2id={"a": 0, "b": 1})
    batch = {"text": ["경기 결과 발표", "오늘은 비가 많이 내리고 바람이 강하게 불겠습니다 " * 3], "label": ["b", "a"]}
    out = encoder(batch, [4, 7])
    expected = tokenizer(batch["text"], truncation=True, max_length=10)["input_ids"]
    assert out["input_ids"] == expected and out["length"] == [len(ids) for ids in expected]
    assert out["length"][1] == 10 and out["row_idx"] == [4, 7] and out["labels"] == [1, 0]
    assert "token_type_ids" not in out


# --------------------------------------------------------------------------------------------- padding


def test_padding_collator_pads_to_batch_max():
    features = [
        {"input_ids": [2, 5, 6, 3], "token_type_ids": [0, 0, 0, 0], "labels": 1, "length": 4, "row_idx": 0},
        {"input_ids": [2, 7, 3], "token_type_ids": [0, 0, 0], "labels": 0, "length": 3, "row_idx": 1},
        {"input_ids": [2, 8, 9, 10, 11, 3], "token_type_ids": [0, 0, 0, 1, 1, 1], "labels": 2, "length": 6,
         "row_idx": 2},
    ]
    batch = PaddingCollator(pad_token_id=99)(features)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["input_ids"].shape == (3, 6) and batch["input_ids"].dtype == torch.long
    for i, feature in enumerate(features):
        n = len(feature["input_ids"])
        assert batch["input_ids"][i, :n].tolist() == feature["input_ids"]
        assert (batch["input_ids"][i, n:] == 99).all()
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (6 - n)
        assert batch["token_type_ids"][i].tolist() == feature["token_type_ids"] + [0] * (6 - n)
    assert batch["attention_mask"].sum(1).tolist() == [4, 3, 6]
    assert batch["labels"].tolist() == [1, 0, 2]


@pytest.mark.parametrize("multiple,width", [(4, 8), (8, 8), (3, 6), (None, 6)])
def test_padding_collator_pad_to_multiple_of(multiple, width):
    features = [{"input_ids": list(range(1, 7))}, {"input_ids": [1, 2]}]
    batch = PaddingCollator(pad_token_id=0, pad_to_multiple_of=multiple)(features)
    assert batch["input_ids"].shape == (2, width)
    assert batch["attention_mask"].sum(1).tolist() == [6, 2]
    assert batch["attention_mask"].shape == (2, width)


def test_sample_data_has_all_labels():
    assert {row["label"] for row in sample_rows("train")} == set(LABELS)
    assert SAMPLE_TRAIN.endswith("train.tsv")


def test_hub_class_labels_become_names(tmp_path, monkeypatch):
    """A hub data set's ClassLabel ids are read as their names (KLUE-RE stores 30 relation ids)."""
    import datasets

    from korclf.data import loading

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["no_relation", "org:founded"])})
    hub = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [1, 0, 1]}, features=features),
        "validation": datasets.Dataset.from_dict({"text": ["d"], "label": [0]}, features=features),
    })
    monkeypatch.setattr(loading, "load_hub", lambda name, config, cache_dir: hub)
    model_args, data_args, _ = configure(tmp_path, dataset_name="klue", dataset_config_name="re")
    raw = loading.load_splits(data_args)
    assert raw["train"]["label"] == ["org:founded", "no_relation", "org:founded"]
    assert raw["validation"]["label"] == ["no_relation"]
    assert raw.sources["validation"] == "klue[validation]"
