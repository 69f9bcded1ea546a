"""Morpheme filtering against Kiwi analyses checked by hand.

나는 밥을 먹었다      = 나/NP 는/JX 밥/NNG 을/JKO 먹/VV 었/EP 다/EF
서울에서 영화를 봤는데 = 서울/NNP 에서/JKB 영화/NNG 를/JKO 보/VV 었/EP 는데/EC
어제 들었던 노래가 추워서 = 어제/MAG 듣/VV-I 었/EP 던/ETM 노래/NNG 가/JKS 춥/VA-I 어서/EC
"""

import sys

import pytest

from korclf.errors import KorclfError
from korclf.text.morphemes import MorphemeFilter
from korclf.text.normalize import TextNormalizer

TEXTS = ["나는 밥을 먹었다", "서울에서 영화를 봤는데", "어제 들었던 노래가 추워서", ""]
CONTENT = ["J*", "E*", "S*"]


def test_drop_particles_endings_symbols():
    assert MorphemeFilter(drop_pos=CONTENT)(TEXTS) == ["나 밥 먹", "서울 영화 보", "어제 듣 노래 춥", ""]


def test_keep_nouns():
    assert MorphemeFilter(keep_pos=["NNG", "NNP"])(TEXTS) == ["밥", "서울 영화", "노래", ""]


def test_no_filter_keeps_every_morpheme():
    assert MorphemeFilter()(TEXTS[:1]) == ["나 는 밥 을 먹 었 다"]


def test_lemma_gives_dictionary_forms_including_irregular_verbs():
    out = MorphemeFilter(drop_pos=CONTENT, lemma=True)(TEXTS)
    assert out == ["나 밥 먹다", "서울 영화 보다", "어제 듣다 노래 춥다", ""]


def test_wildcard_and_irregular_marker_and_join():
    # V* covers VV and VA-I; "VA" alone matches the irregular VA-I as well.
    assert MorphemeFilter(keep_pos=["V*"], join="/")(TEXTS) == ["먹", "보", "듣/춥", ""]
    assert MorphemeFilter(keep_pos=["VA"])(TEXTS) == ["", "", "춥", ""]
    # JK* drops case particles but keeps the auxiliary particle 는/JX.
    assert MorphemeFilter(drop_pos=["JK*", "E*"])(TEXTS[:1]) == ["나 는 밥 먹"]


def test_settings_round_trip():
    settings = {"keep_pos": None, "drop_pos": ["J*"], "lemma": True, "join": "_"}
    assert MorphemeFilter(**settings).to_dict() == settings


def test_invalid_settings_name_the_option():
    with pytest.raises(KorclfError, match="keep_pos or drop_pos"):
        MorphemeFilter(keep_pos=["NNG"], drop_pos=["J*"])
    with pytest.raises(KorclfError, match=r"drop_pos: 'NGG'"):
        MorphemeFilter(drop_pos=["NGG"])
    with pytest.raises(KorclfError, match=r"keep_pos: 'Q\*'"):
        MorphemeFilter(keep_pos=["Q*"])


def test_normalizer_applies_morphemes_after_normalisation():
    normalizer = TextNormalizer(max_repeat=2, morphemes={"drop_pos": ["J*", "E*"]})
    # Repeats are squeezed and spaces collapsed first, then 가/JKS is dropped.
    assert normalizer(["영화가   최고!!!! ㅋㅋㅋㅋㅋ"]) == ["영화 최고 !! ㅋㅋ"]
    assert MorphemeFilter(drop_pos=["J*", "E*"])(["영화가   최고!!!! ㅋㅋㅋㅋㅋ"]) == ["영화 최고 !!!! ㅋㅋㅋㅋㅋ"]


def test_missing_kiwipiepy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)  # makes `import kiwipiepy` fail
    with pytest.raises(KorclfError) as info:
        TextNormalizer(morphemes={"drop_pos": ["J*"]})
    assert str(info.value) == "morpheme preprocessing needs kiwipiepy: pip install 'korclf[korean]'"
