"""Argument checks and small layer helpers shared by every architecture builder.

Every builder takes the same keywords (``input_shape``, ``num_classes``, ...) and must reject
bad values with a ``ValueError`` that names what is allowed, so the checks live in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "gelu", "swish", "linear")
CLASSIFIER_ACTIVATIONS = ("softmax", None)


def check_input_shape(input_shape: Any, *, min_size: int = 1, name: str = "input_shape") -> tuple[int, int, int]:
    """Validate an ``(H, W, C)`` channels-last shape with ``H, W >= min_size``."""
    try:
        shape = tuple(int(v) for v in input_shape)
        ok = len(shape) == 3 and all(v == d for v, d in zip(shape, input_shape))
    except (TypeError, ValueError):
        ok = False
    if not ok or shape[2] < 1 or shape[0] < min_size or shape[1] < min_size:
        raise ValueError(
            f"{name} must be (height, width, channels) with height and width >= {min_size} "
            f"and channels >= 1, got {input_shape!r}"
        )
    return shape  # type: ignore[return-value]


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_num_classes(num_classes: Any) -> int:
    return check_positive_int(num_classes, "num_classes", minimum=2)


def check_choice(value: Any, name: str, allowed: Iterable[Any]) -> Any:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_rate(value: Any, name: str = "dropout") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_width(value: Any, name: str = "width") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number (a multiplier of every layer's filters), got {value!r}")
    return float(value)


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def scaled(filters: int, width: float) -> int:
    """``filters`` times a width multiplier, at least 1."""
    return max(1, int(round(filters * width)))


def classifier(x: Any, num_classes: int, activation: str | None, name: str) -> Any:
    """The final dense layer; ``activation=None`` gives logits (use ``from_logits=True``)."""
    import keras

    check_choice(activation, "classifier_activation", CLASSIFIER_ACTIVATIONS)
    return keras.layers.Dense(num_classes, activation=activation, name=name)(x)


def check_common(
    input_shape: Any,
    num_classes: Any,
    *,
    min_size: int = 1,
    classifier_activation: Any = "softmax",
) -> tuple[tuple[int, int, int], int]:
    shape = check_input_shape(input_shape, min_size=min_size)
    classes = check_num_classes(num_classes)
    check_choice(classifier_activation, "classifier_activation", CLASSIFIER_ACTIVATIONS)
    return shape, classes


def spatial_after(size: int, steps: Sequence[tuple[int, int, str]]) -> int:
    """Spatial size after a chain of (kernel, stride, padding) windows (for input checks)."""
    for kernel, stride, padding in steps:
        if padding == "same":
            size = -(-size // stride)
        else:
            size = (size - kernel) // stride + 1
    return size
