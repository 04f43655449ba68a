"""The NumPy normalization layers of cnncourse.reference.norm agree with Keras and with autodiff."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse import autodiff
from cnncourse.reference import norm

TOL = 1e-5


def _images(seed: int = 0, shape=(8, 5, 5, 6), scale: float = 3.0, shift: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * scale + shift).astype(np.float32)


def _keras_bn(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, **kw) -> keras.layers.BatchNormalization:
    layer = keras.layers.BatchNormalization(**kw)
    layer.build(x.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    return layer


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# --- batch normalization: forward ------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 5, 5, 6), (16, 4)])
def test_batchnorm_training_and_moving_averages_match_keras(shape):
    rng = np.random.default_rng(1)
    channels = shape[-1]
    gamma = rng.normal(size=channels).astype(np.float32)
    beta = rng.normal(size=channels).astype(np.float32)
    ours = norm.BatchNorm(channels, gamma=gamma, beta=beta)
    theirs = _keras_bn(np.zeros(shape, np.float32), gamma, beta)
    for step in range(6):
        x = _images(step, shape, scale=1.0 + step, shift=step - 2.0)
        assert _max_diff(ours(x, training=True), theirs(x, training=True)) <= TOL
    # after six steps the running averages have moved well away from (0, 1) ...
    assert _max_diff(ours.moving_mean, np.zeros(channels)) > 0.01
    # ... and equal Keras' (biased batch variance, moving = moving*0.99 + batch*0.01)
    assert _max_diff(ours.moving_mean, theirs.moving_mean) <= TOL
    assert _max_diff(ours.moving_variance, theirs.moving_variance) <= TOL
    x = _images(99, shape)
    assert _max_diff(ours(x, training=False), theirs(x, training=False)) <= TOL


def test_moving_variance_uses_the_biased_batch_variance():
    x = _images(3, (4, 3))
    layer = norm.BatchNorm(3, momentum=0.0)  # moving = batch statistics of this one batch
    layer(x, training=True)
    np.testing.assert_allclose(layer.moving_variance, x.var(axis=0), rtol=1e-6)
    assert not np.allclose(layer.moving_variance, x.var(axis=0, ddof=1), rtol=1e-3)


def test_training_output_is_normalized_per_channel_and_inference_is_not_batch_dependent():
    x = _images(4)
    layer = norm.BatchNorm(6)
    y = layer(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    # unit variance up to epsilon: var = v / (v + eps)
    v = x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), v / (v + 1e-3), rtol=1e-4)
    # inference: example 0 gives the same output alone or inside its batch
    np.testing.assert_allclose(layer(x[:1]), layer(x)[:1], rtol=1e-6)
    # training: it does not (the batch statistics change)
    assert _max_diff(norm.BatchNorm(6)(x[:2], training=True)[:1], norm.BatchNorm(6)(x, training=True)[:1]) > 0.01


def test_batchnorm_rejects_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        norm.BatchNorm(0)
    with pytest.raises(ValueError, match="momentum"):
        norm.BatchNorm(3, momentum=1.5)
    with pytest.raises(ValueError, match="gamma"):
        norm.BatchNorm(3, gamma=np.ones(4))
    with pytest.raises(ValueError, match="channels"):
        norm.BatchNorm(3)(np.zeros((2, 4)), training=True)
    with pytest.raises(ValueError, match="forward"):
        norm.BatchNorm(3).backward(np.zeros((2, 3)))


# --- batch normalization: backward -----------------------------------------------------------


def _bn_ops(x, gamma, beta, eps=1e-3, training=True, mean=None, var=None):
    """What keras.layers.BatchNormalization computes, with Keras' own ops (differentiable)."""
    if training:
        mean, var = keras.ops.moments(x, axes=tuple(range(len(x.shape) - 1)))
    return keras.ops.batch_normalization(x, mean, var, axis=-1, offset=beta, scale=gamma, epsilon=eps)


@pytest.mark.parametrize("training", [True, False])
def test_backward_matches_autodiff(training):
    rng = np.random.default_rng(5)
    x = _images(6, (6, 3, 3, 4))
    dy = rng.normal(size=x.shape).astype(np.float32)
    gamma = rng.normal(size=4).astype(np.float32)
    beta = rng.normal(size=4).astype(np.float32)
    layer = norm.BatchNorm(4, gamma=gamma, beta=beta, moving_mean=np.full(4, 1.5), moving_variance=np.full(4, 4.0))
    mean, var = layer.moving_mean.copy(), layer.moving_variance.copy()
    layer(x, training=training)
    dx, dgamma, dbeta = layer.backward(dy)

    def loss(x_, g_, b_):
        return keras.ops.sum(_bn_ops(x_, g_, b_, training=training, mean=mean, var=var) * dy)

    # the backend's autodiff (GradientTape on TensorFlow, jax.grad on JAX), one input at a time
    ref_dx = autodiff.grad(lambda x_: loss(x_, gamma, beta), x)
    ref_dgamma = autodiff.grad(lambda g_: loss(x, g_, beta), gamma)
    ref_dbeta = autodiff.grad(lambda b_: loss(x, gamma, b_), beta)
    scale = float(np.abs(ref_dx).max())
    assert scale > 0.01  # a real gradient, not a trivially zero one
    assert _max_diff(dx, ref_dx) <= 1e-5 * max(1.0, scale)
    assert _max_diff(dgamma, ref_dgamma) <= 1e-4
    assert _max_diff(dbeta, ref_dbeta) <= 1e-4


def test_training_gradient_is_orthogonal_to_shift_and_scale_of_the_input():
    rng = np.random.default_rng(7)
    x = _images(8, (32, 3))
    layer = norm.BatchNorm(3)
    layer(x, training=True)
    dx, _, _ = layer.backward(rng.normal(size=x.shape).astype(np.float32))
    np.testing.assert_allclose(dx.sum(axis=0), 0.0, atol=1e-5)  # shifting x does not change y
    x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    np.testing.assert_allclose((dx * x_hat).sum(axis=0), 0.0, atol=1e-3)  # ~ scaling x neither


# --- scale invariance ------------------------------------------------------------------------


def test_bn_of_scaled_weights_is_unchanged_for_positive_alpha_and_reflected_for_negative():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(64, 10)).astype(np.float64)
    w = rng.normal(size=(10, 5)).astype(np.float64)
    beta = rng.normal(size=5)
    gamma = rng.normal(size=5)

    def bn(z):
        return norm.BatchNorm(5, epsilon=0.0, gamma=gamma, beta=beta)(z, training=True)

    base = bn(x @ w)
    for alpha in (0.01, 0.5, 3.0, 100.0):
        assert _max_diff(bn(x @ (alpha * w)), base) <= 1e-4
    # alpha < 0 flips the sign of x_hat: the output is reflected about beta, 2*beta - BN(Wx)
    flipped = bn(x @ (-2.0 * w))
    assert _max_diff(flipped, base) > 0.1
    assert _max_diff(flipped, 2 * beta - base) <= 1e-4


def test_epsilon_breaks_scale_invariance_only_for_tiny_activations():
    x = _images(10, (64, 4), scale=1.0, shift=0.0)
    layer = norm.BatchNorm(4)
    assert _max_diff(layer(x * 1e-3, training=True), layer(x, training=True)) > 0.5
    # var ~ 1 vs epsilon 1e-3: x_hat shrinks by sqrt(v / (v + eps)), a relative 5e-4
    assert _max_diff(layer(x * 10, training=True), layer(x, training=True)) <= 5e-3


# --- layer, instance, group normalization ----------------------------------------------------


def test_layer_norm_matches_keras():
    x = _images(11)
    expected = keras.layers.LayerNormalization(axis=[1, 2, 3])(x)
    assert _max_diff(norm.layer_norm(x), expected) <= TOL
    # and differs from Keras' default axis=-1 (per pixel over channels)
    assert _max_diff(norm.layer_norm(x), keras.layers.LayerNormalization()(x)) > 0.1


def test_instance_norm_is_group_norm_with_one_channel_per_group():
    x = _images(12)
    expected = keras.layers.GroupNormalization(groups=x.shape[-1])(x)
    assert _max_diff(norm.instance_norm(x), expected) <= TOL
    assert _max_diff(norm.instance_norm(x), norm.group_norm(x, x.shape[-1])) <= TOL


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_group_norm_matches_keras(groups):
    x = _images(13)
    assert _max_diff(norm.group_norm(x, groups), keras.layers.GroupNormalization(groups=groups)(x)) <= TOL


def test_group_norm_with_affine_parameters_matches_keras():
    rng = np.random.default_rng(14)
    x = _images(14)
    layer = keras.layers.GroupNormalization(groups=2)
    layer.build(x.shape)
    gamma, beta = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    assert _max_diff(norm.group_norm(x, 2, gamma, beta), layer(x)) <= TOL


def test_group_norm_one_group_is_layer_norm_and_rejects_bad_groups():
    x = _images(15)
    assert _max_diff(norm.group_norm(x, 1), norm.layer_norm(x)) <= TOL
    with pytest.raises(ValueError, match="divide"):
        norm.group_norm(x, 4)


@pytest.mark.parametrize("fn", [norm.layer_norm, norm.instance_norm, lambda x: norm.group_norm(x, 3)])
def test_per_example_norms_do_not_depend_on_the_batch(fn):
    x = _images(16)
    np.testing.assert_allclose(fn(x[:1]), fn(x)[:1], rtol=1e-5, atol=1e-6)


def test_shared_statistics_masks_count_the_cells_each_layer_averages():
    shape = (4, 6, 5)
    kinds = ("batch", "layer", "instance", "group")
    counts = {k: int(norm.shared_statistics_mask(k, shape, groups=3).sum()) for k in kinds}
    assert counts == {"batch": 4 * 5, "layer": 6 * 5, "instance": 5, "group": 2 * 5}
    with pytest.raises(ValueError, match="kind"):
        norm.shared_statistics_mask("weight", shape)


# --- preprocessing helpers -------------------------------------------------------------------


def test_channel_stats_and_standardize():
    x = _images(17, (50, 4, 4, 3), scale=np.array([1.0, 2.0, 0.5]), shift=np.array([0.2, -1.0, 5.0]))
    mean, std = norm.channel_stats(x)
    assert mean.shape == std.shape == (3,)
    z = norm.standardize(x, mean, std)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 1, 2)), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="std"):
        norm.standardize(x, mean, np.array([1.0, 0.0, 1.0]))


def test_dropout_train_variance_matches_simulation():
    rng = np.random.default_rng(18)
    mean, var, rate = 1.0, 0.5, 0.3
    x = rng.normal(mean, np.sqrt(var), size=2_000_000)
    dropped = x * (rng.random(x.size) >= rate) / (1 - rate)
    predicted = norm.dropout_train_variance(mean, var, rate)
    assert predicted > var * 1.5
    assert abs(dropped.var() - predicted) <= 0.01 * predicted
    assert norm.dropout_train_variance(mean, var, 0.0) == pytest.approx(var)
    with pytest.raises(ValueError, match="rate"):
        norm.dropout_train_variance(mean, var, 1.0)
