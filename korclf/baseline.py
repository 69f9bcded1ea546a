"""TF-IDF + logistic regression: the floor a fine-tuned model has to beat.

It trains in about a minute on CPU and writes the same report files as a transformer run
(``{split}_results.json`` with ``{split}_``-prefixed metrics, ``{split}_confusion_matrix.png``,
``predictions.tsv``), so the two sit side by side.

Hyper-parameters (defaults):

- ``features="char"``: character 1-3-grams (``analyzer="char"``, spaces included, so word
  boundaries show up in the n-grams), ``sublinear_tf=True`` (1 + log tf: a repeated ㅋ or ! does not
  dominate), ``min_df=2`` (drops n-grams seen once: half the vocabulary, no accuracy lost).
- ``features="morph"``: Kiwi morphemes without particles, endings and symbols
  (``drop_pos=["J*", "E*", "S*"]``), then word 1-2-grams with the same TF-IDF settings. When the
  run's normaliser already ends with a morphemes step, its output is used as it is.
- ``LogisticRegression(C=2.0, solver="lbfgs", max_iter=1000)``: lbfgs converges in a few dozen
  iterations on these features and fits several classes jointly (multinomial). ``C=2`` reproduces
  the reference figures of ``../shared/data`` (NSMC accuracy 87.4 %: measured 87.6 %, C=1 gives
  87.2 %; NSMC-rating macro-F1 21.4 %: measured 21.5 %, C=1 gives 19.8 %).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Optional, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from .errors import KorclfError
from .reporting import evaluation_report, write_json, write_predictions
from .text.morphemes import MorphemeFilter

logger = logging.getLogger(__name__)

FEATURES = {
    "char": {"analyzer": "char", "ngram_range": (1, 3)},
    "morph": {"analyzer": "word", "ngram_range": (1, 2), "token_pattern": r"\S+"},
}
MORPH_SETTINGS = {"drop_pos": ["J*", "E*", "S*"]}
# Texts per Kiwi call: large enough for Kiwi's worker threads, small enough that a 150k-row split
# never holds every analysis in memory at once.
MORPH_BATCH = 5000


def build_pipeline(features="char", ngram_range=None, max_features=None, class_weight=None, C=2.0, seed=42):
    """The scikit-learn pipeline ``TfidfVectorizer -> LogisticRegression`` for these settings."""
    if features not in FEATURES:
        raise KorclfError(f"baseline features {features!r}: choose one of {sorted(FEATURES)}")
    if class_weight not in (None, "balanced"):
        raise KorclfError(f"baseline class_weight {class_weight!r}: use null or 'balanced'")
    vectorizer = dict(FEATURES[features], sublinear_tf=True, min_df=2, max_features=max_features)
    if ngram_range is not None:
        vectorizer["ngram_range"] = tuple(ngram_range)
    return make_pipeline(
        TfidfVectorizer(**vectorizer),
        LogisticRegression(C=C, class_weight=class_weight, solver="lbfgs", max_iter=1000, random_state=seed),
    )


def analyse_morphemes(texts: Sequence[str], batch_size: int = MORPH_BATCH) -> list[str]:
    """The ``morph`` feature text: Kiwi morphemes, particles / endings / symbols dropped, batch by batch."""
    morphemes = MorphemeFilter(**MORPH_SETTINGS)
    texts = list(texts)
    out: list[str] = []
    for start in range(0, len(texts), batch_size):
        out.extend(morphemes(texts[start:start + batch_size]))
    return out


def _own_morphemes(features: str, normalizer) -> Optional[dict]:
    """The baseline's own Kiwi settings, or None when it uses none (char) or the normaliser's (morph)."""
    return MORPH_SETTINGS if features == "morph" and not getattr(normalizer, "morphemes", None) else None


def _prepare(texts: Sequence[str], features: str, normalizer, normalized: bool) -> list[str]:
    texts = list(texts)
    if normalizer is not None and not normalized:
        texts = normalizer(texts)
    if _own_morphemes(features, normalizer):  # else the normaliser did it
        texts = analyse_morphemes(texts)
    return texts


def predict_proba(pipeline, texts: list[str], num_labels: int) -> np.ndarray:
    """Probabilities over every label, with zero columns for labels the training split lacked."""
    probabilities = np.zeros((len(texts), num_labels))
    probabilities[:, pipeline.classes_] = pipeline.predict_proba(texts)
    return probabilities


def run_baseline(
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    eval_sets: dict[str, tuple[Sequence[str], Optional[Sequence[int]]]],
    label_names: list[str],
    output_dir: str,
    features: str = "char",
    ngram_range: Optional[Sequence[int]] = None,
    max_features: Optional[int] = None,
    class_weight: Optional[str] = None,
    C: float = 2.0,
    seed: int = 42,
    normalizer=None,
    normalized: bool = False,
    ids: Optional[dict[str, Sequence]] = None,
    shown_texts: Optional[dict[str, Sequence[str]]] = None,
) -> dict:
    """Train on ``train_*`` and score each split of ``eval_sets`` (name -> (texts, label ids or None)).

    The split name is the metric prefix, as in a transformer run: pass ``eval`` for the validation
    split and ``test`` for the test split. Splits with labels get ``{name}_results.json`` and a
    confusion matrix; ``test`` and unlabeled splits get predictions (``predictions.tsv`` for
    ``test``, ``{name}_predictions.tsv`` otherwise). Everything is also gathered in
    ``baseline_results.json``. Returns ``{split: metrics}``.

    ``normalizer``: the run's :class:`~korclf.text.normalize.TextNormalizer`, applied to every text
    unless ``normalized`` says the texts went through it already (a run's prepared splits); either
    way it is recorded. ``ids`` / ``shown_texts`` (split -> values) fill the id and text columns of
    the predictions files (default: row numbers from 1 and the model's input text).
    """
    if len(train_texts) != len(train_labels):
        raise KorclfError(f"baseline: {len(train_texts)} training texts but {len(train_labels)} labels")
    if len(set(train_labels)) < 2:
        raise KorclfError("baseline: the training split needs at least two different labels")
    settings = {"features": features, "ngram_range": ngram_range, "max_features": max_features,
                "class_weight": class_weight, "C": C, "seed": seed}
    pipeline = build_pipeline(**settings)
    os.makedirs(output_dir, exist_ok=True)

    start = time.perf_counter()
    pipeline.fit(_prepare(train_texts, features, normalizer, normalized), list(train_labels))
    train_seconds = time.perf_counter() - start

    results = {}
    for name, (texts, labels) in eval_sets.items():
        inputs = _prepare(texts, features, normalizer, normalized)
        probabilities = predict_proba(pipeline, inputs, len(label_names))
        metrics = {f"{name}_samples": len(texts)}
        if labels is not None:
            metrics.update(evaluation_report(labels, probabilities.argmax(-1), label_names, output_dir, name))
            write_json(os.path.join(output_dir, f"{name}_results.json"), metrics)
        if name == "test" or labels is None:
            filename = "predictions.tsv" if name == "test" else f"{name}_predictions.tsv"
            row_ids = (ids or {}).get(name) or range(1, len(texts) + 1)
            write_predictions(os.path.join(output_dir, filename), row_ids, (shown_texts or {}).get(name) or texts,
                              probabilities, label_names)
        results[name] = metrics

    write_json(os.path.join(output_dir, "baseline_results.json"), {
        "model": "tfidf+logistic_regression",
        "settings": {**settings, "pipeline": repr(pipeline), "vocabulary_size": len(pipeline[0].vocabulary_),
                     "normalization": normalizer.to_dict() if normalizer is not None else None,
                     "morphemes": _own_morphemes(features, normalizer)},
        "train_samples": len(train_texts),
        "train_seconds": round(train_seconds, 2),
        "results": results,
    })
    return results


# Config split name -> metric prefix, as in a transformer run.
SPLIT_PREFIXES = {"validation": "eval", "test": "test"}
PAIR_SEPARATOR = " | "


def _split_texts(prepared, split: str, raw: bool = False) -> list[str]:
    """A split's text columns joined with `` | `` (sentence pairs); ``raw``: as read, before normalisation."""
    dataset = prepared.splits[split]
    columns = []
    for column in prepared.text_columns:
        shown = f"_raw_{column}"
        columns.append(dataset[shown if raw and shown in dataset.column_names else column][:])
    return [PAIR_SEPARATOR.join(parts) for parts in zip(*columns)]


def baseline_for_prepared(prepared, data_args, output_dir: str, seed: int, features: str = "char") -> dict:
    """The baseline on a run's already prepared splits (``report_baseline: true`` and ``korclf baseline``).

    The texts are the run's normalised ones, so both models see the same input; train is
    required, the validation split is scored as ``eval`` and the test split as ``test``.
    Predictions carry the run's row ids and the texts as read. Returns ``{prefix: metrics}``.
    """
    if "train" not in prepared.splits:
        raise KorclfError("the baseline needs a training split: set train_file (or dataset_name)")
    id_column = data_args.id_column
    eval_sets, ids, shown = {}, {}, {}
    for split, prefix in SPLIT_PREFIXES.items():
        if split not in prepared.splits:
            continue
        dataset = prepared.splits[split]
        eval_sets[prefix] = (_split_texts(prepared, split), prepared.labels(split, data_args.label_column))
        if id_column and id_column in dataset.column_names:
            ids[prefix] = list(dataset[id_column])
        shown[prefix] = _split_texts(prepared, split, raw=True)
    results = run_baseline(_split_texts(prepared, "train"), prepared.labels("train", data_args.label_column),
                           eval_sets, prepared.label_names, output_dir, features=features, seed=seed,
                           normalizer=prepared.normalizer, normalized=True, ids=ids, shown_texts=shown)
    for prefix, metrics in results.items():
        if f"{prefix}_accuracy" in metrics:
            logger.info("Baseline (TF-IDF %s + logistic regression) %s accuracy %.4f, macro-F1 %.4f", features,
                        prefix, metrics[f"{prefix}_accuracy"], metrics[f"{prefix}_macro_f1"])
    return results


def run_baseline_from_config(argv: list[str]) -> dict:
    """``korclf baseline CONFIG.yaml [--key value ...]``: the floor on a run config's data.

    The splits are loaded, checked and normalised exactly as for training; several text columns
    (sentence pairs) are joined with `` | ``. ``baseline_features`` picks the features. Files go
    to ``{output_dir}/baseline``.
    """
    from .arguments import parse_config
    from .data.prepare import prepare_splits
    from .reporting import format_metrics_table

    model_args, data_args, training_args = parse_config(argv)
    prepared = prepare_splits(model_args, data_args, training_args.seed)
    results = baseline_for_prepared(prepared, data_args, os.path.join(training_args.output_dir, "baseline"),
                                    training_args.seed, training_args.baseline_features)
    for prefix, metrics in results.items():
        if f"{prefix}_accuracy" in metrics:
            print(format_metrics_table(metrics, prefix, prepared.label_names), flush=True)
    return results
