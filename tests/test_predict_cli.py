"""``korclf predict`` on a k-fold folder gives the run's own test predictions, for both fold ensembles.

The fold models are checked against an independent reload (plain ``AutoModelForSequenceClassification``
+ ``AutoTokenizer``, one padded batch) and the ensembles are recomputed here by hand, so a fault in
``korclf.predict``'s length-sorted batching or in ``ensemble.json`` handling shows up.
"""

from __future__ import annotations

import csv

import numpy as np

from korclf.cli import main as cli_main
from helpers import LABELS, read_json, read_predictions, reload_and_predict, run_config, sample_rows, write_table


def read_tsv(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def probabilities_of(rows: list[dict]) -> np.ndarray:
    return np.array([[float(row[f"prob_{name}"]) for name in LABELS] for row in rows])


def test_predict_reproduces_kfold_mean_and_vote_runs(tmp_path):
    rows = sample_rows("test", 30)
    test_file = str(tmp_path / "test.tsv")
    write_table(test_file, rows)
    runs = {}
    for mode in ("mean", "vote"):
        result = run_config(tmp_path, name=f"{mode}.yaml", n_folds=2, max_steps=2, test_file=test_file,
                            do_predict=True, fold_ensemble=mode, output_dir=str(tmp_path / mode))
        assert result.rc == 0
        assert read_json(f"{result.output_dir}/ensemble.json")["combine"] == mode
        runs[mode] = result.output_dir

    # reference: each fold model reloaded as a user would, the texts in one padded batch
    folds = [reload_and_predict(f"{runs['mean']}/fold_{k}", [row["text"] for row in rows])[1] for k in range(2)]
    mean = np.mean(folds, axis=0)
    votes = sum(np.eye(len(LABELS))[fold.argmax(1)] for fold in folds)
    expected = {"mean": mean, "vote": (votes + mean) / 3}  # documented vote scores: (votes + mean) / (models + 1)

    for mode, folder in runs.items():
        output = tmp_path / f"{mode}.predictions.tsv"
        assert cli_main(["predict", "--model", folder, "--input", test_file, "--output", str(output),
                         "--batch-size", "7"]) == 0
        written, predicted = read_predictions(folder), read_tsv(output)
        assert [row["id"] for row in predicted] == [row["id"] for row in rows] == [row["id"] for row in written]
        assert [row["label"] for row in predicted] == [row["label"] for row in written]
        assert np.allclose(probabilities_of(predicted), probabilities_of(written), atol=2e-6)
        assert np.allclose(probabilities_of(predicted), expected[mode], atol=1e-5)
        assert [row["label"] for row in predicted] == [LABELS[i] for i in expected[mode].argmax(1)]

    # the two runs trained the same fold models, so the vote really is a different combination of them
    assert not np.allclose(expected["vote"], expected["mean"], atol=1e-3)
