import warnings

import numpy as np
import pytest
from transformers import EvalPrediction

from korclf.errors import KorclfError
from korclf.metrics import (
    classification_metrics,
    classification_report_dict,
    confusion,
    klue_re_auprc,
    klue_re_micro_f1,
    make_compute_metrics,
    save_confusion_matrix_png,
    semeval_official_f1,
    softmax,
)

# Class 3 never occurs; it must still count (as 0) in the macro averages.
NAMES = ["긍정", "부정", "중립 의견", "기타"]
Y_TRUE = [0, 0, 1, 1, 1]
Y_PRED = [0, 0, 1, 0, 2]
# By hand: class 0 P=2/3 R=1 F1=0.8; class 1 P=1 R=1/3 F1=0.5; class 2 P=R=F1=0; class 3 all 0.
EXPECTED = {
    "accuracy": 3 / 5,
    "macro_f1": (0.8 + 0.5) / 4,
    "weighted_f1": (2 * 0.8 + 3 * 0.5) / 5,
    "macro_precision": (2 / 3 + 1) / 4,
    "macro_recall": (1 + 1 / 3) / 4,
    "recall_긍정": 1.0,
    "f1_긍정": 0.8,
    "recall_부정": 1 / 3,
    "f1_부정": 0.5,
    "recall_중립_의견": 0.0,
    "f1_중립_의견": 0.0,
    "recall_기타": 0.0,
    "f1_기타": 0.0,
}


def test_classification_metrics_by_hand():
    metrics = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    assert metrics == pytest.approx(EXPECTED)
    assert all(type(value) is float for value in metrics.values())


def test_colliding_metric_names_are_rejected():
    with pytest.raises(KorclfError, match="collide"):
        classification_metrics([0], [0], ["a b", "a_b"])


def test_compute_metrics_takes_argmax_of_first_output_and_skips_ignored():
    logits = np.array([[3, 0, 0, 0], [2, 1, 0, 0], [0, 5, 0, 0], [1, 0, 0, 0], [0, 0, 9, 0], [0, 0, 0, 7]], float)
    labels = np.array(Y_TRUE + [-100])
    compute_metrics = make_compute_metrics(NAMES)
    assert compute_metrics(EvalPrediction(predictions=logits, label_ids=labels)) == pytest.approx(EXPECTED)
    hidden = np.zeros((6, 2, 8))
    assert compute_metrics(EvalPrediction(predictions=(logits, hidden), label_ids=labels)) == pytest.approx(EXPECTED)


def test_classification_report_uses_names():
    report = classification_report_dict(Y_TRUE, Y_PRED, NAMES)
    assert report["부정"] == pytest.approx({"precision": 1.0, "recall": 1 / 3, "f1-score": 0.5, "support": 3})
    assert report["기타"]["support"] == 0
    assert report["macro avg"]["f1-score"] == pytest.approx(1.3 / 4)


def test_confusion_counts_and_row_normalised():
    counts = confusion(Y_TRUE, Y_PRED, 4)
    np.testing.assert_array_equal(counts, [[2, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    rates = confusion(Y_TRUE, Y_PRED, 4, normalize="true")
    np.testing.assert_allclose(rates, [[1, 0, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    with pytest.raises(KorclfError, match="normalize 'rows'"):
        confusion(Y_TRUE, Y_PRED, 4, normalize="rows")


def test_confusion_png_is_written_without_glyph_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = save_confusion_matrix_png(Y_TRUE, Y_PRED, NAMES, tmp_path / "plots" / "confusion.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 1.5 * height > 0  # two panels side by side


def test_softmax_is_stable_for_large_logits():
    probs = softmax(np.array([[1000.0, 1000.0 + np.log(3.0)], [-5.0, -5.0]]))
    np.testing.assert_allclose(probs, [[0.25, 0.75], [0.5, 0.5]])


def test_klue_re_micro_f1_excludes_no_relation():
    names = ["no_relation", "org:members", "per:title"]
    # Without no_relation: 2 correct, 4 predicted relations, 3 gold relations -> P=1/2, R=2/3, F1=4/7.
    score = klue_re_micro_f1([0, 1, 1, 2, 0], [1, 1, 0, 2, 2], names)
    assert score == pytest.approx(400 / 7)
    with pytest.raises(KorclfError, match="'none'"):
        klue_re_micro_f1([0], [0], names, no_relation="none")


def test_klue_re_auprc_by_hand_skips_absent_class():
    probs = np.array(
        [
            # class 0 ranks +,-,-,+ ; class 1 ranks +,-,+,- ; class 2 never occurs.
            [0.2, 0.6, 0.1],
            [0.3, 0.8, 0.1],
            [0.5, 0.4, 0.1],
            [0.9, 0.1, 0.0],
        ]
    )
    # Trapezoids over (recall, precision) points, by hand:
    # class 0: (0,1)-(.5,1) = .5 ; (.5,1/3)-(1,.5) = .5 * (1/3 + 1/2) / 2 = 5/24 -> 17/24
    # class 1: (0,1)-(.5,1) = .5 ; (.5,.5)-(1,2/3)  = .5 * (1/2 + 2/3) / 2 = 7/24 -> 19/24
    # mean over the two present classes = 18/24 = 0.75 (average precision would give 0.75 / 0.833).
    assert klue_re_auprc([0, 1, 1, 0], probs, 3) == pytest.approx(75.0)


def test_klue_re_auprc_checks_shape():
    with pytest.raises(KorclfError, match=r"probs must have shape \(2, 3\)"):
        klue_re_auprc([0, 1], np.zeros((2, 2)), 3)


SEMEVAL = ["Other", "Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)", "Component-Whole(e1,e2)", "Component-Whole(e2,e1)"]


def test_semeval_official_f1_counts_wrong_direction_as_wrong_prediction_of_the_type():
    y_true = [1, 1, 2, 3, 4, 0, 0]
    y_pred = [1, 2, 0, 3, 1, 3, 0]
    # Cause-Effect: 1 exact; predicted type C-E 3 times (one wrong direction); gold 3 -> P=R=F1=1/3.
    # Component-Whole: 1 exact; predicted twice; gold twice -> P=R=F1=1/2.  Macro = (1/3 + 1/2) / 2.
    assert semeval_official_f1(y_true, y_pred, SEMEVAL) == pytest.approx(100 * 5 / 12)


def test_semeval_official_f1_averages_types_present_in_gold_only():
    # Gold has only Cause-Effect; a Component-Whole prediction counts like Other (as in the perl scorer).
    # Cause-Effect: 1 exact of 1 predicted, gold 2 -> P=1, R=1/2, F1=2/3.
    assert semeval_official_f1([1, 1, 0], [1, 3, 0], SEMEVAL) == pytest.approx(200 / 3)
    assert semeval_official_f1([0, 0], [1, 0], SEMEVAL) == 0.0
    with pytest.raises(KorclfError, match="'other'"):
        semeval_official_f1([0], [0], SEMEVAL, other="other")


def test_compute_metrics_logs_recall_per_class_and_macro_f1():
    # keys the Trainer logs at each evaluation (as eval_<key>); names must stay stable
    metrics = make_compute_metrics(NAMES)(EvalPrediction(predictions=np.eye(4)[Y_PRED], label_ids=np.array(Y_TRUE)))
    assert {"macro_f1", "recall_긍정", "recall_부정", "recall_중립_의견", "recall_기타"} <= set(metrics)
    assert metrics["macro_f1"] == pytest.approx(1.3 / 4)


RE_NAMES = ["no_relation", "org:members", "per:title"]


def test_compute_metrics_adds_klue_relation_scores():
    logits = np.array([[2.0, 0.5, 0.1], [0.1, 3.0, 0.2], [1.5, 1.0, 0.0], [0.0, 0.3, 2.5], [3.0, 2.9, 3.1], [9, 9, 9]])
    labels = np.array([0, 1, 1, 2, 0, -100])
    metrics = make_compute_metrics(RE_NAMES, relation_metrics="klue")(EvalPrediction(predictions=logits,
                                                                                    label_ids=labels))
    # row 4 has the top class-0 logit but not the top class-0 probability: AUPRC must use softmax
    # predictions 0, 1, 0, 2, 2: relations correct 2 (rows 1, 3), predicted 3, gold 3 -> micro-F1 2/3
    assert metrics["klue_micro_f1"] == pytest.approx(200 / 3)
    probs = np.exp(logits[:5]) / np.exp(logits[:5]).sum(1, keepdims=True)
    assert metrics["klue_auprc"] == pytest.approx(klue_re_auprc(labels[:5], probs, 3))
    assert metrics["klue_auprc"] != pytest.approx(klue_re_auprc(labels[:5], logits[:5], 3))  # softmax matters
    assert metrics["accuracy"] == pytest.approx(3 / 5) and "semeval_f1" not in metrics


def test_compute_metrics_adds_semeval_score_and_checks_labels():
    y_true = np.array([1, 1, 2, 3, 4, 0, 0])
    y_pred = np.array([1, 2, 0, 3, 1, 3, 0])
    metrics = make_compute_metrics(SEMEVAL, relation_metrics="semeval")(
        EvalPrediction(predictions=np.eye(5)[y_pred], label_ids=y_true))
    assert metrics["semeval_f1"] == pytest.approx(100 * 5 / 12)  # as in the hand computation above
    assert "klue_micro_f1" not in make_compute_metrics(NAMES)(
        EvalPrediction(predictions=np.eye(4)[Y_PRED], label_ids=np.array(Y_TRUE)))
    with pytest.raises(KorclfError, match="'no_relation'"):
        make_compute_metrics(NAMES, relation_metrics="klue")
    with pytest.raises(KorclfError, match="'Other'"):
        make_compute_metrics(RE_NAMES, relation_metrics="semeval")
    with pytest.raises(KorclfError, match="'tacred'"):
        make_compute_metrics(RE_NAMES, relation_metrics="tacred")
