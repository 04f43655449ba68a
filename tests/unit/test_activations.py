"""Tests for cnncourse.layers.activations: autodiff derivatives against closed forms, Swish-β, Dice."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.layers import activations as A

# an even number of points: no grid point sits on a kink (x = 0), where backends pick a side
GRID = np.linspace(-5.0, 5.0, 400)

KERAS_FUNCTIONS = {
    "sigmoid": keras.activations.sigmoid,
    "tanh": keras.activations.tanh,
    "relu": keras.activations.relu,
    "leaky_relu": keras.activations.leaky_relu,
    "elu": keras.activations.elu,
    "selu": keras.activations.selu,
    "gelu": lambda v: keras.activations.gelu(v, approximate=False),
    "gelu_tanh": lambda v: keras.activations.gelu(v, approximate=True),
    "silu": keras.activations.silu,
    "swish_1.702": lambda v: A.swish(v, A.GELU_SWISH_BETA),
    "mish": keras.activations.mish,
}


def np_out(t) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(t), dtype=np.float64)


def test_reference_covers_every_keras_function():
    assert set(A.REFERENCE) == set(KERAS_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(KERAS_FUNCTIONS))
def test_reference_values_match_keras(name):
    f, _ = A.REFERENCE[name]
    got = np_out(KERAS_FUNCTIONS[name](GRID.astype("float32")))
    np.testing.assert_allclose(got, f(GRID), atol=2e-6, rtol=2e-6)


@pytest.mark.parametrize("name", sorted(KERAS_FUNCTIONS))
def test_autodiff_derivative_matches_closed_form(name):
    _, fprime = A.REFERENCE[name]
    got = A.derivative(KERAS_FUNCTIONS[name], GRID)
    assert got.shape == GRID.shape
    np.testing.assert_allclose(got, fprime(GRID), atol=5e-6, rtol=5e-6)


def test_closed_forms_match_finite_differences():
    # guards the closed forms themselves (a wrong formula would otherwise only be checked by autodiff)
    h = 1e-6
    for name, (f, fprime) in A.REFERENCE.items():
        numeric = (f(GRID + h) - f(GRID - h)) / (2 * h)
        np.testing.assert_allclose(fprime(GRID), numeric, atol=1e-6, err_msg=name)


def test_derivative_of_a_function_not_depending_on_x_is_zero():
    got = A.derivative(lambda v: keras.ops.zeros_like(v) + 3.0, GRID)
    np.testing.assert_array_equal(got, np.zeros_like(GRID))


def test_derivative_of_square_is_2x():
    np.testing.assert_allclose(A.derivative(lambda v: v * v, GRID), 2 * GRID, rtol=1e-6, atol=1e-6)


def test_swish_beta_one_is_silu_and_beta_1702_approximates_gelu():
    x = GRID.astype("float32")
    np.testing.assert_allclose(np_out(A.swish(x)), np_out(keras.activations.silu(x)), atol=1e-6)
    diff = np.abs(np_out(A.swish(x, 1.702)) - np_out(keras.activations.gelu(x, approximate=False)))
    assert 0.015 < diff.max() < 0.025  # close, yet not equal: it is an approximation
    # a larger beta moves swish towards ReLU
    np.testing.assert_allclose(np_out(A.swish(x, 50.0)), np.maximum(GRID, 0), atol=0.01)


def test_swish_layer_fixed_and_trainable_beta(tmp_path):
    layer = A.Swish(beta=2.0)
    x = GRID.astype("float32")[:, None]
    np.testing.assert_allclose(np_out(layer(x))[:, 0], GRID / (1 + np.exp(-2 * GRID)), atol=1e-5)
    assert layer.trainable_weights == []
    learn = A.Swish(beta=1.0, trainable_beta=True)
    learn.build((None, 1))
    assert len(learn.trainable_weights) == 1
    inputs = keras.Input((3,))
    model = keras.Model(inputs, A.Swish(beta=1.702, name="sw")(inputs))
    path = tmp_path / "swish.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("sw").get_config()["beta"] == pytest.approx(1.702)
    xb = np.random.default_rng(0).standard_normal((4, 3)).astype("float32")
    np.testing.assert_allclose(np_out(loaded(xb)), np_out(model(xb)), atol=1e-6)


@pytest.mark.parametrize("beta", [float("nan"), "1", True])
def test_swish_rejects_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        A.Swish(beta=beta)


def dice_numpy(x, mean, var, alpha, eps=1e-8):
    p = 1 / (1 + np.exp(-(x - mean) / np.sqrt(var + eps)))
    return p * x + (1 - p) * alpha * x


def test_dice_inference_with_fresh_statistics_and_zero_alpha_is_silu():
    x = GRID.astype("float32")[:, None]
    out = np_out(A.Dice()(x, training=False))[:, 0]
    np.testing.assert_allclose(out, GRID / (1 + np.exp(-GRID)), atol=1e-5)


def test_dice_training_uses_batch_statistics_and_updates_moving_averages():
    rng = np.random.default_rng(1)
    x = (3.0 + 2.0 * rng.standard_normal((64, 5))).astype("float32")
    layer = A.Dice(alpha_initializer=keras.initializers.Constant(0.25), momentum=0.9)
    out = np_out(layer(x, training=True))
    mean, var = x.astype(np.float64).mean(0), x.astype(np.float64).var(0)
    np.testing.assert_allclose(out, dice_numpy(x, mean, var, 0.25), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np_out(layer.moving_mean), 0.1 * mean, rtol=1e-4)
    np.testing.assert_allclose(np_out(layer.moving_variance), 0.9 + 0.1 * var, rtol=1e-4)
    # inference uses the moving averages, not the batch: a different answer for the same batch
    infer = np_out(layer(x, training=False))
    np.testing.assert_allclose(
        infer, dice_numpy(x, np_out(layer.moving_mean), np_out(layer.moving_variance), 0.25), rtol=1e-4, atol=1e-4
    )
    assert np.abs(infer - out).max() > 0.1


def test_dice_is_per_channel_on_images_and_slopes_are_alpha_and_one():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 4, 4, 3)).astype("float32")
    x[..., 1] += 10.0  # channel 1 has mean 10: its switch sits near 10, not 0
    layer = A.Dice(alpha_initializer=keras.initializers.Constant(0.1))
    out = np_out(layer(x, training=True))
    mean = x.astype(np.float64).mean(axis=(0, 1, 2))
    var = x.astype(np.float64).var(axis=(0, 1, 2))
    np.testing.assert_allclose(out, dice_numpy(x, mean, var, 0.1), rtol=1e-4, atol=1e-4)
    assert layer.alpha.shape == (3,)
    # far from the mean, Dice is linear with slope alpha (below) or 1 (above)
    probe = np.array([[-30.0], [30.0]], dtype="float32")
    d = A.Dice(alpha_initializer=keras.initializers.Constant(0.1))
    np.testing.assert_allclose(np_out(d(probe, training=False))[:, 0], [-3.0, 30.0], rtol=1e-5)


def test_dice_serializes_and_trains(tmp_path):
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8)(inputs)
    h = A.Dice(momentum=0.5, name="dice")(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    alpha_before = np_out(model.get_layer("dice").alpha).copy()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert not np.allclose(np_out(model.get_layer("dice").alpha), alpha_before)  # alpha is learned
    path = tmp_path / "dice.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    cfg = loaded.get_layer("dice").get_config()
    assert cfg["momentum"] == 0.5 and cfg["epsilon"] == 1e-8
    np.testing.assert_allclose(np_out(loaded.predict(x, verbose=0)), np_out(model.predict(x, verbose=0)), atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"epsilon": 0.0}, {"momentum": 1.0}, {"momentum": -0.1}])
def test_dice_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        A.Dice(**kwargs)


def test_derivative_of_dice_at_inference_matches_finite_differences():
    layer = A.Dice(alpha_initializer=keras.initializers.Constant(0.2))
    layer.build((None, 1))
    fn = lambda v: layer(keras.ops.reshape(v, (-1, 1)), training=False)  # noqa: E731
    d = A.derivative(fn, GRID)
    f = lambda v: dice_numpy(v, 0.0, 1.0, 0.2)  # noqa: E731
    np.testing.assert_allclose(d, (f(GRID + 1e-5) - f(GRID - 1e-5)) / 2e-5, atol=1e-4)
