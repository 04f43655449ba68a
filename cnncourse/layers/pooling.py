"""Pooling layers Keras lacks: L2 pooling (the lecture's third pooling variant) and
fractional max-pooling (the lecture's "fractional pooling", Graham 2014).

See :mod:`cnncourse.layers` for why each layer is written by hand.
"""

from __future__ import annotations

import keras
from keras import ops

from cnncourse.checks import pair as _pair
from cnncourse.layers._base import _PACKAGE, _is_training, _safe_sqrt

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


# --------------------------------------------------------------------------------------------
# Fractional max-pooling
# --------------------------------------------------------------------------------------------
def pseudo_random_boundaries(n_in: int, n_out: int, u):
    r"""Graham's pseudo-random sequence in ``keras.ops``: ``a_i = ⌈α(i + u)⌉ − ⌈αu⌉``, ``a_{n_out} = n_in``.

    ``α = n_in / n_out``; ``u`` is a scalar tensor in [0, 1). Returns ``n_out + 1`` int32
    boundaries (see :mod:`cnncourse.reference.fractional_pooling` for why every step is
    ``⌊α⌋`` or ``⌈α⌉`` and the last boundary is ``n_in``).
    """
    alpha = n_in / n_out
    u = ops.cast(u, "float32")
    a = ops.ceil(alpha * (ops.arange(n_out, dtype="float32") + u)) - ops.ceil(alpha * u)
    return ops.concatenate([ops.cast(a, "int32"), ops.convert_to_tensor([n_in], dtype="int32")])


def random_boundaries(n_in: int, n_out: int, seed):
    """Graham's random sequence in ``keras.ops``: the ``k`` and ``k + 1`` steps in a random order."""
    k = n_in // n_out
    m = n_in - k * n_out
    steps = ops.convert_to_tensor([k] * (n_out - m) + [k + 1] * m, dtype="int32")
    steps = keras.random.shuffle(steps, seed=seed)
    return ops.concatenate([ops.zeros((1,), "int32"), ops.cumsum(steps)])


def _max_over_regions(x, boundaries, axis: int, overlapping: bool, longest: int):
    """Max over the regions ``[a_i, a_{i+1} − 1]`` (or ``[a_i, a_{i+1}]``) of one axis.

    Region sizes are small and bounded (``longest``), so the max is taken over ``longest``
    gathered slices ``x[min(start + t, last)]``: a fixed number of ``take`` ops whatever the
    random draw, which compiles under XLA and has a gradient on every backend.
    """
    n_in = x.shape[axis]
    starts = boundaries[:-1]
    lasts = boundaries[1:] if overlapping else boundaries[1:] - 1
    lasts = ops.minimum(lasts, n_in - 1)
    out = ops.take(x, starts, axis=axis)
    for t in range(1, longest):
        out = ops.maximum(out, ops.take(x, ops.minimum(starts + t, lasts), axis=axis))
    return out


def fractional_max_pool(x, rows, cols, overlapping: bool = False):
    """Max-pool an NHWC batch over the regions given by the row and column boundaries (``keras.ops``)."""
    height, width = x.shape[1], x.shape[2]
    n_rows, n_cols = rows.shape[0] - 1, cols.shape[0] - 1
    extra = 2 if overlapping else 1  # longest region: k + 1 rows, one more when overlapping
    x = _max_over_regions(x, rows, 1, overlapping, height // n_rows + extra)
    return _max_over_regions(x, cols, 2, overlapping, width // n_cols + extra)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FractionalMaxPooling2D(keras.layers.Layer):
    r"""Fractional max-pooling (Graham, "Fractional Max-Pooling", arXiv:1412.6071, 2014).

    Shrinks each side by a factor :math:`\alpha \in (1, 2)` (output
    :math:`\lfloor N/\alpha \rfloor`), with pooling regions of 1 or 2 rows/columns (2 or 3
    when ``overlapping``) laid out by a sequence drawn anew at every training step: the
    pseudo-random :math:`a_i = \lceil\alpha(i + u)\rceil` (``pseudo_random=True``, the
    default) or a random order of the steps. Rows and columns get independent sequences;
    all the images of a batch share them (as in TensorFlow's ``fractional_max_pool``).
    The sequences and the pooling are defined in
    :mod:`cnncourse.reference.fractional_pooling`, which the unit tests hold this layer to.

    At inference (``training`` false or not given) the regions are fixed, the pseudo-random
    sequence at :math:`u = 1/2`, so predictions are deterministic. (Graham also averaged
    the predictions of several random draws at test time; call this layer with
    ``training=True`` to draw.)

    Why hand-written: Keras has no fractional pooling (TensorFlow's ``tf.nn.fractional_max_pool``
    is TensorFlow-only and has no Keras layer); this one uses ``keras.ops`` and
    ``keras.random`` only, so it compiles on TensorFlow and JAX.
    """

    def __init__(
        self, pooling_ratio=1.4142135623730951, pseudo_random: bool = True, overlapping: bool = False, seed=None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        ratios = pooling_ratio if isinstance(pooling_ratio, (tuple, list)) else (pooling_ratio, pooling_ratio)
        if len(ratios) != 2 or not all(
            not isinstance(r, bool) and isinstance(r, (int, float)) and 1.0 < r < 2.0 for r in ratios
        ):
            raise ValueError(f"pooling_ratio must be a number in (1, 2) or a pair of them, got {pooling_ratio!r}")
        for name, flag in (("pseudo_random", pseudo_random), ("overlapping", overlapping)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        self.pooling_ratio = (float(ratios[0]), float(ratios[1]))
        self.pseudo_random = pseudo_random
        self.overlapping = overlapping
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _sizes(self, input_shape) -> tuple[int, int, int, int]:
        from cnncourse.reference.fractional_pooling import output_size

        if len(input_shape) != 4 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                f"FractionalMaxPooling2D needs (batch, height, width, channels) inputs with a known size, got {input_shape}"
            )
        height, width = int(input_shape[1]), int(input_shape[2])
        return height, width, output_size(height, self.pooling_ratio[0]), output_size(width, self.pooling_ratio[1])

    def build(self, input_shape) -> None:
        self._sizes(input_shape)
        self.built = True

    def sample_boundaries(self, height: int, width: int, training: bool = True):
        """The row and column boundaries the layer uses for a ``height × width`` input (int32 tensors).

        In training each call draws new ones from the layer's ``SeedGenerator`` (rows first,
        then columns), so a layer created with the same ``seed`` reproduces them.
        """
        _, _, out_h, out_w = self._sizes((None, height, width, None))
        if not training:
            half = ops.convert_to_tensor(0.5, "float32")
            return pseudo_random_boundaries(height, out_h, half), pseudo_random_boundaries(width, out_w, half)
        if self.pseudo_random:
            u_rows = keras.random.uniform((), seed=self.seed_generator)
            u_cols = keras.random.uniform((), seed=self.seed_generator)
            return pseudo_random_boundaries(height, out_h, u_rows), pseudo_random_boundaries(width, out_w, u_cols)
        return random_boundaries(height, out_h, self.seed_generator), random_boundaries(width, out_w, self.seed_generator)

    def call(self, inputs, training=None):
        rows, cols = self.sample_boundaries(inputs.shape[1], inputs.shape[2], _is_training(training))
        return fractional_max_pool(inputs, rows, cols, self.overlapping)

    def compute_output_shape(self, input_shape):
        _, _, out_h, out_w = self._sizes(input_shape)
        return (input_shape[0], out_h, out_w, input_shape[3])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            pooling_ratio=list(self.pooling_ratio),
            pseudo_random=self.pseudo_random,
            overlapping=self.overlapping,
            seed=self.seed,
        )
        return config
