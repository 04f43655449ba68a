"""The lecture's two Keras MNIST models, rebuilt layer for layer so their counts match.

They are the course's first baselines (notebook 02): a one-hidden-layer perceptron and the
small convnet of the keras.io MNIST example. Both keep the lecture's layer sizes exactly, so
their parameter counts (101,770 and 34,826 on 28×28×1) are checks, not approximations.
"""

from __future__ import annotations

from typing import Any

from cnncourse import checks
from cnncourse.models.blocks import ACTIVATIONS, check_common, classifier


def mnist_mlp(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    *,
    hidden: int = 128,
    activation: str = "relu",
    dropout: float = 0.0,
    classifier_activation: str | None = None,
    name: str = "mnist_mlp",
) -> Any:
    """Flatten → Dense(128, relu) → Dense(10): the lecture's TensorFlow quick-start MLP.

    101,770 parameters for 28×28 input (784·128 + 128 + 128·10 + 10). As in the lecture the
    last layer has no softmax: it returns **logits** by default, so compile it with
    ``SparseCategoricalCrossentropy(from_logits=True)``; pass
    ``classifier_activation="softmax"`` for probabilities. ``dropout`` (default 0, the
    lecture's form) inserts a Dropout after the hidden layer, as the TF tutorial does.
    """
    import keras

    shape, classes = check_common(input_shape, num_classes, classifier_activation=classifier_activation)
    checks.positive_int("hidden", hidden)
    checks.choice("activation", activation, ACTIVATIONS)
    rate = checks.rate("dropout", dropout)
    inputs = keras.Input(shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(hidden, activation=activation, name="dense")(x)
    if rate:
        x = keras.layers.Dropout(rate, name="dropout")(x)
    outputs = classifier(x, classes, classifier_activation, "logits" if classifier_activation is None else "predictions")
    return keras.Model(inputs, outputs, name=name)


def keras_io_convnet(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    *,
    activation: str = "relu",
    dropout: float = 0.5,
    classifier_activation: str | None = "softmax",
    name: str = "keras_io_convnet",
) -> Any:
    """The keras.io "simple MNIST convnet": two 3×3 conv + 2×2 max-pool stages, dropout, softmax.

    Conv(32) → MaxPool → Conv(64) → MaxPool → Flatten → Dropout(0.5) → Dense(10, softmax):
    34,826 parameters on 28×28×1 (320 + 18,496 + 1600·10 + 10). It shows how few weights a
    conv net needs compared with the MLP above (a third of them, and most sit in the last
    dense layer).
    """
    import keras

    shape, classes = check_common(input_shape, num_classes, min_size=10, classifier_activation=classifier_activation)
    checks.choice("activation", activation, ACTIVATIONS)
    rate = checks.rate("dropout", dropout)
    inputs = keras.Input(shape, name="image")
    x = keras.layers.Conv2D(32, 3, activation=activation, name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(64, 3, activation=activation, name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if rate:
        x = keras.layers.Dropout(rate, name="dropout")(x)
    outputs = classifier(x, classes, classifier_activation, "predictions")
    return keras.Model(inputs, outputs, name=name)
