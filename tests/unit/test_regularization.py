"""cnncourse.reference.regularization: dropout's two conventions and the two kinds of weight decay, vs Keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.reference import optim
from cnncourse.reference import regularization as R


# ----------------------------------------------------------------------------- dropout
def test_dropout_conventions_agree_in_expectation_and_differ_in_scale():
    rng = np.random.default_rng(0)
    h = np.linspace(0.5, 2.0, 50)
    p = 0.3
    vanilla = np.mean([R.vanilla_dropout(h, p, training=True, rng=rng) for _ in range(4000)], axis=0)
    inverted = np.mean([R.inverted_dropout(h, p, training=True, rng=rng) for _ in range(4000)], axis=0)
    np.testing.assert_allclose(vanilla, R.vanilla_dropout(h, p, training=False), rtol=0.1)
    np.testing.assert_allclose(inverted, R.inverted_dropout(h, p, training=False), rtol=0.1)
    np.testing.assert_allclose(R.vanilla_dropout(h, p, training=False), p * h)
    np.testing.assert_array_equal(R.inverted_dropout(h, p, training=False), h)
    one = R.inverted_dropout(np.ones(10_000), p, training=True, rng=rng)
    assert set(np.unique(one)) == {0.0, 1 / p}
    assert abs(np.mean(one > 0) - p) < 0.02


def test_inverted_dropout_is_what_keras_dropout_does():
    x = np.ones((200, 500), dtype="float32")
    y = keras.ops.convert_to_numpy(keras.layers.Dropout(0.25, seed=1)(x, training=True))
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(keras.layers.Dropout(0.25)(x, training=False)), x)


@pytest.mark.parametrize("p", [0.0, 1.5, -0.1, True, "0.5"])
def test_dropout_rejects_bad_keep_probabilities(p):
    with pytest.raises(ValueError):
        R.inverted_dropout(np.ones(3), p, training=False)
    with pytest.raises(ValueError):
        R.dropout_mask((3,), p, np.random.default_rng(0))


def test_training_dropout_needs_an_rng():
    with pytest.raises(ValueError):
        R.vanilla_dropout(np.ones(3), 0.5, training=True)
    with pytest.raises(ValueError):
        R.inverted_dropout(np.ones(3), 0.5, training=True)


def _layers(seed=0, sizes=(6, 40, 30, 4)):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(a, b)) / np.sqrt(a), rng.normal(size=b) * 0.1) for a, b in zip(sizes[:-1], sizes[1:])]


@pytest.mark.parametrize("mode", ["vanilla", "inverted"])
def test_monte_carlo_matches_scaled_pass_exactly_only_for_linear_networks(mode):
    layers = _layers()
    x = np.random.default_rng(1).normal(size=(5, 6))
    linear_mc = R.monte_carlo_forward(x, layers[:2], 0.5, 20_000, mode=mode, activation="linear")
    linear_scaled = R.mlp_forward(x, layers[:2], 0.5, mode=mode, activation="linear")
    np.testing.assert_allclose(linear_mc, linear_scaled, atol=0.05)
    relu_mc = R.monte_carlo_forward(x, layers, 0.5, 20_000, mode=mode)
    relu_scaled = R.mlp_forward(x, layers, 0.5, mode=mode)
    assert np.abs(relu_mc - relu_scaled).max() > 0.05  # E[g(h)] != g(E[h]) through the ReLU


def test_mlp_without_dropout_is_the_plain_network():
    layers = _layers()
    x = np.random.default_rng(2).normal(size=(3, 6))
    plain = np.maximum(np.maximum(x @ layers[0][0] + layers[0][1], 0) @ layers[1][0] + layers[1][1], 0)
    plain = plain @ layers[2][0] + layers[2][1]
    for mode in ("vanilla", "inverted"):
        np.testing.assert_allclose(R.mlp_forward(x, layers, 1.0, mode=mode), plain)
        got = R.mlp_forward(x, layers, 1.0, mode=mode, training=True, rng=np.random.default_rng(0))
        np.testing.assert_allclose(got, plain)
    with pytest.raises(ValueError):
        R.mlp_forward(x, layers, mode="other")
    with pytest.raises(ValueError):
        R.mlp_forward(x, layers, activation="gelu")
    with pytest.raises(ValueError):
        R.mlp_forward(x, [])
    with pytest.raises(ValueError):
        R.monte_carlo_forward(x, layers, 0.5, 0)


def test_mask_count_digits():
    assert R.mask_count_digits(4096) == 1234  # 2**4096 ≈ 1.04e1233
    assert R.mask_count_digits(0) == 1 and R.mask_count_digits(10) == 4
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError):
            R.mask_count_digits(bad)


# ----------------------------------------------------------------------------- optimizer steps
def test_sgd_l2_in_the_loss_equals_weight_decay():
    rng = np.random.default_rng(0)
    w, g = rng.normal(size=20), rng.normal(size=20)
    np.testing.assert_allclose(R.sgd_l2_step(w, g, 0.1, 0.01 / 2), R.sgd_weight_decay_step(w, g, 0.1, 0.01))
    assert not np.allclose(R.sgd_l2_step(w, g, 0.1, 0.01), R.sgd_weight_decay_step(w, g, 0.1, 0.01))
    with pytest.raises(ValueError):
        R.sgd_l2_step(w, g, 0.0, 0.1)
    with pytest.raises(ValueError):
        R.sgd_weight_decay_step(w, g, 0.1, -1.0)


def _keras_steps(optimizer, w0, grads):
    var = keras.Variable(np.array(w0, dtype="float32"))
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.array(g, dtype="float32")), var)])
    return keras.ops.convert_to_numpy(var)


def test_references_match_keras_sgd_adam_and_adamw():
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=30)
    grads = [rng.normal(size=30) for _ in range(5)]
    w = w0.copy()
    for g in grads:
        w = R.sgd_weight_decay_step(w, g, 0.05, 0.1)
    np.testing.assert_allclose(_keras_steps(keras.optimizers.SGD(0.05, weight_decay=0.1), w0, grads), w, atol=1e-5)
    for decay in (0.0, 0.1):  # notebook 06 uses the from-scratch Adam/AdamW of reference.optim
        ours = optim.AdamW(0.01, weight_decay=decay) if decay else optim.Adam(0.01)
        w = w0.copy()
        for g in grads:
            w = ours.step(w, g)
        opt = keras.optimizers.AdamW(0.01, weight_decay=decay) if decay else keras.optimizers.Adam(0.01)
        np.testing.assert_allclose(_keras_steps(opt, w0, grads), w, atol=1e-5)


def test_adam_with_l2_is_not_adamw():
    """An L2 penalty in Adam's gradient is divided by sqrt(v): large-gradient weights decay less."""
    w0 = np.array([1.0, 1.0])
    adam, adamw, free = optim.Adam(1e-3), optim.AdamW(1e-3, weight_decay=0.1), optim.Adam(1e-3)
    w_l2, w_dw, w_free = w0.copy(), w0.copy(), w0.copy()
    for _ in range(50):
        g = np.array([10.0, 0.01])
        w_l2, w_dw, w_free = adam.step(w_l2, g + 0.1 * w_l2), adamw.step(w_dw, g), free.step(w_free, g)
    l2_shrink, decoupled_shrink = w_free - w_l2, w_free - w_dw
    assert l2_shrink[0] < 0.01 * l2_shrink[1]  # the large-gradient weight barely decays under L2
    np.testing.assert_allclose(decoupled_shrink[0], decoupled_shrink[1], rtol=0.01)  # AdamW: alike
