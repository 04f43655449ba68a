"""cnncourse.layers.StochasticDepth: a residual branch dropped per example, identity at inference."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse import layers as L
from cnncourse.autodiff import grad


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def _branch(n=2000, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 1.5, size=(n, 3, 3, 2)).astype("float32")


def _kept(x, y, factor) -> np.ndarray:
    """Per example: True if y is x·factor everywhere, False if y is 0 everywhere; fails otherwise."""
    kept = np.all(np.isclose(y, x * factor, rtol=1e-6), axis=(1, 2, 3))
    dropped = np.all(y == 0, axis=(1, 2, 3))
    assert np.all(kept ^ dropped), "every example's branch is either kept whole (rescaled) or dropped whole"
    return kept


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_training_drops_whole_examples_with_probability_rate_and_rescales_the_rest(rate):
    x = _branch()
    y = _np(L.StochasticDepth(rate, seed=1)(x, training=True))
    kept = _kept(x, y, 1.0 / (1.0 - rate))
    n = len(x)
    assert abs((1 - kept.mean()) - rate) < 4 * np.sqrt(rate * (1 - rate) / n)  # 4 binomial standard deviations


def test_it_computes_what_keras_dropout_with_a_per_example_noise_shape_computes():
    """The docstring's claim: Dropout(rate, noise_shape=(None, 1, 1, 1)) also keeps or drops each example whole."""
    x = _branch()
    y = _np(keras.layers.Dropout(0.3, noise_shape=(None, 1, 1, 1), seed=1)(x, training=True))
    kept = _kept(x, y, 1.0 / 0.7)
    assert abs((1 - kept.mean()) - 0.3) < 4 * np.sqrt(0.3 * 0.7 / len(x))


def test_paper_scaling_keeps_branches_unscaled_in_training_and_scales_by_survival_at_test():
    x = _branch()
    layer = L.StochasticDepth(0.25, scaling="test", seed=2)
    _kept(x, _np(layer(x, training=True)), 1.0)
    np.testing.assert_allclose(_np(layer(x, training=False)), 0.75 * x, rtol=1e-6)


@pytest.mark.parametrize("scaling", ["train", "test"])
def test_both_conventions_give_the_branch_its_inference_value_in_expectation(scaling):
    x = np.ones((20000, 1, 1, 1), "float32")
    layer = L.StochasticDepth(0.3, scaling=scaling, seed=3)
    mean_training = _np(layer(x, training=True)).mean()
    inference = _np(layer(x, training=False)).mean()
    assert inference == pytest.approx(1.0 if scaling == "train" else 0.7)
    assert mean_training == pytest.approx(inference, abs=0.02)  # ±0.02 is about 4 standard errors


def test_identity_at_inference_and_with_rate_zero():
    x = _branch(50)
    np.testing.assert_array_equal(_np(L.StochasticDepth(0.5)(x)), x)
    np.testing.assert_array_equal(_np(L.StochasticDepth(0.5)(x, training=False)), x)
    np.testing.assert_array_equal(_np(L.StochasticDepth(0.0)(x, training=True)), x)


def test_a_seed_repeats_the_draws_and_successive_calls_differ():
    x = _branch(200)
    a, b = L.StochasticDepth(0.5, seed=7), L.StochasticDepth(0.5, seed=7)
    first = _np(a(x, training=True))
    np.testing.assert_array_equal(first, _np(b(x, training=True)))
    assert not np.array_equal(first, _np(a(x, training=True)))


def test_a_dropped_branch_passes_no_gradient():
    x = _branch(64)
    layer = L.StochasticDepth(0.5, seed=4)
    y = _np(L.StochasticDepth(0.5, seed=4)(x, training=True))
    g = grad(lambda v: keras.ops.sum(layer(v, training=True)), x)  # same seed: the same mask
    kept = np.all(y != 0, axis=(1, 2, 3))
    assert 0 < kept.sum() < len(x)
    np.testing.assert_allclose(g[kept], 2.0, rtol=1e-6)  # 1/(1 - 0.5)
    assert np.all(g[~kept] == 0)


def test_linear_decay_rule_of_the_paper():
    rates = L.stochastic_depth_rates(54)  # ResNet-110 has 54 residual blocks
    assert rates[0] == pytest.approx(0.5 / 54) and rates[-1] == 0.5
    assert np.allclose(np.diff(rates), 0.5 / 54)
    assert sum(1 - r for r in rates) == pytest.approx(54 - 0.5 * 55 / 2)  # expected depth ≈ 40 blocks
    assert L.stochastic_depth_rates(3, 0.3) == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    "kwargs", [{"rate": 1.0}, {"rate": -0.1}, {"rate": "0.5"}, {"rate": True}, {"rate": 0.1, "scaling": "paper"}]
)
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="rate must be|scaling must be"):
        L.StochasticDepth(**kwargs)


def test_rejects_bad_decay_arguments():
    with pytest.raises(ValueError, match="num_blocks"):
        L.stochastic_depth_rates(0)
    with pytest.raises(ValueError, match="final_rate"):
        L.stochastic_depth_rates(4, 1.0)


def _residual_model(rates, seed=None) -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    for rate in rates:
        branch = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        branch = keras.layers.Conv2D(8, 3, padding="same")(branch)
        x = keras.layers.Activation("relu")(keras.layers.Add()([x, L.StochasticDepth(rate, seed=seed)(branch)]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


@pytest.mark.slow
def test_a_residual_network_with_stochastic_depth_trains_compiled():
    """Inside a compiled train_step (XLA on JAX, a tf.function on TensorFlow) the loss falls."""
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(256, 8, 8, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0).astype("int32")  # brighter than average?
    model = _residual_model(L.stochastic_depth_rates(3))
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    # inference is deterministic (the plain network); training draws differ from call to call
    np.testing.assert_array_equal(model.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0))
    assert not np.array_equal(_np(model(x[:64], training=True)), _np(model(x[:64], training=True)))
