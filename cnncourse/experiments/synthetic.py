"""Data that an experiment makes up: random labels (Zhang et al.) and a rendered digit.

Two of notebook 06's experiments need data that no dataset file holds. The memorization
experiment of Zhang et al. (ICLR 2017) replaces the labels by random ones
(:func:`random_labels`); the "rotating a 6 makes a 9" example of why flips and rotations are
not always label-preserving needs a digit when MNIST is not on disk (:func:`render_digit`).
Both are deterministic for their arguments, so the notebook's checked outputs are stable.
"""

from __future__ import annotations

import numpy as np

from cnncourse import checks

__all__ = ["random_labels", "render_digit"]


def random_labels(y, num_classes: int, *, fraction: float = 1.0, seed: int = 0) -> np.ndarray:
    """Replace a ``fraction`` of the labels by labels drawn uniformly at random (Zhang et al.).

    ``fraction=1`` gives the fully random labels of the memorization experiment: nothing
    about the image predicts its label, so test accuracy can only be chance (``1/num_classes``),
    yet a large enough network still fits the training set. The chosen examples and their new
    labels are deterministic for a ``seed``; a replaced label may equal the old one by chance.
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be a 1-D integer label array, got shape {y.shape} dtype {y.dtype}")
    num_classes = checks.integer("num_classes", num_classes, minimum=2)
    fraction = checks.number("fraction", fraction, minimum=0.0, maximum=1.0)
    rng = np.random.default_rng(seed)
    out = y.astype(np.int32).copy()
    chosen = rng.permutation(len(y))[: int(round(fraction * len(y)))]
    out[chosen] = rng.integers(0, num_classes, size=len(chosen), dtype=np.int32)
    return out


def render_digit(digit: int | str, size: int = 28) -> np.ndarray:
    """A white-on-black digit ``(size, size)`` in [0, 1], drawn with matplotlib's bundled font.

    For the "rotate a 6 by 180° and it is a 9" example when MNIST is not on disk: a synthetic
    stand-in, not a handwritten digit, and the notebook says so.
    """
    text = str(digit)
    if len(text) != 1 or not text.isdigit():
        raise ValueError(f"digit must be one of 0..9, got {digit!r}")
    size = checks.integer("size", size, minimum=8)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(size / dpi, size / dpi), dpi=dpi, facecolor="black")
    canvas = FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, text, color="white", fontsize=0.75 * size * 72 / dpi, ha="center", va="center",
             family="DejaVu Sans", weight="bold")
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba(), dtype=np.float32)[..., 0] / 255.0
    # centre the glyph's bounding box (MNIST centres its digits too), so a 180° rotation
    # lands on the same pixels instead of being offset by the font's baseline
    rows, cols = np.nonzero(img > 0.1)
    shift_r = (size - 1) / 2 - (rows.min() + rows.max()) / 2
    shift_c = (size - 1) / 2 - (cols.min() + cols.max()) / 2
    return np.roll(img, (int(round(shift_r)), int(round(shift_c))), axis=(0, 1))
