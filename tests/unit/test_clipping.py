"""Gradient clipping from scratch (cnncourse.reference.clipping) = Keras' clipnorm / clipvalue / global_clipnorm."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.reference import clipping

TOL = 1e-6  # one float32 SGD step


def _params_and_grads(seed=0, scale=5.0):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 2, 3)]
    params = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [(scale * rng.normal(size=s)).astype("float32") for s in shapes]
    grads[1] *= 0.01  # a small bias gradient, below every threshold
    return params, grads


def _keras_sgd_step(params, grads, learning_rate, **clip):
    variables = [keras.Variable(p) for p in params]
    optimizer = keras.optimizers.SGD(learning_rate, **clip)
    optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))
    return [keras.ops.convert_to_numpy(v) for v in variables]


@pytest.mark.parametrize(
    "clip", [{"clipnorm": 1.0}, {"clipnorm": 100.0}, {"clipvalue": 0.5}, {"global_clipnorm": 2.0}, {"global_clipnorm": 1e3}, {}],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "none",
)
def test_one_sgd_step_equals_keras(clip):
    params, grads = _params_and_grads()
    expected = _keras_sgd_step(params, grads, 0.1, **clip)
    for got, want in zip(clipping.sgd_step(params, grads, 0.1, **clip), expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


def test_clipnorm_clips_each_tensor_while_global_clipnorm_clips_them_together():
    g_kernel, g_bias = np.full((3, 4), 1.0, "float32"), np.array([0.3, 0.4], "float32")  # norms sqrt(12) and 0.5
    per_tensor = clipping.clip_by_norm([g_kernel, g_bias], 1.0)
    assert np.linalg.norm(per_tensor[0]) == pytest.approx(1.0)  # the kernel is shrunk to norm 1 ...
    np.testing.assert_array_equal(per_tensor[1], g_bias)  # ... the bias, already short, is not
    together = clipping.clip_by_global_norm([g_kernel, g_bias], 1.0)
    assert clipping.global_norm(together) == pytest.approx(1.0)
    scale = 1.0 / np.sqrt(12 + 0.25)
    np.testing.assert_allclose(together[1], g_bias * scale, rtol=1e-6)  # one factor for every tensor
    # so only the global form keeps the direction of the whole step
    def direction(gs):
        v = np.concatenate([g.ravel() for g in gs])
        return v / np.linalg.norm(v)

    original = direction([g_kernel, g_bias])
    assert np.allclose(direction(together), original)
    assert not np.allclose(direction(per_tensor), original)
    # and Keras does the same: its SGD moves the bias by the unclipped gradient under clipnorm
    params = [np.zeros((3, 4), "float32"), np.zeros(2, "float32")]
    moved = _keras_sgd_step(params, [g_kernel, g_bias], 1.0, clipnorm=1.0)
    np.testing.assert_allclose(moved[1], -g_bias, atol=TOL)
    moved = _keras_sgd_step(params, [g_kernel, g_bias], 1.0, global_clipnorm=1.0)
    np.testing.assert_allclose(moved[1], -g_bias * scale, atol=TOL)


def test_clipvalue_bounds_components_and_turns_the_step():
    g = [np.array([3.0, 0.1, -2.0], "float32")]
    clipped = clipping.clip_by_value(g, 0.5)[0]
    np.testing.assert_array_equal(clipped, np.array([0.5, 0.1, -0.5], "float32"))
    cosine = clipped @ g[0] / (np.linalg.norm(clipped) * np.linalg.norm(g[0]))
    assert cosine < 0.99  # no longer parallel to the gradient


def test_short_and_zero_gradients_pass_unchanged():
    g = [np.zeros((2, 2), "float32"), np.array([0.1, -0.1], "float32")]
    for fn, c in ((clipping.clip_by_norm, 1.0), (clipping.clip_by_global_norm, 1.0), (clipping.clip_by_value, 1.0)):
        for got, want in zip(fn(g, c), g):
            np.testing.assert_array_equal(got, want)
    assert clipping.global_norm([np.array([3.0]), np.array([[4.0]])]) == pytest.approx(5.0)


def test_bad_arguments_raise_like_keras():
    params, grads = _params_and_grads()
    with pytest.raises(ValueError, match="only one of"):
        clipping.sgd_step(params, grads, 0.1, clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError):  # Keras refuses the same combination
        keras.optimizers.SGD(0.1, clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="clipnorm must be positive"):
        clipping.clip_by_norm(grads, 0.0)
    with pytest.raises(ValueError, match="clipvalue"):
        clipping.clip_by_value(grads, -1.0)
    with pytest.raises(ValueError, match="list of arrays"):
        clipping.clip_by_norm(grads[0], 1.0)
    with pytest.raises(ValueError, match="same shapes"):
        clipping.sgd_step(params[:2], grads[1:], 0.1)
