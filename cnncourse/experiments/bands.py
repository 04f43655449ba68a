"""Accuracy bands per dataset and profile: what a notebook may assert about a training result.

A training result depends on the dataset as much as on the profile's sizes: 80 % test
accuracy is a good five-epoch MLP on Fashion-MNIST, a broken one on MNIST and an excellent one
on CIFAR-10. So a notebook writes its bands as a table ``{dataset: {profile: (low, high)}}``
holding only what was measured, and asserts through :func:`in_band`. A dataset (or profile)
without a band still runs: the notebook prints the number and says that no band is known,
instead of asserting a band that was never measured or failing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["band", "in_band"]

Bands = Mapping[str, Mapping[str, tuple[float, float]]]


def band(table: Bands, dataset: str, profile: str) -> tuple[float, float] | None:
    """The ``(low, high)`` band of ``table`` for ``dataset`` in ``profile``, or ``None`` when none is known."""
    if not isinstance(table, Mapping) or not all(isinstance(v, Mapping) for v in table.values()):
        raise ValueError("bands must be a table {dataset: {profile: (low, high)}}")
    found = table.get(dataset, {}).get(profile)
    if found is None:
        return None
    if len(found) != 2 or not all(isinstance(v, (int, float)) for v in found) or not found[0] <= found[1]:
        raise ValueError(f"the band for {dataset!r} in profile {profile!r} must be (low, high) with low <= high, got {found!r}")
    return float(found[0]), float(found[1])


def in_band(value: float, table: Bands, dataset: str, profile: str, *, what: str) -> bool:
    """Assert ``low <= value <= high`` for the dataset's band; without a band, say so and return ``False``.

    Returns ``True`` when a band was checked, so a notebook can make its further claims
    depend on it. A NaN is never inside a band.
    """
    if not isinstance(what, str) or not what:
        raise ValueError("what must name the number being checked")
    known = band(table, dataset, profile)
    if known is None:
        print(f"{what}: {value:.4f} (no band known for {dataset} in the {profile} profile: printed, not checked)")
        return False
    low, high = known
    if math.isnan(value) or not low <= value <= high:
        raise AssertionError(f"{what} {value:.4f} is outside the {dataset}/{profile} band [{low}, {high}]")
    return True
