"""GoogLeNet / Inception v1 (Szegedy et al., 2014), from the paper's Table 1.

Each inception module is one row of the table: ``(#1×1, #3×3 reduce, #3×3, #5×5 reduce,
#5×5, pool proj)``. Four branches see the same input — a 1×1 conv; a 1×1 reduction then a
3×3 conv; a 1×1 reduction then a 5×5 conv; a 3×3/1 max-pool then a 1×1 projection — and
their outputs are concatenated along channels. The 1×1 reductions are what make the module
affordable (``cnncourse.inspection.analysis.inception_module_cost`` shows the naive module's cost).
Every conv has a ReLU; there is no fully connected layer except the classifier, so the
network has ≈7M parameters against AlexNet's 62M.

Auxiliary classifiers (paper §5) sit on 4a and 4d: 5×5/3 average pool, 1×1 conv 128, fc
1024, dropout 0.7, a softmax over the classes. They only help training (their losses are
added with weight 0.3), so the default model has none; ``aux_logits=True`` returns a model
with three outputs ``[main, aux1, aux2]`` to train with ``loss_weights=[1, 0.3, 0.3]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from cnncourse import checks
from cnncourse.models.blocks import BN_MOMENTUM, check_common, check_options, classifier, conv_bn_act, scaled

# The paper's Table 1: module → (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)
INCEPTION_TABLE: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}

# The paper's Table 1 "params" and "ops" columns for the modules (params in K, ops in M)
PAPER_COSTS: dict[str, tuple[int, int]] = {
    "3a": (159, 128), "3b": (380, 304), "4a": (364, 73), "4b": (437, 88), "4c": (463, 100),
    "4d": (580, 119), "4e": (840, 170), "5a": (1072, 54), "5b": (1388, 71),
}

STAGES: Sequence[Sequence[str]] = (("3a", "3b"), ("4a", "4b", "4c", "4d", "4e"), ("5a", "5b"))
AUX_AFTER = ("4a", "4d")


def _conv(x: Any, filters: int, kernel: int, name: str, activation: str, batch_norm: bool, strides: int = 1,
          bn_momentum: float = BN_MOMENTUM) -> Any:
    return conv_bn_act(x, filters, kernel, name=name, strides=strides, activation=activation,
                       batch_norm=batch_norm, bn_momentum=bn_momentum)


def inception_module(
    x: Any, spec: Sequence[int], name: str, *, activation: str = "relu", batch_norm: bool = False, width: float = 1.0,
    bn_momentum: float = BN_MOMENTUM,
) -> Any:
    """One inception module; ``spec`` = ``(#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj)``.

    Layers are named ``{name}_1x1``, ``{name}_3x3_reduce``, ``{name}_3x3``, ``{name}_5x5_reduce``,
    ``{name}_5x5``, ``{name}_pool``, ``{name}_pool_proj``, ``{name}_output``: the Caffe model's
    names with ``_`` for its ``/`` (Keras forbids ``/`` in layer names).
    """
    n1, r3, n3, r5, n5, pp = (scaled(v, width) for v in spec)
    kw = {"activation": activation, "batch_norm": batch_norm, "bn_momentum": bn_momentum}
    b1 = _conv(x, n1, 1, f"{name}_1x1", **kw)
    b3 = _conv(_conv(x, r3, 1, f"{name}_3x3_reduce", **kw), n3, 3, f"{name}_3x3", **kw)
    b5 = _conv(_conv(x, r5, 1, f"{name}_5x5_reduce", **kw), n5, 5, f"{name}_5x5", **kw)
    bp = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = _conv(bp, pp, 1, f"{name}_pool_proj", **kw)
    return keras.layers.Concatenate(name=f"{name}_output")([b1, b3, b5, bp])


def _aux(x: Any, index: int, classes: int, activation: str, batch_norm: bool, width: float, classifier_activation: Any,
         bn_momentum: float) -> Any:
    name = f"aux{index}"
    pool = 5 if x.shape[1] >= 5 else int(x.shape[1])
    x = keras.layers.AveragePooling2D(pool, strides=3 if pool == 5 else 1, name=f"{name}_pool")(x)
    x = _conv(x, scaled(128, width), 1, f"{name}_conv", activation, batch_norm, bn_momentum=bn_momentum)
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(scaled(1024, width), activation=activation, name=f"{name}_fc")(x)
    x = keras.layers.Dropout(0.7, name=f"{name}_drop")(x)
    return classifier(x, classes, classifier_activation, f"{name}_classifier")


def _network(
    shape: tuple[int, int, int], classes: int, *, stem: str, width: float, activation: str, batch_norm: bool,
    lrn: bool, dropout: float, aux_logits: bool, classifier_activation: Any, name: str, bn_momentum: float,
) -> keras.Model:
    inputs = keras.Input(shape, name="image")
    kw = {"activation": activation, "batch_norm": batch_norm, "bn_momentum": bn_momentum}
    if stem == "imagenet":
        from cnncourse.layers import LocalResponseNormalization  # lazy: only the paper form needs it

        x = _conv(inputs, scaled(64, width), 7, "conv1", strides=2, **kw)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
        if lrn:
            x = LocalResponseNormalization(name="norm1")(x)
        x = _conv(x, scaled(64, width), 1, "conv2_reduce", **kw)
        x = _conv(x, scaled(192, width), 3, "conv2", **kw)
        if lrn:
            x = LocalResponseNormalization(name="norm2")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    else:
        x = _conv(inputs, scaled(192, width), 3, "conv1", **kw)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    aux_outputs = []
    for stage_index, stage in enumerate(STAGES):
        if stage_index:
            x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{stage_index + 2}")(x)
        for module in stage:
            x = inception_module(x, INCEPTION_TABLE[module], f"inception_{module}", width=width, **kw)
            if aux_logits and module in AUX_AFTER:
                aux_outputs.append(_aux(x, len(aux_outputs) + 1, classes, activation, batch_norm, width,
                                        classifier_activation, bn_momentum))
    x = keras.layers.GlobalAveragePooling2D(name="pool5")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="drop5")(x)
    main = classifier(x, classes, classifier_activation, "classifier")
    return keras.Model(inputs, [main, *aux_outputs] if aux_logits else main, name=name)


def _check(activation: Any, batch_norm: Any, lrn: Any, dropout: Any, aux_logits: Any, width: Any,
           bn_momentum: Any) -> tuple[float, float]:
    checks.boolean("lrn", lrn)
    checks.boolean("aux_logits", aux_logits)
    return check_options(activation=activation, batch_norm=batch_norm, bn_momentum=bn_momentum, dropout=dropout,
                         width=width)


def googlenet(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    *,
    aux_logits: bool = False,
    dropout: float = 0.4,
    activation: str = "relu",
    lrn: bool = True,
    batch_norm: bool = False,
    width: float = 1.0,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str = "googlenet",
) -> keras.Model:
    """GoogLeNet: stem (7×7/2 conv, pool, LRN, 1×1 + 3×3 convs, LRN, pool) → 3a, 3b → pool →
    4a–4e → pool → 5a, 5b → 7×7 global average pool → dropout 0.4 → linear classifier.

    224×224×3 gives the table's sizes (112, 56, 28, 14, 7); pools pad as the paper's
    ceil-mode pools do. ``aux_logits=True`` adds the two auxiliary classifiers and returns a
    three-output model (module docstring); ``batch_norm=True`` gives the BN-Inception-like
    variant (no LRN, no conv biases), ``lrn=False`` removes the normalisation.
    """
    rate, w = _check(activation, batch_norm, lrn, dropout, aux_logits, width, bn_momentum)
    shape, classes = check_common(input_shape, num_classes, min_size=33 if not aux_logits else 65, classifier_activation=classifier_activation)
    return _network(shape, classes, stem="imagenet", width=w, activation=activation, batch_norm=batch_norm,
                    lrn=lrn and not batch_norm, dropout=rate, aux_logits=aux_logits,
                    classifier_activation=classifier_activation, name=name, bn_momentum=bn_momentum)


def googlenet_small(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    aux_logits: bool = False,
    dropout: float = 0.4,
    activation: str = "relu",
    batch_norm: bool = True,
    width: float = 0.25,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str = "googlenet_small",
) -> keras.Model:
    """Inception v1 for 28×28 / 32×32 images, trainable on a CPU.

    Differences from :func:`googlenet`: the stem is one 3×3 conv (192 × ``width`` filters,
    stride 1, no LRN) and one 3×3/2 max-pool, so module 3 works at 14/16 pixels, 4 at 7/8
    and 5 at 4 (the paper's 28 → 14 → 7 after its 224-pixel stem); every module's filters
    are the table's times ``width`` (default 1/4); batch norm after every conv. The nine
    modules, their branch structure, the pools between stages, global average pooling and
    the auxiliary classifiers are the paper's.
    """
    rate, w = _check(activation, batch_norm, False, dropout, aux_logits, width, bn_momentum)
    shape, classes = check_common(input_shape, num_classes, min_size=8, classifier_activation=classifier_activation)
    return _network(shape, classes, stem="small", width=w, activation=activation, batch_norm=batch_norm,
                    lrn=False, dropout=rate, aux_logits=aux_logits,
                    classifier_activation=classifier_activation, name=name, bn_momentum=bn_momentum)
