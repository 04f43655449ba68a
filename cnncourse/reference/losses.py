"""NumPy references for softmax, cross-entropy and the Keras loss functions, plus gradient checks.

Why this module exists: notebook 02 derives softmax, its Jacobian, cross-entropy and the
``y − t`` gradient by hand, and then claims that Keras computes the same things. A claim like
that needs a second, independent implementation to compare with. Each formula is therefore
written here once, in float64 NumPy, in the plainest form that still behaves (no fusing, no
``keras.ops``), so that the notebook and ``tests/unit/test_losses.py`` can hold Keras' own
float32, fused and clipped implementations against the mathematics.

The loss zoo (:data:`ZOO`) follows Keras' conventions exactly, because a reference that
differs by a convention teaches the wrong lesson: probabilities are clipped to
``[ε, 1 − ε]`` with ``ε = 1e-7`` (``keras.config.epsilon()``), the per-sample loss is the
mean (or, for the cross-entropies and KL, the sum) over the last axis, hinge losses turn
``{0, 1}`` labels into ``{−1, 1}``, categorical cross-entropy first renormalizes the
predictions to sum to one.

:func:`autodiff_jacobian` (built on :func:`cnncourse.autodiff.grad`) differentiates a vector
function written with ``keras.ops`` on whichever backend is active, and :func:`numerical_grad`
/ :func:`numerical_jacobian` give central finite differences in float64: two independent
witnesses for every derivative the course writes down. They are not specific to losses; any
notebook may use them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "EPSILON",
    "ZOO",
    "ZooLoss",
    "autodiff_jacobian",
    "binary_crossentropy",
    "categorical_crossentropy",
    "cross_entropy",
    "hinge",
    "kl_divergence",
    "log_softmax",
    "logsumexp",
    "mae",
    "mse",
    "mse_softmax_grad",
    "msle",
    "naive_softmax",
    "numerical_grad",
    "numerical_jacobian",
    "softmax",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_jacobian",
    "sparse_categorical_crossentropy",
    "squared_hinge",
    "zoo_inputs",
]

EPSILON = 1e-7
"""Keras' fuzz factor (``keras.config.epsilon()``): probabilities are clipped to [ε, 1 − ε]."""


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# --------------------------------------------------------------------------- softmax


def naive_softmax(z: Any, axis: int = -1) -> np.ndarray:
    """Softmax straight from the definition ``exp(z_i) / Σ_j exp(z_j)``.

    Kept only to show why nobody computes it this way: ``exp`` overflows to ``inf`` for logits
    above ≈ 709 (float64; ≈ 88 in float32) and ``inf / inf`` is ``nan``. Use :func:`softmax`.
    """
    e = np.exp(_f64(z))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax(z: Any, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax: subtract the largest logit before exponentiating.

    Softmax is invariant to adding a constant to every logit, so ``softmax(z − max z)`` is the
    same function; after the shift every exponent is ≤ 0, so nothing overflows and the largest
    term is exactly 1, so the denominator is ≥ 1 and never underflows to 0.
    """
    z = _f64(z)
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def logsumexp(z: Any, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """``log Σ exp(z)`` computed as ``m + log Σ exp(z − m)`` with ``m = max z``.

    This is the normalizer of softmax in log space; the shift by the maximum is what makes a
    loss computed from logits (``from_logits=True``) finite for any logits.
    """
    z = _f64(z)
    m = np.max(z, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(z: Any, axis: int = -1) -> np.ndarray:
    """``log softmax(z) = z − logsumexp(z)``: exact even where softmax itself underflows to 0.

    ``np.log(softmax(z))`` gives ``-inf`` once a probability underflows; this form keeps the
    true (very negative) value, which is what cross-entropy needs.
    """
    z = _f64(z)
    return z - logsumexp(z, axis=axis, keepdims=True)


def softmax_jacobian(z: Any) -> np.ndarray:
    """The Jacobian ``∂y_i/∂z_j = y_i (δ_ij − y_j)`` of softmax over the last axis.

    Written in matrix form, ``diag(y) − y yᵀ``, so that the notebook can compare the derived
    formula (including the minus sign of the off-diagonal terms) with automatic
    differentiation. ``z`` of shape ``(..., C)`` gives ``(..., C, C)``.
    """
    y = softmax(z, axis=-1)
    eye = np.eye(y.shape[-1])
    return y[..., :, None] * (eye - y[..., None, :])


# --------------------------------------------------------------------------- cross-entropy

_BASES = {"e": math.e, 2: 2.0, "2": 2.0, math.e: math.e}


def cross_entropy(t: Any, p: Any, base: str | float = "e") -> np.ndarray:
    """Cross-entropy ``−Σ_i t_i log p_i`` over the last axis, in nats (``base="e"``) or bits (2).

    The textbook definition with no clipping, so it gives the exact worked examples of the
    lecture (−log₂ 0.775 = 0.3677 bits). Terms with ``t_i = 0`` contribute 0 even where
    ``p_i = 0`` (the limit of ``t log p``), so one-hot targets never produce ``0 · (−inf)``.
    """
    if base not in _BASES:
        raise ValueError(f"base must be 'e' (nats) or 2 (bits), got {base!r}")
    t, p = np.broadcast_arrays(_f64(t), _f64(p))
    with np.errstate(divide="ignore"):
        terms = np.where(t > 0, t * np.log(np.where(t > 0, p, 1.0)), 0.0)
    return -np.sum(terms, axis=-1) / math.log(_BASES[base])


def softmax_cross_entropy(t: Any, z: Any) -> np.ndarray:
    """Cross-entropy of softmax(z) against t, computed from the logits: ``−Σ t · log_softmax(z)``.

    This is what ``from_logits=True`` does in Keras: the softmax and the log are fused, so the
    loss stays exact for logits where softmax would round a probability to 0 or 1.
    """
    return -np.sum(_f64(t) * log_softmax(z, axis=-1), axis=-1)


def _check_distribution(t: np.ndarray, what: str) -> None:
    sums = np.sum(t, axis=-1)
    if np.any(t < 0) or not np.allclose(sums, 1.0, atol=1e-6):
        raise ValueError(f"{what} must be non-negative and sum to 1 over the last axis (one-hot or soft labels)")


def softmax_cross_entropy_grad(z: Any, t: Any) -> np.ndarray:
    """Gradient of ``cross_entropy(t, softmax(z))`` with respect to the logits: ``y − t``.

    The notebook derives this from the Jacobian; the derivation uses ``Σ_j t_j = 1``, so
    targets that are not distributions are refused rather than given a wrong gradient.
    """
    t = _f64(t)
    _check_distribution(t, "t")
    return softmax(z, axis=-1) - t


def mse_softmax_grad(z: Any, t: Any) -> np.ndarray:
    """Gradient of Keras' MSE ``mean_k (y_k − t_k)²`` of ``y = softmax(z)`` w.r.t. the logits.

    The chain rule through the softmax Jacobian gives ``Jᵀ · 2(y − t)/C``; because ``J`` has
    the factor ``y_i``, the gradient vanishes when the true class's probability is near 0,
    the saturation that makes MSE a poor classification loss (notebook 02's figure).
    """
    z, t = _f64(z), _f64(t)
    jac = softmax_jacobian(z)
    upstream = 2.0 * (softmax(z) - t) / z.shape[-1]
    return np.einsum("...ij,...i->...j", jac, upstream)


# --------------------------------------------------------------------------- the loss zoo


def mse(y_true: Any, y_pred: Any) -> np.ndarray:
    """Mean squared error over the last axis (``keras.losses.mean_squared_error``)."""
    return np.mean((_f64(y_true) - _f64(y_pred)) ** 2, axis=-1)


def mae(y_true: Any, y_pred: Any) -> np.ndarray:
    """Mean absolute error over the last axis (``keras.losses.mean_absolute_error``)."""
    return np.mean(np.abs(_f64(y_true) - _f64(y_pred)), axis=-1)


def msle(y_true: Any, y_pred: Any) -> np.ndarray:
    """Mean squared log error; Keras first raises values below ε to ε, then uses ``log(1 + x)``."""
    first = np.log(np.maximum(_f64(y_pred), EPSILON) + 1.0)
    second = np.log(np.maximum(_f64(y_true), EPSILON) + 1.0)
    return np.mean((first - second) ** 2, axis=-1)


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> np.ndarray:
    """Binary cross-entropy, mean over the last axis, as ``keras.losses.binary_crossentropy``.

    Probabilities are clipped to ``[ε, 1 − ε]``, so a confidently wrong prediction costs at most
    ``−log ε ≈ 16.12`` per element. With ``from_logits=True`` the stable form
    ``max(z, 0) − z t + log(1 + e^{−|z|})`` is used instead, with no clipping.
    """
    t, p = _f64(y_true), _f64(y_pred)
    if from_logits:
        per_element = np.maximum(p, 0.0) - p * t + np.log1p(np.exp(-np.abs(p)))
    else:
        p = np.clip(p, EPSILON, 1.0 - EPSILON)
        per_element = -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p))
    return np.mean(per_element, axis=-1)


def _hinge_labels(y_true: np.ndarray) -> np.ndarray:
    """Keras converts labels to ±1 only when *all* of them are 0 or 1; otherwise leaves them."""
    if np.all((y_true == 0) | (y_true == 1)):
        return 2.0 * y_true - 1.0
    return y_true


def hinge(y_true: Any, y_pred: Any) -> np.ndarray:
    """Hinge loss ``mean(max(1 − t·p, 0))`` over the last axis, with Keras' {0,1}→{−1,1} labels."""
    t = _hinge_labels(_f64(y_true))
    return np.mean(np.maximum(1.0 - t * _f64(y_pred), 0.0), axis=-1)


def squared_hinge(y_true: Any, y_pred: Any) -> np.ndarray:
    """Squared hinge ``mean(max(1 − t·p, 0)²)`` over the last axis, with the same label conversion."""
    t = _hinge_labels(_f64(y_true))
    return np.mean(np.maximum(1.0 - t * _f64(y_pred), 0.0) ** 2, axis=-1)


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> np.ndarray:
    """Categorical cross-entropy as ``keras.losses.categorical_crossentropy`` computes it.

    On probabilities Keras renormalizes them to sum to 1, clips to ``[ε, 1 − ε]`` and sums
    ``−t log p`` over the last axis; on logits it uses the fused :func:`softmax_cross_entropy`.
    """
    t = _f64(y_true)
    if from_logits:
        return softmax_cross_entropy(t, y_pred)
    p = _f64(y_pred)
    p = np.clip(p / np.sum(p, axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON)
    return -np.sum(t * np.log(p), axis=-1)


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> np.ndarray:
    """Categorical cross-entropy with integer labels (``(N,)`` or ``(N, 1)``), one-hot inside.

    The same number as :func:`categorical_crossentropy` on the one-hot labels; Keras offers
    it so that labels need not be expanded to ``(N, C)`` in memory.
    """
    labels = np.asarray(y_true)
    p = _f64(y_pred)
    if labels.ndim == p.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if not np.all(labels == np.round(labels)) or labels.min() < 0 or labels.max() >= p.shape[-1]:
        raise ValueError(f"y_true must hold integer class indices in [0, {p.shape[-1] - 1}]")
    one_hot = np.eye(p.shape[-1])[labels.astype(np.int64)]
    return categorical_crossentropy(one_hot, p, from_logits=from_logits)


def kl_divergence(y_true: Any, y_pred: Any) -> np.ndarray:
    """Kullback–Leibler divergence ``Σ t log(t / p)`` over the last axis, both clipped to [ε, 1].

    It equals cross-entropy minus the entropy of ``t``, so for one-hot targets (entropy 0) it is
    categorical cross-entropy up to the clipping.
    """
    t = np.clip(_f64(y_true), EPSILON, 1.0)
    p = np.clip(_f64(y_pred), EPSILON, 1.0)
    return np.sum(t * np.log(t / p), axis=-1)


@dataclasses.dataclass(frozen=True)
class ZooLoss:
    """One loss of the zoo: the NumPy reference, the ``keras.losses`` function it must equal,
    the formula (for tables) and the kind of targets it expects (for :func:`zoo_inputs`)."""

    name: str
    reference: Callable[[Any, Any], np.ndarray]
    keras_name: str
    formula: str
    targets: str  # "regression" | "binary" | "one_hot" | "sparse" | "distribution"


ZOO: dict[str, ZooLoss] = {
    z.name: z
    for z in (
        ZooLoss("mse", mse, "mean_squared_error", "mean (t − p)²", "regression"),
        ZooLoss("msle", msle, "mean_squared_logarithmic_error", "mean (log(1+p) − log(1+t))²", "regression"),
        ZooLoss("mae", mae, "mean_absolute_error", "mean |t − p|", "regression"),
        ZooLoss("binary_crossentropy", binary_crossentropy, "binary_crossentropy",
                "mean −[t log p + (1−t) log(1−p)]", "binary"),
        ZooLoss("hinge", hinge, "hinge", "mean max(1 − t·p, 0), t ∈ {−1, 1}", "binary"),
        ZooLoss("squared_hinge", squared_hinge, "squared_hinge", "mean max(1 − t·p, 0)²", "binary"),
        ZooLoss("categorical_crossentropy", categorical_crossentropy, "categorical_crossentropy",
                "−Σ t log p", "one_hot"),
        ZooLoss("sparse_categorical_crossentropy", sparse_categorical_crossentropy,
                "sparse_categorical_crossentropy", "−log p[label]", "sparse"),
        ZooLoss("kl_divergence", kl_divergence, "kl_divergence", "Σ t log(t / p)", "distribution"),
    )
}
"""The lecture's list of losses, in its order: regression, binary, multi-class."""


def zoo_inputs(name: str, rng: np.random.Generator, batch: int = 64, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(y_true, y_pred)`` of the kind the loss ``name`` is meant for.

    Regression losses get real targets and predictions (non-negative for MSLE's sake, with a
    few exact zeros to exercise the ε clamp), binary losses get {0, 1} labels and
    probabilities, categorical ones one-hot labels (or integer labels) and softmax outputs,
    KL two probability distributions.
    """
    if name not in ZOO:
        raise ValueError(f"unknown loss {name!r}; the zoo holds: {', '.join(ZOO)}")
    shape = (batch, classes)
    kind = ZOO[name].targets
    if kind == "regression":
        y_true = rng.uniform(0.0, 3.0, shape)
        y_pred = rng.uniform(0.0, 3.0, shape)
        y_true[0, :3] = 0.0
        return y_true, y_pred
    if kind == "binary":
        return rng.integers(0, 2, shape).astype(np.float64), rng.uniform(0.0, 1.0, shape)
    probs = softmax(rng.normal(0.0, 1.0, shape))
    labels = rng.integers(0, classes, batch)
    if kind == "one_hot":
        return np.eye(classes)[labels], probs
    if kind == "sparse":
        return labels, probs
    return softmax(rng.normal(0.0, 1.0, shape)), probs


# --------------------------------------------------------------------------- gradient checks


def numerical_grad(fn: Callable[[np.ndarray], Any], x: Any, h: float = 1e-6) -> np.ndarray:
    """Central finite differences ``(f(x + h e_k) − f(x − h e_k)) / 2h`` of a scalar NumPy function.

    Error O(h²) plus rounding O(ε/h); in float64 with h = 1e-6 that is about 1e-9 for the
    smooth functions of this course: an independent check on any derived gradient.
    """
    x = _f64(x)
    grad = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[k] = h
        grad[k] = (float(fn(x + step)) - float(fn(x - step))) / (2.0 * h)
    return grad


def numerical_jacobian(fn: Callable[[np.ndarray], Any], x: Any, h: float = 1e-6) -> np.ndarray:
    """Finite-difference Jacobian ``J[i, j] = ∂f_i/∂x_j`` of a vector NumPy function of a vector."""
    x = _f64(x)
    n_out = np.asarray(fn(x)).size
    return np.stack([numerical_grad(lambda v, i=i: np.ravel(fn(v))[i], x, h) for i in range(n_out)])


def autodiff_jacobian(fn: Callable[[Any], Any], x: Any, dtype: str = "float32") -> np.ndarray:
    """Jacobian ``J[i, j] = ∂f_i/∂x_j`` of a vector function of a vector, one autodiff row per output.

    The framework's own answer (``tf.GradientTape`` / ``jax.grad`` / autograd through
    :func:`cnncourse.autodiff.grad`) to hold a hand-derived Jacobian against. Built row by row
    from gradients rather than with each framework's jacobian function, so it behaves the same
    on every backend; fine for the small vectors (a handful of logits) it is meant for.
    Computed in ``dtype`` (float32 by default: JAX has float64 only when x64 is enabled).
    """
    import keras

    from cnncourse.autodiff import grad

    values = np.asarray(x, dtype=dtype)
    n_out = int(np.prod(np.shape(fn(keras.ops.convert_to_tensor(values)))))
    rows = [grad(lambda v, i=i: keras.ops.reshape(fn(v), (-1,))[i], values) for i in range(n_out)]
    return np.stack(rows).astype(np.float64)
