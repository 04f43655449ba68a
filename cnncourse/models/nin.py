"""Network in Network (Lin, Chen & Yan, 2013): mlpconv blocks and global average pooling.

An mlpconv block is a spatial convolution followed by two 1×1 convolutions: a small
multi-layer perceptron slid over every position, which is exactly what a 1×1 conv computes.
The last block emits one map per class and global average pooling turns each map into a
class score, so the network has no fully connected layers at all (the idea GoogLeNet and
ResNet kept). Blocks are written as a table of (kernel, stride, filters, filters, filters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from cnncourse.models.blocks import BN_MOMENTUM, check_common, check_options, conv_bn_act, scaled, smallest_input

# (kernel, stride, (spatial conv filters, 1x1, 1x1)); the last 1x1 of the last block is num_classes
IMAGENET_BLOCKS: Sequence[tuple[int, int, tuple[int, int, int]]] = (
    (11, 4, (96, 96, 96)),
    (5, 1, (256, 256, 256)),
    (3, 1, (384, 384, 384)),
    (3, 1, (1024, 1024, None)),
)
"""The ImageNet NiN of the authors' Caffe model zoo (ILSVRC-2012, ≈ AlexNet accuracy)."""

CIFAR_BLOCKS: Sequence[tuple[int, int, tuple[int, int, int]]] = (
    (5, 1, (192, 160, 96)),
    (5, 1, (192, 192, 192)),
    (3, 1, (192, 192, None)),
)
"""The CIFAR-10 NiN of the paper's §4.2 (10.41% error with dropout, no augmentation)."""


def _mlpconv(x: Any, index: int, kernel: int, stride: int, filters: Sequence[int], activation: str,
             batch_norm: bool, padding: str, bn_momentum: float) -> Any:
    for j, (k, s, f) in enumerate(((kernel, stride, filters[0]), (1, 1, filters[1]), (1, 1, filters[2]))):
        label = f"mlpconv{index}_{['conv', 'cccp1', 'cccp2'][j]}"
        x = conv_bn_act(x, f, k, name=label, strides=s, padding=padding if j == 0 else "valid",
                        activation=activation, batch_norm=batch_norm, bn_momentum=bn_momentum)
    return x


def _nin(shape: tuple[int, int, int], classes: int, blocks: Sequence[Any], pools: Sequence[Any], width: float,
         rate: float, activation: str, batch_norm: bool, classifier_activation: Any, name: str, first_padding: str,
         bn_momentum: float) -> keras.Model:
    """``pools[i]``: (kind "max"/"avg"/None, padding, dropout after it?) for block ``i``."""
    inputs = keras.Input(shape, name="image")
    x = inputs
    for i, ((kernel, stride, filters), (pool, pool_padding, drop)) in enumerate(zip(blocks, pools), start=1):
        f = [scaled(v, width) if v is not None else classes for v in filters]
        x = _mlpconv(x, i, kernel, stride, f, activation, batch_norm, first_padding if i == 1 else "same", bn_momentum)
        if pool == "max":
            x = keras.layers.MaxPooling2D(3, strides=2, padding=pool_padding, name=f"pool{i}")(x)
        elif pool == "avg":
            x = keras.layers.AveragePooling2D(3, strides=2, padding=pool_padding, name=f"pool{i}")(x)
        if rate and drop:
            x = keras.layers.Dropout(rate, name=f"drop{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    if classifier_activation is not None:
        x = keras.layers.Activation(classifier_activation, name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def _check(activation: Any, dropout: Any, batch_norm: Any, width: Any, bn_momentum: Any) -> tuple[float, float]:
    return check_options(activation=activation, batch_norm=batch_norm, bn_momentum=bn_momentum, dropout=dropout,
                         width=width)


# the ImageNet model's windows (kernel, stride, padding): conv1, pool1, pool2, pool3; the 1×1 and
# "same" convs keep the size. Caffe's round-up pools are "same" for pool1 and "valid" after.
_IMAGENET_WINDOWS = ((11, 4, "valid"), (3, 2, "same"), (3, 2, "valid"), (3, 2, "valid"))
SMALLEST_IMAGENET_INPUT = smallest_input(_IMAGENET_WINDOWS)
"""59: below it one of the valid 3×3/2 pools would see a map smaller than its window."""


def nin(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    *,
    dropout: float = 0.5,
    activation: str = "relu",
    batch_norm: bool = False,
    width: float = 1.0,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str = "nin",
) -> keras.Model:
    """NiN for ImageNet: four mlpconv blocks (11×11/4 96, 5×5 256, 3×3 384, 3×3 1024 → classes),
    3×3/2 max-pools after the first three (54→27→13→6 as in the Caffe model), dropout
    before the last block, global average pooling.

    The last 1×1 conv has ``num_classes`` filters; its ReLU is kept (as in the Caffe model)
    and the class scores are the averages of those maps. No dense layer: ≈7.6M parameters.
    """
    rate, w = _check(activation, dropout, batch_norm, width, bn_momentum)
    shape, classes = check_common(input_shape, num_classes, min_size=SMALLEST_IMAGENET_INPUT,
                                  classifier_activation=classifier_activation)
    # pool padding reproduces Caffe's round-up pools: 54 → 27 → 13 → 6
    pools = (("max", "same", False), ("max", "valid", False), ("max", "valid", True), (None, None, False))
    return _nin(shape, classes, IMAGENET_BLOCKS, pools, w, rate, activation, batch_norm,
                classifier_activation, name, "valid", bn_momentum)


def nin_small(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    dropout: float = 0.5,
    activation: str = "relu",
    batch_norm: bool = True,
    width: float = 0.25,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str = "nin_small",
) -> keras.Model:
    """The paper's CIFAR-10 NiN (5×5 192-160-96, max-pool; 5×5 192-192-192, avg-pool;
    3×3 192-192-classes; global average pooling), at ``width`` = 1/4 of its filters and with
    batch norm after every conv so it trains in a few CPU epochs. ``width=1.0,
    batch_norm=False`` is the paper's CIFAR model (0.97M parameters).
    """
    rate, w = _check(activation, dropout, batch_norm, width, bn_momentum)
    shape, classes = check_common(input_shape, num_classes, min_size=8, classifier_activation=classifier_activation)
    pools = (("max", "same", True), ("avg", "same", True), (None, None, False))
    return _nin(shape, classes, CIFAR_BLOCKS, pools, w, rate, activation, batch_norm,
                classifier_activation, name, "same", bn_momentum)
