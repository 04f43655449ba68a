"""The two callbacks every training run of the course can use: a clock with a budget, and live curves.

Keras ships callbacks for checkpoints, early stopping and logging, but none that times the
*training* part of an epoch on both the wall and the CPU clock, and none that redraws curves
in a notebook; both are written here, once, for :func:`cnncourse.experiments.train.fit`.
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

__all__ = ["EpochTimer", "LivePlot"]


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
