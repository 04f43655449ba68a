"""Local response normalization: the normalization layer of AlexNet that Keras lacks.

See :mod:`cnncourse.layers` for why each layer is written by hand.
"""

from __future__ import annotations

import keras
from keras import ops

from cnncourse.checks import non_negative_float as _non_negative_float
from cnncourse.checks import positive_int as _positive_int
from cnncourse.layers._base import _PACKAGE


# --------------------------------------------------------------------------------------------
# Local response normalization (AlexNet)
# --------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=_PACKAGE)
class LocalResponseNormalization(keras.layers.Layer):
    r"""AlexNet's local response normalization across channels, in the paper's own form.

    .. math::

        b_i = a_i \Big/ \Big(k + \alpha \sum_{j=\max(0,\,i-n/2)}^{\min(N-1,\,i+n/2)}
        a_j^2\Big)^{\beta}

    with ``size`` :math:`=n` channels in the window (odd, centred on channel :math:`i`,
    cut off at the first and last channel), over the last axis (channels-last). AlexNet used
    ``size=5, k=2, alpha=1e-4, beta=0.75`` (Krizhevsky, Sutskever & Hinton, 2012, §3.3),
    which are the defaults.

    Why hand-written: Keras 3 has no LRN layer (it went out of fashion after batch norm), and
    the two libraries that have one scale ``alpha`` differently, so copying hyper-parameters
    between papers and code goes wrong silently:

    * the paper (and this layer): ``alpha`` multiplies the plain *sum* of squares;
    * ``tf.nn.local_response_normalization(x, depth_radius=r, bias=k, alpha=a, beta=b)``: also
      the plain sum, over ``2r + 1`` channels -> same as this layer with ``size = 2r + 1``,
      ``alpha = a`` (the unit tests check this);
    * ``torch.nn.LocalResponseNorm(size, alpha, beta, k)``: divides by ``size`` (it uses the
      *mean* of the squares) -> same as this layer with ``alpha = alpha_torch / size``; the
      paper's ``alpha=1e-4`` is ``torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2)``.

    Works on any rank >= 2 (dense activations or feature maps); the channel count must be
    known when the layer is built.
    """

    def __init__(
        self, size: int = 5, k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        size = _positive_int("size", size)
        if size % 2 == 0:
            raise ValueError(f"size must be an odd positive integer (a window centred on the channel), got {size}")
        self.size = size
        self.k = _non_negative_float("k", k)
        self.alpha = _non_negative_float("alpha", alpha)
        self.beta = _non_negative_float("beta", beta)
        if self.k == 0.0 and self.beta > 0.0:
            # allowed, but a zero input then divides 0 by 0; say so early rather than return NaN
            raise ValueError("k must be > 0 when beta > 0 (k = 0 divides by zero on a zero input)")

    def build(self, input_shape) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"LocalResponseNormalization needs inputs of rank >= 2 with a known channel "
                f"count (channels-last), got shape {input_shape}"
            )
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        channels = x.shape[-1]
        half = self.size // 2
        squares = ops.square(x)
        # zero-pad the channel axis by `half` on both sides: the paper's max(0, .)/min(N-1, .)
        # limits are then the same as summing `size` shifted slices of the padded squares
        pad = [[0, 0]] * (len(x.shape) - 1) + [[half, half]]
        padded = ops.pad(squares, pad)
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset : offset + channels]
        return x / ops.power(self.k + self.alpha * window_sum, self.beta)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(size=self.size, k=self.k, alpha=self.alpha, beta=self.beta)
        return config
