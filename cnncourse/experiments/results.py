"""What a training run leaves behind: one :class:`RunResult` per run, a :class:`Comparison` of several.

Every experiment of the course, from notebook 02's two baselines to notebook 10's recipe and
the grids of notebooks 06 and 07, trains through :func:`cnncourse.experiments.train.fit`, so
every run is described by the same record: its per-epoch history, the cumulative training time
on the wall and CPU clocks, the test accuracy (single view, and with test-time augmentation
where the recipe uses it), throughput, parameters, whether a time budget stopped it or a backup
resumed it, and the configuration it was trained with. The record is small and plain JSON
(:meth:`RunResult.to_dict`), so the result caches keep thousands of them.

**Which data the curves are on.** When the split has a validation set, the per-epoch ``val_*``
history is measured on it and the test set is used once, at the end (``test_accuracy``).
Without one, the per-epoch curve is on the test set; ``validation_source`` says which, and
plots and tables name it (``"validation"`` or ``"test"``), so a figure never calls a test
curve a validation curve or the other way round.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from cnncourse.experiments.report import mean_std

__all__ = ["Comparison", "RunResult"]

SOURCES = ("validation", "test", None)
CLOCKS = ("wall", "cpu")


@dataclasses.dataclass
class RunResult:
    """Everything one training run produced, small enough to keep thousands in memory or JSON.

    ``seconds`` / ``cpu_seconds``: cumulative *training* time at the end of each epoch
    (validation passes excluded), on the wall clock and on the CPU clock (this process's CPU
    time divided by the number of cores: the compute the run actually got on a shared
    machine). ``test_accuracy`` is the single-view accuracy of the final model;
    ``test_accuracy_tta`` the accuracy with test-time augmentation, or ``None`` when the run
    did not use it. ``resumed_from_epoch`` is the number of epochs restored from a backup
    (``None`` for a run trained in one go); the history holds every epoch either way.
    """

    label: str
    seed: int
    history: dict[str, list[float]]
    test_loss: float
    test_accuracy: float
    seconds: list[float]
    cpu_seconds: list[float]
    images_per_second: float
    params: int
    validation_source: str | None = None
    test_accuracy_tta: float | None = None
    stopped_by_budget: bool = False
    resumed_from_epoch: int | None = None
    config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.validation_source not in SOURCES:
            raise ValueError(f"validation_source must be one of {SOURCES}, got {self.validation_source!r}")
        if not isinstance(self.history, dict) or not all(isinstance(v, list) for v in self.history.values()):
            raise ValueError("history must map metric names to lists of per-epoch values")
        for name in ("seconds", "cpu_seconds"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, (int, float)) for v in value):
                raise ValueError(f"{name} must be a list of cumulative seconds per epoch")

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    @property
    def train_seconds(self) -> float:
        """Training time of the whole run on the wall clock (validation passes excluded)."""
        return float(self.seconds[-1]) if self.seconds else 0.0

    @property
    def reported_test_accuracy(self) -> float:
        """The number the run's recipe reports: with test-time augmentation where it used it, else single view."""
        return float(self.test_accuracy if self.test_accuracy_tta is None else self.test_accuracy_tta)

    def final(self, metric: str) -> float:
        """Last-epoch value of a history metric, or a summary field such as ``test_accuracy``."""
        if metric in self.history:
            return float(self.history[metric][-1])
        if metric in _SUMMARY_FIELDS:
            value = getattr(self, metric)
            return math.nan if value is None else float(value)
        known = sorted(set(self.history) | set(_SUMMARY_FIELDS))
        raise ValueError(f"unknown metric {metric!r}; known metrics: {', '.join(known)}")

    def epochs_to(self, target: float, metric: str = "val_accuracy") -> int | None:
        """The first epoch (1-based) whose ``metric`` reached ``target``, or ``None``."""
        if metric not in self.history:
            raise ValueError(f"metric {metric!r} not recorded; recorded: {', '.join(sorted(self.history))}")
        for i, value in enumerate(self.history[metric], 1):
            if value >= target:
                return i
        return None

    def time_to(self, target: float, clock: str = "wall", metric: str = "val_accuracy") -> float | None:
        """Training seconds on ``clock`` ("wall" or "cpu") until ``metric`` first reached ``target``."""
        if clock not in CLOCKS:
            raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
        epoch = self.epochs_to(target, metric)
        if epoch is None:
            return None
        return float((self.cpu_seconds if clock == "cpu" else self.seconds)[epoch - 1])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> RunResult:
        """The inverse of :meth:`to_dict`; a record with missing, unknown or mistyped fields raises ``ValueError``."""
        if not isinstance(payload, Mapping):
            raise ValueError(f"a run record must be a mapping, got {type(payload).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(payload) - names
        if unknown:
            raise ValueError(f"unknown fields in a run record: {', '.join(sorted(unknown))}")
        try:
            result = cls(**payload)
        except TypeError as error:
            raise ValueError(f"incomplete run record: {error}") from None
        numbers = (result.test_loss, result.test_accuracy, result.images_per_second)
        if not isinstance(result.label, str) or not all(isinstance(v, (int, float)) for v in numbers):
            raise ValueError("a run record needs a string label and numeric results")
        return result


_SUMMARY_FIELDS = ("test_loss", "test_accuracy", "test_accuracy_tta", "reported_test_accuracy", "train_seconds",
                   "images_per_second", "params")


def _pretty(metric: str, source: str | None) -> str:
    held_out = {"validation": "validation", "test": "test"}.get(source or "", "held-out")
    names = {"loss": "training loss", "accuracy": "training accuracy",
             "val_loss": f"{held_out} loss", "val_accuracy": f"{held_out} accuracy"}
    return names.get(metric, metric)


@dataclasses.dataclass(repr=False)
class Comparison:
    """Results of several contenders over several seeds: a table, curves, and summary numbers."""

    results: dict[str, list[RunResult]]

    @property
    def labels(self) -> list[str]:
        return list(self.results)

    def _runs(self, label: str) -> list[RunResult]:
        if label not in self.results:
            raise ValueError(f"unknown contender {label!r}; contenders: {', '.join(self.results)}")
        return self.results[label]

    def _values(self, label: str, metric: str) -> list[float]:
        return [r.final(metric) for r in self._runs(label)]

    def mean(self, label: str, metric: str = "test_accuracy") -> float:
        return float(np.mean(self._values(label, metric)))

    def std(self, label: str, metric: str = "test_accuracy") -> float:
        """Sample standard deviation over seeds; NaN for a single seed (a spread needs two)."""
        values = self._values(label, metric)
        return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan

    def best(self, metric: str = "test_accuracy", *, higher_is_better: bool = True) -> str:
        key = lambda label: self.mean(label, metric)  # noqa: E731
        return max(self.labels, key=key) if higher_is_better else min(self.labels, key=key)

    @property
    def validation_source(self) -> str | None:
        """``"validation"`` or ``"test"`` when every run's curves are on that set, else ``None``."""
        sources = {r.validation_source for runs in self.results.values() for r in runs}
        return sources.pop() if len(sources) == 1 else None

    def rows(self) -> list[dict[str, Any]]:
        """One dict per contender: test accuracy (mean, std or ``None`` for one seed, and as text), loss, time."""
        rows = []
        for label, runs in self.results.items():
            accuracies = self._values(label, "test_accuracy")
            rows.append(
                {
                    "label": label,
                    "test_accuracy": self.mean(label),
                    "test_accuracy_std": self.std(label) if len(runs) > 1 else None,
                    "test_accuracy_text": mean_std(accuracies),
                    "train_loss": self.mean(label, "loss"),
                    "train_seconds": self.mean(label, "train_seconds"),
                    "images_per_second": self.mean(label, "images_per_second"),
                    "params": runs[0].params,
                    "seeds": len(runs),
                }
            )
        return rows

    def table(self) -> str:
        """A Markdown table, also readable as plain text; one seed's spread reads "n/a", never "± 0"."""
        head = "| model | test accuracy (mean ± std over seeds) | final training loss | time / run | images/s | params |"
        lines = [head, "|---|---|---|---|---|---|"]
        for row in self.rows():
            lines.append(
                f"| {row['label']} | {row['test_accuracy_text']} | {row['train_loss']:.4f} "
                f"| {row['train_seconds']:.1f} s | {row['images_per_second']:,.0f} | {row['params']:,} |"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        """Short: a notebook shows the table (``_repr_markdown_``), a console this one line."""
        seeds = sorted({len(runs) for runs in self.results.values()})
        return f"Comparison({len(self.results)} contenders × {'/'.join(map(str, seeds))} seed(s): {', '.join(self.labels)})"

    def _repr_markdown_(self) -> str:
        return self.table()

    def curves(self, label: str, metric: str) -> np.ndarray:
        """Per-epoch values of ``metric``, shape (seeds, epochs)."""
        runs = self._runs(label)
        missing = [r.seed for r in runs if metric not in r.history]
        if missing:
            raise ValueError(f"metric {metric!r} not recorded; recorded: {', '.join(sorted(runs[0].history))}")
        return np.array([r.history[metric] for r in runs], dtype=float)

    def plot(self, metric: str = "val_accuracy", ax=None, title: str | None = None, logy: bool = False):
        """Mean ± std band per contender over epochs; returns the matplotlib Axes.

        ``val_*`` curves are labelled with the set they were measured on (``validation`` or
        ``test``, from the runs' ``validation_source``).
        """
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

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
        pretty = _pretty(metric, self.validation_source)
        ax.set(title=title or f"{pretty}: mean ± std over seeds", xlabel="epoch", ylabel=pretty)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if logy:
            ax.set_yscale("log")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
        return ax

    def to_dict(self) -> dict[str, Any]:
        return {label: [r.to_dict() for r in runs] for label, runs in self.results.items()}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Comparison:
        if not isinstance(payload, Mapping) or not all(isinstance(v, list) for v in payload.values()):
            raise ValueError("a comparison record maps each contender to a list of run records")
        return cls({str(label): [RunResult.from_dict(r) for r in runs] for label, runs in payload.items()})

    def save(self, path: str | os.PathLike, key: Mapping[str, Any]) -> None:
        """Store in the result cache at ``path`` under ``key`` (see :func:`cnncourse.experiments.cache.key`)."""
        from cnncourse.experiments.cache import ResultCache

        ResultCache(path, recompute=True).put("comparison", key, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, key: Mapping[str, Any]) -> Comparison | None:
        """The comparison stored at ``path`` under exactly ``key``, or ``None`` (saying why in one line)."""
        from cnncourse.experiments.cache import ResultCache

        return ResultCache(path).get("comparison", key, cls.from_dict)
