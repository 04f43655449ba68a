"""Normalization layers written from scratch in NumPy, for teaching and for checking Keras.

Keras already ships every normalization layer the course trains with
(``BatchNormalization``, ``LayerNormalization``, ``GroupNormalization``); nothing here is
meant to replace them inside a model. What Keras does not show is *what* they compute: which
axes the statistics are taken over, what the running averages remember, and what the backward
pass looks like. This module spells that out in a few lines of NumPy per layer, with the same
defaults as Keras 3 (``epsilon=1e-3``; batch norm ``momentum=0.99``), so notebook 05 and the
unit tests can check the equations against the library to float32 round-off.

Layout is channels-last, as in Keras: images are ``(N, H, W, C)`` and dense activations
``(N, C)``. The axes each layer averages over, for an ``(N, H, W, C)`` tensor:

=============  ==========================  =====================================
layer          statistics over axes        one mean/variance per
=============  ==========================  =====================================
batch norm     N, H, W   ``(0, 1, 2)``      channel (shared by the whole batch)
layer norm     H, W, C   ``(1, 2, 3)``      example
instance norm  H, W      ``(1, 2)``         example and channel
group norm     H, W + channels of a group   example and group of ``C // G`` channels
=============  ==========================  =====================================

Only batch norm mixes examples, which is why it alone behaves differently in training
(batch statistics) and inference (running averages); the other three compute the same thing
in both modes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "BatchNorm",
    "channel_stats",
    "dropout_train_variance",
    "group_norm",
    "instance_norm",
    "layer_norm",
    "normalize",
    "shared_statistics_mask",
    "standardize",
]

KERAS_EPSILON = 1e-3  # the default of BatchNormalization, LayerNormalization, GroupNormalization
KERAS_MOMENTUM = 0.99  # BatchNormalization's default


def _as_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def normalize(x: np.ndarray, axes: tuple[int, ...], epsilon: float = KERAS_EPSILON) -> np.ndarray:
    """``(x - mean) / sqrt(var + epsilon)`` with mean and (biased) variance over ``axes``.

    Every layer in this module is this one line with a different choice of ``axes``; the
    variance divides by the number of elements (not ``n - 1``), as Keras' ``ops.moments`` does.
    """
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    x = _as_float(x)
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon)


def _affine(y: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None) -> np.ndarray:
    if gamma is not None:
        y = y * np.asarray(gamma, dtype=y.dtype)
    if beta is not None:
        y = y + np.asarray(beta, dtype=y.dtype)
    return y


def _check_rank(x: np.ndarray, name: str, min_rank: int) -> np.ndarray:
    x = _as_float(x)
    if x.ndim < min_rank:
        raise ValueError(f"{name} needs an input of rank >= {min_rank} (channels last), got shape {x.shape}")
    return x


def layer_norm(
    x: np.ndarray,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    epsilon: float = KERAS_EPSILON,
) -> np.ndarray:
    """Layer normalization (Ba, Kiros & Hinton 2016): one mean/variance per example.

    Statistics over every axis except the batch axis, i.e. ``(1, 2, 3)`` = H, W, C for images.
    Equals ``keras.layers.LayerNormalization(axis=[1, 2, 3], epsilon=1e-3)`` (Keras' default
    ``axis=-1`` would normalize over channels only, per pixel). ``gamma``/``beta`` broadcast
    against ``x``.
    """
    x = _check_rank(x, "layer_norm", 2)
    return _affine(normalize(x, tuple(range(1, x.ndim)), epsilon), gamma, beta)


def instance_norm(
    x: np.ndarray,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    epsilon: float = KERAS_EPSILON,
) -> np.ndarray:
    """Instance normalization (Ulyanov et al. 2016): one mean/variance per example and channel.

    Statistics over the spatial axes only, ``(1, 2)`` = H, W for images. Keras has no separate
    layer: it is ``keras.layers.GroupNormalization(groups=C)`` (or ``groups=-1``), group norm
    with one channel per group.
    """
    x = _check_rank(x, "instance_norm", 3)
    return _affine(normalize(x, tuple(range(1, x.ndim - 1)), epsilon), gamma, beta)


def group_norm(
    x: np.ndarray,
    groups: int,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    epsilon: float = KERAS_EPSILON,
) -> np.ndarray:
    """Group normalization (Wu & He 2018): one mean/variance per example and group of channels.

    The C channels are split into ``groups`` consecutive blocks of ``C // groups`` (channel
    ``c`` is in group ``c // (C // groups)``, as in Keras); statistics over H, W and the
    channels of a block. ``groups=1`` is layer norm, ``groups=C`` is instance norm. Equals
    ``keras.layers.GroupNormalization(groups, epsilon=1e-3)``.
    """
    x = _check_rank(x, "group_norm", 2)
    channels = x.shape[-1]
    if not isinstance(groups, (int, np.integer)) or groups < 1 or channels % groups:
        divisors = [g for g in range(1, channels + 1) if channels % g == 0]
        raise ValueError(f"groups must divide the {channels} channels; allowed: {divisors}, got {groups!r}")
    grouped = x.reshape(*x.shape[:-1], groups, channels // groups)
    axes = tuple(range(1, grouped.ndim - 2)) + (grouped.ndim - 1,)  # spatial + within-group
    return _affine(normalize(grouped, axes, epsilon).reshape(x.shape), gamma, beta)


def shared_statistics_mask(kind: str, shape: tuple[int, int, int], groups: int = 2) -> np.ndarray:
    """Which cells of an ``(N, C, H·W)`` block share one mean/variance with cell ``(0, 0, ·)``.

    This is the picture of Wu & He's Figure 2 as data: a boolean array of ``shape`` that is
    True where the statistics used for example 0, channel 0 are computed. ``kind`` is one of
    ``"batch"``, ``"layer"``, ``"instance"``, ``"group"``.
    """
    n, c, hw = shape
    mask = np.zeros(shape, dtype=bool)
    if kind == "batch":
        mask[:, 0, :] = True
    elif kind == "layer":
        mask[0, :, :] = True
    elif kind == "instance":
        mask[0, 0, :] = True
    elif kind == "group":
        if groups < 1 or c % groups:
            raise ValueError(f"groups must divide C={c}, got {groups!r}")
        mask[0, : c // groups, :] = True
    else:
        raise ValueError(f"kind must be one of 'batch', 'layer', 'instance', 'group'; got {kind!r}")
    return mask


@dataclasses.dataclass
class BatchNorm:
    """Batch normalization (Ioffe & Szegedy 2015) with Keras' conventions, forward and backward.

    Training mode normalizes with the mean and *biased* variance of the current batch over
    every axis but the last (N, H, W for images), then scales by ``gamma`` and shifts by
    ``beta``. It also updates the running averages the way ``keras.layers.BatchNormalization``
    does, ``moving = moving * momentum + batch * (1 - momentum)`` with the same biased batch
    variance (PyTorch instead feeds the unbiased ``n/(n-1)`` variance into its running
    average, and writes its momentum as ``1 - momentum``). Inference mode uses the running
    averages, so one example's output no longer depends on the rest of its batch.

    :meth:`backward` is the hand-derived gradient, kept for teaching; the unit tests check it
    against automatic differentiation.
    """

    channels: int
    momentum: float = KERAS_MOMENTUM
    epsilon: float = KERAS_EPSILON
    gamma: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    beta: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    moving_mean: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    moving_variance: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if not isinstance(self.channels, (int, np.integer)) or self.channels < 1:
            raise ValueError(f"channels must be a positive integer, got {self.channels!r}")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {self.momentum!r}")
        if self.epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {self.epsilon!r}")
        c = (self.channels,)
        # Keras' initializers: gamma ones, beta zeros, moving mean zeros, moving variance ones.
        self.gamma = np.ones(c, np.float32) if self.gamma is None else np.asarray(self.gamma, np.float32)
        self.beta = np.zeros(c, np.float32) if self.beta is None else np.asarray(self.beta, np.float32)
        self.moving_mean = (
            np.zeros(c, np.float32) if self.moving_mean is None else np.asarray(self.moving_mean, np.float32)
        )
        self.moving_variance = (
            np.ones(c, np.float32) if self.moving_variance is None else np.asarray(self.moving_variance, np.float32)
        )
        for name in ("gamma", "beta", "moving_mean", "moving_variance"):
            if getattr(self, name).shape != c:
                raise ValueError(f"{name} must have shape {c}, got {getattr(self, name).shape}")
        self._cache: tuple | None = None

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = _check_rank(x, "BatchNorm", 2)
        if x.shape[-1] != self.channels:
            raise ValueError(f"BatchNorm has {self.channels} channels (last axis), got input shape {x.shape}")
        return x

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Normalize ``x`` (channels last); ``training=True`` uses and updates batch statistics."""
        x = self._check(x)
        axes = tuple(range(x.ndim - 1))
        if training:
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)  # biased: divides by N·H·W, as Keras does
            self.moving_mean = (self.moving_mean * self.momentum + mean * (1.0 - self.momentum)).astype(np.float32)
            self.moving_variance = (self.moving_variance * self.momentum + var * (1.0 - self.momentum)).astype(
                np.float32
            )
        else:
            mean, var = self.moving_mean, self.moving_variance
        inv_std = 1.0 / np.sqrt(var + self.epsilon)
        x_hat = (x - mean) * inv_std
        self._cache = (x_hat, inv_std, training, axes)
        return x_hat * self.gamma + self.beta

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gradients ``(dx, dgamma, dbeta)`` of a loss with gradient ``dy`` w.r.t. the last output.

        Training mode: with ``m`` values per channel and ``g = dy * gamma``,
        ``dx = inv_std / m * (m * g - sum(g) - x_hat * sum(g * x_hat))`` — the two subtracted
        terms are the paths through the batch mean and the batch variance; they are why a
        batch-norm gradient is orthogonal to shifting or scaling its input. Inference mode has
        constant statistics, so ``dx = g * inv_std``.
        """
        if self._cache is None:
            raise ValueError("call the layer (forward pass) before backward()")
        x_hat, inv_std, training, axes = self._cache
        dy = np.asarray(dy, dtype=x_hat.dtype)
        if dy.shape != x_hat.shape:
            raise ValueError(f"dy must have the output's shape {x_hat.shape}, got {dy.shape}")
        dbeta = dy.sum(axis=axes)
        dgamma = (dy * x_hat).sum(axis=axes)
        g = dy * self.gamma
        if not training:
            return g * inv_std, dgamma, dbeta
        m = x_hat.size // x_hat.shape[-1]
        dx = inv_std / m * (m * g - g.sum(axis=axes) - x_hat * (g * x_hat).sum(axis=axes))
        return dx, dgamma, dbeta


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of an image set, over N, H, W (channels last).

    Compute them on the *training* split only and reuse them for the test split; statistics
    that looked at the test data would leak it. Accumulates in float64, so a 60,000-image
    float32 split gives the same digits whatever the summation order.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"channel_stats needs (N, ..., C) images, got shape {x.shape}")
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes, dtype=np.float64)
    std = x.std(axis=axes, dtype=np.float64)
    return mean.astype(np.float32), std.astype(np.float32)


def standardize(x: np.ndarray, mean: np.ndarray | float, std: np.ndarray | float) -> np.ndarray:
    """``(x - mean) / std`` per channel, as float32: zero-centred, unit-scale network inputs.

    ``mean``/``std`` broadcast against the last (channel) axis; a zero ``std`` is refused
    rather than silently producing infinities.
    """
    std = np.asarray(std, dtype=np.float32)
    if np.any(std <= 0):
        raise ValueError(f"std must be positive in every channel, got {std}")
    return ((np.asarray(x, dtype=np.float32) - np.asarray(mean, dtype=np.float32)) / std).astype(np.float32)


def dropout_train_variance(mean: float, variance: float, rate: float) -> float:
    """Variance of ``x`` after inverted dropout in training mode (Li et al. 2019, "variance shift").

    Inverted dropout keeps a unit with probability ``p = 1 - rate`` and divides it by ``p``,
    which preserves the mean but not the variance: ``Var_train = (variance + mean**2) / p -
    mean**2``, larger than the ``variance`` seen at test time (when dropout is the identity).
    A batch-norm layer after dropout learns the training value in its running variance and
    then mis-scales every test activation by ``sqrt(Var_train / variance)``.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    if variance < 0:
        raise ValueError(f"variance must be >= 0, got {variance!r}")
    keep = 1.0 - rate
    return (variance + mean**2) / keep - mean**2
