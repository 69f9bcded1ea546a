"""Data profile numbers checked by hand on tiny splits."""

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from korclf.errors import KorclfError
from korclf.profile import format_profile, length_stats, profile_files, profile_splits, token_lengths

# Characters per row: 3, 3, 6, 0, 3, 8, 6 (29 in all).
# hangul 3+3+2+3+3 = 14, latin 3 (ABC), hanja 2 (漢字), digits 2 (10), whitespace 1+3+1+1 = 6, other 2 (!!).
TRAIN = (["좋아요", "좋아요", "별로 ABC", "", "   ", "최고!! 10점", "漢字 좋아요"], [1, 1, 0, 0, 1, 1, 1])
TEST = (["좋아요", "별로 ABC", "새 리뷰", "새 리뷰", ""], [0, 0, 0, 0, 0])
UNLABELED = (["좋아요", "좋아요"], None)


def word_tokenizer():
    """A real fast tokenizer: words and punctuation runs are tokens, [CLS] x [SEP] adds 2."""
    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    backend.enable_truncation(max_length=2)  # as a saved tokenizer.json may: the profile must ignore it
    return PreTrainedTokenizerFast(tokenizer_object=backend)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile")
    splits = {"train": TRAIN, "test": TEST, "unlabeled": UNLABELED}
    return profile_splits(splits, word_tokenizer(), output_dir=str(out)), out


def test_covering_percentiles():
    assert length_stats(range(1, 101)) == {"mean": 50.5, "min": 1, "max": 100, "p50": 50, "p90": 90, "p96": 96, "p99": 99}
    # 9 of 10 rows are <= 9, so 9 covers 90 %; 96 % needs the 10th.
    assert length_stats(range(1, 11))["p90"] == 9
    assert length_stats(range(1, 11))["p96"] == 10


def test_rows_empties_duplicates_labels(profiled):
    train, test, unlabeled = (profiled[0]["splits"][name] for name in ("train", "test", "unlabeled"))
    assert [train["rows"], test["rows"], unlabeled["rows"]] == [7, 5, 2]
    assert train["empty_rows"] == {"count": 2, "first_rows": [4, 5]}
    assert test["empty_rows"] == {"count": 1, "first_rows": [5]}
    assert [train["duplicates"], test["duplicates"], unlabeled["duplicates"]] == [1, 1, 1]
    assert train["labels"] == {"counts": {"0": 2, "1": 5}, "imbalance_ratio": 2.5, "missing_labels": []}
    assert test["labels"] == {"counts": {"0": 5}, "imbalance_ratio": 1.0, "missing_labels": ["1"]}
    assert "labels" not in unlabeled


def test_leakage_into_train(profiled):
    splits = profiled[0]["splits"]
    assert "in_train" not in splits["train"]
    assert splits["test"]["in_train"] == {"count": 2, "share": 0.4}
    assert splits["unlabeled"]["in_train"] == {"count": 2, "share": 1.0}


def test_lengths_and_max_length(profiled):
    train = profiled[0]["splits"]["train"]
    # Sorted characters 0 3 3 3 6 6 8: p50 is the 4th value, p90 (6.3 rows) the 7th.
    assert train["char_length"] == {"mean": 4.14, "min": 0, "max": 8, "p50": 3, "p90": 8, "p96": 8, "p99": 8}
    # Tokens 1 1 2 0 0 3 2 (최고 / !! / 10점) -> sorted 0 0 1 1 2 2 3.
    assert train["token_length"] == {"mean": 1.29, "min": 0, "max": 3, "p50": 1, "p90": 3, "p96": 3, "p99": 3}
    assert train["max_length"] == {"p90": 5, "p96": 5, "p99": 5}


def test_token_lengths_leave_the_tokenizer_untouched():
    tokenizer = word_tokenizer()
    assert token_lengths(["최고!! 10점 좋아요"], tokenizer).tolist() == [4]
    assert tokenizer.backend_tokenizer.truncation["max_length"] == 2


def test_character_classes(profiled):
    train = profiled[0]["splits"]["train"]
    expected = {"hangul": 14, "latin": 3, "hanja": 2, "digits": 2, "whitespace": 6, "other": 2}
    assert train["char_shares"] == pytest.approx({k: v / 29 for k, v in expected.items()}, abs=1e-4)
    assert train["top_other_chars"] == [("!", 2), ("漢", 1), ("字", 1)]


def test_files_written(profiled):
    profile, out = profiled
    assert json.loads((out / "profile.json").read_text(encoding="utf-8")) == json.loads(json.dumps(profile))
    assert profile["plots"] == ["labels.png", "lengths_characters.png", "lengths_tokens.png"]
    for name in profile["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_format_profile(profiled):
    text = format_profile(profiled[0])
    assert "train: 7 rows, 2 empty (rows 4, 5), 1 duplicate rows" in text
    assert "also in train: 2 rows (40.0%)" in text
    assert "max_length covering 90%: 5, 96%: 5, 99%: 5" in text
    assert "missing labels: 1" in text


def test_profile_files_reads_tsv_verbatim(tmp_path):
    # QUOTE_NONE: a leading quote is text; keep_default_na: an empty cell and "NA" stay strings.
    (tmp_path / "train.tsv").write_text('id\tdocument\tlabel\n1\t"최고\t1\n2\t\t0\n3\tNA\t0\n', encoding="utf-8")
    (tmp_path / "test.jsonl").write_text('{"document": "\\"최고", "label": 1}\n', encoding="utf-8")
    profile = profile_files(
        {"train": str(tmp_path / "train.tsv"), "test": str(tmp_path / "test.jsonl")},
        "document", "label", output_dir=str(tmp_path / "out"),
    )
    train = profile["splits"]["train"]
    assert train["char_length"]["max"] == 3 and train["empty_rows"] == {"count": 1, "first_rows": [2]}
    assert profile["splits"]["test"]["in_train"]["count"] == 1
    assert "token_length" not in train and profile["label_name"] == "label"


def test_profile_files_errors_name_file_and_column(tmp_path):
    with pytest.raises(KorclfError, match=r"missing\.tsv"):
        profile_files({"train": str(tmp_path / "missing.tsv")}, "document", output_dir=str(tmp_path))
    (tmp_path / "train.csv").write_text("text,label\n좋아요,1\n", encoding="utf-8")
    with pytest.raises(KorclfError, match=r"train\.csv.*'document'"):
        profile_files({"train": str(tmp_path / "train.csv")}, "document", output_dir=str(tmp_path))
    with pytest.raises(KorclfError, match=r"train\.csv.*'rating'"):
        profile_files({"train": str(tmp_path / "train.csv")}, "text", "rating", output_dir=str(tmp_path))
