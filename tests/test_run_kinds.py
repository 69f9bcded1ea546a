"""End-to-end runs of the R-BERT and multi-encoder model kinds through the training recipe."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from helpers import (logged_losses, read_json, read_output_tsv, read_predictions, run_config, sample_rows,
                     write_table)

RELATIONS = {"in": "Located-In(e1,e2)", "of": "Part-Of(e1,e2)", "with": "Other"}
NOUNS = ["engine", "car", "city", "house", "river", "door", "wheel", "garden", "roof", "valley", "bridge", "tower"]


def semeval_rows(n: int, seed: int = 0, pad_words: int = 0) -> list[dict]:
    """Tagged sentences whose relation is given by the word between the entities."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        word = list(RELATIONS)[i % 3]
        a, b = rng.sample(NOUNS, 2)
        filler = " ".join(rng.choice(NOUNS) for _ in range(pad_words))
        sentence = f"{filler} the <e1> {a} </e1> {word} the <e2> {b} </e2> today".strip()
        rows.append({"id": f"s{i}", "sentence": sentence, "relation": RELATIONS[word]})
    return rows


def klue_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    people, places = ["민수", "지영", "철수", "영희"], ["서울", "부산", "대구", "광주"]
    rows = []
    for i in range(n):
        person, place = rng.choice(people), rng.choice(places)
        relation = "per:place_of_residence" if i % 2 else "no_relation"
        verb = "에 산다" if i % 2 else "을 싫어한다"
        sentence = f"{person}는 {place}{verb}."
        subject = {"word": person, "start_idx": 0, "end_idx": len(person) - 1, "type": "PER"}
        start = sentence.index(place)
        obj = {"word": place, "start_idx": start, "end_idx": start + len(place) - 1, "type": "LOC"}
        rows.append({"id": i, "sentence": sentence, "subject_entity": json.dumps(subject, ensure_ascii=False),
                     "object_entity": json.dumps(obj, ensure_ascii=False), "label": relation})
    return rows


RBERT = dict(model_kind="rbert", text_column="sentence", max_train_samples=None, scratch_vocab_size=200)


@pytest.mark.parametrize("marker", ["plain", "punct"])
def test_rbert_semeval_run_learns_and_reloads(tmp_path, marker):
    write_table(tmp_path / "train.tsv", semeval_rows(96))
    write_table(tmp_path / "test.tsv", semeval_rows(30, seed=1))
    result = run_config(tmp_path, train_file=str(tmp_path / "train.tsv"), test_file=str(tmp_path / "test.tsv"),
                        label_column="relation", entity_format="semeval", entity_marker=marker, do_predict=True,
                        max_steps=80, rbert_entity_layer="split", **RBERT)
    assert result.rc == 0
    test = read_json(f"{result.output_dir}/test_results.json")
    # the relation is given by one word: a working R-BERT pipeline learns it
    assert test["test_accuracy"] == 1.0 and test["test_semeval_f1"] == 100.0  # official scorer: percent
    rows = read_predictions(result.output_dir)
    assert [row["id"] for row in rows] == [f"s{i}" for i in range(30)]
    assert "<e1>" in rows[0]["text"]  # the text as the user wrote it

    model = AutoModelForSequenceClassification.from_pretrained(result.output_dir)
    assert model.config.model_type == "korclf-rbert"
    assert model.config.korclf["entity_marker"] == marker
    tokenizer = AutoTokenizer.from_pretrained(result.output_dir)
    if marker == "plain":
        assert tokenizer.convert_tokens_to_ids("[E1]") != tokenizer.unk_token_id
        assert model.get_input_embeddings().num_embeddings >= len(tokenizer)


def test_rbert_klue_run_reports_re_metrics(tmp_path):
    write_table(tmp_path / "train.tsv", klue_rows(64))
    write_table(tmp_path / "test.tsv", klue_rows(20, seed=3))
    result = run_config(tmp_path, train_file=str(tmp_path / "train.tsv"), test_file=str(tmp_path / "test.tsv"),
                        entity_format="klue", entity_marker="typed_punct", do_predict=True, max_steps=60, **RBERT)
    assert result.rc == 0
    test = read_json(f"{result.output_dir}/test_results.json")
    assert 0.0 <= test["test_klue_auprc"] <= 100.0  # KLUE's scorer reports percent
    assert test["test_accuracy"] == 1.0 and test["test_klue_micro_f1"] == 100.0


def test_rbert_long_rows_are_windowed_and_counted(tmp_path):
    rows = semeval_rows(40, pad_words=40)
    write_table(tmp_path / "train.tsv", rows)
    result = run_config(tmp_path, train_file=str(tmp_path / "train.tsv"), label_column="relation",
                        entity_format="semeval", entity_marker="punct", max_length=24, max_steps=2, **RBERT)
    assert result.rc == 0
    report = read_json(f"{result.output_dir}/data_report.json")
    windowed = report["splits"]["train"]["windowed"] + report["splits"]["validation"]["windowed"]
    assert windowed == 40  # every row is longer than 24 tokens; none was dropped
    assert report["splits"]["train"]["skipped_entity_overflow"] == 0


def test_rbert_overflow_skip_logs_ids_and_error_names_row(tmp_path, capsys):
    rows = semeval_rows(40)
    rows[5]["sentence"] = "<e1> car </e1> " + "wheel " * 40 + "in the <e2> city </e2>"
    write_table(tmp_path / "train.tsv", rows)
    common = dict(train_file=str(tmp_path / "train.tsv"), label_column="relation", entity_format="semeval",
                  entity_marker="punct", max_length=24, max_steps=1, **RBERT)
    failed = run_config(tmp_path / "a", **common)
    assert failed.rc == 2
    assert "row s5" in capsys.readouterr().err
    skipped = run_config(tmp_path / "b", entity_overflow="skip", **common)
    assert skipped.rc == 0
    report = read_json(f"{skipped.output_dir}/data_report.json")["splits"]
    assert sum(split.get("skipped_entity_overflow", 0) for split in report.values()) == 1
    assert ["s5"] in [split.get("skipped_ids") for split in report.values()]


def test_rbert_rejects_normalisation(tmp_path, capsys):
    write_table(tmp_path / "train.tsv", semeval_rows(40))
    result = run_config(tmp_path, train_file=str(tmp_path / "train.tsv"), label_column="relation",
                        entity_format="semeval", normalize=True, **RBERT)
    assert result.rc == 2
    assert "normalisation" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ multi-encoder


def two_column_rows(split: str, n=None) -> list[dict]:
    rows = []
    for row in sample_rows(split, n):
        words = row["text"].split()
        rows.append({"id": row["id"], "title": " ".join(words[:2]), "body": " ".join(words[2:]) or words[0],
                     "label": row["label"]})
    return rows


@pytest.mark.parametrize("share,fusion", [(True, "concat_mlp"), (False, "logits_mlp")])
def test_multi_encoder_run_learns_and_predicts(tmp_path, share, fusion):
    write_table(tmp_path / "train.tsv", two_column_rows("train", 160))
    write_table(tmp_path / "test.tsv", two_column_rows("test", 40))
    result = run_config(tmp_path, train_file=str(tmp_path / "train.tsv"), test_file=str(tmp_path / "test.tsv"),
                        model_kind="multi_encoder", text_columns=["title", "body"], share_encoder=share,
                        fusion=fusion, pooling="mean", max_length=["auto", 32], do_predict=True, max_steps=60,
                        max_train_samples=None)
    assert result.rc == 0
    losses = logged_losses(result.output_dir)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    config = AutoModelForSequenceClassification.from_pretrained(result.output_dir).config
    assert config.model_type == "korclf-multi-encoder"
    lengths = config.korclf["max_length"]
    assert isinstance(lengths, list) and lengths[1] == 32 and lengths[0] >= 3
    rows = read_predictions(result.output_dir)
    assert len(rows) == 40 and rows[0]["text"].count(" | ") == 1
    report = read_json(f"{result.output_dir}/test_results.json")
    assert report["test_accuracy"] > 0.4


def test_multi_encoder_errors(tmp_path, capsys):
    write_table(tmp_path / "train.tsv", two_column_rows("train", 40))
    common = dict(train_file=str(tmp_path / "train.tsv"), model_kind="multi_encoder", max_train_samples=None)
    assert run_config(tmp_path / "a", text_columns=["title", "summary"], **common).rc == 2
    assert "summary" in capsys.readouterr().err
    assert run_config(tmp_path / "b", text_columns=["title", "body"], max_length=[16, 16, 16], **common).rc == 2
    assert "3 entries but there are 2 text columns" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- k-fold


def test_kfold_oof_ensemble_and_predict(tmp_path):
    """Every training row is predicted once out of fold; test = mean of the fold models; predict reuses the folds."""
    import korclf
    from korclf.kfold import ensemble_probabilities

    write_table(tmp_path / "test.tsv", sample_rows("test", 24))
    result = run_config(tmp_path, n_folds=3, test_file=str(tmp_path / "test.tsv"), do_predict=True, max_steps=3,
                        max_train_samples=60)
    assert result.rc == 0
    out = result.output_dir
    oof = read_output_tsv(f"{out}/oof_predictions.tsv")
    assert sorted(row["id"] for row in oof) == sorted(row["id"] for row in sample_rows("train", 60))
    assert read_json(f"{out}/oof_results.json")["oof_samples"] == 60
    assert read_json(f"{out}/ensemble.json")["folds"] == ["fold_0", "fold_1", "fold_2"]
    for k in range(3):
        card = open(f"{out}/fold_{k}/README.md", encoding="utf-8").read()
        assert "| macro_f1 |" in card and "| accuracy |" in card
    # the ensemble's test probabilities are the mean of the three fold models' own predictions
    folds = [korclf.predict(f"{out}/fold_{k}", str(tmp_path / "test.tsv"), progress=False).probabilities
             for k in range(3)]
    written = read_predictions(out)
    columns = [key for key in written[0] if key.startswith("prob_")]
    expected = np.mean(folds, axis=0)
    assert np.allclose(np.array([[float(r[c]) for c in columns] for r in written]), expected, atol=2e-6)
    assert np.allclose(ensemble_probabilities(folds, "mean"), expected)
    again = korclf.predict(out, str(tmp_path / "test.tsv"), progress=False)
    assert np.allclose(again.probabilities, expected, atol=1e-9)


def test_resampling_touches_train_only_and_is_reported(tmp_path):
    rows = sample_rows("train", 120)
    labels = sorted({row["label"] for row in rows})
    imbalanced = [row for row in rows if row["label"] != labels[0]] + [r for r in rows if r["label"] == labels[0]][:6]
    write_table(tmp_path / "train.tsv", imbalanced)
    result = run_config(tmp_path, train_file=str(tmp_path / "train.tsv"), resample="random_under",
                        max_train_samples=None, max_steps=1)
    assert result.rc == 0
    report = read_json(f"{result.output_dir}/resampling.json")
    assert set(report["class_counts_after"].values()) == {min(report["class_counts_before"].values())}
    assert read_json(f"{result.output_dir}/data_report.json")["resampling"] == report
    assert read_json(f"{result.output_dir}/train_results.json")["train_samples"] == report["rows_after"]
    # the validation split is left as it was
    assert read_json(f"{result.output_dir}/eval_results.json")["eval_samples"] == \
        read_json(f"{result.output_dir}/data_report.json")["validation_split"]["validation_rows"]



def test_early_stopping_stops_and_keeps_the_best_checkpoint(tmp_path):
    """learning_rate 0: macro-F1 never improves, so training stops after `patience` evaluations without gain."""
    result = run_config(tmp_path, learning_rate=0.0, max_steps=20, eval_strategy="steps", eval_steps=1,
                        save_strategy="steps", save_steps=1, load_best_model_at_end=True,
                        metric_for_best_model="macro_f1", greater_is_better=True, early_stopping_patience=2)
    assert result.rc == 0
    state = read_json(f"{result.output_dir}/trainer_state.json")
    assert state["global_step"] == 3  # step 1 sets the best; steps 2 and 3 do not improve on it
    assert state["best_model_checkpoint"].endswith("checkpoint-1")
    logged = [entry for entry in state["log_history"] if "eval_macro_f1" in entry]
    assert len(logged) == 3 and all(any(k.startswith("eval_recall_") for k in entry) for entry in logged)
