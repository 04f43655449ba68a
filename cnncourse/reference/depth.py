"""Depth and residual connections: small NumPy models of why an identity path helps.

Backpropagation through ``L`` blocks multiplies the gradient by the transposed Jacobian of
every block. For a plain block ``z_{i+1} = g(z_i)`` that Jacobian is ``∂g/∂z_i``; for a residual
block ``z_{i+1} = z_i + g(z_i)`` it is ``∂g/∂z_i + I``. A product of many matrices whose gain is
below (above) one shrinks (grows) geometrically, so a plain stack has to keep every block's
gain near one for the signal to survive; the ``+ I`` keeps each factor near the identity even
when ``∂g/∂z_i`` is small. :func:`jacobian_chain` measures that with random matrices, so the
argument can be checked numerically without training anything (notebook 08).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from cnncourse import checks


def jacobian_chain(
    width: int = 64, depth: int = 30, *, gain: float = 0.5, residual: bool = False, seed: int = 0
) -> np.ndarray:
    """Norm of a unit gradient after flowing back through ``1..depth`` random linear blocks.

    Block ``k`` has Jacobian ``W_k`` (plain) or ``I + W_k`` (residual), with ``W_k`` drawn with
    i.i.d. ``N(0, gain² / width)`` entries, so ``‖W_k u‖ ≈ gain·‖u‖`` for a unit vector ``u``.
    Returns ``depth + 1`` values: entry ``k`` is ``‖J_1ᵀ ⋯ J_kᵀ v‖`` for a fixed random unit
    ``v`` (entry 0 is 1). Expect about ``gain**k`` for the plain chain and about
    ``(1 + gain²)**(k/2)`` for the residual one. The same ``seed`` draws the same ``W_k`` for
    both kinds, so the two chains differ only by the ``+ I``.
    """
    width = checks.positive_int("width", width)
    depth = checks.positive_int("depth", depth)
    if not np.isfinite(gain) or gain <= 0:
        raise ValueError(f"gain must be a positive finite number, got {gain!r}")
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(width)
    v /= np.linalg.norm(v)
    norms = [1.0]
    for _ in range(depth):
        w = rng.standard_normal((width, width)) * (gain / np.sqrt(width))
        v = w.T @ v + (v if residual else 0.0)
        norms.append(float(np.linalg.norm(v)))
    return np.asarray(norms)


def spread(values: Iterable[float] | Mapping[str, float]) -> float:
    """Largest over smallest of positive values: how many-fold per-layer gradient norms differ.

    One learning rate serves every layer, so a network whose layers get gradients that differ
    by orders of magnitude takes steps that are too big for some layers and too small for others.
    """
    vals = np.asarray(list(values.values()) if isinstance(values, Mapping) else list(values), dtype=float)
    if vals.size == 0 or not np.all(np.isfinite(vals)) or np.any(vals <= 0):
        raise ValueError("values must be a non-empty collection of positive finite numbers")
    return float(vals.max() / vals.min())
