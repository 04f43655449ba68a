"""Training helpers shared by every notebook that trains: one run, several seeds, comparisons.

The notebooks compare things (optimizers, initializations, normalization, architectures), and
a comparison is only honest when every contender gets the same data, the same budget and
several seeds. This module is that one place: :func:`fit` trains one compiled model for an
:class:`~cnncourse.profiles.Experiment`'s budget, :func:`run_seeds` repeats it over seeds and
:func:`compare` over contenders, returning a :class:`Comparison` that prints a mean ± std
table and plots mean ± std bands. Keras' own ``model.fit`` does the training; what is added
here is bookkeeping (timing, throughput, seeds) and presentation.

It stays backend-neutral: data are NumPy arrays (Keras shuffles them each epoch), so the same
code runs on TensorFlow, JAX or PyTorch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from cnncourse.experiments.cache import write_json
from cnncourse.profiles import Experiment

__all__ = [
    "Comparison",
    "EpochTimer",
    "LivePlot",
    "RunResult",
    "compare",
    "fit",
    "run_seeds",
]


class SplitLike(Protocol):
    """What :func:`fit` needs from a dataset: ``cnncourse.data.Split`` has these four arrays."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclasses.dataclass
class RunResult:
    """Everything one training run produced, small enough to keep thousands in memory or JSON."""

    label: str
    seed: int
    history: dict[str, list[float]]
    test_loss: float
    test_accuracy: float
    train_seconds: float
    images_per_second: float
    params: int

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def final(self, metric: str) -> float:
        """Last-epoch value of a history metric, or a summary field such as ``test_accuracy``."""
        if metric in self.history:
            return self.history[metric][-1]
        if metric in _SUMMARY_FIELDS:
            return float(getattr(self, metric))
        known = sorted(set(self.history) | set(_SUMMARY_FIELDS))
        raise ValueError(f"unknown metric {metric!r}; known metrics: {', '.join(known)}")


_SUMMARY_FIELDS = ("test_loss", "test_accuracy", "train_seconds", "images_per_second", "params")


class EpochTimer(keras.callbacks.Callback):
    """Times the training part of each epoch, leaving out the validation pass.

    Throughput (images/s) is reported from these times; the first epoch includes tracing and
    compilation, so :attr:`steady_seconds` ignores it when there is more than one epoch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def _stop(self) -> None:
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None

    def on_test_begin(self, logs=None):  # validation starts: the training part of the epoch is over
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()

    @property
    def steady_seconds(self) -> float:
        """Median epoch time after the first (compilation) epoch, or the only one there is."""
        steady = self.seconds[1:] or self.seconds
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
    """

    def __init__(self, title: str = "training", metrics: Sequence[str] = ("loss", "accuracy")) -> None:
        super().__init__()
        self.title = title
        self.metrics = tuple(metrics)
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

        fig, axes = plt.subplots(1, len(self.metrics), figsize=(5 * len(self.metrics), 3.2))
        for ax, metric in zip(np.atleast_1d(axes), self.metrics):
            for key, label in ((metric, "train"), (f"val_{metric}", "test")):
                if key in self.logs:
                    epochs = np.arange(1, len(self.logs[key]) + 1)
                    ax.plot(epochs, self.logs[key], marker="o", label=label)
            ax.set(title=f"{self.title}: {metric}", xlabel="epoch", ylabel=metric)
            ax.legend()
        fig.tight_layout()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


def _check_run(run: Experiment) -> None:
    if not isinstance(run, Experiment):
        raise ValueError(f"run must be a cnncourse Experiment (e.g. prof['optimizers']), got {type(run).__name__}")


def fit(
    model: keras.Model,
    data: SplitLike,
    run: Experiment,
    *,
    seed: int = 0,
    label: str = "model",
    callbacks: Iterable[keras.callbacks.Callback] = (),
    live: bool = False,
    verbose: int = 0,
    validation: bool = True,
    shuffle: bool = True,
    backup_dir: str | os.PathLike | None = None,
) -> RunResult:
    """Train a compiled model for ``run.epochs`` at ``run.batch_size`` and summarise the run.

    The test split is evaluated after every epoch (``val_*`` in the history) so curves can be
    drawn; the notebooks never tune on it. ``data`` is used as given: subset it with
    ``cnncourse.data.load_split(..., train_size=run.train_size)`` first. With ``backup_dir``,
    Keras' ``BackupAndRestore`` makes the run resumable after an interruption: weights,
    optimizer state and the epoch counter are restored (the shuffling order is not, so only a
    run with ``shuffle=False`` and no dropout resumes to bit-identical weights).
    """
    _check_run(run)
    if not getattr(model, "compiled", False) and getattr(model, "optimizer", None) is None:
        raise ValueError("compile the model first (with metrics=['accuracy']) before calling fit()")
    timer = EpochTimer()
    extra = [timer, *callbacks]
    if live:
        extra.append(LivePlot(title=label))
    if backup_dir is not None:
        extra.append(keras.callbacks.BackupAndRestore(str(backup_dir), delete_checkpoint=True))
    history = model.fit(
        data.x_train,
        data.y_train,
        batch_size=run.batch_size,
        epochs=run.epochs,
        validation_data=(data.x_test, data.y_test) if validation else None,
        shuffle=shuffle,
        callbacks=extra,
        verbose=verbose,
    )
    hist = {key: [float(v) for v in values] for key, values in history.history.items()}
    if validation and "val_loss" in hist:
        test_loss = hist["val_loss"][-1]
        test_accuracy = hist.get("val_accuracy", [math.nan])[-1]
    else:
        scores = model.evaluate(data.x_test, data.y_test, batch_size=run.batch_size, verbose=0, return_dict=True)
        test_loss, test_accuracy = float(scores["loss"]), float(scores.get("accuracy", math.nan))
    return RunResult(
        label=label,
        seed=seed,
        history=hist,
        test_loss=float(test_loss),
        test_accuracy=float(test_accuracy),
        train_seconds=float(sum(timer.seconds)),
        images_per_second=float(len(data.x_train) / timer.steady_seconds) if timer.seconds else math.nan,
        params=int(model.count_params()),
    )


def _fresh_start(seed: int) -> None:
    """Forget the previous model and seed every generator, so each run starts the same way."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def run_seeds(
    make_model: Callable[[int], keras.Model],
    data: SplitLike,
    run: Experiment,
    *,
    label: str = "model",
    seeds: Iterable[int] | None = None,
    progress: bool = True,
    **fit_kwargs: Any,
) -> list[RunResult]:
    """Train ``make_model(seed)`` once per seed (default ``range(run.seeds)``)."""
    _check_run(run)
    chosen = list(range(run.seeds) if seeds is None else seeds)
    if not chosen:
        raise ValueError("seeds must name at least one seed")
    results = []
    for i, seed in enumerate(chosen, 1):
        _fresh_start(seed)
        result = fit(make_model(seed), data, run, seed=seed, label=label, **fit_kwargs)
        results.append(result)
        if progress:
            _progress_line(f"{label} seed {seed}", i, len(chosen), result)
    return results


def _progress_line(name: str, done: int, total: int, result: RunResult) -> None:
    print(
        f"[{done}/{total}] {name}: test accuracy {result.test_accuracy:.4f}, "
        f"{result.train_seconds:.1f} s, {result.images_per_second:,.0f} images/s",
        flush=True,
        file=sys.stdout,
    )


def compare(
    makers: Mapping[str, Callable[[int], keras.Model]],
    data: SplitLike,
    run: Experiment,
    *,
    seeds: Iterable[int] | None = None,
    progress: bool = True,
    **fit_kwargs: Any,
) -> Comparison:
    """Train every contender over the same seeds and budget; the result prints as a table."""
    _check_run(run)
    if not makers:
        raise ValueError("makers must hold at least one contender: {'label': make_model}")
    chosen = list(range(run.seeds) if seeds is None else seeds)
    total, done = len(makers) * len(chosen), 0
    results: dict[str, list[RunResult]] = {}
    for label, make_model in makers.items():
        results[label] = []
        for seed in chosen:
            _fresh_start(seed)
            result = fit(make_model(seed), data, run, seed=seed, label=label, **fit_kwargs)
            results[label].append(result)
            done += 1
            if progress:
                _progress_line(f"{label} seed {seed}", done, total, result)
    return Comparison(results)


_PRETTY = {
    "loss": "training loss",
    "accuracy": "training accuracy",
    "val_loss": "test loss",
    "val_accuracy": "test accuracy",
}


@dataclasses.dataclass
class Comparison:
    """Results of several contenders over several seeds: a table, curves, and summary numbers."""

    results: dict[str, list[RunResult]]

    @property
    def labels(self) -> list[str]:
        return list(self.results)

    def _values(self, label: str, metric: str) -> list[float]:
        if label not in self.results:
            raise ValueError(f"unknown contender {label!r}; contenders: {', '.join(self.results)}")
        return [r.final(metric) for r in self.results[label]]

    def mean(self, label: str, metric: str = "test_accuracy") -> float:
        return float(np.mean(self._values(label, metric)))

    def std(self, label: str, metric: str = "test_accuracy") -> float:
        """Sample standard deviation over seeds (0 for a single seed)."""
        values = self._values(label, metric)
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    def best(self, metric: str = "test_accuracy", *, higher_is_better: bool = True) -> str:
        key = lambda label: self.mean(label, metric)  # noqa: E731
        return max(self.labels, key=key) if higher_is_better else min(self.labels, key=key)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per contender: mean/std of test accuracy and loss, time, throughput, seeds."""
        rows = []
        for label, runs in self.results.items():
            rows.append(
                {
                    "label": label,
                    "test_accuracy": self.mean(label),
                    "test_accuracy_std": self.std(label),
                    "train_loss": self.mean(label, "loss"),
                    "train_seconds": self.mean(label, "train_seconds"),
                    "images_per_second": self.mean(label, "images_per_second"),
                    "params": runs[0].params,
                    "seeds": len(runs),
                }
            )
        return rows

    def table(self) -> str:
        """A Markdown table, also readable as plain text."""
        head = "| model | test accuracy (mean ± std) | final training loss | time / run | images/s | params | seeds |"
        lines = [head, "|---|---|---|---|---|---|---|"]
        for row in self.rows():
            lines.append(
                f"| {row['label']} | {row['test_accuracy']:.4f} ± {row['test_accuracy_std']:.4f} "
                f"| {row['train_loss']:.4f} | {row['train_seconds']:.1f} s "
                f"| {row['images_per_second']:,.0f} | {row['params']:,} | {row['seeds']} |"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def _repr_markdown_(self) -> str:
        return self.table()

    def curves(self, label: str, metric: str) -> np.ndarray:
        """Per-epoch values of ``metric``, shape (seeds, epochs)."""
        if label not in self.results:
            raise ValueError(f"unknown contender {label!r}; contenders: {', '.join(self.results)}")
        runs = self.results[label]
        missing = [r.seed for r in runs if metric not in r.history]
        if missing:
            raise ValueError(f"metric {metric!r} not recorded; recorded: {', '.join(sorted(runs[0].history))}")
        return np.array([r.history[metric] for r in runs], dtype=float)

    def plot(self, metric: str = "val_accuracy", ax=None, title: str | None = None, logy: bool = False):
        """Mean ± std band per contender over epochs; returns the matplotlib Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        for label in self.labels:
            values = self.curves(label, metric)
            epochs = np.arange(1, values.shape[1] + 1)
            mean = values.mean(axis=0)
            (line,) = ax.plot(epochs, mean, marker="o", markersize=3, label=f"{label} (n={len(values)})")
            if len(values) > 1:
                std = values.std(axis=0, ddof=1)
                ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        pretty = _PRETTY.get(metric, metric)
        ax.set(title=title or f"{pretty}: mean ± std over seeds", xlabel="epoch", ylabel=pretty)
        if logy:
            ax.set_yscale("log")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
        return ax

    def save(self, path: str | os.PathLike) -> Path:
        """Write the results as JSON (atomic), so a long experiment's table can be reused."""
        payload = {label: [dataclasses.asdict(r) for r in runs] for label, runs in self.results.items()}
        return write_json(path, payload)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Comparison:
        payload = json.loads(Path(path).read_text())
        return cls({label: [RunResult(**r) for r in runs] for label, runs in payload.items()})
