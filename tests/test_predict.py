"""``korclf predict`` / ``korclf.predict``: the same predictions as the training run, for every model kind."""

from __future__ import annotations

import numpy as np
import pytest

import korclf
from korclf.cli import main as cli_main
from helpers import read_output_tsv, read_predictions, run_config, sample_rows, write_table
from test_run_kinds import RBERT, semeval_rows, two_column_rows


def assert_same_predictions(expected: list[dict], actual: list[dict]) -> None:
    assert [row["id"] for row in actual] == [row["id"] for row in expected]
    assert [row["text"] for row in actual] == [row["text"] for row in expected]
    assert [row["label"] for row in actual] == [row["label"] for row in expected]
    columns = [key for key in expected[0] if key.startswith("prob_")]
    assert list(actual[0]) == list(expected[0])
    a = np.array([[float(row[c]) for c in columns] for row in actual])
    e = np.array([[float(row[c]) for c in columns] for row in expected])
    assert np.allclose(a, e, atol=2e-6)


@pytest.fixture(scope="module")
def sequence_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seq")
    rows = sample_rows("test", 50)
    write_table(tmp / "test.tsv", rows)
    result = run_config(tmp, test_file=str(tmp / "test.tsv"), do_predict=True, normalize=True, max_steps=4)
    assert result.rc == 0
    return result.output_dir, tmp / "test.tsv"


def test_cli_predict_reproduces_the_run(sequence_run, tmp_path, capsys):
    folder, test_file = sequence_run
    output = tmp_path / "out.tsv"
    assert cli_main(["predict", "--model", folder, "--input", str(test_file), "--output", str(output),
                     "--batch-size", "7"]) == 0
    assert_same_predictions(read_predictions(folder), read_output_tsv(output))
    assert "Wrote 50 predictions" in capsys.readouterr().out


def test_python_api_on_texts_and_bad_input(sequence_run, tmp_path, capsys):
    folder, test_file = sequence_run
    expected = read_predictions(folder)[:5]
    predictions = korclf.predict(folder, [row["text"] for row in expected], progress=False)
    assert predictions.labels == [row["label"] for row in expected]
    assert predictions.probabilities.shape == (5, 4)
    assert np.allclose(predictions.probabilities.sum(1), 1.0)

    rows = sample_rows("test", 4)
    rows[3]["id"] = rows[1]["id"]
    write_table(tmp_path / "dup.tsv", rows)
    assert cli_main(["predict", "--model", folder, "--input", str(tmp_path / "dup.tsv")]) == 2
    err = capsys.readouterr().err
    assert "row 4" in err and "column 'id'" in err and "already used in row 2" in err
    assert cli_main(["predict", "--model", folder, "--input", str(test_file), "--text-column", "body"]) == 2
    assert "body" in capsys.readouterr().err
    rows[3]["id"], rows[2]["text"] = "x9", "   "
    write_table(tmp_path / "empty.tsv", rows)
    assert cli_main(["predict", "--model", folder, "--input", str(tmp_path / "empty.tsv")]) == 2
    assert "row 3" in capsys.readouterr().err


def test_predict_rbert_and_multi_encoder_reproduce_their_runs(tmp_path):
    write_table(tmp_path / "re_train.tsv", semeval_rows(48))
    write_table(tmp_path / "re_test.tsv", semeval_rows(20, seed=1))
    rbert = run_config(tmp_path / "re", train_file=str(tmp_path / "re_train.tsv"),
                       test_file=str(tmp_path / "re_test.tsv"), label_column="relation", entity_format="semeval",
                       entity_marker="plain", do_predict=True, max_steps=3, **RBERT)
    assert rbert.rc == 0
    got = korclf.predict(rbert.output_dir, str(tmp_path / "re_test.tsv"), output_file=str(tmp_path / "re.tsv"),
                         batch_size=3, progress=False)
    assert len(got.ids) == 20
    assert_same_predictions(read_predictions(rbert.output_dir), read_output_tsv(tmp_path / "re.tsv"))

    write_table(tmp_path / "mc_train.tsv", two_column_rows("train", 60))
    write_table(tmp_path / "mc_test.tsv", two_column_rows("test", 20))
    multi = run_config(tmp_path / "mc", train_file=str(tmp_path / "mc_train.tsv"),
                       test_file=str(tmp_path / "mc_test.tsv"), model_kind="multi_encoder",
                       text_columns=["title", "body"], share_encoder=False, do_predict=True, max_steps=3,
                       max_train_samples=None)
    assert multi.rc == 0
    korclf.predict(multi.output_dir, str(tmp_path / "mc_test.tsv"), output_file=str(tmp_path / "mc.tsv"),
                   batch_size=4, progress=False)
    assert_same_predictions(read_predictions(multi.output_dir), read_output_tsv(tmp_path / "mc.tsv"))


def test_multi_encoder_with_a_different_backbone_per_column(tmp_path):
    """encoder_paths with two checkpoints (different vocabularies): each column keeps its own tokenizer,
    saved with the model, and prediction from the folder reproduces the run."""
    from transformers import AutoTokenizer

    from helpers import make_checkpoint
    from korclf.scratch import train_tokenizer

    bert = make_checkpoint(tmp_path / "bert", "bert")
    other = train_tokenizer([row["text"] for row in sample_rows("train", 40)], "wordpiece", 300, 64)
    electra = make_checkpoint(tmp_path / "electra", "electra", tokenizer=other)
    write_table(tmp_path / "train.tsv", two_column_rows("train", 60))
    write_table(tmp_path / "test.tsv", two_column_rows("test", 16))
    result = run_config(tmp_path / "run", model_name_or_path=bert, encoder_paths=[bert, electra],
                        train_file=str(tmp_path / "train.tsv"), test_file=str(tmp_path / "test.tsv"),
                        model_kind="multi_encoder", text_columns=["title", "body"], pooling="first",
                        do_predict=True, max_steps=2, max_train_samples=None, max_length=24)
    assert result.rc == 0
    saved = AutoTokenizer.from_pretrained(f"{result.output_dir}/tokenizer_body")
    assert len(saved) == len(AutoTokenizer.from_pretrained(electra)) != len(AutoTokenizer.from_pretrained(bert))
    korclf.predict(result.output_dir, str(tmp_path / "test.tsv"), output_file=str(tmp_path / "p.tsv"),
                   progress=False)
    assert_same_predictions(read_predictions(result.output_dir), read_output_tsv(tmp_path / "p.tsv"))
