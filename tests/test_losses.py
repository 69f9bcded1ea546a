import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from korclf.errors import KorclfError
from korclf.losses import LOSSES, build_loss, compute_class_weights

LOGITS = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, -2.0, 3.0]]
LABELS = [0, 2, 1, 0]


def batch(requires_grad=False):
    logits = torch.tensor(LOGITS, requires_grad=requires_grad)
    return logits, torch.tensor(LABELS)


def np_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_ce_matches_torch_with_class_weights():
    logits, labels = batch()
    weights = torch.tensor([0.5, 2.0, 1.0])
    loss = build_loss("ce", 3, class_weights=weights)(logits, labels)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, weight=weights))


def test_ce_label_smoothing_matches_torch():
    logits, labels = batch()
    loss = build_loss("ce", 3, label_smoothing=0.1)(logits, labels)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, label_smoothing=0.1))
    assert not torch.allclose(loss, F.cross_entropy(logits, labels))


def test_focal_gamma_zero_with_alpha_is_weighted_ce_with_plain_mean():
    # Reduction: sum(alpha_y * ce_i) / N, not torch's sum(alpha_y * ce_i) / sum(alpha_y).
    logits, labels = batch()
    alpha = torch.tensor([0.25, 0.5, 1.0])
    loss = build_loss("focal", 3, focal_gamma=0.0, focal_alpha=alpha.tolist())(logits, labels)
    ce = F.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(loss, (alpha[labels] * ce).sum() / len(LABELS))


def test_focal_gamma_two_matches_hand_formula():
    logits, labels = batch()
    p = np_softmax(np.array(LOGITS))[np.arange(4), LABELS]
    alpha = np.array([0.25, 0.5, 1.0])[LABELS]
    class_weight = np.array([2.0, 1.0, 1.0])[LABELS]
    expected = np.mean(-class_weight * alpha * (1 - p) ** 2 * np.log(p))
    loss = build_loss("focal", 3, class_weights=[2.0, 1.0, 1.0], focal_alpha=[0.25, 0.5, 1.0])(logits, labels)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_focal_scalar_alpha_scales_every_class():
    logits, labels = batch()
    plain = build_loss("focal", 3)(logits, labels)
    scaled = build_loss("focal", 3, focal_alpha=0.25)(logits, labels)
    assert scaled.item() == pytest.approx(0.25 * plain.item(), rel=1e-6)


def test_dice_matches_hand_computation():
    logits = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [0.5, 0.5, 3.0]])
    labels = [0, 0, 2]
    p = np_softmax(logits)[np.arange(3), labels]
    alpha, gamma = 1.0, 1.0
    q = (1 - p) ** alpha * p
    expected = np.mean(1 - (2 * q + gamma) / (q + 1 + gamma))
    loss = build_loss("dice", 3)(torch.tensor(logits, dtype=torch.float32), torch.tensor(labels))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_dice_options_are_used():
    logits = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    p = np_softmax(logits)[[0, 1], [0, 0]]
    q = (1 - p) ** 2.0 * p
    expected = np.mean(1 - (2 * q + 0.5) / (q + 1 + 0.5))
    loss = build_loss("dice", 3, dice_alpha=2.0, dice_gamma=0.5)(torch.tensor(logits, dtype=torch.float32), torch.tensor([0, 0]))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", LOSSES)
def test_ignore_index_drops_examples(name):
    logits, labels = batch()
    masked = labels.clone()
    masked[1] = -100
    loss_fn = build_loss(name, 3, class_weights=[0.5, 2.0, 1.0])
    keep = torch.tensor([0, 2, 3])
    torch.testing.assert_close(loss_fn(logits, masked), loss_fn(logits[keep], labels[keep]))


@pytest.mark.parametrize("name", LOSSES)
def test_all_ignored_batch_gives_zero_with_finite_gradient(name):
    logits = torch.tensor(LOGITS, requires_grad=True)
    loss = build_loss(name, 3)(logits, torch.full((4,), -100))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    "name, options",
    [("ce", {"label_smoothing": 0.1}), ("focal", {"focal_gamma": 0.5}), ("dice", {"dice_alpha": 0.5})],
)
def test_gradients_finite_even_for_saturated_logits(name, options):
    # The third row puts p = 1.0 exactly in float32, where (1 - p) ** 0.5 has an infinite slope.
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [200.0, 0.0, 0.0]], requires_grad=True)
    loss = build_loss(name, 3, class_weights=[1.0, 2.0, 3.0], **options)(logits, torch.tensor([0, 2, 0]))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", LOSSES)
def test_bf16_logits_are_computed_in_float32(name):
    logits = torch.tensor(LOGITS, dtype=torch.bfloat16, requires_grad=True)
    loss_fn = build_loss(name, 3, class_weights=[0.5, 2.0, 1.0])
    loss = loss_fn(logits, torch.tensor(LABELS))
    loss.backward()
    assert loss.dtype == torch.float32
    assert logits.grad.dtype == torch.bfloat16 and torch.isfinite(logits.grad.float()).all()
    reference = loss_fn(logits.detach().float(), torch.tensor(LABELS))
    torch.testing.assert_close(loss, reference)


def test_weights_are_buffers_that_follow_to():
    loss_fn = build_loss("focal", 3, class_weights=[1.0, 2.0, 3.0], focal_alpha=0.5)
    assert dict(loss_fn.named_buffers())["weight"].tolist() == [0.5, 1.0, 1.5]
    assert loss_fn.to(torch.float64).weight.dtype == torch.float64


def test_balanced_weights_match_sklearn():
    labels = [0, 0, 0, 1, 2, 2, 0, 1]
    expected = compute_class_weight("balanced", classes=np.arange(3), y=np.array(labels))
    np.testing.assert_allclose(compute_class_weights(labels, 3, "balanced").numpy(), expected, rtol=1e-6)


def test_effective_number_weights_by_hand():
    # counts (3, 1), beta 0.5: (1-b)/(1-b**n) = (4/7, 1), rescaled to sum 2: (8/11, 14/11).
    weights = compute_class_weights([0, 1, 0, 0, -100], 2, "effective_number", beta=0.5)
    np.testing.assert_allclose(weights.numpy(), [8 / 11, 14 / 11], rtol=1e-6)


def test_explicit_weights_and_length_error():
    assert compute_class_weights([0], 2, [1.0, 3.0]).tolist() == [1.0, 3.0]
    with pytest.raises(KorclfError, match=r"class_weights.*2 values"):
        compute_class_weights([0, 1], 2, [1.0, 2.0, 3.0])
    with pytest.raises(KorclfError, match=r"class_weights.*3 values"):
        build_loss("ce", 3, class_weights=[1.0, 2.0])


def test_class_without_examples_is_named():
    with pytest.raises(KorclfError, match="class 1 has no training examples"):
        compute_class_weights([0, 0, 2], 3, "balanced")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: compute_class_weights([0, 1], 2, "inverse"), "'inverse' is not one of balanced, effective_number"),
        (lambda: compute_class_weights([0, 1], 2, "effective_number", beta=1.0), "beta"),
        (lambda: compute_class_weights([0, 5], 2, "balanced"), "label 5"),
        (lambda: build_loss("mse", 2), "'mse' is not one of ce, focal, dice"),
        (lambda: build_loss("focal", 2, label_smoothing=0.1), "label_smoothing applies to ce only"),
        (lambda: build_loss("dice", 2, focal_alpha=0.5), "focal_alpha applies to focal only"),
        (lambda: build_loss("focal", 3, focal_alpha=[0.5, 0.5]), "focal_alpha must have one value per label"),
        (lambda: build_loss("focal", 2, focal_gamma=-1.0), "focal_gamma"),
        (lambda: build_loss("focal", 2, focal_alpha="0.25,0.75"), "focal_alpha must be numbers"),
    ],
)
def test_option_errors_name_the_option(call, match):
    with pytest.raises(KorclfError, match=match):
        call()
