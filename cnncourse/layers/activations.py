"""The activation functions Keras lacks, and autodiff derivatives to plot and check them.

Keras 3 already ships sigmoid, tanh, relu, leaky_relu, elu, selu, gelu (exact, or the tanh
approximation with ``approximate=True``), silu/swish and mish, and the course uses those. Two
members of the lecture's list are missing:

* **Swish with a slope** ``β``: ``x · σ(βx)`` (Ramachandran et al., 2017). Keras' ``silu`` is
  the ``β = 1`` case only; ``β = 1.702`` makes it a cheap approximation of GELU, because
  ``σ(1.702 x) ≈ Φ(x)``.
* **Dice** (Zhou et al., 2018, *Deep Interest Network*): a PReLU whose switch between the
  two slopes is not fixed at 0 but is a sigmoid of the *standardised* input, so the
  rectification point follows the data. It needs batch statistics in training and moving
  averages at inference, which is layer state, so it is a layer.

``derivative(fn, x)`` differentiates any element-wise function with the active backend's
autodiff (via :mod:`cnncourse.autodiff`: ``GradientTape``, ``jax.grad`` or torch autograd), so notebook 04 plots each
activation's derivative without typing a formula; ``REFERENCE`` holds the closed forms in
NumPy, which the tests (and the notebook) compare against autodiff.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from cnncourse import checks

__all__ = ["GELU_SWISH_BETA", "REFERENCE", "Dice", "Swish", "derivative", "swish"]

GELU_SWISH_BETA = 1.702  # σ(1.702 x) ≈ Φ(x) (Hendrycks & Gimpel, 2016), so swish(x, 1.702) ≈ gelu(x)


def swish(x, beta: float = 1.0):
    """``x · sigmoid(beta · x)``; Keras' ``silu`` is the ``beta = 1`` case and has no slope."""
    x = ops.convert_to_tensor(x)
    return x * ops.sigmoid(ops.cast(beta, x.dtype) * x)


@keras.saving.register_keras_serializable(package="cnncourse")
class Swish(keras.layers.Layer):
    """Swish with a fixed or learnable slope ``beta`` (Keras' ``Activation("silu")`` has none).

    ``trainable_beta=True`` learns one scalar ``beta``, as in the Swish paper's "Swish-β".
    """

    def __init__(self, beta: float = 1.0, trainable_beta: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.beta_value = checks.number("beta", beta)
        self.trainable_beta = bool(trainable_beta)

    def build(self, input_shape) -> None:
        self.beta = self.add_weight(
            name="beta",
            shape=(),
            initializer=keras.initializers.Constant(self.beta_value),
            trainable=self.trainable_beta,
        )

    def call(self, inputs):
        return inputs * ops.sigmoid(ops.cast(self.beta, inputs.dtype) * inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "beta": self.beta_value, "trainable_beta": self.trainable_beta}


@keras.saving.register_keras_serializable(package="cnncourse")
class Dice(keras.layers.Layer):
    """Data-adaptive activation (Zhou et al., 2018): ``f(s) = p(s)·s + (1 − p(s))·α·s``.

    ``p(s) = sigmoid((s − E[s]) / sqrt(Var[s] + ε))``. PReLU switches from slope ``α`` to slope
    1 abruptly at ``s = 0``; Dice switches smoothly, around the mean of the data, over a width
    set by its spread. ``E[s]`` and ``Var[s]`` are per channel (the last axis): statistics of
    the mini-batch in training, moving averages at inference (as batch normalisation keeps
    them). ``α`` is learned per channel, initialised to 0 like the paper's PReLU baseline.

    With ``α = 0`` and standardised statistics (mean 0, variance 1) Dice is ``s·σ(s)``, i.e.
    SiLU, which is why its fresh (untrained) inference-mode curve looks like Swish.
    Written by hand because Keras has no Dice; ``PReLU`` is its fixed-switch ancestor.
    """

    def __init__(
        self,
        epsilon: float = 1e-8,
        momentum: float = 0.99,
        alpha_initializer="zeros",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.epsilon = checks.positive_float("epsilon", epsilon)
        self.momentum = checks.number("momentum", momentum, minimum=0.0, maximum=1.0, exclusive_maximum=True)
        self.alpha_initializer = keras.initializers.get(alpha_initializer)

    def build(self, input_shape) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("Dice needs a known last (channel) dimension")
        self.alpha = self.add_weight(name="alpha", shape=(channels,), initializer=self.alpha_initializer)
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=(channels,), initializer="zeros", trainable=False
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=(channels,), initializer="ones", trainable=False
        )

    def call(self, inputs, training=None):
        dtype = inputs.dtype
        if training:
            axes = list(range(len(inputs.shape) - 1))
            mean, variance = ops.moments(inputs, axes=axes)
            m = self.momentum
            self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * ops.cast(mean, self.moving_mean.dtype))
            self.moving_variance.assign(
                m * self.moving_variance + (1.0 - m) * ops.cast(variance, self.moving_variance.dtype)
            )
        else:
            mean = ops.cast(self.moving_mean, dtype)
            variance = ops.cast(self.moving_variance, dtype)
        p = ops.sigmoid((inputs - mean) / ops.sqrt(variance + self.epsilon))
        alpha = ops.cast(self.alpha, dtype)
        return p * inputs + (1.0 - p) * alpha * inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "epsilon": self.epsilon,
            "momentum": self.momentum,
            "alpha_initializer": keras.initializers.serialize(self.alpha_initializer),
        }


def derivative(fn: Callable, x) -> np.ndarray:
    """Element-wise derivative ``fn'(x)`` by the backend's autodiff, as a NumPy array.

    ``fn`` must act element by element (every activation does; a Dice layer does at inference),
    so the gradient of ``sum(fn(x))`` with respect to ``x`` is ``fn'`` at each point. The point is
    to let the library differentiate, so a plotted derivative is the one training really uses
    (e.g. ReLU's derivative at exactly 0 is whatever the backend chose: 0 on both).
    """
    from cnncourse.autodiff import (
        grad,  # the course's one backend fork (GradientTape / jax.grad / autograd)
    )

    return grad(lambda v: ops.sum(fn(v)), np.asarray(x, dtype=np.float32))


# Closed forms in NumPy (float64), for checking autodiff and for the notebook's formulas.
_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _phi(x):  # standard normal density
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _Phi(x):  # standard normal CDF
    erf = np.vectorize(math.erf, otypes=[float])
    return 0.5 * (1.0 + erf(np.asarray(x, dtype=float) / math.sqrt(2.0)))


def _softplus(x):
    return np.logaddexp(0.0, x)


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))


def _gelu_tanh_prime(x):
    t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)


def _swish_prime(x, beta):
    s = _sigmoid(beta * x)
    return s + beta * x * s * (1.0 - s)


def _mish_prime(x):
    t = np.tanh(_softplus(x))
    return t + x * (1.0 - t * t) * _sigmoid(x)


# name → (f, f'), both NumPy functions of a float array; leaky ReLU uses Keras' default slope 0.2.
REFERENCE: dict[str, tuple[Callable, Callable]] = {
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1.0 - _sigmoid(x))),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "leaky_relu": (lambda x: np.where(x > 0, x, 0.2 * x), lambda x: np.where(x > 0, 1.0, 0.2)),
    "elu": (lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), lambda x: np.where(x > 0, 1.0, np.exp(x))),
    "selu": (
        lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0))),
        lambda x: _SELU_SCALE * np.where(x > 0, 1.0, _SELU_ALPHA * np.exp(x)),
    ),
    "gelu": (lambda x: x * _Phi(x), lambda x: _Phi(x) + x * _phi(x)),
    "gelu_tanh": (_gelu_tanh, _gelu_tanh_prime),
    "silu": (lambda x: x * _sigmoid(x), lambda x: _swish_prime(x, 1.0)),
    "swish_1.702": (lambda x: x * _sigmoid(GELU_SWISH_BETA * x), lambda x: _swish_prime(x, GELU_SWISH_BETA)),
    "mish": (lambda x: x * np.tanh(_softplus(x)), _mish_prime),
}
