"""Augmentation layers Keras lacks, all batched ``keras.ops`` code that compiles under XLA.

See :mod:`cnncourse.layers` for why each layer is written by hand.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from cnncourse import checks
from cnncourse.checks import non_negative_float as _non_negative_float
from cnncourse.checks import positive_int as _positive_int
from cnncourse.layers._base import _PACKAGE, _is_float_dtype, _is_training


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
        self.fill_mode = fill_mode
        self.fill_value = checks.number("fill_value", fill_value)
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
        self.rate = checks.number("rate", rate, minimum=0.0, maximum=1.0)
        self.fill_value = checks.number("fill_value", fill_value)
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
