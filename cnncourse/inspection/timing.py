"""Timing an operation on this machine, and reading a crossover off noisy timings.

Notebook 01 asks from which kernel size the FFT beats a direct convolution. A single timing
of a few milliseconds on a shared machine is noise: another process wakes up and one
measurement is ten times too slow (the course once reported a crossover at the first kernel
size where the FFT "happened" to win, next to a 15.7 ms spike). Two habits make such a
comparison trustworthy, and both live here so that they are tested:

* :func:`median_seconds` runs the function once to warm it up (a backend compiles or picks its
  algorithm on the first call), repeats it enough times per measurement that the clock's
  resolution does not matter, and returns the **median** over several measurements, which one
  outlier cannot move (the minimum, the other common choice, rewards a lucky run).
* :func:`crossover` defines the crossover so that it is **stable**: the smallest size from
  which the fast method wins by a stated margin at *every* larger size measured. One spike
  above it breaks the run and moves the crossover past the spike instead of inventing one
  below it.

:func:`growth_exponent` reads the exponent ``a`` of ``time ∝ size^a`` off the timings (a
least-squares line on log–log axes), to compare with the cost a formula predicts (``F²``
for the direct sum).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cnncourse import checks

__all__ = ["crossover", "growth_exponent", "median_seconds"]


def median_seconds(
    fn: Callable[..., Any],
    *args: Any,
    repeats: int = 7,
    min_seconds: float = 0.02,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median wall time of one call ``fn(*args)``, in seconds.

    The first call is a warm-up and is not counted. Each of the ``repeats`` measurements runs
    ``fn`` ``number`` times in a row, with ``number`` chosen from the warm-up so that one
    measurement lasts about ``min_seconds`` (at least once), and counts the mean per call.
    ``clock`` is the timer (a parameter so that the tests can drive it).
    """
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {fn!r}")
    repeats = checks.positive_int("repeats", repeats)
    min_seconds = checks.non_negative_float("min_seconds", min_seconds)
    start = clock()
    fn(*args)  # warm-up: compilation, algorithm choice, caches
    once = clock() - start
    number = max(1, int(min_seconds / once)) if once > 0 else 1
    per_call = []
    for _ in range(repeats):
        start = clock()
        for _ in range(number):
            fn(*args)
        per_call.append((clock() - start) / number)
    return float(np.median(per_call))


def _timings(sizes: Sequence[float], *series: Sequence[float]) -> tuple[np.ndarray, ...]:
    sizes_a = np.asarray(sizes, dtype=float)
    if sizes_a.ndim != 1 or len(sizes_a) < 2:
        raise ValueError(f"sizes must be a list of at least two sizes, got {sizes!r}")
    if np.any(np.diff(sizes_a) <= 0):
        raise ValueError(f"sizes must increase strictly, got {list(sizes)}")
    out = [sizes_a]
    for values in series:
        values_a = np.asarray(values, dtype=float)
        if values_a.shape != sizes_a.shape:
            raise ValueError(f"each timing series needs one value per size ({len(sizes_a)}), got {len(values_a)}")
        if not np.all(np.isfinite(values_a)) or np.any(values_a <= 0):
            raise ValueError(f"timings must be positive and finite, got {list(values)}")
        out.append(values_a)
    return tuple(out)


def crossover(sizes: Sequence[int], slow: Sequence[float], fast: Sequence[float], *, margin: float = 1.0) -> int | None:
    """The smallest size from which ``fast`` beats ``slow`` by ``margin`` at every larger size measured.

    ``fast`` wins at a size when ``fast · margin < slow`` there (``margin=1.5``: at least 1.5×
    faster). Returns ``None`` when it does not win at the largest size, i.e. when there is no
    size from which it always wins. A win below a loss does not count, so one noisy
    measurement can only move the crossover up, never create one where the method loses.
    """
    sizes_a, slow_a, fast_a = _timings(sizes, slow, fast)
    margin = checks.number("margin", margin, minimum=1.0)
    wins = fast_a * margin < slow_a
    if not wins[-1]:
        return None
    first = len(wins) - int(np.argmin(wins[::-1])) if not wins.all() else 0
    value = sizes_a[first]
    return int(value) if float(value).is_integer() else float(value)


def growth_exponent(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """The exponent ``a`` in ``seconds ∝ sizes^a``: the slope of a least-squares line through ``(log size, log seconds)``."""
    sizes_a, seconds_a = _timings(sizes, seconds)
    if np.any(sizes_a <= 0):
        raise ValueError(f"sizes must be positive, got {list(sizes)}")
    slope, _ = np.polyfit(np.log(sizes_a), np.log(seconds_a), 1)
    return float(slope)
