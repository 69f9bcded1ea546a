"""Bad input through the real CLI: ``korclf.run.main`` returns 2 and prints one ``korclf: error:`` line
that names the file, row, column or key, without a traceback and before anything is trained.

These cover the cases of docs/errors.md whose other tests call a library function directly (or
none); docs/errors.md lists every case with its message and tests.
"""

import json
from pathlib import Path

import pytest
from helpers import run_config, sample_rows, write_table

from korclf.run import main


def cli_error(tmp_path: Path, capsys, **overrides) -> str:
    """Run the tiny base config with ``overrides``; return the error text after ``korclf: error:``."""
    result = run_config(tmp_path, **overrides)
    captured = capsys.readouterr()
    assert result.rc == 2, captured.err[-2000:]
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    errors = [line for line in captured.err.splitlines() if line.startswith("korclf: error: ")]
    assert len(errors) == 1, captured.err[-2000:]
    assert not (Path(result.output_dir) / "model.safetensors").exists()
    return errors[0][len("korclf: error: "):]


def data_file(tmp_path: Path, name: str, rows, **kwargs) -> str:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    return write_table(folder / name, rows, **kwargs)


# ------------------------------------------------------------------------------------------- files


def test_missing_file(tmp_path, capsys):
    path = str(tmp_path / "data" / "train.tsv")
    message = cli_error(tmp_path, capsys, train_file=path)
    assert message == f"file '{path}' does not exist"


def test_unsupported_extension(tmp_path, capsys):
    path = tmp_path / "train.xlsx"
    path.write_bytes(b"PK\x03\x04")
    message = cli_error(tmp_path, capsys, train_file=str(path))
    assert f"file '{path}'" in message and "unsupported extension '.xlsx'" in message and ".parquet" in message


def test_file_not_utf8(tmp_path, capsys):
    path = tmp_path / "train.csv"
    path.write_bytes("id,text,label\n1,오늘 날씨 맑음,weather\n".encode("cp949"))
    message = cli_error(tmp_path, capsys, train_file=str(path))
    assert f"file '{path}'" in message and "not UTF-8" in message and "(byte 16)" in message


def test_duplicate_header(tmp_path, capsys):
    path = tmp_path / "train.tsv"
    path.write_text("id\ttext\ttext\tlabel\n1\t가\t나\tfood\n", encoding="utf-8")
    message = cli_error(tmp_path, capsys, train_file=str(path))
    assert f"file '{path}'" in message and "duplicate column names" in message


def test_file_with_a_header_and_no_rows(tmp_path, capsys):
    path = tmp_path / "train.csv"
    path.write_text("id,text,label\n", encoding="utf-8")
    message = cli_error(tmp_path, capsys, train_file=str(path))
    assert message.startswith(f"file '{path}' ")


def test_missing_column(tmp_path, capsys):
    path = data_file(tmp_path, "train.csv", [{"id": "1", "sentence": "비 온다", "label": "weather"}])
    message = cli_error(tmp_path, capsys, train_file=path)
    assert f"file '{path}'" in message and "missing column(s) ['text']" in message
    assert "['id', 'sentence', 'label']" in message and "text_column" in message


def test_missing_column_in_test_file(tmp_path, capsys):
    test = data_file(tmp_path, "test.tsv", [{"id": r["id"], "body": r["text"]} for r in sample_rows("test", 5)])
    message = cli_error(tmp_path, capsys, test_file=test, do_predict=True)
    assert f"file '{test}'" in message and "['text']" in message


# ---------------------------------------------------------------------------------------- rows


@pytest.mark.parametrize("split", ["train", "test"])
def test_whitespace_only_text(tmp_path, capsys, split):
    rows = sample_rows(split, 20)
    rows[4]["text"] = " \u3000 "
    path = data_file(tmp_path, f"{split}.jsonl", rows)
    options = {"train_file": path} if split == "train" else {"test_file": path, "do_predict": True}
    message = cli_error(tmp_path, capsys, **options)
    assert message.startswith(f"file '{path}', row 5, column 'text': the text is empty or whitespace-only")
    assert "empty_text: drop" in message


def test_text_empty_after_normalisation(tmp_path, capsys):
    rows = sample_rows("train", 20)
    rows[6]["text"] = "!!! ???"
    path = data_file(tmp_path, "train.tsv", rows)
    message = cli_error(tmp_path, capsys, train_file=path, normalize=True, normalize_keep_chars="hangul")
    assert f"file '{path}', row 7, column 'text'" in message and "after normalisation" in message


def test_no_rows_left_after_dropping_empty_texts(tmp_path, capsys):
    rows = [dict(row, text=" ") for row in sample_rows("train", 6)]
    path = data_file(tmp_path, "train.tsv", rows)
    message = cli_error(tmp_path, capsys, train_file=path, empty_text="drop")
    assert message == f"file '{path}': no rows left after dropping empty texts"


@pytest.mark.parametrize("ext,missing", [("jsonl", float("nan")), ("csv", "")])
def test_missing_label(tmp_path, capsys, ext, missing):
    rows = sample_rows("train", 30)
    rows[11]["label"] = missing
    path = data_file(tmp_path, f"train.{ext}", rows)
    message = cli_error(tmp_path, capsys, train_file=path)
    assert message == f"file '{path}', row 12, column 'label': the label is missing (empty or NaN)"


@pytest.mark.parametrize("split", ["validation", "test"])
def test_label_unseen_in_training(tmp_path, capsys, split):
    train = data_file(tmp_path, "train.tsv", [r for r in sample_rows("train", 80) if r["label"] != "sports"])
    other = sample_rows("test", 30)
    row = next(i for i, r in enumerate(other) if r["label"] == "sports") + 1
    path = data_file(tmp_path, f"{split}.tsv", other)
    message = cli_error(tmp_path, capsys, train_file=train, do_predict=split == "test", **{f"{split}_file": path})
    assert message.startswith(f"file '{path}', row {row}, column 'label': label 'sports' never occurs in the "
                              "training data")


def test_training_label_missing_from_label_list(tmp_path, capsys):
    rows = sample_rows("train", 40)
    path = data_file(tmp_path, "train.tsv", rows)
    row = next(i for i, r in enumerate(rows) if r["label"] == "weather") + 1
    message = cli_error(tmp_path, capsys, train_file=path, label_list=["economy", "food", "sports"])
    assert message == (f"file '{path}', row {row}, column 'label': label 'weather' is not in label_list "
                       "['economy', 'food', 'sports']")


# ----------------------------------------------------------------------------- relation entities

SENTENCE = "민수는 서울에 산다."


def klue_rows(n: int = 12) -> list[dict]:
    """KLUE-RE rows (inclusive end_idx): subject 민수 [0, 1], object 서울 [4, 5]."""
    subject = {"word": "민수", "start_idx": 0, "end_idx": 1, "type": "PER"}
    obj = {"word": "서울", "start_idx": 4, "end_idx": 5, "type": "LOC"}
    return [{"id": f"re-{i}", "sentence": SENTENCE, "subject_entity": json.dumps(subject, ensure_ascii=False),
             "object_entity": json.dumps(obj, ensure_ascii=False),
             "label": "per:place_of_residence" if i % 2 else "no_relation"} for i in range(n)]


RBERT = dict(model_kind="rbert", entity_format="klue", text_column="sentence", max_train_samples=None,
             scratch_vocab_size=120)

# The train split's entities are first parsed to train the scratch tokenizer and to choose max_length,
# validation and test rows when they are encoded: either way the message names the file.
SPLITS = ["train", "validation"]


def relation_error(tmp_path, capsys, split: str, good: list[dict], bad: list[dict], ext: str = "tsv",
                   **options) -> tuple[str, str]:
    """Rows ``bad`` as the ``split`` file and ``good`` as the other one; return (bad file, message)."""
    good_path, bad_path = data_file(tmp_path, f"good.{ext}", good), data_file(tmp_path, f"{split}.{ext}", bad)
    files = dict(train_file=bad_path, validation_file=good_path) if split == "train" else dict(
        train_file=good_path, validation_file=bad_path)
    return bad_path, cli_error(tmp_path, capsys, **files, **dict(RBERT, **options))


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("entity,problem", [
    ({"word": "서울", "start_idx": 30, "end_idx": 31, "type": "LOC"},
     "the span start_idx=30, end_idx=31 (inclusive) of '서울' lies outside the sentence of 11 characters."),
    ({"word": "서울", "start_idx": 4, "end_idx": 6, "type": "LOC"},
     "sentence[4:7] is '서울에' but the entity word is '서울' (end_idx is inclusive in KLUE-RE)."),
], ids=["outside", "mismatch"])
def test_klue_entity_span(tmp_path, capsys, entity, problem, split):
    rows = klue_rows()
    bad = rows[:7] + [dict(rows[7], object_entity=json.dumps(entity, ensure_ascii=False))] + rows[8:]
    path, message = relation_error(tmp_path, capsys, split, rows, bad)
    assert message == f"file '{path}', row re-7, column 'object_entity': {problem}"


@pytest.mark.parametrize("split", SPLITS)
def test_klue_entity_missing_from_a_row(tmp_path, capsys, split):
    rows = klue_rows()
    bad = rows[:3] + [dict(rows[3], subject_entity=None)] + rows[4:]  # an empty cell
    path, message = relation_error(tmp_path, capsys, split, rows, bad, ext="jsonl")
    assert message == f"file '{path}', row re-3, column 'subject_entity': the field is missing or empty."


@pytest.mark.parametrize("split", SPLITS)
def test_semeval_tags_missing_from_a_row(tmp_path, capsys, split):
    rows = [{"id": f"s{i}", "sentence": f"the <e1>car</e1> {i} has an <e2>engine</e2>",
             "label": "Part-Whole(e2,e1)" if i % 2 else "Other"} for i in range(12)]
    bad = rows[:5] + [dict(rows[5], sentence="the <e1>car</e1> has an engine")] + rows[6:]
    path, message = relation_error(tmp_path, capsys, split, rows, bad, entity_format="semeval", entity_marker="punct")
    assert message == (f"file '{path}', row s5, column 'sentence': missing <e2>, </e2> in "
                       "'the <e1>car</e1> has an engine'; both <e1>...</e1> and <e2>...</e2> are needed.")


def test_no_rows_left_after_entity_aware_truncation(tmp_path, capsys):
    rows = [{"id": f"s{i}", "sentence": "<e1> car </e1> " + "wheel " * 40 + "in the <e2> city </e2>",
             "label": "Other" if i % 2 else "Part-Whole(e2,e1)"} for i in range(12)]
    path = data_file(tmp_path, "train.tsv", rows)
    message = cli_error(tmp_path, capsys, train_file=path, max_length=24, entity_overflow="skip",
                        **dict(RBERT, entity_format="semeval", entity_marker="punct"))
    assert message == ("split 'train': no rows left after entity-aware truncation (every row's entities are "
                       "further apart than max_length 24 allows); raise max_length")


# ------------------------------------------------------------------------------------ config, model


def test_config_file_missing(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"korclf: error: config file '{path}' does not exist\n"


def test_model_folder_missing(tmp_path, capsys):
    folder = str(tmp_path / "models" / "klue-bert")
    message = cli_error(tmp_path, capsys, model_name_or_path=folder)
    assert message == f"config key 'model_name_or_path': folder '{folder}' does not exist"


@pytest.mark.parametrize("key", ["encoder_dropout", "classifier_dropout"])
def test_dropout_outside_zero_to_one(tmp_path, capsys, key):
    assert cli_error(tmp_path, capsys, **{key: 1.5}) == f"{key} must be in [0, 1), got 1.5"
