"""Fixed filters as layers: the Sobel edge view of an augmentation gallery.

See :mod:`cnncourse.layers` for why each layer is written by hand.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from cnncourse.layers._base import _PACKAGE, _safe_sqrt

# --------------------------------------------------------------------------------------------
# Sobel edges
# --------------------------------------------------------------------------------------------
SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=np.float32)
SOBEL_Y = SOBEL_X.T.copy()
SOBEL_MAX_MAGNITUDE = math.sqrt(20.0)  # max of sqrt(Gx^2 + Gy^2) over 3x3 patches in [0, 1]

_SOBEL_PADDINGS = ("reflect", "symmetric", "zeros", "valid")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SobelEdges(keras.layers.Layer):
    r"""Per-channel Sobel gradient magnitude :math:`\sqrt{G_x^2 + G_y^2}` (a fixed filter, no weights).

    :math:`G_x` and :math:`G_y` are the cross-correlations of each channel with the 3x3 Sobel
    kernels (``SOBEL_X`` = [[-1,0,1],[-2,0,2],[-1,0,1]] and its transpose), computed per
    channel from the kernels' separable form with shifted slices; the output has the input's
    shape (``padding`` ``"reflect"``/``"symmetric"``/``"zeros"``) or loses one pixel per
    border (``"valid"``). Zero padding shows a spurious edge along the image border, which
    is why mirroring is the default. ``normalize=True`` divides by √20, the largest
    magnitude a [0, 1] image can produce (e.g. a 3x3 patch whose right column and bottom-
    middle pixel are 1: :math:`G_x = 4, G_y = 2`), so the output stays in [0, 1].

    It is applied in training and at inference alike (a deterministic transform, not a
    random augmentation). Used for the "Sobel filtering" view of SimCLR's augmentation
    gallery (Chen, Kornblith, Norouzi & Hinton, ICML 2020) and to show what an edge detector
    looks like next to learned first-layer filters. Why hand-written: Keras has no
    edge-detection layer (``keras.ops.image`` has none either).
    """

    def __init__(self, padding: str = "reflect", normalize: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if padding not in _SOBEL_PADDINGS:
            raise ValueError(f"padding must be one of {_SOBEL_PADDINGS}, got {padding!r}")
        self.padding = padding
        self.normalize = bool(normalize)

    def build(self, input_shape) -> None:
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"SobelEdges needs (batch, H, W, C) inputs with a known C, got {input_shape}")
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.padding != "valid":
            spec = [[0, 0], [1, 1], [1, 1], [0, 0]]
            x = ops.pad(x, spec) if self.padding == "zeros" else ops.pad(x, spec, mode=self.padding)
        # The Sobel kernels are separable, SOBEL_X = [1, 2, 1]^T [-1, 0, 1]: a central
        # difference along one axis, then a [1, 2, 1] smoothing along the other, written with
        # shifted slices. Exact, and much faster than a depthwise convolution on XLA:CPU.
        dx = x[:, :, 2:, :] - x[:, :, :-2, :]
        gx = dx[:, :-2] + 2.0 * dx[:, 1:-1] + dx[:, 2:]
        dy = x[:, 2:, :, :] - x[:, :-2, :, :]
        gy = dy[:, :, :-2] + 2.0 * dy[:, :, 1:-1] + dy[:, :, 2:]
        magnitude = _safe_sqrt(ops.square(gx) + ops.square(gy))
        return magnitude / SOBEL_MAX_MAGNITUDE if self.normalize else magnitude

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        if self.padding == "valid":
            height = None if height is None else height - 2
            width = None if width is None else width - 2
        return (batch, height, width, channels)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(padding=self.padding, normalize=self.normalize)
        return config
