"""The one training loop of the course: one run, several seeds, several contenders.

Every experiment that trains — a notebook's comparison of optimizers, the Zhang et al. grid,
the architectures table, notebook 10's recipe — goes through :func:`fit`, the only place the
course calls ``model.fit``. What it adds to Keras' loop is bookkeeping that has to be the same
everywhere for results to be comparable:

* a :class:`~cnncourse.experiments.results.RunResult` per run (history, training time on the
  wall and CPU clocks, throughput, test accuracy, parameters, the configuration);
* **validation discipline**: with a validation set in the split the per-epoch curve is
  measured on it and the test set is evaluated once, at the end; without one the curve is on
  the test set and the result says so (``validation_source``);
* an optional time budget (:class:`~cnncourse.experiments.callbacks.EpochTimer`), test-time
  augmentation at the end, live curves, and safe, resumable backups
  (:mod:`cnncourse.experiments.backup`).

:func:`run_seeds` repeats a run over seeds and :func:`compare` over contenders, returning a
:class:`~cnncourse.experiments.results.Comparison` (a mean ± std table and bands), optionally
cached (:mod:`cnncourse.experiments.cache`). Data are NumPy arrays, or an input pipeline (a
``tf.data.Dataset`` or ``keras.utils.PyDataset``), so the same code runs on every backend.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import keras
import numpy as np

from cnncourse import checks
from cnncourse.experiments.backup import BackupError, RunBackup
from cnncourse.experiments.callbacks import EpochTimer, LivePlot
from cnncourse.experiments.results import Comparison, RunResult
from cnncourse.profiles import Experiment

__all__ = [
    "BackupError",
    "Comparison",
    "EpochTimer",
    "LivePlot",
    "RunResult",
    "accuracy",
    "compare",
    "fit",
    "run_seeds",
]

EVAL_BATCH = 1000  # evaluation has no gradients to hold: larger batches only make it faster


class SplitLike(Protocol):
    """What :func:`fit` needs from a dataset (``cnncourse.data.Split`` has it; ``x_val``/``y_val`` optional)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _check_run(run: Experiment) -> None:
    if not isinstance(run, Experiment):
        raise ValueError(f"run must be a cnncourse Experiment (e.g. prof['optimizers']), got {type(run).__name__}")


def accuracy(probabilities: np.ndarray, y: np.ndarray) -> float:
    """Share of rows whose largest score is at the label."""
    return float(np.mean(np.argmax(np.asarray(probabilities), axis=-1) == np.asarray(y).reshape(-1)))


def _one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[np.asarray(y).reshape(-1)]


def _held_out(data: SplitLike, validation: bool) -> tuple[Any, Any, str | None]:
    if not validation:
        return None, None, None
    x_val = getattr(data, "x_val", None)
    if x_val is not None and len(x_val):
        return x_val, data.y_val, "validation"  # type: ignore[attr-defined]
    return data.x_test, data.y_test, "test"


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
    inputs: Any = None,
    one_hot: bool = False,
    budget_seconds: float | None = None,
    clock: str = "wall",
    test_time: Callable[[keras.Model, np.ndarray], np.ndarray] | None = None,
    config: Mapping[str, Any] | None = None,
) -> RunResult:
    """Train a compiled model for ``run.epochs`` at ``run.batch_size`` and summarise the run.

    ``data`` is used as given (subset it with ``cnncourse.data.load_split(...,
    train_size=run.train_size)`` first). Per epoch, the ``val_*`` history is measured on
    ``data.x_val`` when the split has a validation set, else on the test set
    (``result.validation_source`` says which; ``validation=False`` measures nothing per
    epoch). The test set is evaluated once at the end: ``result.test_accuracy``.

    ``inputs``: an input pipeline yielding ``(images, targets)`` batches (``tf.data`` or a
    ``PyDataset``, e.g. ``cnncourse.data.pipeline``) to train on instead of the split's arrays;
    it does its own batching and shuffling. ``one_hot``: the model's loss wants one-hot targets
    (label smoothing), so the held-out labels are encoded to match. ``budget_seconds`` stops
    training on ``clock`` ("wall" or "cpu"). ``test_time(model, x)`` returns class
    probabilities with test-time augmentation: its accuracy is ``result.test_accuracy_tta``.
    ``config`` (the recipe as a dict) is stored in the result.

    ``backup_dir``: the run backs up every epoch into its own folder ``backup_dir/<label>-seed<seed>``
    and a second call with the same label and seed resumes there, printing that it does; the
    result then holds the whole history. The course never deletes anything it did not write
    (see :mod:`cnncourse.experiments.backup`). Shuffling is not part of the checkpoint, so
    only a run with ``shuffle=False`` and no dropout resumes to bit-identical weights.
    """
    _check_run(run)
    if not getattr(model, "compiled", False) and getattr(model, "optimizer", None) is None:
        raise ValueError("compile the model first (with metrics=['accuracy']) before calling fit()")
    seed = checks.integer("seed", seed, minimum=0)
    checks.boolean("one_hot", one_hot)
    if test_time is not None and not callable(test_time):
        raise ValueError(f"test_time must be None or a function (model, x) -> probabilities, got {test_time!r}")
    classes = int(model.output_shape[-1])
    encode = (lambda y: _one_hot(y, classes)) if one_hot else (lambda y: y)
    timer = EpochTimer(budget_seconds, clock)
    backup = None if backup_dir is None else RunBackup.open(backup_dir, label, seed)
    if backup is not None and backup.resumed_epoch:
        print(f"resuming {label} seed {seed} from epoch {backup.resumed_epoch} "
              f"(epochs 1-{backup.resumed_epoch} of {run.epochs} restored from {backup.folder})", flush=True)
        timer = EpochTimer(budget_seconds, clock, start_seconds=backup.seconds[-1],
                           start_cpu_seconds=backup.cpu_seconds[-1])
    x_held, y_held, source = _held_out(data, validation)
    extra = [timer, *callbacks]
    if live:
        extra.append(LivePlot(title=label))
    for callback in extra:
        if isinstance(callback, LivePlot) and callback.held_out is None:
            callback.held_out = source
    if backup is not None:
        extra += backup.callbacks(timer)
    eval_batch = max(run.batch_size, EVAL_BATCH)
    train_args: dict[str, Any] = (
        {"x": data.x_train, "y": encode(data.y_train), "batch_size": run.batch_size, "shuffle": shuffle}
        if inputs is None else {"x": inputs, "shuffle": False}
    )
    history = model.fit(
        **train_args,
        epochs=run.epochs,
        validation_data=None if source is None else (x_held, encode(y_held)),
        validation_batch_size=eval_batch if source is not None else None,
        callbacks=extra,
        verbose=verbose,
    )
    hist = {k: [float(v) for v in values] for k, values in (backup.history if backup else {}).items()}
    for key, values in history.history.items():
        hist.setdefault(key, []).extend(float(v) for v in values)
    scores = model.evaluate(data.x_test, encode(data.y_test), batch_size=eval_batch, verbose=0, return_dict=True)
    tta = None if test_time is None else accuracy(test_time(model, data.x_test), data.y_test)
    result = RunResult(
        label=label,
        seed=seed,
        history=hist,
        test_loss=float(scores["loss"]),
        test_accuracy=float(scores.get("accuracy", scores.get("categorical_accuracy", np.nan))),
        seconds=[*(backup.seconds if backup else []), *timer.seconds],
        cpu_seconds=[*(backup.cpu_seconds if backup else []), *timer.cpu_seconds],
        images_per_second=float(len(data.x_train) / timer.steady_seconds) if timer.laps else float("nan"),
        params=int(model.count_params()),
        validation_source=source,
        test_accuracy_tta=tta,
        stopped_by_budget=timer.stopped,
        resumed_from_epoch=backup.resumed_epoch if backup is not None and backup.resumed_epoch else None,
        config=None if config is None else dict(config),
    )
    if backup is not None:
        backup.finish()
    return result


def _fresh_start(seed: int) -> None:
    """Forget the previous model and seed every generator, so each run starts the same way."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def _seeds(run: Experiment, seeds: Iterable[int] | None) -> list[int]:
    chosen = list(range(run.seeds) if seeds is None else seeds)
    if not chosen:
        raise ValueError("seeds must name at least one seed")
    return [checks.integer("every seed", s, minimum=0) for s in chosen]


def _progress_line(name: str, done: int, total: int, result: RunResult) -> None:
    print(
        f"[{done}/{total}] {name}: test accuracy {result.test_accuracy:.4f}, "
        f"{result.train_seconds:.1f} s, {result.images_per_second:,.0f} images/s",
        flush=True,
        file=sys.stdout,
    )


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
    """Train ``make_model(seed)`` once per seed (default ``range(run.seeds)``), each from a fresh session."""
    _check_run(run)
    chosen = _seeds(run, seeds)
    results = []
    for i, seed in enumerate(chosen, 1):
        _fresh_start(seed)
        result = fit(make_model(seed), data, run, seed=seed, label=label, **fit_kwargs)
        results.append(result)
        if progress:
            _progress_line(f"{label} seed {seed}", i, len(chosen), result)
    return results


def compare(
    makers: Mapping[str, Callable[[int], keras.Model]],
    data: SplitLike,
    run: Experiment,
    *,
    seeds: Iterable[int] | None = None,
    progress: bool = True,
    cache: str | os.PathLike | None = None,
    recompute: bool = False,
    config: Mapping[str, Any] | None = None,
    **fit_kwargs: Any,
) -> Comparison:
    """Train every contender over the same seeds and budget; the result prints as a table.

    With ``cache`` (a JSON path), a comparison trained before under the same key is reused:
    the key holds ``config`` (what the makers build and how they train: required with a cache,
    since the makers are code the cache cannot read), the contenders, the seeds, the sizes,
    the data's fingerprint, the backend and the device. ``recompute=True`` trains again.
    """
    from cnncourse.experiments import cache as result_cache

    _check_run(run)
    if not makers:
        raise ValueError("makers must hold at least one contender: {'label': make_model}")
    chosen = _seeds(run, seeds)
    key = None
    if cache is not None:
        if config is None:
            raise ValueError("compare(cache=...) needs config=: the recipe of what the makers build, as a dict, "
                             "so that a changed recipe is trained again instead of read from the cache")
        plain = {k: v for k, v in fit_kwargs.items() if isinstance(v, (bool, int, float, str, type(None)))}
        key = result_cache.key(config=dict(config), sizes=run, split=data, contenders=list(makers), seeds=chosen,
                               fit=plain)
        found = Comparison.load(cache, key) if not recompute else None
        if found is not None:
            if progress:
                print(f"reusing {cache}: the same contenders, recipe, data and sizes (recompute=True trains again)")
            return found
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
    comparison = Comparison(results)
    if cache is not None and key is not None:
        comparison.save(cache, key)
    return comparison
