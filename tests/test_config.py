"""Config parsing: YAML / JSON files into the three dataclasses, overrides, and one-line errors."""

import json

import pytest
import yaml

from korclf.arguments import DataArguments, KorclfTrainingArguments, ModelArguments, parse_config
from korclf.errors import KorclfError
from korclf.run import main


def write_yaml(tmp_path, data: dict, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


@pytest.fixture
def minimal(tmp_path) -> dict:
    return {"train_file": str(tmp_path / "train.tsv"), "output_dir": str(tmp_path / "out")}


def parse_error(argv) -> str:
    with pytest.raises(KorclfError) as info:
        parse_config(argv)
    return str(info.value)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_file_parses_into_the_three_dataclasses(tmp_path, minimal, fmt):
    data = {**minimal, "model_name_or_path": "/models/klue-bert", "pooling": "mean", "text_column": "sentence",
            "label_list": ["neg", "pos"], "max_length": 64, "normalize": True, "num_train_epochs": 2,
            "learning_rate": 0.0003, "loss": "focal", "focal_gamma": 1.5, "class_weights": "balanced",
            "do_train": True, "per_device_train_batch_size": 8}
    if fmt == "json":
        path = tmp_path / "config.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        path = str(path)
    else:
        path = write_yaml(tmp_path, data)
    model_args, data_args, training_args = parse_config([path])
    assert isinstance(model_args, ModelArguments)
    assert isinstance(data_args, DataArguments)
    assert isinstance(training_args, KorclfTrainingArguments)
    assert (model_args.model_name_or_path, model_args.pooling) == ("/models/klue-bert", "mean")
    assert (data_args.text_column, data_args.label_list, data_args.max_length) == ("sentence", ["neg", "pos"], 64)
    assert data_args.normalize is True and data_args.train_file == minimal["train_file"]
    assert training_args.num_train_epochs == 2 and training_args.learning_rate == pytest.approx(3e-4)
    assert (training_args.loss, training_args.focal_gamma, training_args.class_weights) == ("focal", 1.5, "balanced")
    assert training_args.per_device_train_batch_size == 8 and training_args.do_train is True
    assert training_args.output_dir == minimal["output_dir"]
    # untouched fields keep their defaults
    assert data_args.label_column == "label" and data_args.validation_split_ratio == 0.1


def test_command_line_overrides_win_over_the_file(tmp_path, minimal):
    path = write_yaml(tmp_path, {**minimal, "learning_rate": 0.1, "num_train_epochs": 3, "loss": "ce",
                                 "max_length": 32})
    _, data_args, training_args = parse_config(
        [path, "--learning_rate", "2e-4", "--num_train_epochs=7", "--loss", "dice", "--max-length", "auto",
         "--do_eval"])
    assert training_args.learning_rate == pytest.approx(2e-4)
    assert training_args.num_train_epochs == 7
    assert training_args.loss == "dice"
    assert data_args.max_length == "auto"
    assert training_args.do_eval is True


def test_overrides_alone_without_a_file(tmp_path):
    _, data_args, training_args = parse_config(["--train_file", str(tmp_path / "t.csv"), "--seed", "7"])
    assert data_args.train_file == str(tmp_path / "t.csv") and training_args.seed == 7


def test_exponent_notation_in_yaml_is_a_float(tmp_path, minimal):
    # PyYAML (YAML 1.1) reads 3e-5 (no dot) as the string '3e-5'
    assert isinstance(yaml.safe_load("x: 3e-5")["x"], str)
    path = tmp_path / "config.yaml"
    path.write_text(f"train_file: {minimal['train_file']}\nlearning_rate: 3e-5\nweight_decay: 1e-2\n",
                    encoding="utf-8")
    _, _, training_args = parse_config([str(path)])
    assert isinstance(training_args.learning_rate, float) and training_args.learning_rate == pytest.approx(3e-5)
    assert isinstance(training_args.weight_decay, float) and training_args.weight_decay == pytest.approx(0.01)


def test_unknown_key_is_named_with_a_suggestion(tmp_path, minimal):
    message = parse_error([write_yaml(tmp_path, {**minimal, "learning_rat": 0.001})])
    assert "'learning_rat'" in message and "did you mean 'learning_rate'" in message


def test_unknown_override_key_is_named(tmp_path, minimal):
    message = parse_error([write_yaml(tmp_path, minimal), "--num_train_epoch", "3"])
    assert "'num_train_epoch'" in message and "the command line" in message
    assert "num_train_epochs" in message


@pytest.mark.parametrize("key,value", [("num_train_epochs", "abc"), ("do_train", 3),
                                       ("per_device_train_batch_size", 2.5),
                                       ("label_list", "pos"), ("normalize", "yes please")])
def test_wrong_type_names_the_key(tmp_path, minimal, key, value):
    message = parse_error([write_yaml(tmp_path, {**minimal, key: value})])
    assert f"'{key}'" in message
    assert repr(value) in message


@pytest.mark.parametrize("key,value", [("loss", "hinge"), ("pooling", "max"), ("empty_text", "skip"),
                                       ("scratch_tokenizer", "bpe")])
def test_bad_choice_names_key_and_choices(tmp_path, minimal, key, value):
    message = parse_error([write_yaml(tmp_path, {**minimal, key: value})])
    assert f"'{key}'" in message and repr(value) in message and "is not one of" in message


def test_bad_transformers_enum_value_is_a_korclf_error(tmp_path, minimal):
    message = parse_error([write_yaml(tmp_path, {**minimal, "eval_strategy": "sometimes"})])
    assert "sometimes" in message


@pytest.mark.parametrize("value,expected", [("huge", "positive integer or 'auto'"), (2, "at least 8")])
def test_bad_max_length(tmp_path, minimal, value, expected):
    message = parse_error([write_yaml(tmp_path, {**minimal, "max_length": value})])
    assert "max_length" in message and expected in message and str(value) in message


def test_missing_and_malformed_config_files(tmp_path):
    assert "does not exist" in parse_error([str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train_file: [unclosed\n", encoding="utf-8")
    assert "not valid YAML" in parse_error([str(bad)])
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    assert "mapping" in parse_error([str(listed)])


def test_no_data_is_an_error(tmp_path):
    assert "no data" in parse_error([write_yaml(tmp_path, {"output_dir": str(tmp_path)})])


@pytest.mark.parametrize("extra,key", [({"learning_rat": 0.1}, "learning_rat"), ({"do_train": 3}, "do_train"),
                                       ({"max_length": "huge"}, "max_length")])
def test_main_prints_one_error_line_and_returns_2(tmp_path, minimal, capsys, extra, key):
    rc = main([write_yaml(tmp_path, {**minimal, **extra})])
    captured = capsys.readouterr()
    assert rc == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("korclf: error: ") and key in lines[0]
    assert "Traceback" not in captured.err and "Traceback" not in captured.out


def test_yaml_no_is_read_as_the_word_for_string_options(tmp_path):
    """`save_strategy: no` (YAML 1.1 reads it as False) means the strategy "no", in files and on the command line."""
    path = tmp_path / "c.yaml"
    path.write_text(f"train_file: x.tsv\noutput_dir: {tmp_path / 'o'}\nsave_strategy: no\n", encoding="utf-8")
    _, _, training = parse_config([str(path), "--eval_strategy", "no"])
    assert training.save_strategy == "no" and training.eval_strategy == "no"


def test_readme_documents_every_option():
    """The README's option tables are the ones generated from the dataclasses (no undocumented option)."""
    from pathlib import Path

    from korclf.arguments import options_reference

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert options_reference() in readme, "regenerate the README tables with korclf.arguments.options_reference()"


def test_home_in_paths_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "c.yaml"
    path.write_text("model_name_or_path: ~/models/e5\ntrain_file: ~/data/train.tsv\noutput_dir: ~/out\n"
                    "model_kind: multi_encoder\ntext_columns: [a, b]\nencoder_paths: [~/m1, ~/m2]\n", encoding="utf-8")
    model, data, training = parse_config([str(path)])
    assert model.model_name_or_path == str(tmp_path / "models" / "e5")
    assert model.encoder_paths == [str(tmp_path / "m1"), str(tmp_path / "m2")]
    assert data.train_file == str(tmp_path / "data" / "train.tsv") and training.output_dir == str(tmp_path / "out")
