r"""Fractional max-pooling (Graham, "Fractional Max-Pooling", 2014) in NumPy, as the paper defines it.

A 2×2 max-pool halves each side at once, so a network can only have a handful of them before
the image is gone. Graham pools by a factor :math:`\alpha \in (1, 2)` instead
(:math:`\sqrt 2` in most of his experiments): an :math:`N_{in}` × :math:`N_{in}` map becomes
:math:`N_{out} = \lfloor N_{in}/\alpha \rfloor` on a side, so twice as many pooling layers fit,
and the pooling regions are drawn at random on every forward pass, which regularizes.

The regions come from an increasing sequence of boundaries
:math:`0 = a_0 < a_1 < \dots < a_{N_{out}} = N_{in}` whose steps :math:`a_i - a_{i-1}` are all
1 or 2 (in general :math:`k = \lfloor N_{in}/N_{out} \rfloor` or :math:`k + 1`). Row region
:math:`i` is :math:`[a_{i-1}, a_i - 1]` (**disjoint**) or :math:`[a_{i-1}, a_i]` (**overlapping**,
one row shared with the next region; the last one stops at the border); a pooling region is
the product of a row region and a column region, drawn independently. Two ways to draw the
sequence:

* **random**: a random permutation of the right number of :math:`k` and :math:`k + 1` steps;
* **pseudo-random**: :math:`a_i = \lceil \alpha (i + u) \rceil`, :math:`u \in [0, 1)` drawn
  once; written here shifted to start at zero, :math:`a_i = \lceil \alpha (i + u) \rceil -
  \lceil \alpha u \rceil`, with :math:`\alpha = N_{in}/N_{out}`. Every step is then
  :math:`\lceil y + \alpha\rceil - \lceil y \rceil \in \{\lfloor\alpha\rfloor,
  \lceil\alpha\rceil\}`, and the sum telescopes to exactly :math:`N_{in}`, for every
  :math:`u`. The steps are spread evenly, which Graham found gives better accuracy than
  random steps with disjoint regions; random steps overfit less.

:class:`cnncourse.layers.FractionalMaxPooling2D` is the Keras layer; the unit tests hold it to
these functions.
"""

from __future__ import annotations

import math

import numpy as np

from cnncourse import checks
from cnncourse.checks import positive_int

__all__ = ["fractional_max_pool2d", "output_size", "pooling_sequence", "regions"]


def output_size(n_in: int, ratio: float) -> int:
    r"""Side of the pooled map, :math:`\lfloor N_{in} / \alpha \rfloor` (TensorFlow's rule too)."""
    n_in = positive_int("n_in", n_in)
    ratio = checks.number("the pooling ratio", ratio, minimum=1.0, maximum=2.0, exclusive_minimum=True,
                          exclusive_maximum=True)
    n_out = math.floor(n_in / ratio)
    if n_out < 1:
        raise ValueError(f"an input of size {n_in} pooled by {ratio} leaves nothing (floor({n_in}/{ratio}) = 0)")
    return n_out


def pooling_sequence(
    n_in: int, n_out: int, *, pseudo_random: bool = True, u: float | None = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The boundaries ``a_0 = 0 < a_1 < … < a_{n_out} = n_in`` of one axis's pooling regions.

    ``pseudo_random=True``: ``a_i = ceil(α(i + u)) − ceil(αu)`` with ``α = n_in/n_out`` and the
    given ``u`` in [0, 1) (drawn from ``rng`` when ``None``). ``False``: a random permutation of
    ``n_out − m`` steps of ``k`` and ``m`` steps of ``k + 1`` (``k = n_in // n_out``,
    ``m = n_in − k·n_out``), shuffled by ``rng``.
    """
    n_in, n_out = positive_int("n_in", n_in), positive_int("n_out", n_out)
    if n_out > n_in:
        raise ValueError(f"n_out must be at most n_in (pooling shrinks), got n_in={n_in}, n_out={n_out}")
    rng = np.random.default_rng() if rng is None else rng
    if pseudo_random:
        u = rng.uniform() if u is None else float(u)
        if not 0.0 <= u < 1.0:
            raise ValueError(f"u must be in [0, 1), got {u!r}")
        alpha = n_in / n_out
        a = np.ceil(alpha * (np.arange(n_out) + u)) - math.ceil(alpha * u)
        return np.append(a, n_in).astype(np.int64)
    k = n_in // n_out
    m = n_in - k * n_out
    steps = rng.permutation(np.array([k] * (n_out - m) + [k + 1] * m))
    return np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)


def regions(boundaries: np.ndarray, overlapping: bool = False) -> list[tuple[int, int]]:
    """The ``(first, last)`` index (inclusive) of each pooling region along one axis."""
    a = np.asarray(boundaries)
    n_in = int(a[-1])
    if overlapping:
        return [(int(a[i]), min(int(a[i + 1]), n_in - 1)) for i in range(len(a) - 1)]
    return [(int(a[i]), int(a[i + 1]) - 1) for i in range(len(a) - 1)]


def fractional_max_pool2d(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, overlapping: bool = False) -> np.ndarray:
    """Max over each region ``rows-region × cols-region`` of an NHWC batch, by a plain loop."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be an NHWC batch of shape (N, H, W, C), got shape {x.shape}")
    if rows[-1] != x.shape[1] or cols[-1] != x.shape[2]:
        raise ValueError(f"the sequences must end at the image size {x.shape[1:3]}, got {rows[-1]} and {cols[-1]}")
    row_regions, col_regions = regions(rows, overlapping), regions(cols, overlapping)
    out = np.empty((x.shape[0], len(row_regions), len(col_regions), x.shape[3]), dtype=x.dtype)
    for i, (r0, r1) in enumerate(row_regions):
        for j, (c0, c1) in enumerate(col_regions):
            out[:, i, j, :] = x[:, r0 : r1 + 1, c0 : c1 + 1, :].max(axis=(1, 2))
    return out
