"""Regularization layers Keras lacks: DropConnect (drop weights, not units).

See :mod:`cnncourse.layers` for why each layer is written by hand.
"""

from __future__ import annotations

import keras
from keras import ops

from cnncourse import checks
from cnncourse.checks import positive_int as _positive_int
from cnncourse.layers._base import _PACKAGE, _is_training


# --------------------------------------------------------------------------------------------
# DropConnect
# --------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=_PACKAGE)
class DropConnect(keras.layers.Layer):
    r"""A fully connected layer whose *weights* (not activations) are dropped while training.

    Wan, Zeiler, Zhang, LeCun & Fergus, "Regularization of Neural Networks using DropConnect",
    ICML 2013: during training every entry of the weight matrix :math:`W` (and of the bias)
    is kept with probability :math:`1-p` and set to zero otherwise, so each example sees a
    random sub-network of *connections*; dropout is the special case that drops whole rows
    of :math:`W` (all connections out of one input unit).

    Conventions of this implementation (they differ from the paper's in two places; both are
    the usual practical choices):

    * **inverted scaling**: kept weights are multiplied by :math:`1/(1-p)` during training, so
      the expected pre-activation equals the dense one and inference is simply the plain dense
      layer with the learned weights, with no rescaling. (The paper keeps weights unscaled
      and at inference approximates the mixture by a Gaussian moment-matching estimate; the
      mean-field rule here is the cheaper one most implementations use.)
    * **one mask per batch** by default (``mask_per="batch"``): all examples of a batch share
      one sampled weight mask, which costs one extra ``(in, units)`` tensor. The paper samples
      a mask per example; ``mask_per="example"`` does that, at the price of a
      ``(batch, in, units)`` mask (rank-2 inputs only).

    ``rate`` = 0 or ``training`` false gives exactly ``keras.layers.Dense`` with the same
    weights. Why hand-written: Keras has ``Dropout`` (activations) but no weight dropping.
    """

    def __init__(
        self,
        units: int,
        rate: float = 0.5,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        mask_per: str = "batch",
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        self.rate = checks.rate("rate", rate)
        self.mask_per = checks.choice("mask_per", mask_per, ("batch", "example"))
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"DropConnect needs inputs of rank >= 2 with a known last axis, got {input_shape}")
        if self.mask_per == "example" and len(input_shape) != 2:
            raise ValueError(f"mask_per='example' needs rank-2 inputs (batch, features), got {input_shape}")
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], self.units), initializer=self.kernel_initializer
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )
        self.built = True

    def _keep_mask(self, shape):
        keep = 1.0 - self.rate
        draw = keras.random.uniform(shape, seed=self.seed_generator, dtype=self.compute_dtype)
        return ops.cast(draw < keep, self.compute_dtype) / keep

    def call(self, inputs, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        kernel = ops.cast(self.kernel, self.compute_dtype)
        bias = ops.cast(self.bias, self.compute_dtype) if self.use_bias else None
        if _is_training(training) and self.rate > 0.0:
            if self.mask_per == "batch":
                kernel = kernel * self._keep_mask(kernel.shape)
                if bias is not None:
                    bias = bias * self._keep_mask(bias.shape)
                y = ops.matmul(x, kernel)
            else:
                batch = ops.shape(x)[0]
                masked = kernel[None] * self._keep_mask((batch, *kernel.shape))
                y = ops.einsum("bi,biu->bu", x, masked)
                if bias is not None:
                    bias = bias[None] * self._keep_mask((batch, self.units))
        else:
            y = ops.matmul(x, kernel)
        if bias is not None:
            y = y + bias
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            units=self.units,
            rate=self.rate,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            mask_per=self.mask_per,
            seed=self.seed,
        )
        return config
