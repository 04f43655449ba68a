"""Small helpers shared by the course's Keras layers."""

from __future__ import annotations

import keras
from keras import ops

_PACKAGE = "cnncourse"  # registration name: a saved .keras file finds the layers under it


def _safe_sqrt(x):
    """``sqrt(x)`` for ``x >= 0`` whose gradient at 0 is 0, not NaN (sqrt's slope there is infinite)."""
    positive = x > 0
    return ops.where(positive, ops.sqrt(ops.where(positive, x, ops.ones_like(x))), ops.zeros_like(x))


def _is_training(training: object) -> bool:
    """Keras passes ``training`` as a Python bool (or None) to ``call``; treat None as inference."""
    return bool(training) if training is not None else False


def _is_float_dtype(dtype) -> bool:
    return "float" in str(keras.backend.standardize_dtype(dtype))
