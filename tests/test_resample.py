"""Resampling of the training split: korclf's indices against imbalanced-learn run by hand on the same features."""

from collections import Counter

import numpy as np
import pytest
import torch
from imblearn.combine import SMOTEENN
from imblearn.over_sampling import RandomOverSampler
from imblearn.under_sampling import EditedNearestNeighbours, RandomUnderSampler
from sklearn.feature_extraction.text import TfidfVectorizer

from korclf.data.resample import encoder_embedder, resample_indices
from korclf.errors import KorclfError

from helpers import tiny_config, tiny_tokenizer

NAMES = ["pos", "neg", "neutral"]
POOLS = [["좋아요", "최고", "재밌다", "감동"], ["별로", "지루", "최악", "실망"], ["그냥", "보통", "무난", "평범"]]


def imbalanced_texts(seed=0, sizes=(60, 25, 12)):
    """Short texts of 3 classes (60/25/12 rows), 60 % of the words from the class's own pool."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, size in enumerate(sizes):
        for _ in range(size):
            words = [rng.choice(POOLS[label] if rng.random() < 0.6 else POOLS[rng.integers(3)]) for _ in range(4)]
            texts.append(" ".join(words))
            labels.append(label)
    return texts, np.array(labels)


def reference_tfidf(texts):
    # the documented feature space, built here independently of korclf
    return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True).fit_transform(texts)


def counts(labels):
    return {name: int(np.sum(np.asarray(labels) == i)) for i, name in enumerate(NAMES)}


@pytest.mark.parametrize("method, sampler, kwargs", [
    ("enn", EditedNearestNeighbours, {}),
    ("enn", EditedNearestNeighbours, {"n_neighbors": 5, "kind_sel": "mode"}),
    ("random_under", RandomUnderSampler, {"random_state": 7}),
    ("random_over", RandomOverSampler, {"random_state": 7}),
])
def test_indices_are_the_samplers_own_rows_on_tfidf(method, sampler, kwargs):
    texts, labels = imbalanced_texts()
    reference = sampler(**kwargs)
    _, y_res = reference.fit_resample(reference_tfidf(texts), labels)
    passed = {k: v for k, v in kwargs.items() if k != "random_state"}
    indices, report = resample_indices(texts, labels, method, sampler_kwargs=passed, seed=kwargs.get("random_state", 0),
                                       label_names=NAMES)
    np.testing.assert_array_equal(indices, np.sort(reference.sample_indices_))
    assert counts(labels[indices]) == counts(y_res) == report["class_counts_after"]
    assert report["class_counts_before"] == {"pos": 60, "neg": 25, "neutral": 12}
    assert report["rows_before"] == 97 and report["rows_after"] == len(y_res)
    if method == "random_over":  # duplicates of real rows, every class at the majority's size
        assert report["class_counts_after"] == {"pos": 60, "neg": 60, "neutral": 60}
        assert len(np.unique(indices)) == 97
    else:
        assert len(np.unique(indices)) == len(indices) < 97


def test_sampler_kwargs_change_the_result_and_unknown_keys_are_named():
    texts, labels = imbalanced_texts()
    three, _ = resample_indices(texts, labels, "enn")
    five, report = resample_indices(texts, labels, "enn", sampler_kwargs={"n_neighbors": 5})
    assert report["sampler_params"]["n_neighbors"] == 5
    assert len(five) < len(three)  # more neighbours, more majority-class rows judged noisy
    with pytest.raises(KorclfError, match=r"unknown parameter 'k_neighbours'.*valid parameters: kind_sel, n_jobs, "
                                          r"n_neighbors, sampling_strategy"):
        resample_indices(texts, labels, "enn", sampler_kwargs={"k_neighbours": 5})
    with pytest.raises(KorclfError, match=r"unknown parameter 'neighbors' for resample 'smoteenn' smote.*k_neighbors"):
        resample_indices(texts, labels, "smoteenn", sampler_kwargs={"smote": {"neighbors": 3}})


def test_sampling_strategy_may_name_classes_by_label():
    texts, labels = imbalanced_texts()
    indices, report = resample_indices(texts, labels, "random_under", label_names=NAMES,
                                       sampler_kwargs={"sampling_strategy": {"pos": 20, "neg": 10}})
    assert report["class_counts_after"] == {"pos": 20, "neg": 10, "neutral": 12}
    assert set(indices[labels[indices] == 2]) == set(np.flatnonzero(labels == 2))


def test_smoteenn_maps_each_kept_synthetic_point_to_the_nearest_real_row_of_its_class():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], [40, 12, 8])
    vectors = rng.normal(size=(60, 2)) + np.array([[0, 0], [2.5, 0], [0, 2.5]])[labels]
    texts = [f"row {i}" for i in range(60)]
    lookup = dict(zip(texts, vectors))
    embed = lambda batch: np.array([lookup[t] for t in batch])  # noqa: E731

    reference = SMOTEENN(random_state=3)
    X_res, y_res = reference.fit_resample(vectors, labels)
    kept = reference.enn_.sample_indices_
    synthetic = kept >= 60
    expected = list(kept[~synthetic])
    for point, label in zip(X_res[synthetic], y_res[synthetic]):
        same = np.flatnonzero(labels == label)
        expected.append(same[np.argmin(((vectors[same] - point) ** 2).sum(1))])

    indices, report = resample_indices(texts, labels, "smoteenn", features="encoder", embed=embed, seed=3,
                                       label_names=NAMES)
    np.testing.assert_array_equal(indices, np.sort(expected))
    assert synthetic.sum() > 10  # the test exercises the mapping
    assert report["class_counts_after"] == counts(y_res)  # class sizes as SMOTEENN gives them
    assert report["synthetic"]["generated_by_smote"] == len(reference.smote_.fit_resample(vectors, labels)[1]) - 60
    assert report["synthetic"]["kept_by_enn"] == synthetic.sum()
    assert report["synthetic"]["real_rows_removed_by_enn"] == 60 - (~synthetic).sum()
    assert indices.min() >= 0 and indices.max() < 60  # real rows only


def test_smoteenn_on_tfidf_keeps_class_sizes():
    texts, labels = imbalanced_texts()
    _, y_res = SMOTEENN(random_state=0).fit_resample(reference_tfidf(texts), labels)
    indices, report = resample_indices(texts, labels, "smoteenn", label_names=NAMES)
    assert report["class_counts_after"] == counts(y_res) == counts(labels[indices])


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def stock_bert(tokenizer):
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config("bert", tokenizer)), "bert"


def korclf_encoder(tokenizer):
    from korclf.models import EncoderClassifierConfig, EncoderForSequenceClassification
    from korclf.models.encoder_utils import encoder_config_to_dict

    torch.manual_seed(0)
    config = EncoderClassifierConfig(encoder=encoder_config_to_dict(tiny_config("bert", tokenizer)), pooling="first")
    return EncoderForSequenceClassification(config), "encoder"


@pytest.mark.parametrize("build", [stock_bert, korclf_encoder])
def test_encoder_features_equal_a_mean_pool_computed_one_text_at_a_time(tokenizer, build):
    model, attribute = build(tokenizer)
    model.train()
    texts, _ = imbalanced_texts(sizes=(5, 3, 2))
    texts[1] = texts[1] + " 정말 " * 10  # lengths differ: batches are padded
    vectors = encoder_embedder(model, tokenizer, max_length=32, batch_size=3)(texts)
    assert getattr(model, attribute).training  # train mode restored after embedding in eval mode

    encoder = getattr(model, attribute).eval()
    with torch.no_grad():  # no padding at all: a plain mean over every token of each text
        expected = np.stack([encoder(**tokenizer(t, truncation=True, max_length=32, return_tensors="pt"))
                             .last_hidden_state[0].mean(0).numpy() for t in texts])
    assert vectors.shape == (10, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_encoder_mode_is_restored_and_features_feed_the_sampler(tokenizer):
    model, _ = stock_bert(tokenizer)
    model.train()
    texts, labels = imbalanced_texts()
    embed = encoder_embedder(model, tokenizer, max_length=32)
    indices, report = resample_indices(texts, labels, "enn", features="encoder", embed=embed)
    assert model.training and model.bert.training
    reference = EditedNearestNeighbours()
    reference.fit_resample(embed(texts), labels)
    np.testing.assert_array_equal(indices, np.sort(reference.sample_indices_))
    assert report["features"] == "encoder"


def test_multi_encoder_has_no_single_encoder():
    from korclf.models import MultiEncoderConfig, MultiEncoderForSequenceClassification
    from korclf.models.encoder_utils import encoder_config_to_dict

    encoder = encoder_config_to_dict(tiny_config("bert", tiny_tokenizer()))
    model = MultiEncoderForSequenceClassification(
        MultiEncoderConfig(encoders=[encoder, encoder], text_columns=["a", "b"], pooling="first"))
    with pytest.raises(KorclfError, match="resample_features: tfidf"):
        encoder_embedder(model, tiny_tokenizer(), 32)


def test_bad_inputs_give_clear_errors():
    texts, labels = imbalanced_texts()
    ids = lambda batch: np.arange(len(batch) * 4).reshape(-1, 4)  # noqa: E731  (token-id-like integers)
    with pytest.raises(KorclfError, match="never token ids"):
        resample_indices(texts, labels, "enn", features="encoder", embed=ids)
    with pytest.raises(KorclfError, match="needs an embed callable"):
        resample_indices(texts, labels, "enn", features="encoder")
    with pytest.raises(KorclfError, match="shrinkage"):
        resample_indices(texts, labels, "random_over", sampler_kwargs={"shrinkage": 0.5})
    with pytest.raises(KorclfError, match="resample 'bogus'"):
        resample_indices(texts, labels, "bogus")
    with pytest.raises(KorclfError, match="resample 'smoteenn' failed on 62 training rows"):
        resample_indices(texts[:62], labels[:62], "smoteenn", sampler_kwargs={"smote": {"k_neighbors": 5}})


def test_a_class_removed_entirely_is_an_error():
    # two 'neutral' points inside the 'pos' cluster: ENN (mode of 3 neighbours, every class) deletes both
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(0, 0.1, (10, 2)), [[0.0, 0.0], [0.01, 0.01]], rng.normal(5, 0.1, (5, 2))])
    labels = np.array([0] * 10 + [2] * 2 + [1] * 5)
    texts = [str(i) for i in range(17)]
    embed = lambda batch: vectors[[int(t) for t in batch]]  # noqa: E731
    with pytest.raises(KorclfError, match=r"removed every training row of class\(es\) \['neutral'\]"):
        resample_indices(texts, labels, "enn", features="encoder", embed=embed, label_names=NAMES,
                         sampler_kwargs={"sampling_strategy": "all", "kind_sel": "mode"})


def test_none_keeps_every_row():
    texts, labels = imbalanced_texts()
    indices, report = resample_indices(texts, labels, "none", label_names=NAMES)
    np.testing.assert_array_equal(indices, np.arange(97))
    assert report["class_counts_after"] == report["class_counts_before"] == Counter(
        {"pos": 60, "neg": 25, "neutral": 12})
