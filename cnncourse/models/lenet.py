"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998): the convolutional network that read cheques.

CONV-POOL-CONV-POOL-FC-FC with 5×5 kernels, 2×2 subsampling and squashing (tanh) units.
Layer names follow the paper's C1, S2, C3, S4, C5, F6.

Simplifications, all standard in modern re-implementations: S2/S4 are plain average (or
max) pooling instead of the paper's subsampling with a trainable coefficient and bias per
map; C3 connects every S2 map (the paper wires 10 of the 16 maps to subsets of S2, Table I);
the output is a softmax dense layer instead of the paper's Euclidean RBF units; tanh is the
plain ``tanh`` (the paper scales it, 1.7159·tanh(2a/3)). With these, 32×32×1 input gives
61,706 parameters (the paper's 60,000 trainable parameters, §II.B, count C3's sparse wiring).
"""

from __future__ import annotations

from typing import Any

import keras

from cnncourse import checks
from cnncourse.models.blocks import ACTIVATIONS, check_common, classifier

POOLING = ("average", "max")


def lenet5(
    input_shape: tuple[int, int, int] = (32, 32, 1),
    num_classes: int = 10,
    *,
    activation: str = "tanh",
    pooling: str = "average",
    padding: str = "valid",
    classifier_activation: str | None = "softmax",
    name: str = "lenet5",
) -> keras.Model:
    """LeNet-5 on ``input_shape`` (the paper: 32×32×1, digits centred in a 28×28 field).

    ``padding`` is C1's padding: ``"valid"`` on 32×32 reproduces the paper's 28×28×6 C1 maps;
    ``"same"`` on 28×28 (MNIST / Fashion-MNIST without resizing) gives the same 28×28×6 maps
    and so the same parameter count, 61,706. ``activation`` ``tanh`` (paper) or ``sigmoid``
    (the lecture's alternative) or any of ``relu``, ``elu``...; ``pooling`` ``average``
    (the paper's subsampling) or ``max``.
    """
    shape, classes = check_common(input_shape, num_classes, min_size=16, classifier_activation=classifier_activation)
    checks.choice("activation", activation, ACTIVATIONS)
    checks.choice("pooling", pooling, POOLING)
    checks.choice("padding", padding, ("valid", "same"))
    smallest = 32 if padding == "valid" else 28  # C5's 5×5 window must fit in S4's maps
    if min(shape[0], shape[1]) < smallest:
        raise ValueError(
            f"input_shape {shape} is too small for LeNet-5 with padding={padding!r}: "
            "height and width must be >= 32 (padding='valid') or >= 28 (padding='same')"
        )
    pool = keras.layers.AveragePooling2D if pooling == "average" else keras.layers.MaxPooling2D
    inputs = keras.Input(shape, name="image")
    x = keras.layers.Conv2D(6, 5, padding=padding, activation=activation, name="c1")(inputs)
    x = pool(2, name="s2")(x)
    x = keras.layers.Conv2D(16, 5, activation=activation, name="c3")(x)
    x = pool(2, name="s4")(x)
    x = keras.layers.Conv2D(120, 5, activation=activation, name="c5")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(84, activation=activation, name="f6")(x)
    outputs = classifier(x, classes, classifier_activation, "output")
    return keras.Model(inputs, outputs, name=name)
