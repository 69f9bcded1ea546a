"""Entity parsing, marker insertion and entity-aware tokenization for relation classification."""

import json
import types

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from korclf.data.entities import (
    Entity,
    RelationCollator,
    encode_relation_batch,
    encode_relation_examples,
    mark_entities,
    parse_klue_entity,
    parse_klue_row,
    parse_tagged_sentence,
    special_marker_tokens,
)
from korclf.errors import KorclfError

# KLUE-RE train row (end_idx inclusive); the object comes before the subject in the sentence.
KLUE_SENTENCE = "〈Something〉는 조지 해리슨이 쓰고 비틀즈가 1969년 앨범 《Abbey Road》에 담은 노래다."
SUBJECT = {"word": "비틀즈", "start_idx": 24, "end_idx": 26, "type": "ORG"}
OBJECT = {"word": "조지 해리슨", "start_idx": 13, "end_idx": 18, "type": "PER"}
FILLER = "그 뒤로 여러 해 동안 많은 사람이 이 노래를 불렀다 ."


@pytest.fixture(scope="module")
def tokenizer():
    """A WordPiece tokenizer trained here on the test sentences, with the plain markers added."""
    corpus = [KLUE_SENTENCE, FILLER, "빌은 서울 출신이다 .", "Bill was born in Seattle .", "@ * # ^ person city ORG PER"] * 3
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    backend.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", backend.token_to_id("[SEP]"))],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    tok.add_tokens(special_marker_tokens("plain"), special_tokens=True)
    return tok


def klue_row(**overrides):
    row = {"id": "klue-re-1", "sentence": KLUE_SENTENCE, "subject_entity": SUBJECT, "object_entity": OBJECT}
    return {**row, **overrides}


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "encode",
    [lambda d: d, json.dumps, lambda d: json.dumps(d, ensure_ascii=False), str],  # str() gives KLUE's csv literals
    ids=["dict", "json", "json-utf8", "python-literal"],
)
def test_klue_entities_parse_from_every_form(encode):
    example = parse_klue_row(klue_row(subject_entity=encode(SUBJECT), object_entity=encode(OBJECT)))
    assert example.id == "klue-re-1"
    assert example.e1 == Entity("비틀즈", 24, 27, "ORG")
    assert example.e2 == Entity("조지 해리슨", 13, 19, "PER")
    assert KLUE_SENTENCE[example.e1.start : example.e1.end] == "비틀즈"


def test_klue_span_mismatch_names_row_field_and_text():
    wrong = dict(SUBJECT, end_idx=25)
    with pytest.raises(KorclfError) as err:
        parse_klue_row(klue_row(subject_entity=str(wrong)))
    message = str(err.value)
    assert "klue-re-1" in message and "subject_entity" in message and "'비틀'" in message and "'비틀즈'" in message


@pytest.mark.parametrize(
    "entity", [dict(OBJECT, start_idx=70, end_idx=75), dict(OBJECT, start_idx=-1), dict(OBJECT, start_idx=19)]
)
def test_klue_span_out_of_range_is_an_error(entity):
    with pytest.raises(KorclfError, match=r"row klue-re-1, column 'object_entity'.*outside"):
        parse_klue_row(klue_row(object_entity=entity))


def test_klue_missing_or_broken_entity_fields():
    with pytest.raises(KorclfError, match=r"row 7, column 'object_entity'"):
        parse_klue_row({"sentence": KLUE_SENTENCE, "subject_entity": SUBJECT}, row_id=7)
    with pytest.raises(KorclfError, match="lacks start_idx"):
        parse_klue_entity({"word": "비틀즈", "end_idx": 26}, KLUE_SENTENCE, row_id=3)
    with pytest.raises(KorclfError, match="cannot parse"):
        parse_klue_entity("{'word': '비틀즈', ", KLUE_SENTENCE, row_id=3)


def test_semeval_tags_become_spans():
    example = parse_tagged_sentence("The <e2>company</e2> fabricates plastic <e1>chairs</e1>.", row_id=5)
    assert example.sentence == "The company fabricates plastic chairs."
    assert (example.e1.word, example.e1.start, example.e1.end, example.e1.type) == ("chairs", 31, 37, None)
    assert (example.e2.word, example.e2.start, example.e2.end) == ("company", 4, 11)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("The <e1>company</e1> fabricates chairs.", "missing <e2>, </e2>"),
        ("The <e1>company</e1> makes <e2>chairs</e2> and <e2>desks</e2>.", "occurs more than once"),
        ("The <e1>big <e2>company</e2></e1> makes chairs.", "nest or cross"),
        ("The <e1>big <e2>company</e1> makes</e2> chairs.", "nest or cross"),
        ("The </e1>company<e1> makes <e2>chairs</e2>.", "comes before"),
    ],
)
def test_semeval_tag_errors_name_the_row(text, problem):
    with pytest.raises(KorclfError, match="row 12") as err:
        parse_tagged_sentence(text, row_id=12)
    assert problem in str(err.value)


# --------------------------------------------------------------------------- markers


BILL = parse_tagged_sentence("<e1>Bill</e1> was born in <e2>Seattle</e2>.")
TYPED_BILL = BILL.__class__(BILL.id, BILL.sentence, Entity("Bill", 0, 4, "person"), Entity("Seattle", 17, 24, "city"))


@pytest.mark.parametrize(
    "marker, expected",
    [
        ("plain", "[E1] Bill [/E1] was born in [E2] Seattle [/E2]."),
        ("punct", "@ Bill @ was born in # Seattle #."),
        ("typed_punct", "@ * person * Bill @ was born in # ^ city ^ Seattle #."),
    ],
)
def test_marker_styles(marker, expected):
    text, spans = mark_entities(TYPED_BILL, marker)
    assert text == expected
    assert text[slice(*spans.e1)] == "Bill" and text[slice(*spans.e2)] == "Seattle"
    assert text[slice(*spans.e1_marked)] == expected[: expected.index(" was")]
    assert text[slice(*spans.e2_marked)] == expected[expected.index(" in ") + 4 : -1]


def test_markers_when_the_object_comes_first():
    text, spans = mark_entities(parse_klue_row(klue_row()), "typed_punct")
    assert text == (
        "〈Something〉는 # ^ PER ^ 조지 해리슨 #이 쓰고 @ * ORG * 비틀즈 @가 1969년 앨범 《Abbey Road》에 담은 노래다."
    )
    assert text[slice(*spans.e1)] == "비틀즈" and text[slice(*spans.e2)] == "조지 해리슨"
    assert text[slice(*spans.e1_marked)] == "@ * ORG * 비틀즈 @"


def test_typed_markers_need_types():
    with pytest.raises(KorclfError, match="'plain' or 'punct'"):
        mark_entities(BILL, "typed_punct")
    assert special_marker_tokens("plain") == ["[E1]", "[/E1]", "[E2]", "[/E2]"]
    assert special_marker_tokens("typed_punct") == []


# --------------------------------------------------------------------------- tokenization


def selected(tokenizer, input_ids, mask):
    return tokenizer.decode([i for i, m in zip(input_ids, mask) if m])


@pytest.mark.parametrize("marker", ["plain", "punct", "typed_punct"])
@pytest.mark.parametrize("include_markers", [False, True])
def test_entity_masks_select_the_entity_tokens(tokenizer, marker, include_markers):
    text, spans = mark_entities(parse_klue_row(klue_row()), marker)
    enc = encode_relation_batch(tokenizer, [text], [spans], max_length=128, include_markers=include_markers)
    ids = enc["input_ids"][0]
    assert len(enc["e1_mask"][0]) == len(ids) == len(enc["attention_mask"][0])
    if include_markers:
        expected = {"plain": ("[E1] 비틀즈 [/E1]", "[E2] 조지 해리슨 [/E2]"),
                    "punct": ("@ 비틀즈 @", "# 조지 해리슨 #"),
                    "typed_punct": ("@ * ORG * 비틀즈 @", "# ^ PER ^ 조지 해리슨 #")}[marker]
    else:
        expected = ("비틀즈", "조지 해리슨")
    assert (selected(tokenizer, ids, enc["e1_mask"][0]), selected(tokenizer, ids, enc["e2_mask"][0])) == expected
    assert enc["stats"] == {"windowed": 0, "windowed_ids": [], "skipped_ids": []}


def long_example(row_id, filler_before, filler_between=0, filler_after=0):
    sentence = " ".join([FILLER] * filler_before + ["빌은", " ".join([FILLER] * filler_between), "서울 출신이다 ."]
                        + [FILLER] * filler_after)
    start = sentence.index("빌")
    obj = sentence.index("서울")
    return parse_klue_row({
        "id": row_id, "sentence": sentence,
        "subject_entity": {"word": "빌", "start_idx": start, "end_idx": start, "type": "PER"},
        "object_entity": {"word": "서울", "start_idx": obj, "end_idx": obj + 1, "type": "LOC"},
    })


def test_long_rows_are_windowed_around_both_entities(tokenizer):
    examples = [long_example("short", 0), long_example("long", 6, filler_after=6)]
    enc = encode_relation_examples(tokenizer, examples, "punct", max_length=24, include_markers=False)
    assert enc["stats"] == {"windowed": 1, "windowed_ids": ["long"], "skipped_ids": []}
    assert enc["row_index"] == [0, 1]
    ids, e1, e2 = enc["input_ids"][1], enc["e1_mask"][1], enc["e2_mask"][1]
    assert len(ids) == 24
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert selected(tokenizer, ids, e1) == "빌" and selected(tokenizer, ids, e2) == "서울"
    # Centred: the marked region "@ 빌 @ 은 # 서울 #" gets about as much context on each side.
    text = tokenizer.convert_ids_to_tokens(ids)
    left, right = text.index("@") - 1, len(text) - 2 - (len(text) - 1 - text[::-1].index("#"))
    assert left > 0 and right > 0 and abs(left - right) <= 1
    assert len(enc["input_ids"][0]) < 24  # short rows are not padded or windowed


def test_entities_too_far_apart_error_or_skip(tokenizer):
    examples = [long_example("ok", 0), long_example("far", 0, filler_between=4)]
    with pytest.raises(KorclfError, match=r"row far: .*span \d+ tokens.*entity_overflow: skip"):
        encode_relation_examples(tokenizer, examples, "plain", max_length=24)
    enc = encode_relation_examples(tokenizer, examples, "plain", max_length=24, on_overflow="skip")
    assert enc["stats"]["skipped_ids"] == ["far"]
    assert enc["row_index"] == [0] and len(enc["input_ids"]) == len(enc["e1_mask"]) == 1


def test_slow_tokenizers_are_refused():
    with pytest.raises(KorclfError, match="fast tokenizer"):
        encode_relation_batch(types.SimpleNamespace(is_fast=False), ["a"], [None], max_length=8)


def test_collator_pads_entity_masks(tokenizer):
    examples = [long_example("short", 0), long_example("longer", 1)]
    enc = encode_relation_examples(tokenizer, examples, "plain", max_length=64)
    rows = [{k: enc[k][i] for k in ("input_ids", "attention_mask", "e1_mask", "e2_mask")} | {"label": i}
            for i in range(2)]
    batch = RelationCollator(tokenizer)(rows)
    width = len(enc["input_ids"][1])
    assert batch["input_ids"].shape == batch["e1_mask"].shape == batch["e2_mask"].shape == (2, width)
    assert batch["e1_mask"][0].tolist() == enc["e1_mask"][0] + [0] * (width - len(enc["e1_mask"][0]))
    assert batch["labels"].tolist() == [0, 1]
