"""Optimizers written from scratch and checked against Keras, and the noise of a mini-batch gradient.

Why hand-write optimizers that Keras already ships? To *see* them: each class below is the
update rule in a few NumPy lines, with its state in plain attributes, so a notebook can step
it by hand, draw its path on a contour plot (:mod:`cnncourse.reference.landscapes`), and check that it makes **the same update, step
for step,** as the ``keras.optimizers`` class of the same name. The classes therefore follow
Keras 3's conventions exactly (read from ``keras/src/optimizers/*.py``), not the textbook's
where the two differ; each docstring says where they differ and by how much.

Conventions shared by every optimizer here:

* ``opt.step(w, g)`` takes the current parameters ``w`` (one NumPy array of any shape) and the
  gradient ``g`` at ``w``, and returns the new parameters. State (moments, accumulators, the
  step counter ``iterations``) lives on the object; ``opt.reset()`` forgets it.
* Arithmetic happens in ``w``'s dtype, so float32 parameters reproduce Keras' float32 maths.
* ``learning_rate`` is a float or a callable ``step -> float`` (a Keras
  ``LearningRateSchedule`` works). Like Keras, update number ``t = 1, 2, ...`` uses the rate
  at ``step = t - 1``.
* ``opt.to_keras()`` builds the ``keras.optimizers`` object with the same hyperparameters.

Notation: ``η`` learning rate, ``g`` gradient, ``t`` the update number (1 for the first).

The learning-rate schedules the course trains with (one-cycle, warm-up + cosine) are in
:mod:`cnncourse.experiments.schedules`; these classes accept any of them as ``learning_rate``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

__all__ = [
    "Optimizer",
    "SGD",
    "Momentum",
    "Nesterov",
    "AdaGrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "FROM_SCRATCH",
    "compare_with_keras",
    "softmax_regression",
    "minibatch_gradient_noise",
]

LearningRate = float | Callable[[int], Any]


# --------------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------------


class Optimizer:
    """Shared machinery: the step counter, the learning rate lookup, the dtype discipline."""

    keras_name: str = ""

    def __init__(self, learning_rate: LearningRate) -> None:
        if not callable(learning_rate) and not (isinstance(learning_rate, numbers.Real) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive float or a callable step -> float, got {learning_rate!r}")
        self.learning_rate = learning_rate
        self.reset()

    def reset(self) -> None:
        """Forget all state (moments, accumulators, the step counter)."""
        self.iterations = 0

    def lr(self, step: int | None = None) -> float:
        """The learning rate used by the update after ``step`` previous updates."""
        step = self.iterations if step is None else step
        if callable(self.learning_rate):
            return float(keras.ops.convert_to_numpy(self.learning_rate(step)))
        return float(self.learning_rate)

    def step(self, w: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Return the parameters after one update with gradient ``g`` at ``w``."""
        w = np.asarray(w)
        if not np.issubdtype(w.dtype, np.floating):
            w = w.astype(np.float64)
        g = np.asarray(g, dtype=w.dtype)
        if g.shape != w.shape:
            raise ValueError(f"gradient shape {g.shape} does not match parameter shape {w.shape}")
        lr = w.dtype.type(self.lr())
        new_w = self._update(w.copy(), g, lr)
        self.iterations += 1
        return new_w

    update = step  # the other common name: ``update(w, g)``

    def _update(self, w: np.ndarray, g: np.ndarray, lr: np.floating) -> np.ndarray:
        raise NotImplementedError

    def _slot(self, name: str, like: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """A state array shaped like the parameters, created on first use (Keras' ``build``)."""
        value = getattr(self, name, None)
        if value is None or value.shape != like.shape or value.dtype != like.dtype:
            value = np.full_like(like, fill)
            setattr(self, name, value)
        return value

    def config(self) -> dict[str, Any]:
        """The hyperparameters, in Keras' argument names."""
        return {"learning_rate": self.learning_rate}

    def to_keras(self) -> keras.optimizers.Optimizer:
        """The ``keras.optimizers`` object that makes the same updates."""
        return getattr(keras.optimizers, self.keras_name)(**self.config())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    r"""Plain (stochastic) gradient descent, ``keras.optimizers.SGD()``.

    .. math:: w_{t} = w_{t-1} - \eta\, g_t

    "Stochastic" refers to where ``g`` comes from (one example or a mini-batch instead of the
    whole training set), not to the rule itself, which is the lecture's
    :math:`w_{k+1} = w_k - \eta_k \nabla L(w_k)`. Keras' default ``η = 0.01``.
    """

    keras_name = "SGD"

    def __init__(self, learning_rate: LearningRate = 0.01) -> None:
        super().__init__(learning_rate)

    def _update(self, w, g, lr):
        return w - lr * g


class Momentum(Optimizer):
    r"""Heavy-ball momentum, ``keras.optimizers.SGD(momentum=β)``.

    Keras keeps a *velocity* that already contains the learning rate:

    .. math:: m_t = \beta m_{t-1} - \eta g_t, \qquad w_t = w_{t-1} + m_t

    The lecture writes the same method as :math:`p_t = \beta p_{t-1} + g_t`,
    :math:`w_t = w_{t-1} - \eta p_t` (its slide prints :math:`m_{k+1} = \beta m_k - \nabla l`
    together with :math:`w_{k+1} = w_k - \eta m_{k+1}`, a sign slip that would climb the
    loss). With a constant ``η`` the two forms give identical iterates (:math:`m = -\eta p`);
    under a schedule they differ slightly, because Keras' velocity remembers the old rates.
    Lecture advice: β = 0.9 or 0.99, and lower η when β rises (the effective step is about
    η / (1 − β)).
    """

    keras_name = "SGD"

    def __init__(self, learning_rate: LearningRate = 0.01, momentum: float = 0.9) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = momentum
        super().__init__(learning_rate)

    def reset(self) -> None:
        super().reset()
        self.m = None

    def _update(self, w, g, lr):
        m = self._slot("m", w)
        beta = w.dtype.type(self.momentum)
        m[...] = m * beta - g * lr
        return w + m

    def config(self):
        return {"learning_rate": self.learning_rate, "momentum": self.momentum, "nesterov": False}


class Nesterov(Momentum):
    r"""Nesterov momentum, ``keras.optimizers.SGD(momentum=β, nesterov=True)``.

    Nesterov evaluates the gradient at the look-ahead point :math:`w + \beta m`. Keras (like
    PyTorch) uses the equivalent reformulation that needs only the gradient at the stored
    parameters:

    .. math:: m_t = \beta m_{t-1} - \eta g_t, \qquad w_t = w_{t-1} + \beta m_t - \eta g_t

    i.e. the step takes the *new* velocity one more time, scaled by β, plus the plain gradient
    step: a heavy ball that brakes earlier when the slope turns.
    """

    def _update(self, w, g, lr):
        m = self._slot("m", w)
        beta = w.dtype.type(self.momentum)
        m[...] = m * beta - g * lr
        return w + (m * beta - g * lr)

    def config(self):
        return {"learning_rate": self.learning_rate, "momentum": self.momentum, "nesterov": True}


class AdaGrad(Optimizer):
    r"""AdaGrad (Duchi et al., 2011), ``keras.optimizers.Adagrad()``.

    Every parameter gets its own step size, which shrinks with the *sum* of its squared
    gradients so far:

    .. math:: a_t = a_{t-1} + g_t^2, \qquad w_t = w_{t-1} - \frac{\eta\, g_t}{\sqrt{a_t + \epsilon}}

    Keras conventions: the accumulator starts at ``initial_accumulator_value = 0.1`` (not 0)
    and ε (1e-7) sits *inside* the square root. Because ``a`` only grows, the effective rate
    decays like 1/√t: good for sparse features, too cautious for long deep-net training
    (which is what RMSprop fixes).
    """

    keras_name = "Adagrad"

    def __init__(
        self, learning_rate: LearningRate = 0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7
    ) -> None:
        if initial_accumulator_value < 0 or epsilon < 0:
            raise ValueError("initial_accumulator_value and epsilon must be >= 0")
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon
        super().__init__(learning_rate)

    def reset(self) -> None:
        super().reset()
        self.a = None

    def _update(self, w, g, lr):
        a = self._slot("a", w, self.initial_accumulator_value)
        a[...] = a + g * g
        return w - (lr * g) / np.sqrt(a + w.dtype.type(self.epsilon))

    def config(self):
        return {
            "learning_rate": self.learning_rate,
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e), ``keras.optimizers.RMSprop()``.

    AdaGrad with a *leaky* accumulator: an exponential moving average of squared gradients,
    so old gradients are forgotten and the step size does not decay to zero:

    .. math:: v_t = \rho v_{t-1} + (1-\rho) g_t^2, \qquad
              w_t = w_{t-1} - \frac{\eta\, g_t}{\sqrt{v_t + \epsilon}}

    The lecture calls ρ "α" and suggests α = 0.9, η = 1e-3 (Keras' defaults). The lecture puts
    ε outside the root, :math:`\sqrt{v} + \epsilon` with ε ≈ 1e-8; Keras puts ε = 1e-7 inside,
    :math:`\sqrt{v + \epsilon}`. The two agree unless ``v`` is tiny (≈ ε).
    """

    keras_name = "RMSprop"

    def __init__(self, learning_rate: LearningRate = 0.001, rho: float = 0.9, epsilon: float = 1e-7) -> None:
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        self.rho = rho
        self.epsilon = epsilon
        super().__init__(learning_rate)

    def reset(self) -> None:
        super().reset()
        self.v = None

    def _update(self, w, g, lr):
        v = self._slot("v", w)
        f = w.dtype.type
        v[...] = f(self.rho) * v + f(1 - self.rho) * (g * g)  # 1 − ρ in Python, as Keras does
        return w - (lr * g) / np.sqrt(v + w.dtype.type(self.epsilon))

    def config(self):
        return {"learning_rate": self.learning_rate, "rho": self.rho, "epsilon": self.epsilon}


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), ``keras.optimizers.Adam()``: RMSprop plus momentum, bias-corrected.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        \hat m_t = \frac{m_t}{1-\beta_1^t}, \qquad \hat v_t = \frac{v_t}{1-\beta_2^t}, \qquad
        w_t = w_{t-1} - \eta \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    Both moments start at 0, so early on they are biased towards 0; dividing by
    :math:`1-\beta^t` removes that bias (after one step :math:`\hat m_1 = g_1` exactly). The
    lecture's slide writes :math:`\hat v_{k+1} = m_{k+1}/(1-\alpha^k)`: a typo, the second
    moment is corrected from ``v``, as above.

    Keras computes the same thing in the paper's "ε-hat" form (Kingma & Ba, just before §2.1),
    folding both corrections into the step size:

    .. math:: \alpha_t = \eta \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}, \qquad
              w_t = w_{t-1} - \alpha_t \frac{m_t}{\sqrt{v_t} + \hat\epsilon}

    which equals the textbook update with :math:`\epsilon = \hat\epsilon / \sqrt{1-\beta_2^t}`.
    ``epsilon_hat=True`` (default) is Keras' form; ``epsilon_hat=False`` is Algorithm 1 of the
    paper (ε added to :math:`\sqrt{\hat v_t}`). Keras' default ε̂ is 1e-7, the paper's ε 1e-8;
    the difference only matters when gradients are of order ε.
    """

    keras_name = "Adam"

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        *,
        epsilon_hat: bool = True,
    ) -> None:
        for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
        self.beta_1, self.beta_2, self.epsilon, self.epsilon_hat = beta_1, beta_2, epsilon, epsilon_hat
        super().__init__(learning_rate)

    def reset(self) -> None:
        super().reset()
        self.m = None
        self.v = None

    def _update(self, w, g, lr):
        m, v = self._slot("m", w), self._slot("v", w)
        f = w.dtype.type
        t = f(self.iterations + 1)
        b1, b2, eps = f(self.beta_1), f(self.beta_2), f(self.epsilon)
        b1_power, b2_power = b1**t, b2**t
        m[...] = m + (g - m) * f(1 - self.beta_1)  # = β1·m + (1 − β1)·g, in Keras' operation order
        v[...] = v + (g * g - v) * f(1 - self.beta_2)
        if self.epsilon_hat:
            alpha = lr * np.sqrt(1 - b2_power) / (1 - b1_power)
            return w - (m * alpha) / (np.sqrt(v) + eps)
        m_hat = m / (1 - b1_power)
        v_hat = v / (1 - b2_power)  # from v (the lecture's slide divides m here: a typo)
        return w - lr * m_hat / (np.sqrt(v_hat) + eps)

    def config(self):
        if not self.epsilon_hat:
            raise ValueError("Keras only implements the epsilon-hat form; use epsilon_hat=True for to_keras()")
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    def __repr__(self) -> str:
        form = "" if self.epsilon_hat else ", epsilon_hat=False"
        return (
            f"{type(self).__name__}(learning_rate={self.learning_rate!r}, beta_1={self.beta_1!r}, "
            f"beta_2={self.beta_2!r}, epsilon={self.epsilon!r}{form})"
        )


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019), ``keras.optimizers.AdamW()``: Adam with *decoupled* weight decay.

    Adding :math:`\frac{\lambda}{2}\|w\|^2` to the loss puts :math:`\lambda w` into ``g``, and
    Adam then divides it by :math:`\sqrt{\hat v}`: weights with large gradients are barely
    decayed. AdamW instead shrinks the weights directly, outside the adaptive step. Keras
    applies the decay *first*, scaled by the learning rate, then the Adam update with the
    gradient that was computed at the old weights:

    .. math:: w' = w_{t-1} - \eta \lambda w_{t-1}, \qquad
              w_t = w' - \alpha_t \frac{m_t}{\sqrt{v_t} + \hat\epsilon}

    Keras' default λ (``weight_decay``) is 0.004. For plain SGD the two kinds of decay
    coincide (:math:`(1-\eta\lambda)w - \eta g`); for Adam they do not, hence AdamW.
    """

    keras_name = "AdamW"

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        *,
        epsilon_hat: bool = True,
    ) -> None:
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.weight_decay = weight_decay
        super().__init__(learning_rate, beta_1, beta_2, epsilon, epsilon_hat=epsilon_hat)

    def _update(self, w, g, lr):
        w = w - w * w.dtype.type(self.weight_decay) * lr
        return super()._update(w, g, lr)

    def config(self):
        return {**super().config(), "weight_decay": self.weight_decay}

    def __repr__(self) -> str:
        return super().__repr__().replace("(", f"(weight_decay={self.weight_decay!r}, ", 1)


#: name → class, in the order the course introduces them.
FROM_SCRATCH: Mapping[str, type[Optimizer]] = {
    "SGD": SGD,
    "Momentum": Momentum,
    "Nesterov": Nesterov,
    "AdaGrad": AdaGrad,
    "RMSprop": RMSprop,
    "Adam": Adam,
    "AdamW": AdamW,
}


def compare_with_keras(
    optimizer: Optimizer,
    gradients: Sequence[np.ndarray] | np.ndarray | Callable[[np.ndarray], np.ndarray],
    w0: np.ndarray,
    *,
    steps: int = 100,
    keras_optimizer=None,
) -> float:
    """Max abs difference between the from-scratch and the Keras parameters, over every step.

    Both sides work in float32 (Keras' dtype). ``gradients`` is either a fixed sequence fed to
    both (open loop), or a function ``grad(w)`` that each side evaluates at *its own*
    parameters for ``steps`` steps (closed loop: any difference feeds back and grows).
    """
    w = np.asarray(w0, dtype=np.float32).copy()
    variable = keras.Variable(w.copy(), name="w")
    keras_opt = optimizer.to_keras() if keras_optimizer is None else keras_optimizer
    optimizer.reset()
    closed_loop = callable(gradients)
    sequence = range(steps) if closed_loop else gradients
    worst = 0.0
    for item in sequence:
        kw = keras.ops.convert_to_numpy(variable)
        g_ours = np.asarray(gradients(w) if closed_loop else item, dtype=np.float32)
        g_keras = np.asarray(gradients(kw) if closed_loop else item, dtype=np.float32)
        w = optimizer.step(w, g_ours)
        keras_opt.apply_gradients([(keras.ops.convert_to_tensor(g_keras), variable)])
        worst = max(worst, float(np.max(np.abs(w - keras.ops.convert_to_numpy(variable)))))
    return worst


# --------------------------------------------------------------------------------------------
# A real model for the mini-batch experiments
# --------------------------------------------------------------------------------------------


def softmax_regression(
    W: np.ndarray, x: np.ndarray, y: np.ndarray, *, per_example: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    r"""Loss and gradient of multinomial logistic regression, in closed form (NumPy).

    ``W`` has shape ``(D + 1, K)`` (the last row is the bias), ``x`` ``(N, D)``, ``y`` int
    labels ``(N,)``. With :math:`p = \mathrm{softmax}(xW)` and one-hot ``t``, the mean
    cross-entropy has gradient :math:`\frac1N \tilde x^\top (p - t)` (notebook 02's
    ``y − t``). ``per_example=True`` returns the per-example losses ``(N,)`` and gradients
    ``(N, D + 1, K)`` instead of their means — what the mini-batch variance experiment needs.
    The model is convex, small and exact, which makes the gradient-noise measurement clean.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y).reshape(-1)
    xt = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    if W.shape != (xt.shape[1], W.shape[1]):
        raise ValueError(f"W must have shape ({xt.shape[1]}, K), got {W.shape}")
    z = xt @ W
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    losses = -logp[np.arange(len(y)), y]
    delta = np.exp(logp)
    delta[np.arange(len(y)), y] -= 1.0
    if per_example:
        return losses, xt[:, :, None] * delta[:, None, :]
    return losses.mean(), xt.T @ delta / len(y)


def minibatch_gradient_noise(
    per_example_grads: np.ndarray, batch_sizes: Sequence[int], *, draws: int = 200, seed: int = 0
) -> dict[str, np.ndarray]:
    r"""Measure how far a mini-batch gradient is from the full gradient, for each batch size.

    ``per_example_grads`` is ``(N, ...)``: the gradient of each training example's loss at
    one fixed ``w``. Each mini-batch draws ``B`` indices uniformly *with replacement* (the
    lecture's "sampled uniformly", so the B terms are i.i.d.), for ``draws`` batches per size.
    Returns arrays over ``batch_sizes``:

    * ``variance`` — :math:`\mathbb E\|g_B - \nabla L\|^2`, the total variance; theory:
      ``sigma2 / B`` with ``sigma2`` the per-example variance (also returned).
    * ``bias`` — :math:`\|\bar g_B - \nabla L\|^2`, the squared error of the *mean* of the
      draws; for an unbiased estimator it is about ``variance / draws``, not a constant.
    """
    g = np.asarray(per_example_grads, dtype=np.float64).reshape(len(per_example_grads), -1)
    full = g.mean(axis=0)
    sigma2 = float(((g - full) ** 2).sum(axis=1).mean())
    rng = np.random.default_rng(seed)
    variance, bias = [], []
    for b in batch_sizes:
        if not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"batch sizes must be positive integers, got {b!r}")
        estimates = np.stack([g[rng.integers(0, len(g), size=int(b))].mean(axis=0) for _ in range(draws)])
        variance.append(((estimates - full) ** 2).sum(axis=1).mean())
        bias.append(((estimates.mean(axis=0) - full) ** 2).sum())
    return {
        "batch_sizes": np.asarray(batch_sizes),
        "variance": np.asarray(variance),
        "bias": np.asarray(bias),
        "sigma2": np.asarray(sigma2),
        "full_gradient_norm2": np.asarray(float((full**2).sum())),
    }
