"""Results in prose: sentences about a run's results are printed from the numbers and asserted.

A notebook's Markdown is written once, but its numbers change with every run, profile and
machine. A sentence such as "batch norm reaches 0.91 against 0.85 without" typed into Markdown
is wrong the day a re-run gives other numbers, and nothing notices. So the course states ideas
and expectations in Markdown and lets code print every sentence about *this run's* results:
:func:`claim` formats the sentence from the computed values and raises when the comparison it
states does not hold, so ``make course`` and the notebook tests fail instead of storing a
notebook whose text contradicts its output. :func:`mean_std` formats a result over seeds, and
refuses to invent a spread from one seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["ClaimFailed", "claim", "mean_std"]


class ClaimFailed(AssertionError):
    """A sentence about this run's results does not hold for the numbers it was given."""


def claim(sentence: str, *, holds: bool, display: bool = True, **values: object) -> str:
    """Print ``sentence`` formatted with ``values``; raise :class:`ClaimFailed` unless ``holds``.

    ``holds`` is the comparison the sentence states, written next to it in the cell, e.g.::

        claim("With batch norm the net reaches {bn:.3f}, without {plain:.3f}.",
              bn=acc_bn, plain=acc_plain, holds=acc_bn > acc_plain)

    The formatted sentence is returned (and printed unless ``display`` is false), so a
    failure message shows exactly what the notebook would have claimed.
    """
    if not isinstance(holds, (bool, np.bool_)):
        raise ValueError(f"holds must be the comparison the sentence states (a bool), got {type(holds).__name__}")
    try:
        text = sentence.format(**values)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f"cannot format {sentence!r} with {sorted(values)}: {error}") from None
    if not holds:
        raise ClaimFailed(f"this run does not support the sentence: {text}")
    if display:
        print(text)
    return text


def mean_std(values: Iterable[float], fmt: str = ".4f", *, percent: bool = False) -> str:
    """``"0.8123 ± 0.0040 (3 seeds)"``; with one value the spread is ``n/a``, never ``± 0``.

    Seeds that all give the same value read ``± 0 (n seeds, identical)``; a spread smaller than
    ``fmt`` can show is printed in scientific notation rather than as zeros.

    ``percent=True`` multiplies by 100 and appends ``%`` to both numbers.
    """
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_std needs at least one value")
    if any(math.isnan(v) for v in xs):
        return "n/a (NaN)"
    scale, unit = (100.0, " %") if percent else (1.0, "")
    mean = float(np.mean(xs)) * scale
    if len(xs) == 1:
        return f"{mean:{fmt}}{unit} ± n/a (1 seed)"
    if all(v == xs[0] for v in xs):  # identical runs (e.g. every seed predicts one class): say so, not "± 0.0000"
        return f"{mean:{fmt}}{unit} ± 0 ({len(xs)} seeds, identical)"
    std = float(np.std(xs, ddof=1)) * scale
    shown = f"{std:{fmt.replace('+', '')}}"  # a spread has no sign, even where the mean is printed with one
    if float(shown) == 0:  # a real spread below the printed precision: show its size instead of zeros
        shown = f"{std:.1e}"
    return f"{mean:{fmt}}{unit} ± {shown}{unit} ({len(xs)} seeds)"
