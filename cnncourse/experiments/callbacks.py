"""Callbacks for the course's training runs: a clock with a budget, live curves, a final evaluation.

Keras ships callbacks for checkpoints, early stopping and logging, but none that times the
*training* part of an epoch on both the wall and the CPU clock, none that redraws curves
in a notebook, and none that measures the finished model on its own training images; they
are written here, once, for :func:`cnncourse.experiments.train.fit`.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Sequence

import keras
import numpy as np

from cnncourse import checks

__all__ = ["EpochTimer", "FinalEvaluation", "LivePlot"]


class EpochTimer(keras.callbacks.Callback):
    """Times the training part of every epoch on two clocks, and optionally stops at a time budget.

    The validation pass that ends an epoch is left out (it only draws the curve), so the times
    are those of training. Two clocks are kept, because they answer different questions:
    ``"wall"`` counts elapsed seconds; ``"cpu"`` counts the CPU time this process received
    divided by the number of cores, "seconds of the whole machine". On a quiet machine whose
    cores the run keeps busy the two agree; on a machine shared with other jobs only the CPU
    clock measures the compute the run actually got.

    ``budget_seconds`` (on ``clock``) stops training after the batch that exceeds it: a
    recipe that must finish "within 10 minutes" needs a hard stop that does not depend on how
    fast the machine is today (Keras checks ``model.stop_training`` after every batch).
    ``start_seconds`` / ``start_cpu_seconds`` continue the clocks of a run resumed from a
    backup, so its budget and its cumulative times count the epochs before the interruption.

    After training: :attr:`seconds` and :attr:`cpu_seconds` (cumulative at each epoch end),
    :attr:`laps` (each epoch's wall seconds), :attr:`steady_seconds` and :attr:`stopped`.
    """

    CLOCKS = ("wall", "cpu")

    def __init__(
        self,
        budget_seconds: float | None = None,
        clock: str = "wall",
        *,
        start_seconds: float = 0.0,
        start_cpu_seconds: float = 0.0,
    ) -> None:
        super().__init__()
        if budget_seconds is not None:
            checks.positive_float("budget_seconds (the time budget)", budget_seconds)
        self.budget = None if budget_seconds is None else float(budget_seconds)
        self.clock = checks.choice("clock", clock, self.CLOCKS)
        self.elapsed = {"wall": checks.non_negative_float("start_seconds", start_seconds),
                        "cpu": checks.non_negative_float("start_cpu_seconds", start_cpu_seconds)}
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self.laps: list[float] = []
        self.stopped = False
        self._start: dict[str, float] | None = None
        self._epoch_start_wall = 0.0

    @staticmethod
    def _now() -> dict[str, float]:
        return {"wall": time.perf_counter(), "cpu": time.process_time() / (os.cpu_count() or 1)}

    def _spent(self, clock: str) -> float:
        if self._start is None:
            return self.elapsed[clock]
        return self.elapsed[clock] + self._now()[clock] - self._start[clock]

    def _lap(self) -> None:
        if self._start is not None:
            now = self._now()
            for clock in self.CLOCKS:
                self.elapsed[clock] += now[clock] - self._start[clock]
            self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_wall = self.elapsed["wall"]
        self._start = self._now()

    def on_train_batch_end(self, batch, logs=None):
        if self.budget is not None and self._start is not None and self._spent(self.clock) > self.budget:
            self.stopped = True
            self.model.stop_training = True

    def on_test_begin(self, logs=None):  # validation starts: the training part of the epoch is over
        self._lap()

    def on_epoch_end(self, epoch, logs=None):
        self._lap()
        self.seconds.append(self.elapsed["wall"])
        self.cpu_seconds.append(self.elapsed["cpu"])
        self.laps.append(self.elapsed["wall"] - self._epoch_start_wall)

    @property
    def steady_seconds(self) -> float:
        """Median epoch time after the first (tracing and compilation) epoch, or the only one there is."""
        steady = self.laps[1:] or self.laps
        return float(statistics.median(steady)) if steady else math.nan


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


class LivePlot(keras.callbacks.Callback):
    """Redraws loss and accuracy curves after every epoch while a model trains.

    In JupyterLab the figure updates in place; anywhere else (``make course``, a terminal,
    CI) it degrades to one plain text line per epoch, so the same notebook runs headless.
    ``held_out`` names the set the ``val_*`` curves are measured on (``"validation"`` or
    ``"test"``); :func:`cnncourse.experiments.train.fit` fills it in when it is left ``None``.
    """

    def __init__(self, title: str = "training", metrics: Sequence[str] = ("loss", "accuracy"),
                 held_out: str | None = None) -> None:
        super().__init__()
        self.title = title
        self.metrics = tuple(metrics)
        self.held_out = checks.choice("held_out", held_out, ("validation", "test", None))
        self.logs: dict[str, list[float]] = {}
        self._handle = None
        self.graphical = _in_notebook()

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.logs.setdefault(key, []).append(float(value))
        if self.graphical:
            self._draw()
        else:
            shown = "  ".join(f"{k} {v[-1]:.4f}" for k, v in self.logs.items() if k.removeprefix("val_") in self.metrics)
            print(f"{self.title} · epoch {epoch + 1}: {shown}", flush=True)

    def _draw(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display
        from matplotlib.ticker import MaxNLocator

        fig, axes = plt.subplots(1, len(self.metrics), figsize=(5 * len(self.metrics), 3.2))
        for ax, metric in zip(np.atleast_1d(axes), self.metrics):
            for key, label in ((metric, "train"), (f"val_{metric}", self.held_out or "held-out")):
                if key in self.logs:
                    epochs = np.arange(1, len(self.logs[key]) + 1)
                    ax.plot(epochs, self.logs[key], marker="o", label=label)
            ax.set(title=f"{self.title}: {metric}", xlabel="epoch", ylabel=metric)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend()
        fig.tight_layout()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


class FinalEvaluation(keras.callbacks.Callback):
    """Evaluate the trained model once on ``(x, y)`` in inference mode and put the result in the history.

    Why: the ``accuracy`` Keras logs during training is a *running* average over the epoch's
    batches, measured in training mode (augmentation and dropout on) while the weights still
    change. "Final training accuracy" in a paper (Zhang et al.'s 100 %) is the finished model
    evaluated on the training images, without augmentation or dropout; this callback measures
    that, so the two are never set side by side by mistake.

    The model's compiled metrics are recorded as ``final_<name>_<metric>`` (for example
    ``final_train_accuracy``, ``final_train_loss``; the loss includes any weight penalty),
    as a one-element list in the run's history, after the last planned epoch (where Keras'
    ``History`` records it) or, if training stopped earlier, at its end.
    """

    def __init__(self, x, y, *, name: str = "train", batch_size: int = 1000) -> None:
        super().__init__()
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name must be a short identifier such as 'train', got {name!r}")
        if len(x) != len(y) or not len(x):
            raise ValueError(f"x and y must be non-empty and of equal length, got {len(x)} and {len(y)}")
        self.x, self.y, self.name = x, y, name
        self.batch_size = checks.positive_int("batch_size", batch_size)
        self._done = False

    def _scores(self) -> dict[str, float]:
        scores = self.model.evaluate(self.x, self.y, batch_size=self.batch_size, verbose=0, return_dict=True)
        return {f"final_{self.name}_{k}": float(v) for k, v in scores.items()}

    def on_train_begin(self, logs=None) -> None:
        self._done = False

    def on_epoch_end(self, epoch, logs=None) -> None:
        if logs is not None and epoch + 1 == self.params.get("epochs"):
            logs.update(self._scores())
            self._done = True

    def on_train_end(self, logs=None) -> None:
        history = getattr(self.model, "history", None)
        if not self._done and history is not None and hasattr(history, "history"):
            for key, value in self._scores().items():
                history.history.setdefault(key, []).append(value)
            self._done = True
