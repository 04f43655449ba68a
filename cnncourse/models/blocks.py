"""The pieces every builder is made of: conv → batch norm → activation, the classifier, the checks.

Every family of the course wires the same unit, a convolution followed by batch normalization
and an activation, only under different layer names (the papers' and ``keras.applications``'
names are kept, so summaries read like the papers' tables and weights line up with Keras').
:func:`conv_bn_act` is that unit, written once, with the names passed in. Without batch norm
the activation is folded into the convolution (``Conv2D(activation=...)``), as Keras' own
applications do, unless ``fuse_activation=False`` asks for a separate layer.

``bn_momentum`` defaults to 0.9 everywhere, not Keras' 0.99: the moving averages then cover
about the last 10 steps, PyTorch's default (``momentum=0.1`` there). Every network in this
course trains for hundreds of steps, not hundreds of thousands, and with 0.99 the statistics
used at test time still remember weights from far back in the run (notebook 07 shows a
batch-normalised VGG at 80 % training and 10–25 % test accuracy with 0.99).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnncourse import checks

__all__ = [
    "ACTIVATIONS",
    "BN_MOMENTUM",
    "CLASSIFIER_ACTIVATIONS",
    "check_common",
    "check_options",
    "classifier",
    "conv_bn_act",
    "scaled",
    "smallest_input",
    "spatial_after",
]

ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "gelu", "swish", "linear")
CLASSIFIER_ACTIVATIONS = ("softmax", None)
BN_MOMENTUM = 0.9


def conv_bn_act(
    x: Any,
    filters: int,
    kernel: int | tuple[int, int],
    *,
    name: str,
    strides: int = 1,
    padding: str = "same",
    activation: str | None = "relu",
    batch_norm: bool = True,
    use_bias: bool | None = None,
    kernel_initializer: str = "glorot_uniform",
    bn_momentum: float = BN_MOMENTUM,
    bn_epsilon: float = 1e-3,
    bn_name: str | None = None,
    act_name: str | None = None,
    fuse_activation: bool = True,
    dtype: Any = None,
) -> Any:
    """``Conv2D`` named ``name`` → ``BatchNormalization`` → ``Activation``; returns the output tensor.

    ``use_bias`` defaults to ``not batch_norm`` (batch norm's β makes a conv bias redundant).
    ``activation=None`` stops after the normalization (the last conv of a residual branch,
    whose activation follows the addition). Layer names: the normalization ``bn_name``
    (default ``{name}_bn``), the activation ``act_name`` (default ``{name}_{activation}``).
    ``dtype`` is a Keras dtype policy for all three layers (e.g. ``"mixed_bfloat16"``).
    """
    import keras

    fused = activation is not None and not batch_norm and fuse_activation
    x = keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        activation=activation if fused else None,
        use_bias=(not batch_norm) if use_bias is None else use_bias,
        kernel_initializer=kernel_initializer,
        name=name,
        dtype=dtype,
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(
            momentum=bn_momentum, epsilon=bn_epsilon, name=bn_name or f"{name}_bn", dtype=dtype
        )(x)
    if activation is not None and not fused:
        x = keras.layers.Activation(activation, name=act_name or f"{name}_{activation}", dtype=dtype)(x)
    return x


def scaled(filters: int, width: float) -> int:
    """``filters`` times a width multiplier, at least 1."""
    return max(1, int(round(filters * width)))


def classifier(x: Any, num_classes: int, activation: str | None, name: str, dtype: Any = None) -> Any:
    """The final dense layer; ``activation=None`` gives logits (use ``from_logits=True``)."""
    import keras

    checks.choice("classifier_activation", activation, CLASSIFIER_ACTIVATIONS)
    return keras.layers.Dense(num_classes, activation=activation, name=name, dtype=dtype)(x)


def check_common(
    input_shape: Any,
    num_classes: Any,
    *,
    min_size: int = 1,
    classifier_activation: Any = "softmax",
) -> tuple[tuple[int, int, int], int]:
    """The keywords every builder shares: image shape, number of classes, classifier activation."""
    shape = checks.input_shape(input_shape, min_size=min_size)
    classes = checks.integer("num_classes", num_classes, minimum=2)
    checks.choice("classifier_activation", classifier_activation, CLASSIFIER_ACTIVATIONS)
    return shape, classes


def check_options(
    *,
    activation: Any = "relu",
    batch_norm: Any = False,
    bn_momentum: Any = BN_MOMENTUM,
    dropout: Any = 0.0,
    width: Any = 1.0,
) -> tuple[float, float]:
    """The family options most builders share; returns ``(dropout, width)`` as floats."""
    checks.choice("activation", activation, ACTIVATIONS)
    checks.boolean("batch_norm", batch_norm)
    checks.number("bn_momentum", bn_momentum, minimum=0.0, maximum=1.0, exclusive_maximum=True)
    rate = checks.rate("dropout", dropout)
    w = checks.positive_float("width", width)
    return rate, w


def spatial_after(size: int, steps: Sequence[tuple[int, int, str]]) -> int:
    """Spatial size after a chain of (kernel, stride, padding) windows (for input checks)."""
    for kernel, stride, padding in steps:
        if padding == "same":
            size = -(-size // stride)
        else:
            size = (size - kernel) // stride + 1
    return size


def smallest_input(steps: Sequence[tuple[int, int, str]], *, start: int = 1, limit: int = 4096) -> int:
    """The smallest input side for which every window of ``steps`` sees at least its kernel.

    A valid window of size ``k`` needs an input of at least ``k``; checked one window at a time,
    so a size that fails deep inside a network is refused with a message naming what works.
    """
    for size in range(start, limit + 1):
        current, ok = size, True
        for kernel, stride, padding in steps:
            if padding == "valid" and current < kernel:
                ok = False
                break
            current = spatial_after(current, [(kernel, stride, padding)])
            if current < 1:
                ok = False
                break
        if ok:
            return size
    raise ValueError(f"no input side up to {limit} fits these windows: {list(steps)}")
