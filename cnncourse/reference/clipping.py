r"""Gradient clipping written out in NumPy: what Keras' ``clipvalue``, ``clipnorm`` and ``global_clipnorm`` do.

A gradient step :math:`w \leftarrow w - \eta g` is only as safe as :math:`g` is small. On a
cliff of the loss surface (recurrent networks, very deep networks early in training, a bad
batch) one huge gradient throws the weights far away and undoes many steps of progress.
Clipping bounds the step before the optimizer sees it (Pascanu, Mikolov & Bengio, "On the
difficulty of training recurrent neural networks", ICML 2013; Goodfellow, Bengio & Courville,
*Deep Learning* §10.11.1). Keras offers three kinds, one at a time, on every optimizer:

* ``clipvalue=v``: every component into :math:`[-v, v]`. Cheap, but it changes the
  gradient's **direction** (a large component is cut, a small one is not).
* ``clipnorm=c``: **each tensor separately** (each layer's kernel, each bias) is rescaled to
  norm at most :math:`c`: :math:`g_k \leftarrow g_k \cdot c / \max(\lVert g_k\rVert, c)`.
  Each tensor keeps its direction, but the whole gradient does not: a kernel with a huge
  gradient is shrunk while its bias is left as it was.
* ``global_clipnorm=c``: all tensors together, by their **global** norm
  :math:`\lVert g\rVert = \sqrt{\sum_k \lVert g_k\rVert^2}`: every tensor is multiplied by the
  same :math:`c / \max(\lVert g\rVert, c)`, so the step keeps its direction and only gets
  shorter (Pascanu et al.'s rule; ``torch.nn.utils.clip_grad_norm_``).

The unit tests show that one step of ``keras.optimizers.SGD`` with each option equals
:func:`sgd_step` here, and that ``clipnorm`` and ``global_clipnorm`` differ exactly as said.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnncourse.checks import non_negative_float

__all__ = ["clip_by_global_norm", "clip_by_norm", "clip_by_value", "clip_gradients", "global_norm", "sgd_step"]


def _arrays(grads: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)) or not grads:
        raise ValueError("grads must be a non-empty list of arrays, one per variable (as optimizers receive them)")
    return [np.asarray(g, dtype=np.result_type(g, np.float32)) for g in grads]


def _threshold(name: str, value: object) -> float:
    value = non_negative_float(name, value)
    if value == 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


def global_norm(grads: Sequence[np.ndarray]) -> float:
    r"""The norm of all the tensors taken as one vector, :math:`\sqrt{\sum_k \lVert g_k\rVert^2}`."""
    return float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in _arrays(grads))))


def clip_by_value(grads: Sequence[np.ndarray], clipvalue: float) -> list[np.ndarray]:
    """Every component into ``[-clipvalue, clipvalue]`` (Keras' ``clipvalue``)."""
    v = _threshold("clipvalue", clipvalue)
    return [np.clip(g, -v, v) for g in _arrays(grads)]


def clip_by_norm(grads: Sequence[np.ndarray], clipnorm: float) -> list[np.ndarray]:
    r"""Each tensor rescaled to norm at most ``clipnorm``, **separately** (Keras' ``clipnorm``).

    :math:`g_k \cdot c / \max(\lVert g_k\rVert, c)`: a tensor already shorter than :math:`c` is
    unchanged (an all-zero one too, without dividing by zero).
    """
    c = _threshold("clipnorm", clipnorm)
    return [g * (c / max(float(np.linalg.norm(g.ravel())), c)) for g in _arrays(grads)]


def clip_by_global_norm(grads: Sequence[np.ndarray], global_clipnorm: float) -> list[np.ndarray]:
    r"""All tensors multiplied by one factor :math:`c / \max(\lVert g\rVert, c)` (Keras' ``global_clipnorm``)."""
    c = _threshold("global_clipnorm", global_clipnorm)
    grads = _arrays(grads)
    scale = c / max(global_norm(grads), c)
    return [g * scale for g in grads]


def clip_gradients(
    grads: Sequence[np.ndarray],
    *,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
) -> list[np.ndarray]:
    """What a Keras optimizer does to the gradients before its update rule; at most one option, as in Keras."""
    options = (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm))
    given = {name: value for name, value in options if value is not None}
    if len(given) > 1:
        raise ValueError(f"only one of clipnorm, clipvalue and global_clipnorm can be set (as in Keras), got {sorted(given)}")
    if clipnorm is not None:
        return clip_by_norm(grads, clipnorm)
    if global_clipnorm is not None:
        return clip_by_global_norm(grads, global_clipnorm)
    if clipvalue is not None:
        return clip_by_value(grads, clipvalue)
    return _arrays(grads)


def sgd_step(
    params: Sequence[np.ndarray],
    grads: Sequence[np.ndarray],
    learning_rate: float,
    *,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
) -> list[np.ndarray]:
    r"""One plain SGD step on clipped gradients, :math:`w_k - \eta\, \mathrm{clip}(g)_k`.

    The same update as ``keras.optimizers.SGD(η, clipnorm=…)`` (or ``clipvalue``, ``global_clipnorm``).
    """
    eta = non_negative_float("learning_rate", learning_rate)
    params = _arrays(params)
    clipped = clip_gradients(grads, clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm)
    if [p.shape for p in params] != [g.shape for g in clipped]:
        shapes = [p.shape for p in params], [g.shape for g in clipped]
        raise ValueError(f"params and grads must have the same shapes, got {shapes[0]} and {shapes[1]}")
    return [p - eta * g for p, g in zip(params, clipped)]
