"""Layers the course needs that Keras 3 does not ship.

Keras 3.15 already has every augmentation layer of the modern recipe book (``RandomFlip``,
``RandomCrop``, ``RandomTranslation``, ``RandomRotation``, ``RandomZoom``, ``RandomContrast``,
``RandomBrightness``, ``RandomColorJitter``, ``RandomErasing``, ``RandomGaussianBlur``,
``MixUp``, ``CutMix``, ``RandAugment``, ``AugMix``, ``GaussianNoise`` ...), and the course uses
those. What is missing are the pieces of the classic papers the course re-builds:

* ``LocalResponseNormalization``: AlexNet (Krizhevsky, Sutskever & Hinton, 2012), §3.3;
* ``DropConnect``: Wan et al., "Regularization of Neural Networks using DropConnect",
  ICML 2013;
* ``L2Pooling2D``: the lecture's third pooling variant, the square root of the *mean* of
  the squares (Sermanet, Chintala & LeCun used L2 pooling on house numbers, ICPR 2012);
* ``RandomLighting`` (+ ``fit_pca_lighting``): AlexNet's "PCA colour augmentation", §4.1;
* ``RandomShift``: pad-and-crop with one offset per image that compiles under XLA; Keras'
  ``RandomCrop`` inside a model uses one offset per batch and turns XLA off for the whole
  model (see its docstring and ``benchmarks/augmentation.py``);
* ``Cutout``: DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks
  with Cutout", 2017 (Keras' ``RandomErasing`` is a different recipe; see the docstring);
* ``SobelEdges``: the Sobel-filtering view of SimCLR's augmentation gallery (Chen,
  Kornblith, Norouzi & Hinton, ICML 2020).

All of them are channels-last, use ``keras.ops`` / ``keras.random`` only (the unit tests run them
on TensorFlow and JAX, inside a compiled ``train_step`` too), serialize through
``get_config`` and are registered under the ``cnncourse`` package name, so a saved
``.keras`` file that contains them loads again once ``cnncourse.layers`` is imported.
The random layers are identity at inference (``training`` false or not given), as Keras'
own augmentation layers are, and draw from a ``keras.random.SeedGenerator`` so a ``seed``
makes a run repeatable.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

__all__ = [
    "Cutout",
    "DropConnect",
    "L2Pooling2D",
    "LocalResponseNormalization",
    "RandomLighting",
    "RandomShift",
    "SobelEdges",
    "fit_pca_lighting",
]

_PACKAGE = "cnncourse"


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _non_negative_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if not math.isfinite(float(value)) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return float(value)


def _pair(name: str, value: object) -> tuple[int, int]:
    """An int or a pair of ints -> (rows, cols), both positive."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return (_positive_int(name, value[0]), _positive_int(name, value[1]))


def _safe_sqrt(x):
    """``sqrt(x)`` for ``x >= 0`` whose gradient at 0 is 0, not NaN (sqrt's slope there is infinite)."""
    positive = x > 0
    return ops.where(positive, ops.sqrt(ops.where(positive, x, ops.ones_like(x))), ops.zeros_like(x))


def _is_training(training: object) -> bool:
    """Keras passes ``training`` as a Python bool (or None) to ``call``; treat None as inference."""
    return bool(training) if training is not None else False


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
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
        if mask_per not in ("batch", "example"):
            raise ValueError(f"mask_per must be 'batch' or 'example', got {mask_per!r}")
        self.rate = float(rate)
        self.mask_per = mask_per
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
# AlexNet's PCA colour augmentation
# --------------------------------------------------------------------------------------------
def fit_pca_lighting(images, max_pixels: int | None = 1_000_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of the colour covariance of a training set (AlexNet §4.1).

    ``images``: ``(N, H, W, C)`` (or ``(pixels, C)``) in the value range the model will see
    (fit on [0, 1] images to augment [0, 1] images). Every pixel of every image is one
    sample of a ``C``-vector; returns ``(eigenvalues (C,), eigenvectors (C, C))`` of their
    covariance, eigenvalues in decreasing order and eigenvector ``i`` in **column** ``i``
    (NumPy's convention, the paper's ``p_i``). ``max_pixels`` caps the pixels used (drawn
    at random with ``seed``; ``None`` uses all) so a 50 000-image set costs a fraction of a
    second.
    """
    pixels = np.asarray(images)
    if pixels.ndim < 2:
        raise ValueError(f"images must be (N, H, W, C) or (pixels, C), got shape {pixels.shape}")
    pixels = pixels.reshape(-1, pixels.shape[-1]).astype(np.float64)
    if pixels.shape[0] < 2:
        raise ValueError("need at least two pixels to estimate a covariance")
    if max_pixels is not None:
        max_pixels = _positive_int("max_pixels", max_pixels)
        if pixels.shape[0] > max_pixels:
            rows = np.random.default_rng(seed).choice(pixels.shape[0], size=max_pixels, replace=False)
            pixels = pixels[rows]
    covariance = np.cov(pixels, rowvar=False).reshape(pixels.shape[1], pixels.shape[1])
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending, columns
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)  # round-off can leave tiny negatives
    return eigenvalues.astype(np.float32), eigenvectors[:, order].astype(np.float32)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RandomLighting(keras.layers.Layer):
    r"""AlexNet's "PCA colour augmentation" (Krizhevsky et al. 2012, §4.1; also used by ResNet).

    For each training image draw :math:`\alpha_i \sim \mathcal N(0, \sigma^2)` (the paper:
    :math:`\sigma = 0.1`) and add the same colour offset to every pixel:

    .. math:: [\mathbf p_1, \dots, \mathbf p_C]\,[\alpha_1\lambda_1, \dots, \alpha_C\lambda_C]^\top

    where :math:`\mathbf p_i, \lambda_i` are the eigenvectors and eigenvalues of the
    covariance of the training set's RGB pixel values (see :func:`fit_pca_lighting` or
    :meth:`RandomLighting.fit`). The offset lies in the span of the principal colour
    directions, so it mimics changes in the intensity and colour of the illumination; the
    paper reports about 1% lower top-1 error on ImageNet from it. No clipping is applied (the
    paper does none).

    The eigen-decomposition is passed in (and stored in the config as plain lists) so that
    the layer serializes without any data. Identity at inference. Why hand-written: Keras'
    colour layers jitter brightness/contrast/hue/saturation independently of the data;
    none uses the data's own colour statistics.
    """

    def __init__(self, eigenvalues, eigenvectors, stddev: float = 0.1, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        values = np.asarray(eigenvalues, dtype=np.float64)
        vectors = np.asarray(eigenvectors, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"eigenvalues must be a non-empty 1-D sequence, got shape {values.shape}")
        if vectors.shape != (values.size, values.size):
            raise ValueError(
                f"eigenvectors must be a ({values.size}, {values.size}) matrix with eigenvector i in column i, "
                f"got shape {vectors.shape}"
            )
        if not (np.all(np.isfinite(values)) and np.all(np.isfinite(vectors))) or np.any(values < 0):
            raise ValueError("eigenvalues must be finite and non-negative, eigenvectors finite")
        self.eigenvalues = [float(v) for v in values]
        self.eigenvectors = vectors.tolist()
        self.stddev = _non_negative_float("stddev", stddev)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @classmethod
    def fit(cls, images, stddev: float = 0.1, seed: int | None = None, **kwargs) -> RandomLighting:
        """A layer whose principal components come from ``images`` (see :func:`fit_pca_lighting`)."""
        eigenvalues, eigenvectors = fit_pca_lighting(images)
        return cls(eigenvalues, eigenvectors, stddev=stddev, seed=seed, **kwargs)

    def build(self, input_shape) -> None:
        if input_shape[-1] != len(self.eigenvalues):
            raise ValueError(
                f"RandomLighting was fitted on {len(self.eigenvalues)} channels but the input has "
                f"{input_shape[-1]} (shape {input_shape}); channels-last inputs expected"
            )
        self.built = True

    def colour_offsets(self, batch_size):
        """Draw the per-image offsets ``(batch, C)``: ``P @ (alpha * lambda)`` per image."""
        channels = len(self.eigenvalues)
        alpha = keras.random.normal(
            (batch_size, channels), stddev=self.stddev, seed=self.seed_generator, dtype=self.compute_dtype
        )
        values = ops.convert_to_tensor(np.asarray(self.eigenvalues), dtype=self.compute_dtype)
        vectors = ops.convert_to_tensor(np.asarray(self.eigenvectors), dtype=self.compute_dtype)
        return ops.matmul(alpha * values, ops.transpose(vectors))

    def call(self, inputs, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        if not _is_training(training) or self.stddev == 0.0:
            return x
        unbatched = len(x.shape) == 3
        if unbatched:
            x = x[None]
        offsets = self.colour_offsets(ops.shape(x)[0])
        spatial = (1,) * (len(x.shape) - 2)
        x = x + ops.reshape(offsets, (-1, *spatial, len(self.eigenvalues)))
        return x[0] if unbatched else x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            eigenvalues=list(self.eigenvalues),
            eigenvectors=[list(row) for row in self.eigenvectors],
            stddev=self.stddev,
            seed=self.seed,
        )
        return config


# --------------------------------------------------------------------------------------------
# Pad + random crop, batched
# --------------------------------------------------------------------------------------------
_SHIFT_FILL_MODES = ("constant", "reflect", "symmetric")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RandomShift(keras.layers.Layer):
    """The classic CIFAR augmentation: pad by ``pad`` pixels, crop a random window of the
    original size back out (= shift the image by up to ``pad`` pixels in each direction).

    Every image in the batch gets its own integer offsets ``(dy, dx)``, uniform in
    ``0 .. 2*pad``; output pixel ``(i, j)`` is padded pixel ``(i + dy, j + dx)``. The crop is
    done for the whole batch at once as one gather from the flattened padded images, with the
    index grid ``(dy + i) * W_pad + (dx + j)`` built from the offsets (``take_along_axis``
    per image; on TensorFlow a single ``take`` over the whole batch, which TF runs faster).
    Under XLA that is one gather, costing about as much as copying the batch, and it is exact
    (no interpolation, no matrix product that TF32 could round).

    Why hand-written: ``ZeroPadding2D`` + ``keras.layers.RandomCrop`` is the textbook Keras
    spelling, but in Keras 3.15 ``RandomCrop`` applied to a batch (i.e. inside a model)

    * draws **one** offset for the whole batch, so all images of a step shift alike, and
    * slices with traced offsets, which XLA cannot compile, so it declares
      ``supports_jit = False``, and then Keras runs the *entire* model step without XLA:
      op by op on JAX. DESIGN.md measured a ResNet-9 epoch on an H100 going from 0.5 s (with
      ``RandomFlip``) to more than 75 s with ``RandomCrop`` in the model.

    ``benchmarks/augmentation.py`` measures both. ``RandomTranslation`` is the other Keras
    option; it resamples through an affine transform (interpolation, fill modes) where an
    integer shift needs only a gather, and it too declares ``supports_jit = False``.

    ``fill_mode``: ``"constant"`` pads with ``fill_value`` (0 = the usual zero padding),
    ``"reflect"`` / ``"symmetric"`` mirror the border (as ``numpy.pad`` does). Identity at
    inference. Inputs ``(batch, H, W, C)`` or one image ``(H, W, C)``.
    """

    def __init__(
        self, pad: int = 4, fill_mode: str = "constant", fill_value: float = 0.0, seed: int | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.pad = _positive_int("pad", pad)
        if fill_mode not in _SHIFT_FILL_MODES:
            raise ValueError(f"fill_mode must be one of {_SHIFT_FILL_MODES}, got {fill_mode!r}")
        if isinstance(fill_value, bool) or not isinstance(fill_value, (int, float)):
            raise ValueError(f"fill_value must be a number, got {fill_value!r}")
        self.fill_mode = fill_mode
        self.fill_value = float(fill_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape) -> None:
        if len(input_shape) not in (3, 4) or None in tuple(input_shape)[-3:]:
            raise ValueError(
                f"RandomShift needs (batch, H, W, C) or (H, W, C) inputs with known H, W, C, got {input_shape}"
            )
        height, width = input_shape[-3], input_shape[-2]
        if self.fill_mode == "reflect" and self.pad >= min(height, width):
            raise ValueError(f"fill_mode='reflect' needs pad < image height and width, got pad={self.pad}")
        self.built = True

    def sample_offsets(self, batch_size):
        """Per-image ``(dy, dx)`` in ``0 .. 2*pad``, an int32 tensor ``(batch, 2)``."""
        return keras.random.randint((batch_size, 2), 0, 2 * self.pad + 1, seed=self.seed_generator, dtype="int32")

    def apply_offsets(self, images, offsets):
        """Pad ``images`` and crop image ``b`` at ``offsets[b] = (dy, dx)`` (both in 0..2*pad)."""
        x = ops.convert_to_tensor(images)
        if not _is_float_dtype(x.dtype):
            x = ops.cast(x, self.compute_dtype)
        batch_size = ops.shape(x)[0]
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        p = self.pad
        spec = [[0, 0], [p, p], [p, p], [0, 0]]
        if self.fill_mode == "constant":
            padded = ops.pad(x, spec, constant_values=self.fill_value)
        else:
            padded = ops.pad(x, spec, mode=self.fill_mode)
        padded_height, padded_width = height + 2 * p, width + 2 * p
        offsets = ops.cast(offsets, "int32")
        rows = offsets[:, 0:1] + ops.arange(height, dtype="int32")[None, :]  # (batch, H)
        cols = offsets[:, 1:2] + ops.arange(width, dtype="int32")[None, :]  # (batch, W)
        pixel = rows[:, :, None] * padded_width + cols[:, None, :]  # (batch, H, W) in the padded image
        if keras.backend.backend() == "tensorflow":
            # one tf.gather of whole pixels from the flattened batch: measured about 3x faster
            # on TensorFlow than take_along_axis, which TF implements by broadcast + transpose
            first = ops.arange(batch_size, dtype="int32")[:, None, None] * (padded_height * padded_width)
            flat = ops.reshape(padded, (-1, channels))
            crops = ops.take(flat, ops.reshape(first + pixel, (-1,)), axis=0)
        else:
            # per-image gather on (batch, pixels, C); XLA turns it into a single gather
            flat = ops.reshape(padded, (batch_size, padded_height * padded_width, channels))
            index = ops.reshape(pixel, (batch_size, height * width, 1))
            crops = ops.take_along_axis(flat, index, axis=1)  # index broadcasts over channels
        return ops.reshape(crops, (batch_size, height, width, channels))

    def call(self, inputs, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        if not _is_training(training):
            return x
        unbatched = len(x.shape) == 3
        if unbatched:
            x = x[None]
        x = self.apply_offsets(x, self.sample_offsets(ops.shape(x)[0]))
        return x[0] if unbatched else x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(pad=self.pad, fill_mode=self.fill_mode, fill_value=self.fill_value, seed=self.seed)
        return config


def _is_float_dtype(dtype) -> bool:
    return "float" in str(keras.backend.standardize_dtype(dtype))


# --------------------------------------------------------------------------------------------
# Cutout
# --------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=_PACKAGE)
class Cutout(keras.layers.Layer):
    """Cutout (DeVries & Taylor, 2017): blank one fixed-size square per image, centred anywhere.

    For every training image a centre ``(cy, cx)`` is drawn uniformly over *all* pixels and
    the ``size`` x ``size`` square around it (rows ``cy - size//2 .. cy - size//2 + size - 1``,
    likewise columns) is set to ``fill_value``, **clipped at the image border**, so squares
    near an edge are partly outside and erase less; the paper reports that allowing the
    patch to lie partly outside the image was important. It used 16x16 on CIFAR-10 and 8x8
    on CIFAR-100, zero fill on normalized images, applied to every image (``rate=1``);
    ``rate`` < 1 applies it to that fraction of images.

    Why hand-written (and not ``keras.layers.RandomErasing``): Keras' layer implements
    Random Erasing (Zhong et al. 2017), a different recipe: the patch's height and width
    fractions are drawn independently from ``scale`` (a random rectangle, not a fixed
    square), the patch is always placed fully inside the image, and the default fill is
    random noise. Even ``scale=(s, s)`` cannot reproduce Cutout's centre-anywhere clipped
    square, so the two are not interchangeable. Identity at inference.
    """

    def __init__(
        self, size: int = 16, rate: float = 1.0, fill_value: float = 0.0, seed: int | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.size = _positive_int("size", size)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be a number in [0, 1], got {rate!r}")
        if isinstance(fill_value, bool) or not isinstance(fill_value, (int, float)):
            raise ValueError(f"fill_value must be a number, got {fill_value!r}")
        self.rate = float(rate)
        self.fill_value = float(fill_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape) -> None:
        if len(input_shape) not in (3, 4) or None in tuple(input_shape)[-3:-1]:
            raise ValueError(f"Cutout needs (batch, H, W, C) or (H, W, C) inputs with known H, W, got {input_shape}")
        self.built = True

    def apply_centres(self, images, centres, apply=None):
        """Blank the square around ``centres[b] = (cy, cx)`` in image ``b`` (where ``apply[b]``)."""
        x = ops.convert_to_tensor(images)
        height, width = x.shape[1], x.shape[2]
        centres = ops.cast(centres, "int32")
        top = centres[:, 0:1] - self.size // 2  # (batch, 1)
        left = centres[:, 1:2] - self.size // 2
        rows = ops.arange(height, dtype="int32")[None, :]
        cols = ops.arange(width, dtype="int32")[None, :]
        in_rows = (rows >= top) & (rows < top + self.size)  # (batch, H)
        in_cols = (cols >= left) & (cols < left + self.size)  # (batch, W)
        mask = in_rows[:, :, None] & in_cols[:, None, :]  # (batch, H, W)
        if apply is not None:
            mask = mask & ops.cast(apply, "bool")[:, None, None]
        return ops.where(mask[..., None], ops.cast(self.fill_value, x.dtype), x)

    def call(self, inputs, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        if not _is_training(training) or self.rate == 0.0:
            return x
        unbatched = len(x.shape) == 3
        if unbatched:
            x = x[None]
        batch_size = ops.shape(x)[0]
        cy = keras.random.randint((batch_size, 1), 0, x.shape[1], seed=self.seed_generator, dtype="int32")
        cx = keras.random.randint((batch_size, 1), 0, x.shape[2], seed=self.seed_generator, dtype="int32")
        apply = None
        if self.rate < 1.0:
            apply = keras.random.uniform((batch_size,), seed=self.seed_generator) < self.rate
        x = self.apply_centres(x, ops.concatenate([cy, cx], axis=1), apply)
        return x[0] if unbatched else x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(size=self.size, rate=self.rate, fill_value=self.fill_value, seed=self.seed)
        return config


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
