"""ResNet (He, Zhang, Ren & Sun, 2015): residual blocks ``y = F(x) + x``, as (block, stage depths).

``RESNET_TABLE`` is the paper's Table 1: ResNet-18/34 stack *basic* blocks (two 3×3 convs),
ResNet-50/101/152 *bottleneck* blocks (1×1 reduce → 3×3 → 1×1 expand to 4× the width, which
costs 69,632 instead of 589,824 MACs per position at width 256, see
``cnncourse.inspection.analysis.bottleneck_cost``). Four stages of widths 64/128/256/512 follow a 7×7/2
conv and a 3×3/2 max-pool; each stage after the first halves the resolution (stride 2 in its
first block) and doubles the width; global average pooling and one dense layer finish.

**Parity with ``keras.applications``.** The ImageNet builders reproduce
``keras.applications.ResNet50/101/152`` layer for layer — same layer names, convs *with*
biases (redundant before batch norm, but Keras keeps them), batch-norm epsilon 1.001e-5,
stride on the first 1×1 conv of a bottleneck (the original "v1", whose MACs are the paper's
3.8/7.6/11.3 G) — so their parameter counts are equal (ResNet-50: 25,636,712, as Keras
counts them: conv biases and batch-norm moving statistics included) and the throughput
benchmark compares like with like. The often-quoted 25,557,032 is the paper's/torchvision's
count: no conv biases, and only the *trainable* batch-norm weights; ``use_bias=False`` builds
that network, whose trainable weights number exactly 25,557,032 (ResNet-18: 11,689,512).

**Shortcuts** (paper §3.3): ``"B"`` (default) projects with a 1×1 conv + BN only where the
shape changes; ``"A"`` zero-pads the extra channels of a strided identity (no parameters);
``"C"`` projects in every block; ``None`` drops the shortcut — the *plain* twin used for the
degradation experiment (notebook 08).

The CIFAR networks of §4.2 (:func:`cifar_resnet`): a 3×3 conv of 16 filters, then three
stages of ``n`` basic blocks with 16/32/64 filters at 32/16/8 pixels, global average pooling
and a dense layer: depth ``6n + 2`` (20, 32, 44, 56, 110), option A shortcuts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from cnncourse import checks
from cnncourse.models.blocks import BN_MOMENTUM, check_common, check_options, classifier, conv_bn_act, scaled

RESNET_TABLE: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
"""The paper's Table 1: depth → (block, blocks per stage conv2_x..conv5_x)."""

SHORTCUTS = ("A", "B", "C", None)
BN_EPSILON = 1.001e-5  # keras.applications' value (Caffe's ResNet used 1e-5)
CIFAR_DEPTHS = (20, 32, 44, 56, 110)


@keras.saving.register_keras_serializable(package="cnncourse")
class ZeroPadChannels(keras.layers.Layer):
    """Append ``extra`` all-zero channels: the parameter-free option-A shortcut of ResNet.

    Written by hand because Keras' ZeroPadding layers pad only spatial axes.
    """

    def __init__(self, extra: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.extra = checks.positive_int("extra", extra)

    def call(self, inputs: Any) -> Any:
        pad = [[0, 0]] * (len(inputs.shape) - 1) + [[0, self.extra]]
        return ops.pad(inputs, pad)

    def compute_output_shape(self, input_shape: Sequence[Any]) -> tuple:
        shape = list(input_shape)
        shape[-1] = None if shape[-1] is None else shape[-1] + self.extra
        return tuple(shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "extra": self.extra}


class _Options:
    """Per-network conv/BN settings passed down to every block."""

    def __init__(self, activation: str, batch_norm: bool, use_bias: bool, epsilon: float, initializer: str,
                 momentum: float) -> None:
        self.activation, self.batch_norm, self.use_bias = activation, batch_norm, use_bias
        self.epsilon, self.initializer, self.momentum = epsilon, initializer, momentum

    def unit(self, x: Any, filters: int, kernel: int, name: str, strides: int = 1, padding: str = "valid",
             act: bool = True) -> Any:
        """``{name}_conv`` → ``{name}_bn`` → ``{name}_relu`` (keras.applications' names); ``act=False``
        stops after the normalization."""
        return conv_bn_act(
            x, filters, kernel, name=f"{name}_conv", strides=strides, padding=padding,
            activation=self.activation if act else None, batch_norm=self.batch_norm, use_bias=self.use_bias,
            kernel_initializer=self.initializer, bn_momentum=self.momentum, bn_epsilon=self.epsilon,
            bn_name=f"{name}_bn", act_name=f"{name}_relu", fuse_activation=False,
        )

    def act(self, x: Any, name: str) -> Any:
        return keras.layers.Activation(self.activation, name=name)(x)


def _shortcut(x: Any, out_channels: int, stride: int, shortcut: str | None, name: str, o: _Options) -> Any:
    in_channels = int(x.shape[-1])
    changes = stride != 1 or in_channels != out_channels
    if shortcut == "C" or (shortcut == "B" and changes):
        return o.unit(x, out_channels, 1, f"{name}_0", strides=stride, act=False)
    if not changes:
        return x
    # option A: subsample (a 1×1 window with the stride) and zero-pad the new channels
    s = x
    if stride != 1:
        s = keras.layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_subsample")(s)
    if out_channels > in_channels:
        s = ZeroPadChannels(out_channels - in_channels, name=f"{name}_0_pad")(s)
    return s


def basic_block(x: Any, filters: int, stride: int, shortcut: str | None, name: str, o: _Options) -> Any:
    """Two 3×3 convs (BN after each) plus the shortcut; ReLU after the addition."""
    y = o.unit(x, filters, 3, f"{name}_1", strides=stride, padding="same")
    y = o.unit(y, filters, 3, f"{name}_2", padding="same", act=False)
    if shortcut is not None:
        y = keras.layers.Add(name=f"{name}_add")([_shortcut(x, filters, stride, shortcut, name, o), y])
    return o.act(y, f"{name}_out")


def bottleneck_block(x: Any, filters: int, stride: int, shortcut: str | None, name: str, o: _Options) -> Any:
    """1×1 (stride here, as in the original ResNet and keras.applications) → 3×3 → 1×1 ×4."""
    y = o.unit(x, filters, 1, f"{name}_1", strides=stride)
    y = o.unit(y, filters, 3, f"{name}_2", padding="same")
    y = o.unit(y, 4 * filters, 1, f"{name}_3", act=False)
    if shortcut is not None:
        y = keras.layers.Add(name=f"{name}_add")([_shortcut(x, 4 * filters, stride, shortcut, name, o), y])
    return o.act(y, f"{name}_out")


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def _stages(x: Any, block: str, depths: Sequence[int], widths: Sequence[int], strides: Sequence[int],
            shortcut: str | None, o: _Options, first_stage: int) -> Any:
    fn = BLOCKS[block]
    for stage, (n, width, stride) in enumerate(zip(depths, widths, strides), start=first_stage):
        for i in range(n):
            x = fn(x, width, stride if i == 0 else 1, shortcut, f"conv{stage}_block{i + 1}", o)
    return x


def _prefix(shortcut: str | None) -> str:
    return "resnet" if shortcut is not None else "plain"


def _head(inputs: Any, x: Any, classes: int, classifier_activation: Any, name: str) -> keras.Model:
    """Global average pooling and the dense classifier: the end of every ResNet."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier(x, classes, classifier_activation, "predictions")
    return keras.Model(inputs, outputs, name=name)


def _check(activation: Any, batch_norm: Any, shortcut: Any, width: Any, bn_momentum: Any) -> float:
    checks.choice("shortcut", shortcut, SHORTCUTS)
    return check_options(activation=activation, batch_norm=batch_norm, bn_momentum=bn_momentum, width=width)[1]


def resnet(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    *,
    depth: int = 50,
    shortcut: str | None = "B",
    batch_norm: bool = True,
    use_bias: bool = True,
    activation: str = "relu",
    width: float = 1.0,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """ResNet-``depth`` (18, 34, 50, 101 or 152) for ImageNet-sized input.

    conv1 7×7/2 64 → pool1 3×3/2 → conv2_x … conv5_x (``RESNET_TABLE``) → global average
    pool → dense. 224×224 input gives 112, 56, 28, 14, 7 as in the paper. ``shortcut=None``
    is the plain network of the same depth; ``width`` scales every stage's filters.
    """
    checks.choice("depth", depth, tuple(RESNET_TABLE))
    w = _check(activation, batch_norm, shortcut, width, bn_momentum)
    checks.boolean("use_bias", use_bias)
    shape, classes = check_common(input_shape, num_classes, min_size=32, classifier_activation=classifier_activation)
    block, depths = RESNET_TABLE[depth]
    o = _Options(activation, batch_norm, use_bias, BN_EPSILON, "glorot_uniform", bn_momentum)
    inputs = keras.Input(shape, name="image")
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = o.unit(x, scaled(64, w), 7, "conv1", strides=2)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    widths = [scaled(v, w) for v in (64, 128, 256, 512)]
    x = _stages(x, block, depths, widths, (1, 2, 2, 2), shortcut, o, first_stage=2)
    return _head(inputs, x, classes, classifier_activation, name or f"{_prefix(shortcut)}{depth}")


def resnet_small(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    depth: int = 18,
    shortcut: str | None = "B",
    batch_norm: bool = True,
    activation: str = "relu",
    width: float = 0.25,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """ResNet-``depth`` (18/34/50/101/152 stage table) for 28×28 / 32×32 images, trainable on a CPU.

    Differences from :func:`resnet`: the stem is a 3×3/1 conv instead of 7×7/2 (then the
    paper's 3×3/2 max-pool, padded: 32→16, 28→14); stage widths are 64/128/256/512 times
    ``width`` (default 1/4: 16/32/64/128); convs have no bias (batch norm follows) and He
    initialisation. Stages, blocks, shortcuts and the head are the paper's.
    """
    checks.choice("depth", depth, tuple(RESNET_TABLE))
    w = _check(activation, batch_norm, shortcut, width, bn_momentum)
    shape, classes = check_common(input_shape, num_classes, min_size=8, classifier_activation=classifier_activation)
    block, depths = RESNET_TABLE[depth]
    o = _Options(activation, batch_norm, False, 1e-3, "he_normal", bn_momentum)
    inputs = keras.Input(shape, name="image")
    x = o.unit(inputs, scaled(64, w), 3, "conv1", padding="same")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
    widths = [scaled(v, w) for v in (64, 128, 256, 512)]
    x = _stages(x, block, depths, widths, (1, 2, 2, 2), shortcut, o, first_stage=2)
    return _head(inputs, x, classes, classifier_activation, name or f"{_prefix(shortcut)}{depth}_small")


def cifar_blocks_per_stage(depth: Any) -> int:
    """``n`` for a CIFAR ResNet of ``depth = 6n + 2`` layers (ValueError otherwise)."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"depth must be 6n + 2 for an integer n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth!r}"
        )
    return (int(depth) - 2) // 6


def cifar_resnet(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    depth: int = 20,
    shortcut: str | None = "A",
    batch_norm: bool = True,
    activation: str = "relu",
    width: float = 1.0,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """He et al.'s CIFAR-10 ResNet (§4.2) of ``depth = 6n + 2`` layers, or its plain twin.

    conv 3×3 16 → 3 stages × ``n`` basic blocks (16, 32, 64 filters; stride 2 entering
    stages 2 and 3) → global average pooling → dense: 0.27M parameters at depth 20, 0.85M at
    56, 1.7M at 110 (Table 6). ``shortcut="A"`` (the paper's choice here: zero-padded
    identities, no extra parameters), ``"B"`` (1×1 projections where shapes change) or
    ``None`` for the plain network with the same layers and no shortcuts.
    """
    n = cifar_blocks_per_stage(depth)
    w = _check(activation, batch_norm, shortcut, width, bn_momentum)
    shape, classes = check_common(input_shape, num_classes, min_size=4, classifier_activation=classifier_activation)
    o = _Options(activation, batch_norm, False, 1e-3, "he_normal", bn_momentum)
    inputs = keras.Input(shape, name="image")
    x = o.unit(inputs, scaled(16, w), 3, "conv1", padding="same")
    widths = [scaled(v, w) for v in (16, 32, 64)]
    x = _stages(x, "basic", (n, n, n), widths, (1, 2, 2), shortcut, o, first_stage=2)
    return _head(inputs, x, classes, classifier_activation, name or f"{_prefix(shortcut)}{depth}_cifar")
