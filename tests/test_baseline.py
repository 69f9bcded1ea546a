"""TF-IDF + logistic regression baseline on a toy set of three obviously separable topics."""

import csv
import json

import numpy as np
import pytest
import yaml
from helpers import LABELS as LABEL_NAMES
from helpers import SAMPLE_TEST, base_config, read_json, read_predictions, read_tsv

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


# ------------------------------------------------------------------ morpheme features and `korclf baseline`

MORPH_SENTENCES = ["학교에서 친구를 만났다.", "이 영화 정말 재미있어요!!", "배우들의 연기가 너무 어색했다 ㅋㅋ",
                   "10000원이 아깝다...", "OST는 좋았지만 스토리가 별로"]


def test_morph_features_drop_particles_endings_and_symbols():
    from korclf.baseline import analyse_morphemes
    from korclf.text.morphemes import get_kiwi

    got = analyse_morphemes(MORPH_SENTENCES)
    # reference: Kiwi's analysis, one sentence at a time, without every morpheme tagged as a particle (J*),
    # an ending (E*) or a symbol (S*)
    reference = [" ".join(t.form for t in get_kiwi().tokenize(text) if t.tag[0] not in "JES")
                 for text in MORPH_SENTENCES]
    assert got == reference
    assert got[:3] == ["학교 친구 만나", "이 영화 정말 재미있", "배우 들 연기 너무 어색 하"]
    # batches are analysed independently: any batch size gives the same strings
    assert analyse_morphemes(MORPH_SENTENCES, batch_size=2) == got


def _sample_config(tmp_path, **overrides) -> str:
    """The shipped topic sample: all 480 training rows (15 % held out as validation), 120 test rows."""
    config = base_config(tmp_path)
    config.pop("max_train_samples")
    config.update({"test_file": SAMPLE_TEST, "validation_split_ratio": 0.15, "normalize": True, **overrides})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("features", ["char", "morph"])
def test_cli_baseline_command(tmp_path, capsys, features):
    from sklearn.metrics import accuracy_score, f1_score

    from korclf.baseline import MORPH_SETTINGS
    from korclf.cli import main

    argv = ["baseline", _sample_config(tmp_path)] + (["--baseline_features", "morph"] if features == "morph" else [])
    assert main(argv) == 0
    out = tmp_path / "out" / "baseline"
    for prefix in ("eval", "test"):
        assert (out / f"{prefix}_confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    eval_metrics, test_metrics = read_json(out / "eval_results.json"), read_json(out / "test_results.json")
    assert eval_metrics["eval_samples"] == 72 and test_metrics["test_samples"] == 120
    settings = read_json(out / "baseline_results.json")["settings"]
    assert settings["features"] == features and settings["normalization"]["max_repeat"] == 2
    assert settings["morphemes"] == (MORPH_SETTINGS if features == "morph" else None)
    assert "test metrics" in capsys.readouterr().out

    # predictions.tsv: the test file's ids and texts as written, in order; scored against the true labels
    truth = read_tsv(SAMPLE_TEST)
    rows = read_predictions(out)
    assert [row["id"] for row in rows] == [row["id"] for row in truth]
    assert [row["text"] for row in rows] == [row["text"] for row in truth]  # not the normalised text
    assert "상장 첫날 주가 2배 뛰었다!!!!!" in [row["text"] for row in rows]
    probabilities = np.array([[float(row[f"prob_{name}"]) for name in LABEL_NAMES] for row in rows])
    assert [LABEL_NAMES[i] for i in probabilities.argmax(1)] == [row["label"] for row in rows]
    y_true, y_pred = [row["label"] for row in truth], [row["label"] for row in rows]
    assert test_metrics["test_accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert test_metrics["test_macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
    assert test_metrics["test_accuracy"] > 0.7  # four clearly separated topics


def test_cli_baseline_rejects_unknown_features(tmp_path, capsys):
    from korclf.cli import main

    assert main(["baseline", _sample_config(tmp_path), "--baseline_features", "bpe"]) == 2
    assert "baseline_features" in capsys.readouterr().err


def test_baseline_for_prepared_reuses_the_run_morphemes(tmp_path, monkeypatch):
    """A run whose normaliser ends with Kiwi: the morph baseline trains on its output, no second analysis."""
    from korclf import baseline
    from korclf.arguments import parse_config
    from korclf.data.prepare import prepare_splits

    path = _sample_config(tmp_path, normalize=False, morpheme_drop_pos=["J*", "E*", "S*"], max_predict_samples=30)
    model_args, data_args, training_args = parse_config([path])
    prepared = prepare_splits(model_args, data_args, training_args.seed)
    train_texts = prepared.splits["train"]["text"][:]
    assert train_texts[:5] == baseline.analyse_morphemes(prepared.splits["train"]["_raw_text"][:5])

    def analyse_again(texts, batch_size=0):
        raise AssertionError("the texts were analysed by the run's normaliser already")

    monkeypatch.setattr(baseline, "analyse_morphemes", analyse_again)
    out = tmp_path / "prepared"
    results = baseline.baseline_for_prepared(prepared, data_args, str(out), training_args.seed, "morph")
    assert set(results) == {"eval", "test"} and results["test"]["test_samples"] == 30
    summary = read_json(out / "baseline_results.json")
    assert summary["settings"]["morphemes"] is None
    assert summary["settings"]["normalization"]["morphemes"]["drop_pos"] == ["J*", "E*", "S*"]
    assert summary["train_samples"] == len(train_texts) == 408
    # the vocabulary is that of the analysed training texts: word 1-2-grams seen in >= 2 texts
    from sklearn.feature_extraction.text import CountVectorizer

    counts = CountVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"\S+", lowercase=True, min_df=2)
    assert summary["settings"]["vocabulary_size"] == len(counts.fit(train_texts).vocabulary_)


def test_training_run_with_report_baseline_writes_the_floor_beside_the_model(tmp_path, capsys):
    from helpers import read_json, run_config

    result = run_config(tmp_path, report_baseline=True, max_steps=2)
    assert result.rc == 0
    floor = read_json(f"{result.output_dir}/baseline/eval_results.json")
    model = read_json(f"{result.output_dir}/eval_results.json")
    assert floor["eval_samples"] == model["eval_samples"]  # the same validation rows
    out = capsys.readouterr().out
    assert "TF-IDF + logistic-regression floor" in out
    assert f"{floor['eval_accuracy']:.4f}" in out and f"{model['eval_accuracy']:.4f}" in out
