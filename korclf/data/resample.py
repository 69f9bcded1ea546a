"""Resampling of the training split with imbalanced-learn, returned as row indices.

A sampler needs vectors, and a text classifier needs texts, so korclf fits the sampler on a real
feature space of the training texts and keeps only what maps back to real rows:

- ``features="tfidf"``: character 1-3-gram TF-IDF of the (already normalised) texts. Rows are
  L2-normalised, so the samplers' Euclidean neighbours are the cosine neighbours.
- ``features="encoder"``: mean-pooled last hidden states of the backbone before fine-tuning
  (:func:`encoder_embedder`), or any ``embed`` callable texts -> float array.

Token ids are never given to a sampler: they are not a vector space.

Methods (``sampler_kwargs`` go to the imbalanced-learn class unchanged):

- ``enn`` (``EditedNearestNeighbours``), ``random_under`` (``RandomUnderSampler``): the rows
  kept are the sampler's ``sample_indices_``.
- ``random_over`` (``RandomOverSampler``): ``sample_indices_`` repeats real rows. Its
  ``shrinkage`` (smoothed bootstrap) perturbs vectors and is refused.
- ``smoteenn`` (``SMOTEENN``): SMOTE synthesises vectors, which have no text. korclf maps each
  synthetic point that ENN keeps to the **nearest real training row of the same class** (among
  all real rows of that class, in the same feature space) and trains on that row again, so the
  class keeps the size SMOTEENN gives it; the real rows ENN keeps are kept as they are. The
  report says how many synthetic points there were and how many distinct rows they became.
  ``smote`` / ``enn`` may be given as dicts of parameters of the inner SMOTE / ENN.

``sampling_strategy`` may map label names (or ids) to row counts. ENN's default cleans every class
but the smallest, which on many small, overlapping classes can empty a class (an error, as is an
empty result): ``sampling_strategy: majority`` cleans only the largest class.

Only the training split is resampled; the caller selects the returned indices from it.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import KorclfError

logger = logging.getLogger(__name__)

METHODS = ("none", "enn", "smoteenn", "random_under", "random_over")
FEATURES = ("tfidf", "encoder")
# Character n-grams need no tokenizer and catch Korean morphology (stems, particles, endings).
TFIDF_SETTINGS = {"analyzer": "char", "ngram_range": (1, 3), "sublinear_tf": True, "dtype": np.float32}


def _sampler_class(method: str):
    if method == "enn":
        from imblearn.under_sampling import EditedNearestNeighbours

        return EditedNearestNeighbours
    if method == "random_under":
        from imblearn.under_sampling import RandomUnderSampler

        return RandomUnderSampler
    if method == "random_over":
        from imblearn.over_sampling import RandomOverSampler

        return RandomOverSampler
    from imblearn.combine import SMOTEENN

    return SMOTEENN


def _check_params(cls, kwargs: dict, what: str) -> None:
    valid = sorted(cls().get_params(deep=False))
    for key in kwargs:
        if key not in valid:
            raise KorclfError(f"resample_kwargs: unknown parameter '{key}' for {what} ({cls.__name__}); "
                              f"valid parameters: {', '.join(valid)}")


def _class_keys(strategy, label_names: Optional[Sequence[str]]):
    """A ``sampling_strategy`` dict may name classes by label name (YAML keys) or by id."""
    if not isinstance(strategy, dict):
        return strategy
    out = {}
    for key, value in strategy.items():
        if label_names is not None and str(key) in list(map(str, label_names)):
            out[list(map(str, label_names)).index(str(key))] = value
        elif isinstance(key, (int, np.integer)):
            out[int(key)] = value
        else:
            raise KorclfError(f"resample_kwargs: sampling_strategy names class {key!r}, which is not a label")
    return out


def build_sampler(method: str, sampler_kwargs: Optional[dict] = None, seed: int = 0,
                  label_names: Optional[Sequence[str]] = None):
    """The imbalanced-learn sampler for ``method``, with ``random_state=seed`` where it takes one."""
    if method not in METHODS or method == "none":
        raise KorclfError(f"resample {method!r}: choose one of {list(METHODS[1:])}")
    cls = _sampler_class(method)
    kwargs = dict(sampler_kwargs or {})
    _check_params(cls, kwargs, f"resample '{method}'")
    if "sampling_strategy" in kwargs:
        kwargs["sampling_strategy"] = _class_keys(kwargs["sampling_strategy"], label_names)
    if method == "random_over" and kwargs.get("shrinkage") is not None:
        raise KorclfError("resample_kwargs: 'shrinkage' makes random_over perturb vectors, which cannot become "
                          "text; leave it unset (random_over duplicates real rows)")
    if method == "smoteenn":
        from imblearn.over_sampling import SMOTE
        from imblearn.under_sampling import EditedNearestNeighbours

        inner = {"smote": SMOTE, "enn": EditedNearestNeighbours}
        for key, inner_cls in inner.items():
            params = kwargs.get(key)
            if params is None:
                continue
            if not isinstance(params, dict):
                raise KorclfError(f"resample_kwargs: '{key}' must be a mapping of {inner_cls.__name__} parameters")
            _check_params(inner_cls, params, f"resample 'smoteenn' {key}")
            params = dict(params)
            if key == "smote":
                params.setdefault("random_state", kwargs.get("random_state", seed))
                params.setdefault("sampling_strategy", kwargs.get("sampling_strategy", "auto"))
            else:
                params.setdefault("sampling_strategy", "all")  # SMOTEENN's own default for its ENN
            if "sampling_strategy" in params:
                params["sampling_strategy"] = _class_keys(params["sampling_strategy"], label_names)
            kwargs[key] = inner_cls(**params)
    if "random_state" in cls().get_params(deep=False):
        kwargs.setdefault("random_state", seed)
    return cls(**kwargs)


def tfidf_features(texts: Sequence[str]):
    """Sparse character n-gram TF-IDF of ``texts`` (fitted on them: the training split only)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(**TFIDF_SETTINGS).fit_transform(list(texts))


def encoder_embedder(model, tokenizer, max_length: int, batch_size: int = 64) -> Callable[[Sequence[str]], np.ndarray]:
    """A callable texts -> (n, hidden) float32 array: the backbone's last hidden state, mean-pooled over the mask.

    ``model.base_model`` is the encoder of a stock ``AutoModelForSequenceClassification`` (``.bert``,
    ``.roberta``…) and of korclf's ``korclf-encoder`` / ``korclf-rbert`` heads (``.encoder``). Texts
    are embedded in batches sorted by length (less padding), in eval mode under
    ``torch.inference_mode``; the model's train/eval mode is restored afterwards.
    """
    import torch

    from ..models.encoder_utils import encoder_forward_kwargs, masked_mean

    encoder = model.base_model
    if isinstance(encoder, torch.nn.ModuleList) or not hasattr(encoder, "config"):
        raise KorclfError(f"resample_features: encoder needs a model with one base encoder, which "
                          f"{type(model).__name__} does not have; use resample_features: tfidf")

    def embed(texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        lengths = [len(t) for t in texts]
        order = np.argsort(lengths, kind="stable")
        device = next(encoder.parameters()).device
        vectors = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
        was_training = encoder.training
        encoder.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(texts), batch_size):
                    rows = order[start:start + batch_size]
                    batch = tokenizer([texts[i] for i in rows], truncation=True, max_length=max_length,
                                      padding=True, return_tensors="pt")
                    inputs = encoder_forward_kwargs(encoder, batch["input_ids"].to(device),
                                                    batch["attention_mask"].to(device),
                                                    batch["token_type_ids"].to(device)
                                                    if "token_type_ids" in batch else None)
                    hidden = encoder(**inputs, return_dict=True).last_hidden_state
                    pooled = masked_mean(hidden, inputs["attention_mask"])
                    vectors[rows] = pooled.float().cpu().numpy()
        finally:
            encoder.train(was_training)
        return vectors

    return embed


def _counts(labels: np.ndarray, names: list[str]) -> dict[str, int]:
    counts = Counter(labels.tolist())
    return {name: int(counts.get(i, 0)) for i, name in enumerate(names)}


def _features(texts, method_features: str, embed) -> object:
    if method_features == "tfidf":
        return tfidf_features(texts)
    if embed is None:
        raise KorclfError("resample_features: encoder needs an embed callable (see encoder_embedder)")
    features = np.asarray(embed(list(texts)))
    if features.ndim != 2 or len(features) != len(texts):
        raise KorclfError(f"resample: the embedder returned shape {features.shape} for {len(texts)} texts; "
                          "expected (texts, dimensions)")
    if not np.issubdtype(features.dtype, np.floating):
        raise KorclfError(f"resample: the embedder returned {features.dtype} values; samplers need float vectors "
                          "(never token ids)")
    return features


def _map_synthetic(features, labels: np.ndarray, synthetic_features, synthetic_labels: np.ndarray) -> np.ndarray:
    """Index of the nearest real row of the same class for each synthetic point."""
    from sklearn.neighbors import NearestNeighbors

    mapped = np.empty(len(synthetic_labels), dtype=np.int64)
    for label in np.unique(synthetic_labels):
        real = np.flatnonzero(labels == label)
        todo = np.flatnonzero(synthetic_labels == label)
        neighbours = NearestNeighbors(n_neighbors=1).fit(features[real])
        nearest = neighbours.kneighbors(synthetic_features[todo], return_distance=False)[:, 0]
        mapped[todo] = real[nearest]
    return mapped


def resample_indices(texts: Sequence[str], labels: Sequence[int], method: str, features: str = "tfidf",
                     sampler_kwargs: Optional[dict] = None, seed: int = 0,
                     embed: Optional[Callable[[Sequence[str]], np.ndarray]] = None,
                     label_names: Optional[Sequence[str]] = None) -> tuple[np.ndarray, dict]:
    """Rows of the training split to train on after resampling, and a report for the run folder.

    ``labels`` are class ids (0..k-1). The indices are sorted; ``random_over`` and ``smoteenn``
    repeat rows. The report has the class counts before and after (keyed by label name), the
    sampler and its parameters, and for ``smoteenn`` the synthetic points and what they became.
    """
    texts = list(texts)
    labels = np.asarray(labels, dtype=np.int64)
    if len(texts) != len(labels):
        raise KorclfError(f"resample: {len(texts)} texts but {len(labels)} labels")
    if features not in FEATURES:
        raise KorclfError(f"resample_features {features!r}: choose one of {list(FEATURES)}")
    num_labels = max(len(label_names) if label_names is not None else 0, int(labels.max()) + 1 if len(labels) else 0)
    names = [str(name) for name in label_names] if label_names is not None else [str(i) for i in range(num_labels)]
    before = _counts(labels, names)
    report = {"method": method, "features": features, "rows_before": len(labels), "class_counts_before": before}
    if method == "none":
        return np.arange(len(labels)), {**report, "rows_after": len(labels), "class_counts_after": before}
    if len(labels) == 0:
        raise KorclfError("resample: the training split is empty")

    sampler = build_sampler(method, sampler_kwargs, seed, names)
    vectors = _features(texts, features, embed)
    try:
        resampled, resampled_labels = sampler.fit_resample(vectors, labels)
    except (ValueError, TypeError) as error:
        raise KorclfError(f"resample '{method}' failed on {len(labels)} training rows "
                          f"(resample_kwargs {sampler_kwargs or {}}): {error}") from None
    if method == "smoteenn":
        return _finish_smoteenn(sampler, vectors, labels, resampled, resampled_labels, names, before, report)
    indices = np.sort(np.asarray(sampler.sample_indices_, dtype=np.int64))
    return _finish(indices, labels, names, before, report, sampler)


def _finish(indices, labels, names, before, report, sampler, extra=None):
    after = _counts(labels[indices], names)
    if len(indices) == 0:
        raise KorclfError(f"resample '{report['method']}' left no training rows")
    vanished = [name for name in names if before[name] > 0 and after[name] == 0]
    if vanished:
        raise KorclfError(f"resample '{report['method']}' removed every training row of class(es) {vanished}; "
                          "change resample_kwargs (e.g. sampling_strategy: majority, to clean only the largest class) "
                          "or use another method")
    report.update(rows_after=int(len(indices)), class_counts_after=after, sampler=type(sampler).__name__,
                  sampler_params={k: (v if isinstance(v, (int, float, str, bool, type(None), dict, list)) else repr(v))
                                  for k, v in sampler.get_params(deep=False).items()})
    if extra:
        report.update(extra)
    logger.info("Resampled the training split with %s (%s features): %d -> %d rows", report["method"],
                report["features"], report["rows_before"], report["rows_after"])
    logger.info("Class counts before: %s", before)
    logger.info("Class counts after:  %s", after)
    return indices, report


def _finish_smoteenn(sampler, vectors, labels, resampled, resampled_labels, names, before, report):
    """SMOTE appends its synthetic points after the real rows; ENN's ``sample_indices_`` index that stack."""
    kept = np.asarray(sampler.enn_.sample_indices_, dtype=np.int64)
    is_synthetic = kept >= len(labels)
    real = kept[~is_synthetic]
    mapped = np.empty(0, dtype=np.int64)
    if is_synthetic.any():
        mapped = _map_synthetic(vectors, labels, resampled[np.flatnonzero(is_synthetic)],
                                np.asarray(resampled_labels)[is_synthetic])
    indices = np.sort(np.concatenate([real, mapped]))
    synthetic = {
        "policy": "each synthetic point kept by ENN is replaced by the nearest real training row of its class",
        "generated_by_smote": int(sum(sampler.smote_.sampling_strategy_.values())),
        "kept_by_enn": int(is_synthetic.sum()),
        "distinct_real_rows_used": int(len(np.unique(mapped))),
        "real_rows_removed_by_enn": int(len(labels) - len(real)),
    }
    logger.info("SMOTEENN: SMOTE generated %d synthetic points, ENN kept %d; each became its nearest real "
                "training row of the same class (%d distinct rows)", synthetic["generated_by_smote"],
                synthetic["kept_by_enn"], synthetic["distinct_real_rows_used"])
    return _finish(indices, labels, names, before, report, sampler, {"synthetic": synthetic})
