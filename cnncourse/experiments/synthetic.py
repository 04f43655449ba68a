"""Data that an experiment makes up: random labels (Zhang et al.), a rendered digit, objects at known places.

Some experiments need data that no dataset file holds. The memorization experiment of Zhang et
al. (ICLR 2017) replaces the labels by random ones (:func:`random_labels`); the "rotating a 6
makes a 9" example of why flips and rotations are not always label-preserving needs a digit
when MNIST is not on disk (:func:`render_digit`); and notebook 09 asks *where* a classifier
looks, which can only be checked on images where the object's place is known
(:func:`clutter_scenes`). All are deterministic for their arguments, so the notebooks' checked
outputs are stable.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cnncourse import checks

__all__ = ["Scenes", "clutter_scenes", "random_labels", "render_digit"]


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


@dataclasses.dataclass(frozen=True)
class Scenes:
    """Images pasted at known places on a larger canvas (:func:`clutter_scenes`).

    ``images`` ``(N, canvas, canvas, C)``; ``labels`` the pasted images' labels; ``boxes``
    ``(N, 4)``: row, column, height and width of each pasted image on its canvas.
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray

    def box_mask(self, index: int) -> np.ndarray:
        """A boolean ``(canvas, canvas)`` map, true on the pixels of image ``index``'s box."""
        index = checks.integer("index", index, minimum=0, maximum=len(self.images) - 1)
        r, c, h, w = (int(v) for v in self.boxes[index])
        mask = np.zeros(self.images.shape[1:3], bool)
        mask[r : r + h, c : c + w] = True
        return mask

    @property
    def box_fraction(self) -> float:
        """The share of the canvas a box covers: how often a map's peak would land in it by chance."""
        h, w = self.boxes[0, 2:]
        return float(h * w) / float(self.images.shape[1] * self.images.shape[2])


def clutter_scenes(
    images, labels, *, canvas: int = 56, pieces: int = 6, piece_size: int = 8, seed: int = 0
) -> Scenes:
    """Paste each image at a random place on a black ``canvas × canvas`` square, among clutter.

    A classifier trained on such scenes is told *what* each scene shows, never *where*; a map
    that claims to show where the network looks (Grad-CAM, occlusion) can then be checked
    against the box the image was pasted in. Without clutter the check would be too easy: on
    a black background anything that is not black is the object. So, as in the cluttered MNIST
    of Jaderberg et al. (Spatial Transformer Networks, 2015), ``pieces`` random
    ``piece_size × piece_size`` crops of *other* images (from their central part, where the
    objects are) are scattered over the canvas outside the box: local patterns of the right
    kind, in the wrong place, with no class of their own.

    Deterministic for ``seed``. Returns :class:`Scenes` (float32 images, the labels unchanged).
    """
    x = np.asarray(images)
    y = np.asarray(labels)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C), got {x.shape}")
    if len(y) != len(x):
        raise ValueError(f"got {len(y)} labels for {len(x)} images")
    n, h, w, channels = x.shape
    canvas = checks.integer("canvas", canvas, minimum=max(h, w))
    pieces = checks.integer("pieces", pieces, minimum=0)
    piece_size = checks.integer("piece_size", piece_size, minimum=1, maximum=min(h, w))
    if pieces and n < 2:
        raise ValueError("clutter is cut from the other images: give at least 2 images, or pieces=0")
    rng = np.random.default_rng(seed)
    out = np.zeros((n, canvas, canvas, channels), np.float32)
    boxes = np.zeros((n, 4), np.int32)
    margin_h, margin_w = (h - piece_size) // 4, (w - piece_size) // 4  # crops from the central part
    for i in range(n):
        r, c = int(rng.integers(0, canvas - h + 1)), int(rng.integers(0, canvas - w + 1))
        boxes[i] = (r, c, h, w)
        for _ in range(pieces):
            j = int(rng.integers(0, n - 1))
            j += j >= i  # any image but this one
            sr = int(rng.integers(margin_h, h - piece_size - margin_h + 1))
            sc = int(rng.integers(margin_w, w - piece_size - margin_w + 1))
            crop = x[j, sr : sr + piece_size, sc : sc + piece_size]
            for _ in range(100):  # a place that does not touch the box
                pr = int(rng.integers(0, canvas - piece_size + 1))
                pc = int(rng.integers(0, canvas - piece_size + 1))
                if pr + piece_size <= r or pr >= r + h or pc + piece_size <= c or pc >= c + w:
                    region = out[i, pr : pr + piece_size, pc : pc + piece_size]
                    np.maximum(region, crop, out=region)
                    break
        out[i, r : r + h, c : c + w] = x[i]
    return Scenes(out, y.copy(), boxes)
