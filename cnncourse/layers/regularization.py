"""Regularization layers Keras lacks: DropConnect (drop weights, not units) and stochastic depth
(drop a residual branch per example).

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


# --------------------------------------------------------------------------------------------
# Stochastic depth (drop-path)
# --------------------------------------------------------------------------------------------
_SCALINGS = ("train", "test")


def stochastic_depth_rates(num_blocks: int, final_rate: float = 0.5) -> list[float]:
    r"""Huang et al.'s linear decay rule: block :math:`l` of :math:`L` is dropped with probability :math:`\tfrac{l}{L} p_L`.

    The paper writes it as survival probabilities :math:`p_l = 1 - \tfrac{l}{L}(1 - p_L)`
    with :math:`p_L = 0.5`: the first blocks, whose low-level features everything later
    depends on, are almost always kept; the last block is dropped half the time. Returns the
    drop rates, one per block, for :class:`StochasticDepth`.
    """
    num_blocks = _positive_int("num_blocks", num_blocks)
    final_rate = checks.rate("final_rate", final_rate)
    return [final_rate * block / num_blocks for block in range(1, num_blocks + 1)]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class StochasticDepth(keras.layers.Layer):
    r"""Drop a residual branch for a random subset of the examples while training ("drop-path").

    Huang, Sun, Liu, Sedra & Weinberger, "Deep Networks with Stochastic Depth", ECCV 2016:
    in a residual block :math:`y = x + f(x)`, the branch :math:`f` is switched off, per
    example and per training step, with probability :math:`p` (``rate``), leaving the
    identity :math:`y = x`. Each step trains a random shallower network (the expected depth
    of a 110-layer ResNet with the linear rule of :func:`stochastic_depth_rates` is about 3/4
    of it), gradients reach the early blocks through fewer layers, and at test time the full
    network acts like an ensemble of those depths. Apply it to the branch only::

        y = keras.layers.Add()([x, StochasticDepth(0.2)(branch(x))])

    **Scaling convention.** ``scaling="train"`` (the default) multiplies a kept branch by
    :math:`1/(1-p)` in training and leaves inference untouched, as ``keras.layers.Dropout``
    does ("inverted" dropout; the timm/torchvision ``DropPath``). ``scaling="test"`` is the
    paper's own form: branches are not rescaled in training and multiplied by the survival
    probability :math:`1-p` at inference. Both give the branch the same expected output in
    training and at inference; the default is chosen because then inference is the plain
    network, so a saved model can be exported or have the layer removed without touching
    its weights.

    One Bernoulli draw per example (mask shape ``(batch, 1, …, 1)``), from a
    ``keras.random.SeedGenerator``. With ``scaling="train"`` this computes what
    ``keras.layers.Dropout(rate, noise_shape=(None, 1, 1, 1))`` computes on the branch;
    written out here so that the name says what it does, the paper's test-time convention
    is available, and the rule of :func:`stochastic_depth_rates` comes with it.
    """

    def __init__(self, rate: float, scaling: str = "train", seed=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rate = checks.rate("rate", rate)
        checks.choice("scaling", scaling, _SCALINGS)
        self.scaling = scaling
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        keep = 1.0 - self.rate
        if not _is_training(training):
            return x if self.scaling == "train" else x * keep
        if self.rate == 0.0:
            return x
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        draw = keras.random.uniform(shape, seed=self.seed_generator, dtype=self.compute_dtype)
        mask = ops.cast(draw < keep, self.compute_dtype)
        return x * (mask / keep if self.scaling == "train" else mask)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(rate=self.rate, scaling=self.scaling, seed=self.seed)
        return config
