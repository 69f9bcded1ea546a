"""Korean text normalisation, and its settings travelling with the saved model."""

import json
import unicodedata
from pathlib import Path

import pytest
from helpers import read_json, run_config, sample_rows

from korclf.errors import KorclfError
from korclf.text.normalize import TextNormalizer


def test_nfc_composes_decomposed_jamo():
    composed = "한국어 문장 정규화"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed and len(decomposed) > len(composed)  # conjoining jamo
    assert TextNormalizer()([decomposed]) == [composed]
    assert TextNormalizer(nfc=False, max_repeat=None)([decomposed]) == [decomposed]


def test_whitespace_collapse_and_strip():
    text = "  오늘은\t\t날씨가 \n\n 좋다 \u3000 "
    assert TextNormalizer()([text]) == ["오늘은 날씨가 좋다"]
    assert TextNormalizer(collapse_whitespace=False, max_repeat=None)([text]) == [text]


@pytest.mark.parametrize("max_repeat,expected", [(2, "웃겨 ㅋㅋ 진짜!! ㅠㅠ"), (3, "웃겨 ㅋㅋㅋ 진짜!!! ㅠㅠ"),
                                                 (None, "웃겨 ㅋㅋㅋㅋㅋ 진짜!!!! ㅠㅠ")])
def test_repeated_characters_are_squeezed(max_repeat, expected):
    assert TextNormalizer(max_repeat=max_repeat)(["웃겨 ㅋㅋㅋㅋㅋ 진짜!!!! ㅠㅠ"]) == [expected]


@pytest.mark.parametrize("max_repeat", [1, 2, 3])
def test_digits_are_never_squeezed(max_repeat):
    """Runs of digits are amounts, years and phone numbers: squeezing them loses data (10000원 → 100원)."""
    texts = ["10000원", "2000년 1111번 버스", "010-2222-3333", "１０００００원", "평점 10점 만점에 0000점"]
    assert TextNormalizer(max_repeat=max_repeat)(texts) == texts
    # elongations next to the amount are still squeezed
    squeezed = {1: "10000원 ㅋ ! .", 2: "10000원 ㅋㅋ !! ..", 3: "10000원 ㅋㅋㅋ !!! ..."}[max_repeat]
    assert TextNormalizer(max_repeat=max_repeat)(["10000원 ㅋㅋㅋㅋ !!!!! ......"]) == [squeezed]


def test_max_repeat_keeps_short_runs_and_rejects_zero():
    assert TextNormalizer(max_repeat=2)(["ㅋㅋ 좋아요 100"]) == ["ㅋㅋ 좋아요 100"]
    with pytest.raises(KorclfError, match="max_repeat"):
        TextNormalizer(max_repeat=0)


def test_keep_chars_removes_other_classes():
    text = "삼성전자 Q3 실적 😀 發表 10% 상승!"
    normalizer = TextNormalizer(keep_chars="hangul,latin,digits")
    assert normalizer([text]) == ["삼성전자 Q3 실적 10 상승"]
    assert TextNormalizer(keep_chars="hangul,punct")([text]) == ["삼성전자 실적 % 상승!"]
    assert TextNormalizer(keep_chars="hangul, hanja")([text]) == ["삼성전자 실적 發表 상승"]
    # jamo (ㅋ) are Hangul too
    assert TextNormalizer(keep_chars="hangul")(["ㅋㅋㅋ ok"]) == ["ㅋㅋ"]


def test_keep_chars_unknown_class_is_named():
    with pytest.raises(KorclfError) as info:
        TextNormalizer(keep_chars="hangul,emoji,latin")
    assert "'emoji'" in str(info.value) and "hangul" in str(info.value)


def test_to_dict_from_dict_round_trip():
    normalizer = TextNormalizer(nfc=True, collapse_whitespace=False, max_repeat=3, keep_chars="hangul,digits")
    settings = normalizer.to_dict()
    assert settings == {"nfc": True, "collapse_whitespace": False, "max_repeat": 3, "keep_chars": "hangul,digits",
                        "morphemes": None}
    rebuilt = TextNormalizer.from_dict(json.loads(json.dumps(settings)))
    assert rebuilt.to_dict() == settings
    texts = ["ㅋㅋㅋㅋ  Hello 2024년!!", unicodedata.normalize("NFD", "날씨 맑음")]
    assert rebuilt(texts) == normalizer(texts)
    assert TextNormalizer.from_dict(None) is None and TextNormalizer.from_dict({}) is None


def test_normalisation_is_applied_and_saved_with_the_model(tmp_path):
    """A run normalises before training its tokenizer, and the saved config says how."""
    rows = sample_rows("train", 80)
    assert any(any(c.isascii() and c.isalnum() for c in row["text"]) for row in rows)
    result = run_config(tmp_path, normalize=True, normalize_keep_chars="hangul", normalize_max_repeat=1,
                        max_train_samples=80, max_steps=1, do_eval=False)
    assert result.rc == 0
    out = Path(result.output_dir)
    config = read_json(out / "config.json")
    expected = {"nfc": True, "collapse_whitespace": True, "max_repeat": 1, "keep_chars": "hangul", "morphemes": None}
    assert config["korclf"]["normalization"] == expected
    assert read_json(out / "data_report.json")["normalization"] == expected
    # the reloaded settings build the same normaliser
    assert TextNormalizer.from_dict(config["korclf"]["normalization"]).to_dict() == expected
    # the scratch tokenizer was trained on normalised text: no Latin letters or digits in its vocabulary
    vocab = read_json(out / "tokenizer.json")["model"]["vocab"]
    words = [token.removeprefix("##") for token in vocab if not token.startswith("[")]
    assert words and not [w for w in words if any(c.isascii() and c.isalnum() for c in w)]


def test_normalisation_off_is_recorded_as_none(tmp_path):
    result = run_config(tmp_path, max_train_samples=40, max_steps=1, do_eval=False)
    assert result.rc == 0
    assert read_json(Path(result.output_dir) / "config.json")["korclf"]["normalization"] is None
