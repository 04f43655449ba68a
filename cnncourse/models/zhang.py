"""The three networks of Zhang et al.'s generalization study (ICLR 2017, Appendix A), as the paper sized them.

*Understanding deep learning requires rethinking generalization* (Zhang, Bengio, Hardt, Recht &
Vinyals) trained a small Inception, a small AlexNet and a three-layer perceptron on 28×28
crops of CIFAR-10. At ``width=1`` on a 28×28×3 input every builder here has the paper's
parameter count exactly (1,649,402 for the Inception without batch norm, 1,387,786 for the
AlexNet, 1,735,178 for the MLP), which the registry's ``paper`` group and the tests check.
Notebook 06 rebuilds the paper's Table 1 with them (``cnncourse.experiments.zhang``); the
``width`` option scales the convolutions down for CPU budgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from cnncourse import checks
from cnncourse.models.blocks import BN_MOMENTUM, check_common, classifier, conv_bn_act, scaled, smallest_input

__all__ = ["INCEPTION_MODULES", "zhang_alexnet", "zhang_inception", "zhang_mlp"]

INCEPTION_MODULES: tuple[tuple[Any, ...], ...] = (
    ("conv", 96), ("inception", 32, 32), ("inception", 32, 48), ("down", 80),
    ("inception", 112, 48), ("inception", 96, 64), ("inception", 80, 80), ("inception", 48, 96), ("down", 96),
    ("inception", 176, 160), ("inception", 176, 160),
)
"""The small Inception of Appendix A / Figure 3 as (kind, filters...): a conv, two-branch
Inception modules (#1×1, #3×3) and downsample modules (a 3×3/2 conv beside a 3×3/2 max-pool)."""

_DOWNSAMPLES = ((3, 2, "valid"), (3, 2, "valid"))  # the two downsample modules' valid 3×3/2 windows


def _kernel_initializer(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"kernel_initializer must be the name of a Keras initializer, got {value!r}")
    return value


def zhang_inception(
    input_shape: tuple[int, int, int] = (28, 28, 3),
    num_classes: int = 10,
    *,
    width: float = 1.0,
    batch_norm: bool = True,
    bn_momentum: float = BN_MOMENTUM,
    kernel_initializer: str = "glorot_uniform",
    classifier_activation: str | None = "softmax",
    name: str = "zhang_inception",
) -> keras.Model:
    """The "small Inception" of Zhang et al.: a 3×3 conv (96), then the modules of
    :data:`INCEPTION_MODULES`, global average pooling, a dense classifier.

    Every conv is conv → BN → ReLU (no BN with ``batch_norm=False``). At ``width=1`` on
    28×28×3 it has the paper's 1,649,402 parameters without batch norm; ``width`` scales every
    filter count. Its graph (22 convolutions of two branches) traces several times faster than
    the nine four-branch modules of ``googlenet_small``, which is why the grid uses it.
    """
    shape, classes = check_common(input_shape, num_classes, min_size=smallest_input(_DOWNSAMPLES),
                                  classifier_activation=classifier_activation)
    w = checks.positive_float("width", width)
    checks.boolean("batch_norm", batch_norm)
    checks.number("bn_momentum", bn_momentum, minimum=0.0, maximum=1.0, exclusive_maximum=True)
    init = _kernel_initializer(kernel_initializer)

    def conv(x: Any, filters: int, kernel: int, strides: int, padding: str, tag: str) -> Any:
        return conv_bn_act(x, scaled(filters, w), kernel, name=f"{tag}_conv", strides=strides, padding=padding,
                           batch_norm=batch_norm, kernel_initializer=init, bn_momentum=bn_momentum,
                           bn_name=f"{tag}_bn", act_name=f"{tag}_relu", fuse_activation=False)

    inputs = keras.Input(shape, name="image")
    x = inputs
    for i, (kind, *filters) in enumerate(INCEPTION_MODULES):
        tag = f"m{i}_{kind}"
        if kind == "conv":
            x = conv(x, filters[0], 3, 1, "same", tag)
        elif kind == "inception":
            a = conv(x, filters[0], 1, 1, "same", f"{tag}_1x1")
            b = conv(x, filters[1], 3, 1, "same", f"{tag}_3x3")
            x = keras.layers.Concatenate(name=f"{tag}_concat")([a, b])
        else:
            a = conv(x, filters[0], 3, 2, "valid", f"{tag}_conv")
            b = keras.layers.MaxPooling2D(3, strides=2, name=f"{tag}_pool")(x)
            x = keras.layers.Concatenate(name=f"{tag}_concat")([a, b])
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier(x, classes, classifier_activation, "predictions")
    return keras.Model(inputs, outputs, name=name)


def zhang_alexnet(
    input_shape: tuple[int, int, int] = (28, 28, 3),
    num_classes: int = 10,
    *,
    width: float = 1.0,
    lrn: bool = True,
    kernel_initializer: str = "glorot_uniform",
    classifier_activation: str | None = "softmax",
    name: str = "zhang_alexnet",
) -> keras.Model:
    """The "small AlexNet" of Zhang et al. (the CIFAR-10 model of cuda-convnet).

    Two modules of a 5×5 conv (64 filters, ReLU) → 3×3/2 max-pool → local response
    normalization, then fully connected layers of 384 and 192 ReLU units and the classifier: on
    28×28×3 exactly the paper's 1,387,786 parameters. ``width`` scales the conv filters (not
    the fc layers); ``lrn=False`` drops the normalization, which has no parameters but costs
    2–3× the CPU training time of the whole net at this size (its backward pass). Not
    ``alexnet_small``: that one keeps AlexNet's five convolutions; the paper used this one.
    """
    from cnncourse.layers import LocalResponseNormalization

    shape, classes = check_common(input_shape, num_classes, classifier_activation=classifier_activation)
    w = checks.positive_float("width", width)
    checks.boolean("lrn", lrn)
    init = _kernel_initializer(kernel_initializer)
    inputs = keras.Input(shape, name="image")
    x = inputs
    for i in (1, 2):
        x = conv_bn_act(x, scaled(64, w), 5, name=f"conv{i}", batch_norm=False, kernel_initializer=init)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}")(x)
        if lrn:
            x = LocalResponseNormalization(name=f"norm{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for units in (384, 192):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer=init, name=f"fc{units}")(x)
    outputs = classifier(x, classes, classifier_activation, "predictions")
    return keras.Model(inputs, outputs, name=name)


def zhang_mlp(
    input_shape: tuple[int, int, int] = (28, 28, 3),
    num_classes: int = 10,
    *,
    hidden: Sequence[int] = (512, 512, 512),
    kernel_initializer: str = "glorot_uniform",
    classifier_activation: str | None = "softmax",
    name: str = "zhang_mlp",
) -> keras.Model:
    """The paper's "MLP 3×512": flatten, three ``Dense(512, relu)``, the classifier.

    Its 1,735,178 parameters are those of a 28×28×3 input (the paper trained on 28×28 crops of
    CIFAR-10); on 28×28×1 Fashion-MNIST it has 1,135,626.
    """
    shape, classes = check_common(input_shape, num_classes, classifier_activation=classifier_activation)
    units = [checks.positive_int("every entry of hidden", u) for u in hidden]
    if not units:
        raise ValueError("hidden must list at least one layer width")
    init = _kernel_initializer(kernel_initializer)
    inputs = keras.Input(shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, u in enumerate(units, 1):
        x = keras.layers.Dense(u, activation="relu", kernel_initializer=init, name=f"fc{i}")(x)
    outputs = classifier(x, classes, classifier_activation, "predictions")
    return keras.Model(inputs, outputs, name=name)
