import keras
import numpy as np
import pytest

from cnncourse.autodiff import grad, value_and_grad


def test_gradient_of_a_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]], dtype="float32")
    value, g = value_and_grad(lambda t: keras.ops.sum(t * t) + keras.ops.sum(keras.ops.sin(t)), x)
    np.testing.assert_allclose(value, np.sum(x * x) + np.sum(np.sin(x)), rtol=1e-6)
    np.testing.assert_allclose(g, 2 * x + np.cos(x), rtol=1e-6)


def test_gradient_through_a_keras_model_matches_its_weights():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, use_bias=False)])
    g = grad(lambda t: keras.ops.sum(model(t)), np.ones((1, 4), "float32"))
    np.testing.assert_allclose(g[0], model.get_weights()[0][:, 0], rtol=1e-6)


def test_constant_function_has_zero_gradient():
    np.testing.assert_array_equal(grad(lambda t: keras.ops.convert_to_tensor(3.0), np.ones(3, "float32")), 0)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="floating-point"):
        grad(lambda t: keras.ops.sum(t), np.arange(3))
    with pytest.raises(ValueError, match="scalar"):
        grad(lambda t: t * 2, np.ones(3, "float32"))
