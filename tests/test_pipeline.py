"""End-to-end runs of a tiny from-scratch model on the shipped sample data: files, reports, reload."""

import math
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import (
    assert_reload_matches_predictions,
    LABELS,
    SAMPLE_TEST,
    logged_losses,
    read_json,
    read_predictions,
    read_tsv,
    run_config,
    sample_rows,
    write_table,
)
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from korclf.scratch import train_tokenizer
from korclf.text.normalize import TextNormalizer

LN4 = math.log(4)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One tiny run: 160 training rows (+1 empty row, dropped), held-out validation, the full test file."""
    tmp_path = tmp_path_factory.mktemp("quick")
    rows = sample_rows("train", 160)
    rows.insert(3, {"id": "tr-empty", "text": "   ", "label": "food"})
    train = write_table(tmp_path / "train.tsv", rows)
    result = run_config(tmp_path, train_file=train, test_file=SAMPLE_TEST, max_train_samples=None, empty_text="drop",
                        normalize=True, do_predict=True, max_steps=80, per_device_train_batch_size=12, logging_steps=2,
                        learning_rate=1.0e-2, validation_split_ratio=0.15)
    assert result.rc == 0
    return Path(result.output_dir)


def test_loss_falls(quick_run):
    losses = logged_losses(quick_run)
    assert len(losses) == 40 and all(math.isfinite(loss) for loss in losses)
    assert abs(losses[0] - LN4) < 0.1  # four classes, untrained head
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3, losses


def test_output_folder_contents(quick_run):
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "all_results.json",
                 "train_results.json", "eval_results.json", "test_results.json", "eval_confusion_matrix.png",
                 "test_confusion_matrix.png", "run_config.yaml", "versions.json", "data_report.json",
                 "predictions.tsv", "trainer_state.json"):
        assert (quick_run / name).is_file(), name
        assert (quick_run / name).stat().st_size > 0, name
    assert (quick_run / "eval_confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(quick_run.glob("checkpoint-*"))  # save_strategy: "no"


def test_saved_config(quick_run):
    config = read_json(quick_run / "config.json")
    assert config["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    assert config["label2id"] == {name: i for i, name in enumerate(LABELS)}
    settings = config["korclf"]
    report = read_json(quick_run / "data_report.json")
    assert settings["max_length"] == report["token_lengths"]["max_length"] and 8 <= settings["max_length"] <= 64
    assert settings["text_column"] == "text" and settings["label_column"] == "label" and settings["id_column"] == "id"
    assert settings["normalization"]["nfc"] is True and settings["normalization"]["max_repeat"] == 2
    assert config["hidden_size"] == 32 and config["num_hidden_layers"] == 1


def test_reports(quick_run):
    report = read_json(quick_run / "data_report.json")
    train = report["splits"]["train"]
    changed = train.pop("rows_changed_by_normalization")
    assert train == {"rows_read": 161, "dropped_empty_raw": 1, "rows_used": 160}
    assert 0 < changed <= 160  # squeezed repeats and collapsed spaces in the sample texts
    assert report["validation_split"]["train_rows"] + report["validation_split"]["validation_rows"] == 160
    assert report["splits"]["test"]["rows_used"] == 120
    n_val = report["validation_split"]["validation_rows"]
    assert n_val == 24  # 15 % of 160

    evaluation = read_json(quick_run / "eval_results.json")
    per_class = evaluation["eval_report"]
    assert set(LABELS) <= set(per_class)
    for name in LABELS:
        assert set(per_class[name]) >= {"precision", "recall", "f1-score", "support"}
    assert sum(per_class[name]["support"] for name in LABELS) == n_val == evaluation["eval_samples"]
    assert evaluation["eval_macro_f1"] == pytest.approx(np.mean([per_class[name]["f1-score"] for name in LABELS]))

    everything = read_json(quick_run / "all_results.json")
    for key in ("train_loss", "eval_accuracy", "eval_macro_f1", "test_accuracy", "test_macro_f1"):
        assert key in everything, key
    assert everything["train_samples"] == 160 - n_val

    config = yaml.safe_load((quick_run / "run_config.yaml").read_text(encoding="utf-8"))
    assert config["model"]["model_name_or_path"] == "scratch"
    assert config["data"]["test_file"] == SAMPLE_TEST and config["data"]["empty_text"] == "drop"
    assert config["training"]["learning_rate"] == pytest.approx(0.01) and config["training"]["max_steps"] == 80

    versions = read_json(quick_run / "versions.json")
    for package in ("torch", "transformers", "datasets"):
        assert versions[package] == metadata.version(package)


def test_predictions_file(quick_run):
    test_rows = read_tsv(SAMPLE_TEST)
    rows = read_predictions(quick_run)
    assert list(rows[0]) == ["id", "text", "label"] + [f"prob_{name}" for name in LABELS]
    assert len(rows) == len(test_rows) == 120
    assert [row["id"] for row in rows] == [row["id"] for row in test_rows]
    assert [row["text"] for row in rows] == [row["text"] for row in test_rows]  # as written, not normalised
    probabilities = np.array([[float(row[f"prob_{name}"]) for name in LABELS] for row in rows])
    assert np.all(probabilities >= 0) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert [row["label"] for row in rows] == [LABELS[i] for i in probabilities.argmax(axis=1)]
    # test metrics agree with the predictions file
    accuracy = np.mean([row["label"] == truth["label"] for row, truth in zip(rows, test_rows)])
    assert read_json(quick_run / "test_results.json")["test_accuracy"] == pytest.approx(accuracy)
    assert accuracy > 0.25  # better than a constant guess on the balanced test set


def test_reload_with_pipeline_gives_the_same_labels(quick_run):
    rows = read_predictions(quick_run)
    model = AutoModelForSequenceClassification.from_pretrained(str(quick_run))
    tokenizer = AutoTokenizer.from_pretrained(str(quick_run))
    settings = model.config.korclf
    normalizer = TextNormalizer.from_dict(settings["normalization"])
    texts = normalizer([row["text"] for row in rows])
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1)
    results = classify(texts, batch_size=32, truncation=True, max_length=settings["max_length"])
    assert [result["label"] for result in results] == [row["label"] for row in rows]
    top = np.array([float(row[f"prob_{row['label']}"]) for row in rows])
    assert np.allclose([result["score"] for result in results], top, atol=1e-4)


def test_non_empty_output_dir_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier run", encoding="utf-8")
    result = run_config(tmp_path, max_steps=1)
    captured = capsys.readouterr()
    assert result.rc == 2
    assert "korclf: error:" in captured.err and str(out) in captured.err and "overwrite_output_dir" in captured.err
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert run_config(tmp_path, max_steps=1, overwrite_output_dir=True).rc == 0
    assert (out / "model.safetensors").is_file() and (out / "keep.txt").is_file()


def test_seeded_scratch_run_is_reproducible_and_reuses_the_cache(tmp_path, capsys):
    options = dict(max_train_samples=60, max_steps=4, do_predict=True, test_file=SAMPLE_TEST, max_predict_samples=20,
                   overwrite_output_dir=True)
    assert run_config(tmp_path, **options).rc == 0
    first = (Path(tmp_path) / "out" / "predictions.tsv").read_text(encoding="utf-8")
    capsys.readouterr()
    assert run_config(tmp_path, **options).rc == 0
    logged = capsys.readouterr().out
    assert (Path(tmp_path) / "out" / "predictions.tsv").read_text(encoding="utf-8") == first
    # the scratch tokenizer is the same, so the tokenised splits come from the datasets cache
    for split in ("train", "validation", "test"):
        assert f"Tokenizing {split}: loaded from the datasets cache" in logged, split


def test_max_length_above_the_model_limit_stops_the_run(tmp_path, capsys):
    result = run_config(tmp_path, max_length=100, scratch_max_position=64, max_steps=1)
    err = capsys.readouterr().err
    assert result.rc == 2
    assert "'max_length'" in err and "100" in err and "64" in err and "Traceback" not in err
    assert not (Path(result.output_dir) / "model.safetensors").exists()


# init loss of each option with near-uniform predictions over 4 classes (p = 1/4):
#   ce = ln 4; focal (gamma 2) = (3/4)^2 ln 4; self-adjusting dice (alpha 1, gamma 1) = 1 - (2q + 1) / (q + 2), q = 3/16
DICE_INIT = 1 - (2 * 3 / 16 + 1) / (3 / 16 + 2)


@pytest.mark.parametrize("options,first_loss", [
    ({"loss": "ce"}, LN4),
    ({"loss": "focal", "focal_gamma": 2.0}, 0.5625 * LN4),
    ({"loss": "dice"}, DICE_INIT),
    ({"loss": "ce", "class_weights": "balanced"}, LN4),
    ({"loss": "ce", "label_smoothing": 0.1}, LN4),
    ({"loss": "focal", "class_weights": "balanced"}, 0.5625 * LN4),
], ids=["ce", "focal", "dice", "ce-balanced", "ce-smoothing", "focal-balanced"])
def test_loss_options_train(tmp_path, options, first_loss):
    result = run_config(tmp_path, max_train_samples=48, max_steps=3, do_eval=False, **options)
    assert result.rc == 0
    losses = logged_losses(result.output_dir)
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    assert losses[0] == pytest.approx(first_loss, abs=0.06)
    training = yaml.safe_load(Path(result.config_path).read_text(encoding="utf-8"))
    saved = yaml.safe_load((Path(result.output_dir) / "run_config.yaml").read_text(encoding="utf-8"))["training"]
    for key, value in options.items():
        assert saved[key] == value == training[key]


def test_scratch_unigram_tokenizer(tmp_path):
    result = run_config(tmp_path, scratch_tokenizer="unigram", scratch_vocab_size=1000, max_steps=5,
                        do_predict=True, test_file=SAMPLE_TEST, max_predict_samples=30)
    assert result.rc == 0
    out = Path(result.output_dir)
    assert read_json(out / "tokenizer.json")["model"]["type"] == "Unigram"
    rows = read_predictions(out)
    assert len(rows) == 30
    assert_reload_matches_predictions(out, rows)


def test_scratch_vocab_too_small_for_unigram_is_a_clear_error(tmp_path, capsys):
    result = run_config(tmp_path, scratch_tokenizer="unigram", scratch_vocab_size=50, max_steps=1)
    err = capsys.readouterr().err
    assert result.rc == 2 and "scratch_vocab_size" in err and "Traceback" not in err


@pytest.mark.parametrize("kind,vocab_size", [("wordpiece", 400), ("unigram", 1500)])
def test_scratch_tokenizer_ids_are_reproducible(kind, vocab_size):
    """Same texts, same tokenizer: token ids must not depend on hash order (seeded runs are reproducible)."""
    texts = [row["text"] for row in sample_rows("train")]
    first, second = (train_tokenizer(texts, kind, vocab_size, 64) for _ in range(2))
    assert first.get_vocab() == second.get_vocab()
    assert [first.convert_ids_to_tokens(i) for i in range(5)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert first(texts[:20])["input_ids"] == second(texts[:20])["input_ids"]
