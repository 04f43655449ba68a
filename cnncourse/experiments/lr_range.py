r"""The learning-rate range test ("LR finder"): one short run that sweeps the rate upwards.

Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017, §3.3: train for a
few hundred steps while the learning rate grows from tiny to huge, and watch the loss. At
first nothing happens (the rate is too small to move the weights), then the loss falls
faster and faster, flattens, and finally explodes when the rate passes the stability limit
of the loss surface (for a quadratic, :math:`\eta > 2/\lambda_{max}` of the Hessian). The
useful rates lie on the falling stretch, and a whole learning-rate sweep costs less than one
epoch. The form used here is the one popularised by fast.ai (Howard & Gugger, 2020): the
rate grows **exponentially** per batch (so every decade gets the same number of steps), the
loss is smoothed by a bias-corrected exponential moving average, and the run stops once the
smoothed loss is ``divergence`` × its best value.

**Which rate to pick.** :meth:`LearningRateRangeTest.suggestion` returns **one tenth of the
rate at which the smoothed loss was lowest**. At the minimum the rate is already at the edge
of instability (the loss turns up a few steps later), so a factor of ten below it is safely
on the falling stretch and within the range where training makes fast progress; the
alternative rule, the rate of steepest descent (:meth:`~LearningRateRangeTest.steepest`), is
also reported but depends on a numerical derivative of a noisy curve. Both are starting
points for the validation-set tuning of notebook 03, not a replacement for it.

The test trains the model, so the callback saves the weights and the optimizer's state when
training begins and puts them back when it ends: the model is as it was, ready for the real
run. Keras-only (``model.fit`` with this callback); no training loop of its own.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from cnncourse import checks

__all__ = ["LearningRateRangeTest", "lr_range_test"]


class LearningRateRangeTest(keras.callbacks.Callback):
    r"""Raise the learning rate exponentially per batch, record the smoothed loss, stop on divergence, restore.

    Batch :math:`t = 0, …, T-1` (``steps`` = :math:`T`) trains at
    :math:`\eta_t = \eta_{min} (\eta_{max}/\eta_{min})^{t/(T-1)}`. After each batch the batch
    loss :math:`\ell_t` goes into :math:`m_t = \beta m_{t-1} + (1-\beta)\ell_t`, reported
    bias-corrected as :math:`\hat\ell_t = m_t / (1 - \beta^{t+1})` (``smoothing`` = β). The run
    stops when :math:`\hat\ell_t > ` ``divergence`` × :math:`\min_{s \le t} \hat\ell_s` or the
    loss is not finite, or after :math:`T` batches. Then the weights and the optimizer's
    variables (its step count, momenta, the original rate) are restored.

    After training: ``learning_rates``, ``losses`` (per batch), ``smoothed_losses``,
    ``diverged``, and :meth:`suggestion` / :meth:`steepest`.

    Keras reports the *running mean* of the loss over the epoch in its batch logs, so the
    callback recovers each batch's loss as :math:`n\,\bar\ell_n - (n-1)\,\bar\ell_{n-1}`; this is
    exact when the batches of an epoch have equal sizes (:func:`lr_range_test` makes sure
    they do). The optimizer must have a plain learning rate, not a schedule.
    """

    def __init__(
        self, min_lr: float = 1e-6, max_lr: float = 1.0, steps: int = 100, *, smoothing: float = 0.98, divergence: float = 4.0
    ) -> None:
        super().__init__()
        self.min_lr, self.max_lr = checks.positive_float("min_lr", min_lr), checks.positive_float("max_lr", max_lr)
        if self.max_lr <= self.min_lr:
            raise ValueError(f"max_lr must be larger than min_lr, got min_lr={min_lr}, max_lr={max_lr}")
        self.steps = checks.integer("steps", steps, minimum=2)
        self.smoothing = checks.number("smoothing", smoothing, minimum=0.0, maximum=1.0, exclusive_maximum=True)
        self.divergence = checks.number("divergence", divergence, minimum=1.0, exclusive_minimum=True)
        self._reset()

    def _reset(self) -> None:
        self.learning_rates: list[float] = []
        self.losses: list[float] = []
        self.smoothed_losses: list[float] = []
        self.diverged = False
        self._average = 0.0
        self._best = math.inf

    def rate_at(self, step: int) -> float:
        """The learning rate of batch ``step`` of the sweep."""
        return self.min_lr * (self.max_lr / self.min_lr) ** (step / (self.steps - 1))

    # ---------------------------------------------------------------------------------- callback hooks
    def on_train_begin(self, logs=None) -> None:
        optimizer = self.model.optimizer
        if isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule) or callable(
            optimizer._learning_rate
        ):
            raise ValueError("the range test sets the learning rate itself: compile with a plain number, not a schedule")
        self._reset()
        self._weights = [np.array(w) for w in self.model.get_weights()]
        self._optimizer_state = [np.array(keras.ops.convert_to_numpy(v)) for v in optimizer.variables]

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._previous_mean = 0.0  # Keras' running mean restarts every epoch

    def on_train_batch_begin(self, batch, logs=None) -> None:
        self.model.optimizer.learning_rate = self.rate_at(len(self.learning_rates))

    def on_train_batch_end(self, batch, logs=None) -> None:
        n = batch + 1
        mean = float((logs or {})["loss"])
        loss = n * mean - (n - 1) * self._previous_mean
        self._previous_mean = mean
        self.learning_rates.append(self.rate_at(len(self.learning_rates)))
        self.losses.append(loss)
        t = len(self.losses)
        self._average = self.smoothing * self._average + (1.0 - self.smoothing) * loss
        smoothed = self._average / (1.0 - self.smoothing**t)
        self.smoothed_losses.append(smoothed)
        if not math.isfinite(smoothed) or smoothed > self.divergence * self._best:
            self.diverged = True
            self.model.stop_training = True
        self._best = min(self._best, smoothed)
        if t >= self.steps:
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        self.model.set_weights(self._weights)
        for variable, value in zip(self.model.optimizer.variables, self._optimizer_state):
            variable.assign(value)

    # ---------------------------------------------------------------------------------- results
    def _finite(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.smoothed_losses:
            raise ValueError("no results yet: run model.fit with this callback first")
        lrs, losses = np.asarray(self.learning_rates), np.asarray(self.smoothed_losses)
        keep = np.isfinite(losses)
        return lrs[keep], losses[keep]

    def min_loss_rate(self) -> float:
        """The rate at which the smoothed loss was lowest."""
        lrs, losses = self._finite()
        return float(lrs[np.argmin(losses)])

    def suggestion(self) -> float:
        """One tenth of :meth:`min_loss_rate`: the rule this course uses (see the module docstring)."""
        return self.min_loss_rate() / 10.0

    def steepest(self) -> float:
        """The rate where the smoothed loss falls fastest per decade (most negative ``d loss / d log lr``), before the minimum."""
        lrs, losses = self._finite()
        stop = int(np.argmin(losses)) + 1
        if stop < 3:
            raise ValueError("the loss was lowest in the first steps: lower min_lr to see it fall")
        slopes = np.gradient(losses[:stop], np.log10(lrs[:stop]))
        return float(lrs[int(np.argmin(slopes))])

    def plot(self, ax=None):
        """Smoothed loss against the learning rate (log axis), with the suggestion and the minimum marked."""
        import matplotlib.pyplot as plt

        if ax is None:  # a figure of its own: plt.gca() would draw into whatever figure is open
            _, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.learning_rates, self.smoothed_losses, label="smoothed loss")
        ax.axvline(self.min_loss_rate(), color="grey", linestyle=":", label=f"lowest loss at {self.min_loss_rate():.2g}")
        ax.axvline(self.suggestion(), color="tab:red", linestyle="--", label=f"suggestion {self.suggestion():.2g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss (smoothed)")
        ax.set_title("learning-rate range test" + (" (stopped: diverged)" if self.diverged else ""))
        ax.legend()
        return ax


def lr_range_test(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int = 32,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    steps: int = 100,
    smoothing: float = 0.98,
    divergence: float = 4.0,
    seed: int | None = None,
) -> LearningRateRangeTest:
    """Run the range test on a compiled model with ``model.fit`` and return the callback with its results.

    The data are shuffled once (``seed``) and cut to whole batches, so every batch has
    ``batch_size`` examples; ``fit`` runs as many epochs as ``steps`` needs. The model's
    weights and optimizer state are the same afterwards as before.
    """
    batch_size = checks.positive_int("batch_size", batch_size)
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) < batch_size:
        raise ValueError(f"need len(x) == len(y) >= batch_size, got {len(x)}, {len(y)} and batch_size {batch_size}")
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
        raise ValueError("compile the model (optimizer with a plain learning rate, and a loss) before the range test")
    test = LearningRateRangeTest(min_lr, max_lr, steps, smoothing=smoothing, divergence=divergence)
    order = np.random.default_rng(seed).permutation(len(x))
    per_epoch = len(x) // batch_size
    keep = order[: per_epoch * batch_size]
    model.fit(
        x[keep], y[keep], batch_size=batch_size, epochs=-(-test.steps // per_epoch), shuffle=True, verbose=0, callbacks=[test]
    )
    return test
