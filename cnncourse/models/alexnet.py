"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012) and ZFNet (Zeiler & Fergus, 2013).

AlexNet is built as a **single tower**: the paper split conv2, conv4, conv5 into two groups of
filters, one per GPU (so conv2/4/5 saw half the channels); one tower with full connections is
the form the lecture draws and the one the 62,378,344-parameter figure refers to (a grouped
version has 60,965,224). Order per the paper's §3.3–3.4: conv → ReLU → local response
normalisation → overlapping 3×3/2 max-pool, after conv1 and conv2; fc6/fc7 with dropout 0.5.

ZFNet is AlexNet with the changes that won ILSVRC 2013: a 7×7/2 conv1 (instead of 11×11/4)
so the first layer keeps more mid-frequency information, a 5×5/2 conv2, and conv3/4/5 of
512/1024/512 filters (the wider model of the paper's Table 3, as the lecture quotes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from cnncourse import checks
from cnncourse.models.blocks import BN_MOMENTUM, check_common, check_options, classifier, conv_bn_act, scaled


def _lrn(name: str) -> Any:
    from cnncourse.layers import (
        LocalResponseNormalization,  # lazy: only the models that use it need it
    )

    return LocalResponseNormalization(size=5, k=2.0, alpha=1e-4, beta=0.75, name=name)


def _norm(x: Any, index: int, lrn: bool) -> Any:
    return _lrn(f"norm{index}")(x) if lrn else x


def _check(activation: Any, dropout: Any, lrn: Any, batch_norm: Any, bn_momentum: Any) -> float:
    checks.boolean("lrn", lrn)
    return check_options(activation=activation, batch_norm=batch_norm, bn_momentum=bn_momentum, dropout=dropout)[0]


def _head(x: Any, classes: int, fc: int, rate: float, activation: str, classifier_activation: Any) -> Any:
    x = keras.layers.Flatten(name="flatten")(x)
    for index in (6, 7):
        x = keras.layers.Dense(fc, activation=activation, name=f"fc{index}")(x)
        if rate:
            x = keras.layers.Dropout(rate, name=f"drop{index}")(x)
    return classifier(x, classes, classifier_activation, "fc8")


def _conv(x: Any, filters: int, kernel: int, index: int, activation: str, batch_norm: bool, bn_momentum: float,
          strides: int = 1, padding: str = "valid") -> Any:
    """Conv + activation; with batch norm the activation moves after the normalisation."""
    return conv_bn_act(x, filters, kernel, name=f"conv{index}", strides=strides, padding=padding,
                       activation=activation, batch_norm=batch_norm, bn_momentum=bn_momentum,
                       bn_name=f"bn{index}", act_name=f"relu{index}")


def alexnet(
    input_shape: tuple[int, int, int] = (227, 227, 3),
    num_classes: int = 1000,
    *,
    activation: str = "relu",
    dropout: float = 0.5,
    lrn: bool = True,
    batch_norm: bool = False,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str = "alexnet",
) -> keras.Model:
    """AlexNet, single tower: 227×227×3 → conv1 55×55×96 → ... → fc8; 62,378,344 parameters.

    conv1 96 11×11/4 (34,944 params) → norm1 → pool1 3×3/2 (27×27) → conv2 256 5×5 pad 2 →
    norm2 → pool2 (13×13) → conv3 384, conv4 384, conv5 256 (3×3 pad 1) → pool5 (6×6×256) →
    fc6 4096 → fc7 4096 → fc8 ``num_classes``. ``lrn=False`` drops the normalisation;
    ``batch_norm=True`` puts batch norm (no conv bias) in its place, the modern substitute.
    Needs inputs of at least 67×67 (pool5 must see a 3×3 map).
    """
    shape, classes = check_common(input_shape, num_classes, min_size=67, classifier_activation=classifier_activation)
    rate = _check(activation, dropout, lrn, batch_norm, bn_momentum)
    conv = lambda x, filters, kernel, index, **kw: _conv(x, filters, kernel, index, activation, batch_norm,  # noqa: E731
                                                         bn_momentum, **kw)
    inputs = keras.Input(shape, name="image")
    x = conv(inputs, 96, 11, 1, strides=4)
    x = _norm(x, 1, lrn)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = conv(x, 256, 5, 2, padding="same")
    x = _norm(x, 2, lrn)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = conv(x, 384, 3, 3, padding="same")
    x = conv(x, 384, 3, 4, padding="same")
    x = conv(x, 256, 3, 5, padding="same")
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    outputs = _head(x, classes, 4096, rate, activation, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


def zfnet(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    *,
    filters: Sequence[int] = (96, 256, 512, 1024, 512),
    activation: str = "relu",
    dropout: float = 0.5,
    lrn: bool = True,
    batch_norm: bool = False,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str = "zfnet",
) -> keras.Model:
    """ZFNet: 224×224×3 → conv1 96 7×7/2 (110×110) → pool 55 → conv2 256 5×5/2 (26) → pool 13
    → conv3/4/5 (3×3, ``filters`` 512/1024/512) → pool5 6×6 → fc6/fc7 4096 → fc8.

    The spatial sizes are those of the paper's Fig. 3 (1-pixel padding on conv1, pools that
    round up as Caffe's do). ``filters=(96, 256, 384, 384, 256)`` gives the paper's base model.
    """
    shape, classes = check_common(input_shape, num_classes, min_size=63, classifier_activation=classifier_activation)
    rate = _check(activation, dropout, lrn, batch_norm, bn_momentum)
    filters = tuple(filters)
    if len(filters) != 5:
        raise ValueError(f"filters must list 5 conv widths (conv1..conv5), got {filters!r}")
    filters = tuple(checks.positive_int("every entry of filters", f) for f in filters)
    conv = lambda x, filters, kernel, index, **kw: _conv(x, filters, kernel, index, activation, batch_norm,  # noqa: E731
                                                         bn_momentum, **kw)
    inputs = keras.Input(shape, name="image")
    x = keras.layers.ZeroPadding2D(1, name="pad1")(inputs)
    x = conv(x, filters[0], 7, 1, strides=2)
    x = _norm(x, 1, lrn)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = conv(x, filters[1], 5, 2, strides=2)
    x = _norm(x, 2, lrn)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    x = conv(x, filters[2], 3, 3, padding="same")
    x = conv(x, filters[3], 3, 4, padding="same")
    x = conv(x, filters[4], 3, 5, padding="same")
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    outputs = _head(x, classes, 4096, rate, activation, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


def _small(
    input_shape: Any,
    num_classes: Any,
    base: Sequence[int],
    width: Any,
    fc: Any,
    activation: Any,
    dropout: Any,
    lrn: Any,
    batch_norm: Any,
    bn_momentum: Any,
    classifier_activation: Any,
    name: str,
) -> keras.Model:
    shape, classes = check_common(input_shape, num_classes, min_size=16, classifier_activation=classifier_activation)
    rate = _check(activation, dropout, lrn, batch_norm, bn_momentum)
    w = checks.positive_float("width", width)
    checks.positive_int("fc", fc)
    f = [scaled(v, w) for v in base]
    inputs = keras.Input(shape, name="image")
    x = inputs
    for index in range(1, 6):  # conv1, conv2 each followed by (LRN and) a pool; conv3-5; pool5
        x = _conv(x, f[index - 1], 3, index, activation, batch_norm, bn_momentum, padding="same")
        if index <= 2:
            x = _norm(x, index, lrn)
            x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{index}")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool5")(x)
    outputs = _head(x, classes, fc, rate, activation, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


def alexnet_small(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    width: float = 1.0,
    fc: int = 256,
    activation: str = "relu",
    dropout: float = 0.5,
    lrn: bool = False,
    batch_norm: bool = False,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str = "alexnet_small",
) -> keras.Model:
    """AlexNet's layout for 28×28 / 32×32 images, trainable on a CPU.

    Differences from the paper form: a 3×3 stride-1 conv1 instead of 11×11/4 (the image is
    already small); 3×3 conv2 instead of 5×5; filters 32/64/96/96/64 (times ``width``)
    instead of 96/256/384/384/256; pools padded ("same") so 28×28 and 32×32 both end at 4×4;
    fc6/fc7 of ``fc`` = 256 units instead of 4096; no local response normalisation by
    default (``lrn=True`` puts it back, at several times the CPU training time: the
    normalisation's backward pass costs more than the convolutions at this size). Kept: the
    conv-pool ×2, conv ×3, pool, fc, fc, classifier order, overlapping 3×3/2 pools, ReLU
    and dropout 0.5.
    """
    return _small(input_shape, num_classes, (32, 64, 96, 96, 64), width, fc, activation, dropout, lrn, batch_norm, bn_momentum,
                  classifier_activation, name)


def zfnet_small(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    width: float = 1.0,
    fc: int = 256,
    activation: str = "relu",
    dropout: float = 0.5,
    lrn: bool = False,
    batch_norm: bool = False,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str = "zfnet_small",
) -> keras.Model:
    """ZFNet's change to AlexNet, at the scale of :func:`alexnet_small`.

    Same small layout as ``alexnet_small`` (3×3 stem, padded pools, 256-unit fc layers), with
    ZFNet's wider middle: conv3/4/5 of 96/192/96 filters against ``alexnet_small``'s
    96/96/64 (the paper widened 384/384/256 to 512/1024/512).
    """
    return _small(input_shape, num_classes, (32, 64, 96, 192, 96), width, fc, activation, dropout, lrn, batch_norm, bn_momentum,
                  classifier_activation, name)
