"""Argument checks shared by the whole package: one place, one set of accepted types.

Every public function and layer of the course validates its arguments and raises
``ValueError`` naming what is allowed. NumPy integers and floats are accepted wherever Python
ones are (a size computed with NumPy must not be refused), booleans never count as numbers.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["non_negative_float", "pair", "positive_int"]


def positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if not math.isfinite(float(value)) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return float(value)


def pair(name: str, value: object) -> tuple[int, int]:
    """An int or a pair of ints -> (rows, cols), both positive."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return (positive_int(name, value[0]), positive_int(name, value[1]))
