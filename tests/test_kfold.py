"""k-fold utilities: stratified folds, fold ensembling, out-of-fold assembly and its TSV."""

import csv

import numpy as np
import pytest

from korclf.errors import KorclfError
from korclf.kfold import assemble_oof, ensemble_probabilities, fold_indices, write_oof_predictions

LABELS = np.repeat([0, 1, 2], [50, 20, 10])  # 62.5 / 25 / 12.5 %


def test_folds_are_stratified_disjoint_and_cover_every_row():
    folds = fold_indices(LABELS, 5, seed=0)
    assert len(folds) == 5
    validation = np.concatenate([val for _, val in folds])
    np.testing.assert_array_equal(np.sort(validation), np.arange(80))  # each row validated exactly once
    for train, val in folds:
        assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 80
        # every validation fold has the class proportions: 10 / 4 / 2 of 16 rows
        assert np.bincount(LABELS[val], minlength=3).tolist() == [10, 4, 2]
        assert np.bincount(LABELS[train], minlength=3).tolist() == [40, 16, 8]


def test_folds_are_shuffled_and_reproducible():
    first = fold_indices(LABELS, 4, seed=1)
    again = fold_indices(LABELS, 4, seed=1)
    other = fold_indices(LABELS, 4, seed=2)
    for (_, a), (_, b) in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for (_, a), (_, b) in zip(first, other))
    # shuffled: the first fold is not simply the first rows of each class
    assert not np.array_equal(first[0][1][:5], np.arange(5))


def test_a_class_smaller_than_n_folds_is_an_error():
    labels = np.repeat([0, 1, 2], [30, 2, 6])
    with pytest.raises(KorclfError, match=r"n_folds 3: class\(es\) with fewer training rows than folds \{'neg': 2\}"):
        fold_indices(labels, 3, seed=0, label_names=["pos", "neg", "neutral"])
    with pytest.raises(KorclfError, match="at least 2"):
        fold_indices(labels, 1, seed=0)


MODELS = [
    np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.4, 0.5, 0.1]]),
    np.array([[0.5, 0.4, 0.1], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]]),
    np.array([[0.1, 0.8, 0.1], [0.4, 0.3, 0.3], [0.3, 0.3, 0.4], [0.1, 0.2, 0.7]]),
]


def test_mean_ensemble_by_hand():
    expected = [[1.2 / 3, 1.5 / 3, 0.3 / 3], [1.1 / 3, 1.0 / 3, 0.9 / 3], [0.6 / 3, 0.6 / 3, 1.8 / 3],
                [1.1 / 3, 1.0 / 3, 0.9 / 3]]
    np.testing.assert_allclose(ensemble_probabilities(MODELS, "mean"), expected)


def test_vote_takes_the_majority_and_breaks_ties_by_mean_probability():
    scores = ensemble_probabilities(MODELS, "vote")
    # row 0: votes 0,0,1 -> class 0, although the mean favours class 1 (0.5 > 0.4)
    # row 1: votes 1,0,0 -> class 0; row 2: 2,2,2 -> class 2
    # row 3: votes 1,0,2 -> three-way tie, mean 0.367 / 0.333 / 0.3 -> class 0
    np.testing.assert_array_equal(scores.argmax(1), [0, 0, 2, 0])
    votes = np.array([[2, 1, 0], [2, 1, 0], [0, 0, 3], [1, 1, 1]])
    mean = ensemble_probabilities(MODELS, "mean")
    np.testing.assert_allclose(scores, (votes + mean) / 4)  # the documented columns
    np.testing.assert_allclose(scores.sum(1), 1.0)
    assert ensemble_probabilities(MODELS, "mean")[0].argmax() == 1  # vote and mean really differ here


def test_ensemble_rejects_mismatched_shapes_and_modes():
    with pytest.raises(KorclfError, match="shapes"):
        ensemble_probabilities([MODELS[0], MODELS[1][:2]])
    with pytest.raises(KorclfError, match="'median'"):
        ensemble_probabilities(MODELS, "median")


def test_oof_puts_each_fold_prediction_back_on_its_rows():
    folds = fold_indices(LABELS, 4, seed=0)
    # fold i predicts a one-hot on column i for its validation rows: the result shows which fold predicted a row
    fold_probs = [np.tile(np.eye(4)[i], (len(val), 1)) for i, (_, val) in enumerate(folds)]
    oof = assemble_oof(80, folds, fold_probs)
    for i, (_, val) in enumerate(folds):
        assert (oof[val].argmax(1) == i).all()
    assert oof.sum() == 80


def test_oof_rejects_missing_and_repeated_rows():
    folds = [(None, np.array([0, 1])), (None, np.array([1, 3]))]
    probs = [np.ones((2, 2)) / 2, np.ones((2, 2)) / 2]
    with pytest.raises(KorclfError, match=r"1 row\(s\) never \(first: \[2\]\), 1 more than once \(first: \[1\]\)"):
        assemble_oof(4, folds, probs)
    with pytest.raises(KorclfError, match="fold 2 has 2 validation rows but predictions of shape"):
        assemble_oof(4, folds, [probs[0], np.ones((3, 2))])


def test_oof_predictions_tsv(tmp_path):
    path = tmp_path / "oof_predictions.tsv"
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.55, 0.45]])
    write_oof_predictions(str(path), ["a", "b", "c"], ["좋다", 'say "hi"\tthere', "별로"], [0, 0, "부정"], probs,
                          ["긍정", "부정"])
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert list(rows[0]) == ["id", "text", "true_label", "predicted_label", "prob_긍정", "prob_부정"]
    assert [(r["id"], r["true_label"], r["predicted_label"]) for r in rows] == [
        ("a", "긍정", "긍정"), ("b", "긍정", "부정"), ("c", "부정", "긍정")]
    assert rows[1]["text"] == 'say "hi"\tthere'  # quoted, read back intact
    assert [float(r["prob_부정"]) for r in rows] == [0.3, 0.8, 0.45]
