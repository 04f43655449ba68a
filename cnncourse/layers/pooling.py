"""Pooling layers Keras lacks: L2 pooling, the lecture's third pooling variant.

See :mod:`cnncourse.layers` for why each layer is written by hand.
"""

from __future__ import annotations

import keras
from keras import ops

from cnncourse.checks import pair as _pair
from cnncourse.layers._base import _PACKAGE, _safe_sqrt

# --------------------------------------------------------------------------------------------
# L2 pooling
# --------------------------------------------------------------------------------------------
_PADDINGS = ("valid", "same")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class L2Pooling2D(keras.layers.Layer):
    r"""L2 pooling: the root-mean-square of each window, :math:`\sqrt{\tfrac1n\sum_{i\in N} h_i^2}`.

    This is the lecture's definition (the square root of the **mean** of the squares over the
    :math:`n` positions of the window), so it sits between average pooling (on
    :math:`|h|`) and max pooling: for a window of equal values it returns that value, and it
    is always between the mean and the maximum of :math:`|h|`. (Some papers use the square
    root of the *sum*; that is this output times :math:`\sqrt{n}`.) With ``padding="same"``
    the mean is over the positions inside the image only, as Keras' ``AveragePooling2D``
    does. Sermanet, Chintala & LeCun (ICPR 2012) used L2 pooling on street-view house numbers.

    Why hand-written: Keras has max and average pooling only. Implemented as
    ``sqrt(AveragePool(x**2))`` with a square root whose gradient at an all-zero window is 0
    instead of NaN.
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid", **kwargs) -> None:
        super().__init__(**kwargs)
        self.pool_size = _pair("pool_size", pool_size)
        self.strides = self.pool_size if strides is None else _pair("strides", strides)
        if not isinstance(padding, str) or padding.lower() not in _PADDINGS:
            raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
        self.padding = padding.lower()

    def build(self, input_shape) -> None:
        if len(input_shape) != 4:
            raise ValueError(f"L2Pooling2D needs (batch, height, width, channels) inputs, got {input_shape}")
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        mean_square = ops.average_pool(
            ops.square(x), self.pool_size, self.strides, padding=self.padding, data_format="channels_last"
        )
        return _safe_sqrt(mean_square)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape

        def out(size, pool, stride):
            if size is None:
                return None
            if self.padding == "same":
                return (size + stride - 1) // stride
            return (size - pool) // stride + 1

        return (
            batch,
            out(height, self.pool_size[0], self.strides[0]),
            out(width, self.pool_size[1], self.strides[1]),
            channels,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(pool_size=list(self.pool_size), strides=list(self.strides), padding=self.padding)
        return config
