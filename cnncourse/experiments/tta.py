"""Test-time augmentation: average a model's predictions over flipped and cropped views.

AlexNet (Krizhevsky et al., 2012, §4.1) predicted with the average softmax over ten
224x224 patches of each test image, the four corners and the centre plus their horizontal
mirrors; ResNet (He et al., 2016) kept the "10-crop" test. The simplest version, averaging an
image and its mirror, is :func:`flip_average`. Mirroring assumes that a mirrored image has the
same label: true for clothes and most objects, false for handwriting (a mirrored 2 is no digit,
some letters become others), so for digits pass ``flips=False`` and skip flip averaging; the
five crops remain. These functions take any Keras model that maps
a batch ``(N, H, W, C)`` to class scores, run it with ``model.predict`` view by view (so
memory stays that of one view), and return NumPy arrays. Keras has no TTA helpers.

Averaging happens on probabilities: pass ``from_logits=True`` when the model's last layer
has no softmax, and each view's scores go through a softmax first (averaging logits is a
different, geometric-mean-like ensemble).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cnncourse import checks

__all__ = ["CROP_NAMES", "flip_average", "horizontal_flip", "ten_crop_predict", "ten_crop_views", "ten_crops"]

CROP_NAMES = (
    "top-left",
    "top-right",
    "bottom-left",
    "bottom-right",
    "centre",
    "top-left flipped",
    "top-right flipped",
    "bottom-left flipped",
    "bottom-right flipped",
    "centre flipped",
)


def _check_images(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (N, H, W, C), got shape {x.shape}")
    return x


def _check_batch_size(batch_size: int) -> int:
    return checks.positive_int("batch_size", batch_size)


def _probabilities(model, x: np.ndarray, batch_size: int, from_logits: bool) -> np.ndarray:
    scores = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    if from_logits:
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
    return scores


def horizontal_flip(x) -> np.ndarray:
    """Mirror a batch ``(N, H, W, C)`` left-right (the width axis)."""
    return _check_images(x)[:, :, ::-1, :]


def flip_average(model, x, batch_size: int = 256, *, from_logits: bool = False) -> np.ndarray:
    """Mean of the class probabilities of ``x`` and of its horizontal mirror, ``(N, classes)``."""
    x = _check_images(x)
    batch_size = _check_batch_size(batch_size)
    views = (x, np.ascontiguousarray(horizontal_flip(x)))
    return np.mean([_probabilities(model, v, batch_size, from_logits) for v in views], axis=0)


def _crop_size(crop_size, height: int, width: int) -> tuple[int, int]:
    if isinstance(crop_size, (int, np.integer)) and not isinstance(crop_size, bool):
        crop_size = (crop_size, crop_size)
    if (
        not isinstance(crop_size, (tuple, list))
        or len(crop_size) != 2
        or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in crop_size)
    ):
        raise ValueError(f"crop_size must be an int or a pair (height, width) of ints, got {crop_size!r}")
    ch, cw = int(crop_size[0]), int(crop_size[1])
    if not (0 < ch <= height and 0 < cw <= width):
        raise ValueError(f"crop_size {crop_size} must be positive and at most the image size ({height}, {width})")
    return ch, cw


def ten_crop_views(x, crop_size, *, flips: bool = True) -> Iterator[np.ndarray]:
    """Yield the ten views one at a time, in the order of :data:`CROP_NAMES` (the first five when ``flips`` is false)."""
    checks.boolean("flips", flips)
    x = _check_images(x)
    height, width = x.shape[1], x.shape[2]
    ch, cw = _crop_size(crop_size, height, width)
    top, left = (height - ch) // 2, (width - cw) // 2  # centre: rounded towards the top-left
    corners = [(0, 0), (0, width - cw), (height - ch, 0), (height - ch, width - cw), (top, left)]
    crops = [x[:, r : r + ch, c : c + cw, :] for r, c in corners]
    for crop in crops:
        yield np.ascontiguousarray(crop)
    if flips:
        for crop in crops:
            yield np.ascontiguousarray(crop[:, :, ::-1, :])


def ten_crops(x, crop_size, *, flips: bool = True) -> np.ndarray:
    """The 4 corner crops, the centre crop and their 5 mirrors: ``(10, N, ch, cw, C)`` (``(5, …)`` without flips).

    The order is :data:`CROP_NAMES`. ``crop_size`` is an int (square) or ``(height, width)``;
    for an odd margin the centre crop sits half a pixel towards the top-left.
    """
    return np.stack(list(ten_crop_views(x, crop_size, flips=flips)))


def ten_crop_predict(
    model, x, crop_size, batch_size: int = 256, *, from_logits: bool = False, flips: bool = True
) -> np.ndarray:
    """Mean class probabilities over the ten crops of each image, ``(N, classes)``.

    ``model`` must accept ``crop_size`` inputs (train it on random crops of that size, the
    way AlexNet trained on 224x224 patches of 256x256 images). ``flips=False`` averages the
    five unmirrored crops only (digits, text: anything a mirror changes the label of).
    """
    batch_size = _check_batch_size(batch_size)
    total, count = None, 0
    for view in ten_crop_views(x, crop_size, flips=flips):
        p = _probabilities(model, view, batch_size, from_logits)
        total = p if total is None else total + p
        count += 1
    return total / count
