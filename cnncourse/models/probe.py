"""A convnet small enough to compare single weights: the probe of notebook 10's distribution check.

Data parallelism must give, step for step, the update of one device (notebook 10 and
``cnncourse.experiments.distribute``). To see that, every weight after one step is compared
between a run on one device and a run on two, so the network must be tiny (a few hundred
weights), convolutional (so the check covers a conv kernel's gradient) and free of anything
random at training time (no dropout, no augmentation).
"""

from __future__ import annotations

import keras

from cnncourse import checks
from cnncourse.models.blocks import check_common, classifier

__all__ = ["probe_convnet"]


def probe_convnet(
    input_shape: tuple[int, int, int] = (8, 8, 1),
    num_classes: int = 3,
    *,
    filters: int = 4,
    classifier_activation: str | None = None,
    name: str = "probe_convnet",
) -> keras.Model:
    """Conv(``filters``, 3×3, same, ReLU) → Flatten → Dense(``num_classes``): 811 weights on 8×8×1."""
    shape, classes = check_common(input_shape, num_classes, min_size=3, classifier_activation=classifier_activation)
    filters = checks.positive_int("filters", filters)
    inputs = keras.Input(shape, name="image")
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = classifier(x, classes, classifier_activation, "logits")
    return keras.Model(inputs, outputs, name=name)
