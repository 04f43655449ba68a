"""The fast ResNet of notebook 10: a small residual network that pools early, built for 2 CPU cores.

On a CPU the cost of a convolution is its multiply-adds, ``H·W·k²·C_in·C_out`` per image, so
*where* the channels are matters more than how many layers there are. This network keeps one
thin 3×3 convolution at full resolution, max-pools, and puts the rest in two stages of width
2w and 4w at H/2 and H/4: each stage is a convolution and one residual block ``x + F(x)`` of
two 3×3 conv–BN–ReLU layers; global average pooling and one dense layer give the logits.
With ``w = 16`` on 28×28×1 it has about 117k parameters and trains to 93 % on Fashion-MNIST in
minutes (``cnncourse.experiments.recipe`` is its training recipe).
"""

from __future__ import annotations

from typing import Any

import keras

from cnncourse import checks
from cnncourse.models.blocks import BN_MOMENTUM, check_common, classifier, conv_bn_act

__all__ = ["fast_resnet"]


def fast_resnet(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    *,
    width: int = 16,
    residual: bool = True,
    batch_norm: bool = True,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = None,
    dtype: Any = None,
    name: str = "fast_resnet",
) -> keras.Model:
    """conv w @H → max-pool → [conv 2w, residual block 2w] @H/2 → max-pool → [conv 4w, residual
    block 4w] @H/4 → global average pool → dense; logits by default (the loss applies the softmax).

    ``residual=False`` makes the blocks plain (two convs, no skip; the same weights);
    ``batch_norm=False`` drops every normalization (the convs get biases instead). ``dtype`` is
    a Keras dtype policy for every layer but the last (e.g. ``"mixed_bfloat16"`` on a GPU),
    which stays float32 so the logits and the loss keep full precision.
    """
    shape, classes = check_common(input_shape, num_classes, min_size=4, classifier_activation=classifier_activation)
    w = checks.positive_int("width", width)
    checks.boolean("residual", residual)
    checks.boolean("batch_norm", batch_norm)
    checks.number("bn_momentum", bn_momentum, minimum=0.0, maximum=1.0, exclusive_maximum=True)

    def conv(x: Any, filters: int, tag: str) -> Any:
        return conv_bn_act(x, filters, 3, name=f"{tag}_conv", batch_norm=batch_norm, bn_momentum=bn_momentum,
                           bn_name=f"{tag}_bn", act_name=f"{tag}_relu", fuse_activation=False, dtype=dtype)

    def stage(x: Any, filters: int, tag: str) -> Any:
        x = conv(x, filters, f"{tag}_in")
        y = conv(conv(x, filters, f"{tag}_a"), filters, f"{tag}_b")
        return keras.layers.Add(name=f"{tag}_add", dtype=dtype)([x, y]) if residual else y

    inputs = keras.Input(shape, name="image")
    x = conv(inputs, w, "stem")
    x = keras.layers.MaxPooling2D(2, name="pool1", dtype=dtype)(x)
    x = stage(x, 2 * w, "stage1")
    x = keras.layers.MaxPooling2D(2, name="pool2", dtype=dtype)(x)
    x = stage(x, 4 * w, "stage2")
    x = keras.layers.GlobalAveragePooling2D(name="gap", dtype=dtype)(x)
    outputs = classifier(x, classes, classifier_activation, "logits", dtype="float32")
    return keras.Model(inputs, outputs, name=name)
