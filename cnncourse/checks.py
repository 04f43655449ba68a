"""Argument checks shared by the whole package: one place, one set of accepted types.

Every public function, builder and layer of the course validates its arguments and raises
``ValueError`` naming what is allowed. The rules are the same everywhere because they are
written once, here:

* NumPy integers and floats are accepted wherever Python ones are (a size computed with NumPy,
  ``np.int64(28)``, must not be refused), and every check returns the plain Python value;
* booleans never count as numbers (``True`` is an ``int`` to Python, but ``width=True`` is a
  mistake, not a width of 1);
* NaN and infinities are not numbers a caller meant.

Each check takes the argument's name first (it goes into the message) and the value second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "boolean",
    "choice",
    "input_shape",
    "integer",
    "non_negative_float",
    "number",
    "pair",
    "positive_float",
    "positive_int",
    "rate",
]

_INTEGERS = (int, np.integer)
_REALS = (int, float, np.integer, np.floating)


def _is_integer(value: object) -> bool:
    return isinstance(value, _INTEGERS) and not isinstance(value, (bool, np.bool_))


def _allowed(kind: str, minimum: Any, maximum: Any, open_min: bool = False, open_max: bool = False) -> str:
    """``"an integer in [0, 3]"``, ``"a finite number > 0"``, ...: what a bounded check allows, in words."""
    if minimum is not None and maximum is not None:
        return f"{kind} in {'(' if open_min else '['}{minimum}, {maximum}{')' if open_max else ']'}"
    if minimum is not None:
        return f"{kind} {'>' if open_min else '>='} {minimum}"
    if maximum is not None:
        return f"{kind} {'<' if open_max else '<='} {maximum}"
    return kind


def integer(name: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (Python or NumPy) in ``[minimum, maximum]``, returned as a Python ``int``."""
    ok = _is_integer(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        raise ValueError(f"{name} must be {_allowed('an integer', minimum, maximum)}, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def positive_int(name: str, value: object) -> int:
    """An integer >= 1."""
    if not _is_integer(value) or value <= 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def number(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
) -> float:
    """A finite real number within the given bounds, returned as a Python ``float``."""
    ok = isinstance(value, _REALS) and not isinstance(value, (bool, np.bool_)) and math.isfinite(float(value))
    if ok:
        v = float(value)  # type: ignore[arg-type]
        if minimum is not None:
            ok = v > minimum if exclusive_minimum else v >= minimum
        if ok and maximum is not None:
            ok = v < maximum if exclusive_maximum else v <= maximum
    if not ok:
        kind = "a number" if minimum is not None and maximum is not None else "a finite number"
        allowed = _allowed(kind, minimum, maximum, exclusive_minimum, exclusive_maximum)
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def non_negative_float(name: str, value: object) -> float:
    """A finite number >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _REALS):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if not math.isfinite(float(value)) or value < 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def positive_float(name: str, value: object) -> float:
    """A finite number > 0 (a learning rate, a width multiplier, a clipping norm)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _REALS) or not math.isfinite(float(value)) or value <= 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def rate(name: str, value: object) -> float:
    """A probability of dropping something: a number in [0, 1)."""
    return number(name, value, minimum=0.0, maximum=1.0, exclusive_maximum=True)


def boolean(name: str, value: object) -> bool:
    """``True`` or ``False`` (NumPy booleans too); never 0/1 or a string."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """One of ``allowed`` (compared with ``==``), returned unchanged."""
    allowed = tuple(allowed)
    try:
        ok = value in allowed
    except TypeError:  # e.g. an unhashable value against a mapping's keys
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def pair(name: str, value: object) -> tuple[int, int]:
    """A positive integer or a pair of them → ``(rows, cols)``."""
    if _is_integer(value):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return (positive_int(name, value[0]), positive_int(name, value[1]))


def input_shape(value: Any, *, min_size: int = 1, name: str = "input_shape") -> tuple[int, int, int]:
    """A channels-last image shape ``(height, width, channels)`` with height, width >= ``min_size``."""
    try:
        shape = tuple(value)
        ok = len(shape) == 3 and all(_is_integer(v) for v in shape)
    except TypeError:
        ok = False
    if not ok or shape[2] < 1 or shape[0] < min_size or shape[1] < min_size:
        raise ValueError(
            f"{name} must be (height, width, channels) with height and width >= {min_size} "
            f"and channels >= 1, got {value!r}"
        )
    return tuple(int(v) for v in shape)  # type: ignore[return-value]
