"""Tests of cnncourse.reference.losses: the NumPy references against the maths, autodiff and Keras.

Runs on every Keras backend: ``cnncourse.autodiff.grad`` dispatches to the active backend's autodiff
(GradientTape on TensorFlow, jax.grad on JAX), so the derivative checks run once per backend.
"""

import math

import keras
import numpy as np
import pytest

from cnncourse.autodiff import grad as autodiff_grad
from cnncourse.reference import losses as L

RNG_SEEDS = range(5)


def logits(seed: int, shape=(6,), scale: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, shape)


# ---------------------------------------------------------------- softmax


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_softmax_is_a_distribution(seed):
    z = logits(seed, (8, 10), scale=5.0)
    y = L.softmax(z)
    assert np.all(y >= 0) and np.all(y <= 1)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("shift", [-50.0, 3.0, 1000.0])
def test_softmax_is_invariant_to_adding_a_constant(shift):
    z = logits(0, (4, 7))
    np.testing.assert_allclose(L.softmax(z + shift), L.softmax(z), atol=1e-12)


def test_softmax_along_other_axis():
    z = logits(1, (5, 3))
    np.testing.assert_allclose(L.softmax(z, axis=0), L.softmax(z.T).T, atol=1e-15)
    np.testing.assert_allclose(L.softmax(z, axis=0).sum(axis=0), 1.0, atol=1e-12)


def test_softmax_matches_keras():
    z = logits(2, (4, 10))
    keras_y = keras.ops.convert_to_numpy(keras.ops.softmax(z.astype("float32"), axis=-1))
    np.testing.assert_allclose(L.softmax(z), keras_y, atol=1e-6)


def test_naive_softmax_overflows_where_stable_softmax_does_not():
    z = np.array([1000.0, 1001.0, 1002.0])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = L.naive_softmax(z)
    assert np.all(np.isnan(naive))
    np.testing.assert_allclose(L.softmax(z), L.softmax(z - 1000.0), atol=1e-15)
    # on moderate logits the two agree
    np.testing.assert_allclose(L.naive_softmax(z - 1000.0), L.softmax(z), atol=1e-15)


def test_logsumexp_and_log_softmax():
    z = logits(3, (3, 5))
    np.testing.assert_allclose(L.logsumexp(z), np.log(np.exp(z).sum(axis=-1)), atol=1e-12)
    assert L.logsumexp(z, keepdims=True).shape == (3, 1)
    np.testing.assert_allclose(L.log_softmax(z), np.log(L.softmax(z)), atol=1e-12)
    extreme = np.array([0.0, 800.0])
    np.testing.assert_allclose(L.log_softmax(extreme), [-800.0, 0.0], atol=1e-12)
    assert L.logsumexp(extreme) == pytest.approx(800.0)


# ---------------------------------------------------------------- Jacobian


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_softmax_jacobian_equals_autodiff(seed):
    z = logits(seed)
    auto = L.autodiff_jacobian(lambda v: keras.ops.softmax(v), z)
    np.testing.assert_allclose(L.softmax_jacobian(z), auto, atol=1e-6)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_softmax_jacobian_equals_finite_differences(seed):
    z = logits(seed)
    np.testing.assert_allclose(L.softmax_jacobian(z), L.numerical_jacobian(L.softmax, z), atol=1e-8)


def test_softmax_jacobian_off_diagonal_sign_and_structure():
    z = logits(7)
    y = L.softmax(z)
    jac = L.softmax_jacobian(z)
    off = ~np.eye(len(z), dtype=bool)
    assert np.all(jac[off] < 0), "∂y_i/∂z_j = −y_i y_j < 0 for i ≠ j"
    np.testing.assert_allclose(np.diag(jac), y * (1 - y), atol=1e-15)
    np.testing.assert_allclose(jac, jac.T, atol=1e-15)  # diag(y) − y yᵀ is symmetric
    np.testing.assert_allclose(jac.sum(axis=0), 0.0, atol=1e-15)  # outputs always sum to 1
    lecture_sign = np.diag(y * (1 - y)) + np.outer(y, y) * off
    assert not np.allclose(lecture_sign, L.numerical_jacobian(L.softmax, z), atol=1e-3)


def test_softmax_jacobian_batched():
    z = logits(8, (3, 4))
    jac = L.softmax_jacobian(z)
    assert jac.shape == (3, 4, 4)
    for row, zr in zip(jac, z):
        np.testing.assert_allclose(row, L.softmax_jacobian(zr), atol=1e-15)


# ---------------------------------------------------------------- cross-entropy


def test_worked_examples_in_bits_and_nats():
    # the lecture's two examples: only the true class's probability matters for one-hot t
    t = [1, 0, 0, 0]
    first = [0.775, 0.116, 0.039, 0.070]
    second = [0.936, 0.023, 0.021, 0.020]
    assert round(float(L.cross_entropy(t, first, base=2)), 4) == 0.3677
    assert round(float(L.cross_entropy(t, second, base=2)), 4) == 0.0954
    assert round(float(L.cross_entropy(t, second, base=2)), 3) == 0.095
    assert round(float(L.cross_entropy(t, first)), 4) == 0.2549
    assert round(float(L.cross_entropy(t, second)), 4) == 0.0661
    # bits = nats / ln 2
    assert float(L.cross_entropy(t, first, base=2)) == pytest.approx(float(L.cross_entropy(t, first)) / math.log(2))


def test_cross_entropy_ignores_zero_targets_even_at_zero_probability():
    assert float(L.cross_entropy([0, 1], [0.0, 1.0])) == 0.0
    assert float(L.cross_entropy([1, 0], [0.0, 1.0])) == math.inf


def test_cross_entropy_rejects_unknown_base():
    with pytest.raises(ValueError, match="base"):
        L.cross_entropy([1, 0], [0.5, 0.5], base=10)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_fused_softmax_cross_entropy_equals_composition(seed):
    z = logits(seed, (4, 6))
    t = np.eye(6)[np.arange(4)]
    np.testing.assert_allclose(L.softmax_cross_entropy(t, z), L.cross_entropy(t, L.softmax(z)), atol=1e-12)


# ---------------------------------------------------------------- gradient y − t


def _soft_target(seed: int, n: int) -> np.ndarray:
    return L.softmax(np.random.default_rng(100 + seed).normal(size=n))


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("target", ["one_hot", "soft"])
def test_y_minus_t_equals_autodiff_of_ce_of_softmax(seed, target):
    z = logits(seed)
    t = np.eye(6)[seed % 6] if target == "one_hot" else _soft_target(seed, 6)
    t32 = t.astype("float32")

    def loss(v):  # cross-entropy of the (unfused) softmax, written as the lecture writes it
        return -keras.ops.sum(t32 * keras.ops.log(keras.ops.softmax(v)))

    grad = L.softmax_cross_entropy_grad(z, t)
    np.testing.assert_allclose(grad, autodiff_grad(loss, z), atol=1e-6)
    np.testing.assert_allclose(grad, L.numerical_grad(lambda v: L.cross_entropy(t, L.softmax(v)), z), atol=1e-7)


def test_y_minus_t_equals_jacobian_chain_rule():
    z, t = logits(4), np.eye(6)[2]
    upstream = -t / L.softmax(z)  # ∂L/∂y
    np.testing.assert_allclose(L.softmax_jacobian(z).T @ upstream, L.softmax_cross_entropy_grad(z, t), atol=1e-12)


def test_y_minus_t_refuses_targets_that_are_not_distributions():
    with pytest.raises(ValueError, match="sum to 1"):
        L.softmax_cross_entropy_grad([1.0, 2.0], [1.0, 1.0])


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_mse_softmax_grad_equals_autodiff(seed):
    z, t = logits(seed), np.eye(6)[seed % 6]
    t32 = t.astype("float32")
    auto = autodiff_grad(lambda v: keras.ops.mean(keras.ops.square(keras.ops.softmax(v) - t32)), z)
    np.testing.assert_allclose(L.mse_softmax_grad(z, t), auto, atol=1e-6)


def test_mse_gradient_saturates_where_ce_gradient_does_not():
    # true class 0 with a very wrong logit: CE still pushes with |∂L/∂z_0| ≈ 1, MSE barely at all
    z, t = np.array([-10.0, 5.0, 0.0, 0.0]), np.eye(4)[0]
    assert abs(L.softmax_cross_entropy_grad(z, t)[0]) > 0.99
    assert abs(L.mse_softmax_grad(z, t)[0]) < 1e-6


# ---------------------------------------------------------------- loss zoo vs keras.losses


def _keras_value(name, y_true, y_pred, **kwargs):
    fn = getattr(keras.losses, L.ZOO[name].keras_name)
    return keras.ops.convert_to_numpy(fn(y_true, y_pred, **kwargs)).astype(np.float64)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", list(L.ZOO))
def test_zoo_loss_equals_keras(name, seed):
    y_true, y_pred = L.zoo_inputs(name, np.random.default_rng(seed))
    y_pred = y_pred.astype("float32")  # both sides see the same (float32) numbers
    if L.ZOO[name].targets != "sparse":
        y_true = y_true.astype("float32")
    ours = L.ZOO[name].reference(y_true, y_pred)
    theirs = _keras_value(name, y_true, y_pred)
    assert ours.shape == theirs.shape == (64,)
    assert np.max(np.abs(ours - theirs)) <= 1e-6


def test_zoo_lists_the_lectures_nine_losses():
    assert list(L.ZOO) == [
        "mse", "msle", "mae", "binary_crossentropy", "hinge", "squared_hinge",
        "categorical_crossentropy", "sparse_categorical_crossentropy", "kl_divergence",
    ]
    with pytest.raises(ValueError, match="zoo holds"):
        L.zoo_inputs("focal", np.random.default_rng(0))


@pytest.mark.parametrize("name", ["categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy"])
def test_from_logits_equals_keras(name):
    rng = np.random.default_rng(5)
    y_true, _ = L.zoo_inputs(name, rng)
    z = rng.normal(0.0, 3.0, (64, 10)).astype("float32")
    if L.ZOO[name].targets != "sparse":
        y_true = y_true.astype("float32")
    ours = L.ZOO[name].reference(y_true, z, from_logits=True)
    theirs = _keras_value(name, y_true, z, from_logits=True)
    assert np.max(np.abs(ours - theirs)) <= 1e-5


def test_clipping_caps_the_loss_like_keras():
    # p = 0 for the true class: the textbook loss is infinite, Keras (and the reference) give −log ε
    y_true, y_pred = np.array([[1.0, 0.0]], "float32"), np.array([[0.0, 1.0]], "float32")
    cap = -math.log(L.EPSILON)
    assert float(L.categorical_crossentropy(y_true, y_pred)[0]) == pytest.approx(cap)
    assert float(_keras_value("categorical_crossentropy", y_true, y_pred)[0]) == pytest.approx(cap, rel=1e-5)
    # binary: one element, true label 1, predicted probability 0 (1 − ε is not a float32, so
    # only the lower clip gives the same cap in float32 and float64)
    one, zero = np.array([[1.0]], "float32"), np.array([[0.0]], "float32")
    assert float(L.binary_crossentropy(one, zero)[0]) == pytest.approx(cap, rel=1e-6)
    assert float(_keras_value("binary_crossentropy", one, zero)[0]) == pytest.approx(cap, rel=1e-5)


def test_extreme_logits_only_the_fused_loss_is_exact():
    z = np.array([[0.0, 200.0]], "float32")
    t = np.array([[1.0, 0.0]], "float32")
    # float32 softmax: the true class's probability underflows to 0. (Converted to NumPy: on
    # TensorFlow a softmax *tensor* remembers its logits and Keras' loss quietly uses them.)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(z))
    assert probs[0, 0] == 0.0
    via_probs = float(keras.ops.convert_to_numpy(keras.losses.categorical_crossentropy(t, probs))[0])
    fused = float(keras.ops.convert_to_numpy(keras.losses.categorical_crossentropy(t, z, from_logits=True))[0])
    assert fused == pytest.approx(200.0, rel=1e-6)
    assert float(L.softmax_cross_entropy(t, z)[0]) == pytest.approx(200.0)
    assert via_probs == pytest.approx(-math.log(L.EPSILON), rel=1e-5)


def test_hinge_converts_zero_one_labels_and_only_them():
    rng = np.random.default_rng(6)
    y01 = rng.integers(0, 2, (8, 5)).astype(float)
    pred = rng.normal(size=(8, 5))
    np.testing.assert_allclose(L.hinge(y01, pred), L.hinge(2 * y01 - 1, pred), atol=1e-15)
    np.testing.assert_allclose(L.squared_hinge(y01, pred), L.squared_hinge(2 * y01 - 1, pred), atol=1e-15)
    mixed = y01.copy()
    mixed[0, 0] = 0.5  # not all binary: Keras leaves every label as it is
    expected = np.mean(np.maximum(1 - mixed * pred, 0), axis=-1)
    np.testing.assert_allclose(L.hinge(mixed, pred), expected, atol=1e-15)
    np.testing.assert_allclose(L.hinge(mixed, pred), _keras_value("hinge", mixed, pred), atol=1e-6)


def test_sparse_equals_categorical_on_one_hot_and_validates_labels():
    rng = np.random.default_rng(7)
    labels, probs = L.zoo_inputs("sparse_categorical_crossentropy", rng)
    np.testing.assert_allclose(
        L.sparse_categorical_crossentropy(labels, probs),
        L.categorical_crossentropy(np.eye(10)[labels], probs),
        atol=1e-15,
    )
    np.testing.assert_allclose(
        L.sparse_categorical_crossentropy(labels[:, None], probs), L.sparse_categorical_crossentropy(labels, probs)
    )
    with pytest.raises(ValueError, match="class indices"):
        L.sparse_categorical_crossentropy(np.full(64, 10), probs)


def test_kl_is_cross_entropy_minus_entropy():
    rng = np.random.default_rng(8)
    t, p = L.zoo_inputs("kl_divergence", rng)
    entropy = L.cross_entropy(t, t)
    np.testing.assert_allclose(L.kl_divergence(t, p), L.cross_entropy(t, p) - entropy, atol=1e-12)


def test_batch_loss_is_the_mean_of_per_sample_losses():
    # Keras' Loss objects reduce with "sum_over_batch_size": the mean negative log-likelihood
    rng = np.random.default_rng(9)
    labels, probs = L.zoo_inputs("sparse_categorical_crossentropy", rng)
    per_sample = L.sparse_categorical_crossentropy(labels, probs)
    nll = -np.mean(np.log(probs[np.arange(len(labels)), labels]))
    assert float(np.mean(per_sample)) == pytest.approx(nll, rel=1e-12)
    batch = keras.losses.SparseCategoricalCrossentropy()(labels, probs.astype("float32"))
    assert float(keras.ops.convert_to_numpy(batch)) == pytest.approx(nll, abs=1e-6)


# ---------------------------------------------------------------- the gradient-check helpers


def test_numerical_and_autodiff_grad_of_a_known_function():
    x = np.array([0.5, -1.0, 2.0])
    expected = 2 * x + np.cos(x)  # d/dx Σ (x² + sin x)
    np.testing.assert_allclose(L.numerical_grad(lambda v: np.sum(v**2 + np.sin(v)), x), expected, atol=1e-8)
    auto = autodiff_grad(lambda v: keras.ops.sum(v**2 + keras.ops.sin(v)), x)
    np.testing.assert_allclose(auto, expected, atol=1e-5)
    jac = L.autodiff_jacobian(lambda v: v**2, x)
    np.testing.assert_allclose(jac, np.diag(2 * x), atol=1e-6)
