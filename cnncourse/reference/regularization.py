"""Regularization from scratch: dropout's two conventions and the two ways to decay weights, in NumPy.

Notebook 06 checks Keras' dropout and weight decay against formulas; these are the formulas:

* dropout in its two conventions — *vanilla* (drop in training, multiply by the keep
  probability ``p`` at test time) and *inverted* (divide the kept units by ``p`` in training,
  do nothing at test time; what ``keras.layers.Dropout`` does) — plus a tiny NumPy MLP with
  dropout on its hidden layers, to compare the Monte-Carlo average over masks
  :math:`E_z[f(x, z)]` with the single scaled forward pass;
* one step of SGD with an L2 penalty in the loss and one with decoupled weight decay, written
  as Keras 3 computes them, so that "L2 = weight decay for plain SGD" can be checked on a real
  Keras model. (Adam and AdamW, where the two differ, are :mod:`cnncourse.reference.optim`'s.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cnncourse import checks

__all__ = [
    "dropout_mask",
    "inverted_dropout",
    "mask_count_digits",
    "mlp_forward",
    "monte_carlo_forward",
    "sgd_l2_step",
    "sgd_weight_decay_step",
    "vanilla_dropout",
]

_MODES = ("vanilla", "inverted")


# ----------------------------------------------------------------------------- dropout
def _keep_prob(p: float) -> float:
    return checks.number("keep probability p", p, minimum=0.0, maximum=1.0, exclusive_minimum=True)


def dropout_mask(shape: Sequence[int], p: float, rng: np.random.Generator) -> np.ndarray:
    """A 0/1 mask that keeps each unit independently with probability ``p`` (the lecture's ``U``)."""
    p = _keep_prob(p)
    return (rng.random(tuple(shape)) < p).astype(np.float64)


def vanilla_dropout(h, p: float, *, training: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    """Original dropout (Srivastava et al. 2014): drop in training, scale by ``p`` at test time.

    The expected training output of a unit is ``p·h``, so the test pass multiplies by ``p`` to
    match it. The cost: every deployed model has to remember to scale.
    """
    h = np.asarray(h, dtype=np.float64)
    p = _keep_prob(p)
    if not training:
        return h * p
    if rng is None:
        raise ValueError("training=True needs a NumPy Generator rng to draw the mask")
    return h * dropout_mask(h.shape, p, rng)


def inverted_dropout(h, p: float, *, training: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    """Inverted dropout: divide the kept units by ``p`` in training, leave the test pass alone.

    The expected training output is ``h`` itself, so inference is the plain network; this is
    the convention of ``keras.layers.Dropout`` (whose ``rate`` is ``1 − p``).
    """
    h = np.asarray(h, dtype=np.float64)
    p = _keep_prob(p)
    if not training:
        return h
    if rng is None:
        raise ValueError("training=True needs a NumPy Generator rng to draw the mask")
    return h * dropout_mask(h.shape, p, rng) / p


def _activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name == "relu":
        return lambda z: np.maximum(z, 0.0)
    if name == "linear":
        return lambda z: z
    if name == "tanh":
        return np.tanh
    raise ValueError(f"activation must be one of 'relu', 'linear', 'tanh', got {name!r}")


def mlp_forward(
    x,
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    p: float = 1.0,
    *,
    mode: str = "inverted",
    training: bool = False,
    activation: str = "relu",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Forward pass of a NumPy MLP ``x @ W + b`` with dropout on every hidden layer's output.

    As in the lecture's three-layer example: the input and the output scores are never
    dropped. ``mode`` picks the convention (``"vanilla"`` or ``"inverted"``); ``training=False``
    is the deterministic "scaled" pass of that convention.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if not layers:
        raise ValueError("layers must hold at least one (W, b) pair")
    act = _activation(activation)
    drop = vanilla_dropout if mode == "vanilla" else inverted_dropout
    h = np.asarray(x, dtype=np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ np.asarray(w, dtype=np.float64) + np.asarray(b, dtype=np.float64)
        if i < len(layers) - 1:
            h = drop(act(h), p, training=training, rng=rng)
    return h


def monte_carlo_forward(
    x,
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    p: float,
    samples: int,
    *,
    mode: str = "inverted",
    activation: str = "relu",
    seed: int = 0,
) -> np.ndarray:
    """Average of ``samples`` training-mode passes: a Monte-Carlo estimate of :math:`E_z[f(x, z)]`.

    Dropout's test-time rule replaces this average (over :math:`2^{units}` masks) by one pass
    with the expected activations. That is exact when everything after the dropout is
    linear and only approximate through a nonlinearity (:math:`E[g(h)] \\ne g(E[h])`).
    """
    samples = checks.positive_int("samples", samples)
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(samples):
        total = total + mlp_forward(x, layers, p, mode=mode, training=True, activation=activation, rng=rng)
    return total / samples


def mask_count_digits(units: int) -> int:
    """How many decimal digits ``2**units`` has: the size of dropout's implicit ensemble.

    Exact integer arithmetic (Python integers are unbounded), so ``mask_count_digits(4096)`` is
    the exact length of the number of masks of a 4096-unit layer.
    """
    units = checks.integer("units", units, minimum=0)
    return len(str(2**units))


# ----------------------------------------------------------------------------- weight decay
def sgd_l2_step(w, grad, lr: float, l2: float) -> np.ndarray:
    """Plain SGD on ``E + l2·Σw²`` (``keras.regularizers.L2(l2)``): ``w − η(∇E + 2·l2·w)``.

    Keras' ``L2(l2)`` adds ``l2·Σw²`` (no ½), so it equals the lecture's ``(λ/2)·Σw²`` with
    ``λ = 2·l2``: use ``L2(λ / 2)`` to match a weight decay of ``λ``.
    """
    lr, l2 = checks.positive_float("lr", lr), checks.non_negative_float("l2", l2)
    w = np.asarray(w, dtype=np.float64)
    return w - lr * (np.asarray(grad, dtype=np.float64) + 2.0 * l2 * w)


def sgd_weight_decay_step(w, grad, lr: float, weight_decay: float) -> np.ndarray:
    """Plain SGD with decoupled weight decay: ``(1 − ηλ)·w − η·∇E`` (``SGD(weight_decay=λ)``)."""
    lr, wd = checks.positive_float("lr", lr), checks.non_negative_float("weight_decay", weight_decay)
    w = np.asarray(w, dtype=np.float64)
    return (1.0 - lr * wd) * w - lr * np.asarray(grad, dtype=np.float64)
