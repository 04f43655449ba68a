"""VGG (Simonyan & Zisserman, 2014): depth from stacks of 3×3 convolutions, as a config table.

Each configuration of the paper's Table 1 is one list, read left to right as the paper's
columns are read top to bottom: an int is a 3×3 conv with that many filters (stride 1,
padding 1, ReLU), ``("1x1", n)`` a 1×1 conv (config C only), ``"LRN"`` a local response
normalisation (A-LRN only) and ``"M"`` a 2×2/2 max-pool. Three fully connected layers
(fc6/fc7 4096 with dropout 0.5, fc8 ``num_classes``) follow. This is how torchvision writes
them; the parameter counts, 133/133/133/134/138/144 M for A/A-LRN/B/C/D/E, match the paper's
Table 2, and D/E equal ``keras.applications.VGG16/VGG19(weights=None)`` to the weight.
Layers are named like the paper's groups: ``conv3_2`` is the second conv of the third group.
"""

from __future__ import annotations

from typing import Any

import keras

from cnncourse import checks
from cnncourse.models.blocks import BN_MOMENTUM, check_common, check_options, classifier, conv_bn_act, scaled

CONFIGS: dict[str, list[Any]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, ("1x1", 256), "M", 512, 512, ("1x1", 512), "M",
          512, 512, ("1x1", 512), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}
"""The paper's Table 1: configuration → layers (int: 3×3 conv, ("1x1", n), "LRN", "M": pool)."""

DEPTHS = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
"""Weight layers per configuration (convs + 3 fully connected), the number in 'VGG-16'."""


def _features(x: Any, config: str, width: float, activation: str, batch_norm: bool, pool_padding: str,
              bn_momentum: float) -> Any:
    group, index = 1, 0
    for item in CONFIGS[config]:
        if item == "M":
            x = keras.layers.MaxPooling2D(2, strides=2, padding=pool_padding, name=f"pool{group}")(x)
            group, index = group + 1, 0
            continue
        if item == "LRN":
            from cnncourse.layers import (
                LocalResponseNormalization,  # lazy: only A-LRN needs it
            )

            x = LocalResponseNormalization(size=5, k=2.0, alpha=1e-4, beta=0.75, name=f"norm{group}")(x)
            continue
        kernel, filters = (1, item[1]) if isinstance(item, tuple) else (3, item)
        index += 1
        x = conv_bn_act(x, scaled(filters, width), kernel, name=f"conv{group}_{index}", activation=activation,
                        batch_norm=batch_norm, bn_momentum=bn_momentum)
    return x


def _check(config: Any, activation: Any, dropout: Any, batch_norm: Any, width: Any, bn_momentum: Any,
           fc: Any) -> tuple[float, float]:
    checks.choice("config", config, tuple(CONFIGS))
    checks.positive_int("fc", fc)
    return check_options(activation=activation, batch_norm=batch_norm, bn_momentum=bn_momentum, dropout=dropout,
                         width=width)


def vgg(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    *,
    config: str = "D",
    batch_norm: bool = False,
    dropout: float = 0.5,
    activation: str = "relu",
    width: float = 1.0,
    fc: int = 4096,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """VGG configuration ``config`` (``A``, ``A-LRN``, ``B``, ``C``, ``D`` = VGG-16, ``E`` = VGG-19).

    The paper form: 224×224×3, five 2×2 pools → 7×7×512, fc6/fc7 ``fc`` = 4096 with dropout,
    fc8 1000. ``batch_norm=True`` adds batch norm after every conv (torchvision's ``vgg16_bn``;
    not in the paper, which trained the deeper nets by initialising them from A instead).
    ``width`` multiplies every conv's filters. Input sides must be at least 32.
    """
    rate, w = _check(config, activation, dropout, batch_norm, width, bn_momentum, fc)
    shape, classes = check_common(input_shape, num_classes, min_size=32, classifier_activation=classifier_activation)
    inputs = keras.Input(shape, name="image")
    x = _features(inputs, config, w, activation, batch_norm, "valid", bn_momentum)
    x = keras.layers.Flatten(name="flatten")(x)
    for index in (6, 7):
        x = keras.layers.Dense(fc, activation=activation, name=f"fc{index}")(x)
        if rate:
            x = keras.layers.Dropout(rate, name=f"drop{index}")(x)
    outputs = classifier(x, classes, classifier_activation, "fc8")
    return keras.Model(inputs, outputs, name=name or f"vgg{DEPTHS[config]}" + ("_lrn" if config == "A-LRN" else ""))


def vgg_small(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    config: str = "A",
    batch_norm: bool = True,
    dropout: float = 0.5,
    activation: str = "relu",
    width: float = 0.25,
    fc: int = 256,
    bn_momentum: float = BN_MOMENTUM,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """A VGG configuration for 28×28 / 32×32 images, trainable on a CPU.

    Differences from :func:`vgg`: filters times ``width`` (default 1/4: 16…128 instead of
    64…512); batch norm after every conv (so the deeper configs train from scratch without
    the paper's staged initialisation); pools padded ("same"), so 28×28 goes
    28→14→7→4→2→1 like 32×32 goes 32→…→1; one hidden fc layer of ``fc`` = 256 units instead
    of two of 4096. The conv stacks themselves are the paper's table.
    """
    rate, w = _check(config, activation, dropout, batch_norm, width, bn_momentum, fc)
    shape, classes = check_common(input_shape, num_classes, min_size=8, classifier_activation=classifier_activation)
    inputs = keras.Input(shape, name="image")
    x = _features(inputs, config, w, activation, batch_norm, "same", bn_momentum)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(fc, activation=activation, name="fc6")(x)
    if rate:
        x = keras.layers.Dropout(rate, name="drop6")(x)
    outputs = classifier(x, classes, classifier_activation, "fc8")
    return keras.Model(inputs, outputs, name=name or f"vgg{DEPTHS[config]}_small")
