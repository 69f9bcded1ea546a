"""TF-IDF + logistic regression baseline on a toy set of three obviously separable topics."""

import csv
import json

import pytest

from korclf.baseline import run_baseline
from korclf.errors import KorclfError

LABELS = ["음식", "날씨", "운동"]
TRAIN = {
    0: ["김치찌개가 정말 맛있다", "비빔밥을 먹었다", "라면이 너무 맛있다", "불고기 맛집을 찾았다", "떡볶이를 먹고 싶다",
        "김밥이 맛있다", "냉면 맛집에 갔다", "삼겹살을 구워 먹었다", "된장찌개가 맛있다", "치킨을 시켜 먹었다"],
    1: ["오늘 날씨가 맑다", "비가 많이 온다", "눈이 내린다", "바람이 세게 분다", "날씨가 춥다",
        "내일은 비가 온다고 한다", "하늘이 맑고 따뜻하다", "바람이 불고 춥다", "소나기가 내렸다", "날씨가 덥다"],
    2: ["축구 경기를 봤다", "야구 경기가 재미있다", "매일 달리기를 한다", "농구 시합에서 이겼다", "수영을 배운다",
        "헬스장에서 운동했다", "축구 선수가 골을 넣었다", "야구장에 갔다", "테니스를 친다", "마라톤을 완주했다"],
}
EVAL = {
    0: ["김치찌개를 먹었다", "냉면이 맛있다", "떡볶이 맛집"],
    1: ["눈이 많이 온다", "오늘은 바람이 분다", "날씨가 따뜻하다"],
    2: ["축구 시합을 봤다", "야구 선수가 홈런을 쳤다", "농구 경기에서 졌다"],
}


def flatten(groups):
    texts = [text for label in groups for text in groups[label]]
    labels = [label for label in groups for _ in groups[label]]
    return texts, labels


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    eval_texts, eval_labels = flatten(EVAL)
    eval_sets = {"eval": (eval_texts, eval_labels), "test": (eval_texts[:4], eval_labels[:4]),
                 "new": (["비가 온다", "라면 맛집"], None)}
    return run_baseline(*flatten(TRAIN), eval_sets, LABELS, str(out)), out


def test_metrics_per_split(char_run):
    results, out = char_run
    assert set(results) == {"eval", "test", "new"}
    assert results["eval"]["eval_accuracy"] == 1.0 and results["eval"]["eval_macro_f1"] == 1.0
    assert results["eval"]["eval_samples"] == 9
    assert results["eval"]["eval_report"]["날씨"]["support"] == 3
    assert results["new"] == {"new_samples": 2}
    saved = json.loads((out / "eval_results.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(results["eval"]))
    summary = json.loads((out / "baseline_results.json").read_text(encoding="utf-8"))
    assert summary["results"] == json.loads(json.dumps(results))
    assert summary["settings"]["features"] == "char" and summary["train_samples"] == 30


def test_report_files(char_run):
    _, out = char_run
    for split in ("eval", "test"):
        assert (out / f"{split}_confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "new_results.json").exists()
    with open(out / "new_predictions.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert list(rows[0]) == ["id", "text", "label", "prob_음식", "prob_날씨", "prob_운동"]
    assert [(row["id"], row["text"], row["label"]) for row in rows] == [("1", "비가 온다", "날씨"), ("2", "라면 맛집", "음식")]
    assert sum(float(rows[0][f"prob_{name}"]) for name in LABELS) == pytest.approx(1.0, abs=1e-5)
    with open(out / "predictions.tsv", encoding="utf-8") as f:
        assert len(f.read().splitlines()) == 1 + 4


def test_morph_features(tmp_path):
    eval_texts, eval_labels = flatten(EVAL)
    results = run_baseline(*flatten(TRAIN), {"eval": (eval_texts, eval_labels)}, LABELS, str(tmp_path),
                           features="morph", class_weight="balanced")
    assert results["eval"]["eval_accuracy"] == 1.0
    settings = json.loads((tmp_path / "baseline_results.json").read_text(encoding="utf-8"))["settings"]
    # Morphemes in >= 2 training texts (min_df=2), particles and endings gone, no repeated bigram:
    # 가(다) 경기 날씨 내리 맑 맛있 맛집 먹 바람 불 비 오 축구 춥 하.
    assert settings["features"] == "morph" and settings["vocabulary_size"] == 15


def test_label_missing_from_train_gets_zero_probability(tmp_path):
    texts, labels = flatten({0: TRAIN[0], 1: TRAIN[1]})
    run_baseline(texts, labels, {"new": (["비가 온다"], None)}, LABELS, str(tmp_path))
    with open(tmp_path / "new_predictions.tsv", encoding="utf-8", newline="") as f:
        row = next(csv.DictReader(f, delimiter="\t"))
    assert row["label"] == "날씨" and float(row["prob_운동"]) == 0.0


def test_invalid_settings(tmp_path):
    texts, labels = flatten(TRAIN)
    with pytest.raises(KorclfError, match="features 'bpe'"):
        run_baseline(texts, labels, {}, LABELS, str(tmp_path), features="bpe")
    with pytest.raises(KorclfError, match="two different labels"):
        run_baseline(texts[:3], [0, 0, 0], {}, LABELS, str(tmp_path))


def test_from_config_uses_the_run_splits(tmp_path, capsys):
    from korclf.baseline import run_baseline_from_config

    results = run_baseline_from_config(["recipes/configs/quickstart.yaml", "--output_dir", str(tmp_path)])
    # 120 test rows; validation is 15 % of train split off by the pipeline (72 rows), reported as "eval".
    assert results["test"]["test_samples"] == 120 and results["eval"]["eval_samples"] == 72
    assert results["test"]["test_accuracy"] > 0.7
    assert (tmp_path / "baseline" / "predictions.tsv").exists()
    assert "test metrics" in capsys.readouterr().out
