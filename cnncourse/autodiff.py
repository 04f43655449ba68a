"""Backend-neutral gradients: one function instead of GradientTape / jax.grad / autograd forks.

Keras 3 has no public "gradient of this function" API, because each backend differentiates in
its own way. The course needs gradients outside ``fit`` (checking a derivation against
autodiff, saliency maps, adversarial examples, class-model visualisation), so this module
wraps the three backends behind :func:`value_and_grad`. The function being differentiated
must be written with ``keras.ops`` (and may call Keras models).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

__all__ = ["grad", "value_and_grad"]


def value_and_grad(fn: Callable[[Any], Any], x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(fn(x), dfn/dx)`` as NumPy arrays; ``fn`` must return a scalar.

    ``x`` is treated as a constant input (gradients with respect to a model's weights go
    through the optimizer machinery of ``fit`` instead).
    """
    backend = keras.backend.backend()
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"can only differentiate with respect to a floating-point input, got dtype {x.dtype}")
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            value = fn(xt)
        gradient = tape.gradient(value, xt)
    elif backend == "jax":
        import jax

        try:
            value, gradient = jax.value_and_grad(fn)(x)
        except TypeError as exc:  # JAX refuses non-scalar outputs before we can look
            raise ValueError(f"fn must return a scalar ({exc})") from None
    elif backend == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True)
        value = fn(xt)
        (gradient,) = torch.autograd.grad(value, xt)
        value = value.detach()
    else:
        raise ValueError(f"autodiff needs the tensorflow, jax or torch backend, not {backend!r}")
    if gradient is None:  # TensorFlow says None when fn does not depend on x
        gradient = np.zeros_like(x)
    value = keras.ops.convert_to_numpy(value)
    if np.ndim(value) != 0:
        raise ValueError(f"fn must return a scalar, got shape {np.shape(value)}")
    return value, keras.ops.convert_to_numpy(gradient)


def grad(fn: Callable[[Any], Any], x: Any) -> np.ndarray:
    """``dfn/dx`` at ``x`` as a NumPy array (see :func:`value_and_grad`)."""
    return value_and_grad(fn, x)[1]
