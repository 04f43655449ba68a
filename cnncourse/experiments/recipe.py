"""The fast, strong model of notebook 10 and its training recipe, one switch per ingredient.

Notebook 10 asks two questions: how good can a small network get on Fashion-MNIST in a fixed
wall-clock budget (10 minutes on 2 CPU cores), and what does each ingredient of the recipe
contribute? The second question is an ablation ("remove one at a time"), which is only a
loop if every ingredient is a field of one frozen :class:`Recipe` and :data:`ABLATIONS` says
how to switch each one off. So the recipe lives here as data + a few functions:

* :func:`build_model` — the registered ``fast_resnet`` (:mod:`cnncourse.models.fast_resnet`:
  a 3×3 stem at 28×28, 2×2 max-pool, two stages of a conv and one residual block at 14×14 and
  7×7 with 2w and 4w channels, global average pooling, logits) with the recipe's switches;
* :func:`make_optimizer` — SGD with Nesterov momentum and the one-cycle schedule of
  :class:`cnncourse.experiments.schedules.OneCycle`, weight decay excluded from BN
  scales/offsets and biases;
* :func:`augmenter` — random horizontal flip, optional :class:`cnncourse.layers.RandomShift`
  and :class:`cnncourse.layers.Cutout`, applied per batch in the input pipeline
  (:func:`cnncourse.data.pipeline`: cache → shuffle → batch → augment → prefetch);
* :func:`train` — one run through the course's one training loop,
  :func:`cnncourse.experiments.train.fit` (curves, training time on two clocks, an optional
  time budget, test-time flip averaging at the end);
* :func:`ensemble_accuracy`, :func:`ablation` (cached in the course's result cache) with
  :func:`ablation_table`, and :func:`train_keras_io`, the baseline every time-to-accuracy
  number is compared with.

Everything is Keras (``keras.ops``/layers/losses/optimizers), so it runs on JAX as well; on
TensorFlow the input pipeline is ``tf.data``. Mixed precision and XLA are switched on only
where a GPU is present: on 2 CPU cores with TensorFlow, ``jit_compile=True`` made these small
convnets slower (a short training probe measured 3,710 → 1,172 images/s for the keras-io
convnet and 1,106 → 589 for this network at width 16), and bfloat16 has no fast CPU kernels.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from cnncourse import checks
from cnncourse.backend import acceleration  # precision and XLA per device: the recipe's compile settings
from cnncourse.experiments import cache as result_cache
from cnncourse.experiments.results import RunResult
from cnncourse.experiments.schedules import OneCycle, steps_per_epoch
from cnncourse.experiments.train import accuracy, fit
from cnncourse.profiles import Experiment

__all__ = [
    "ABLATIONS",
    "ADDITIONS",
    "Ablation",
    "Recipe",
    "ablation",
    "ablation_table",
    "augmenter",
    "build_model",
    "ensemble_accuracy",
    "make_loss",
    "make_optimizer",
    "one_hot",
    "predict",
    "train",
    "train_keras_io",
]

SCHEDULES = ("one_cycle", "constant")
KERAS_IO_BATCH = 128  # the batch size of keras.io's example, which the baseline keeps


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every ingredient of the recipe as a switch (the defaults are the full recipe).

    ``weight_decay`` is Keras' *decoupled* decay: each step subtracts ``lr · wd · w``. SGD
    with momentum 0.9 amplifies a coupled L2 gradient about ten-fold through the velocity,
    so ``5e-3`` here corresponds to the usual ``5e-4`` L2 of PyTorch-style recipes.
    ``schedule="constant"`` trains at the one-cycle's average rate, ``max_lr / 2``.

    ``shift=0``: the flip is the only augmentation. Fashion-MNIST's garments are centred, and a
    network this small trained for 10 epochs under-fits, so a harder training task costs more
    than it regularizes. On 2 CPU cores (full data, 10 epochs, seeds 0 and 1; test accuracy with
    flip averaging): ``shift=2`` 93.43, 93.02 and 93.08 % (two runs of seed 0); ``shift=1``
    93.46 and 93.33 %; ``shift=0`` 93.68 and 93.39 %, and about 8 % faster. The ``cpu``
    profile's target is 93 %. The shift and cutout stay switches (:data:`ADDITIONS`).
    """

    width: int = 16
    residual: bool = True
    batch_norm: bool = True
    flip: bool = True
    shift: int = 0
    cutout: int = 0
    label_smoothing: float = 0.1
    weight_decay: float = 5e-3
    decay_norm_and_bias: bool = False
    schedule: str = "one_cycle"
    max_lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    pct_start: float = 0.25
    tta: bool = True

    def __post_init__(self) -> None:
        checks.integer("Recipe.width", self.width, minimum=1)
        checks.integer("Recipe.shift", self.shift, minimum=0)
        checks.integer("Recipe.cutout", self.cutout, minimum=0)
        for name in ("residual", "batch_norm", "flip", "decay_norm_and_bias", "nesterov", "tta"):
            checks.boolean(f"Recipe.{name}", getattr(self, name))
        checks.rate("Recipe.label_smoothing", self.label_smoothing)
        checks.non_negative_float("Recipe.weight_decay", self.weight_decay)
        checks.choice("Recipe.schedule", self.schedule, SCHEDULES)
        checks.positive_float("Recipe.max_lr", self.max_lr)
        checks.number("Recipe.momentum", self.momentum, minimum=0.0, maximum=1.0, exclusive_maximum=True)
        checks.number("Recipe.pct_start", self.pct_start, minimum=0.0, maximum=1.0, exclusive_minimum=True,
                      exclusive_maximum=True)

    @classmethod
    def for_dataset(cls, name: str, **changes: Any) -> Recipe:
        """The recipe for dataset ``name``: it mirrors (in training and at test time) only where
        a mirrored image keeps its label (:func:`cnncourse.data.flips_keep_labels`: not digits)."""
        from cnncourse.data import flips_keep_labels

        mirror = flips_keep_labels(name)
        return cls(**{"flip": mirror, "tta": mirror, **changes})

    @classmethod
    def for_run(cls, name: str, run: Experiment, **changes: Any) -> Recipe:
        """The recipe a profile's ``recipe`` row asks for on dataset ``name``: its width is
        ``recipe_width`` times the default 16 channels (the ``gpu`` profile's network is wider:
        a GPU runs it in the same seconds), its flips follow :meth:`for_dataset`."""
        width = round(cls.width * float(run.option("recipe_width", 1.0)))
        return cls.for_dataset(name, **{"width": width, **changes})

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def without(self, ingredient: str) -> Recipe:
        """The recipe with one ingredient of :data:`ABLATIONS` switched off."""
        if ingredient not in ABLATIONS:
            raise ValueError(f"unknown ingredient {ingredient!r}; ingredients: {', '.join(ABLATIONS)}")
        return self.replace(**ABLATIONS[ingredient])

    def plus(self, addition: str) -> Recipe:
        """The recipe with one ingredient of :data:`ADDITIONS` switched on."""
        if addition not in ADDITIONS:
            raise ValueError(f"unknown addition {addition!r}; additions: {', '.join(ADDITIONS)}")
        return self.replace(**ADDITIONS[addition])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ingredient → the change that removes it (the ablation table is a loop over this dict)
ABLATIONS: Mapping[str, Mapping[str, Any]] = {
    "residual connections": {"residual": False},
    "batch normalization": {"batch_norm": False},
    "horizontal flip": {"flip": False},
    "label smoothing": {"label_smoothing": 0.0},
    "weight decay": {"weight_decay": 0.0},
    "no decay on BN/bias": {"decay_norm_and_bias": True},
    "one-cycle schedule": {"schedule": "constant"},
    "Nesterov momentum": {"nesterov": False},
    "test-time flip": {"tta": False},
}
# removing these needs no new training run: the same trained model, evaluated differently
EVALUATION_ONLY = ("test-time flip",)
# ingredients of the usual recipe that this one leaves out, and the change that adds each: the
# ablation trains them too, so the table shows what they would do in this budget
ADDITIONS: Mapping[str, Mapping[str, Any]] = {
    "random shift": {"shift": 2},  # pad 2 + random 28×28 crop, as CIFAR recipes pad 4 around 32×32
    "cutout": {"cutout": 8},  # DeVries & Taylor (2017): one 8×8 square, on half the images
}


# ------------------------------------------------------------------------------- model
def build_model(
    recipe: Recipe | None = None,
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    *,
    dtype: Any = None,
    name: str = "fast_resnet",
) -> keras.Model:
    """The recipe's network: the registered ``fast_resnet`` with the recipe's width and switches.

    Outputs logits (the loss applies the softmax). ``dtype`` is a Keras dtype policy for every
    layer but the last (e.g. ``"mixed_bfloat16"`` on a GPU).
    """
    from cnncourse import models

    recipe = recipe or Recipe()
    return models.build("fast_resnet", input_shape=tuple(input_shape), num_classes=num_classes, width=recipe.width,
                        residual=recipe.residual, batch_norm=recipe.batch_norm, dtype=dtype, name=name)


# ---------------------------------------------------------------- optimizer, loss, data
def make_optimizer(recipe: Recipe, total_steps: int) -> keras.optimizers.Optimizer:
    """SGD (Nesterov) with one-cycle (or a constant rate), decay off for BN and biases.

    Why no decay on BN parameters and biases: decay exists to keep the scale of the weights
    that multiply inputs in check; a BN layer's output does not depend on the scale of the
    conv before it, and shrinking γ, β or a bias only fights the function the net computes.
    """
    total_steps = checks.positive_int("total_steps", total_steps)
    if recipe.schedule == "one_cycle":
        lr: Any = OneCycle(recipe.max_lr, max(total_steps, 2), pct_start=recipe.pct_start)
    else:
        lr = recipe.max_lr / 2
    opt = keras.optimizers.SGD(
        learning_rate=lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay or None,
    )
    if recipe.weight_decay and not recipe.decay_norm_and_bias:
        opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return opt


def make_loss(recipe: Recipe) -> keras.losses.Loss:
    """Cross-entropy on logits against one-hot targets smoothed to ``(1-ε)·y + ε/K``."""
    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=recipe.label_smoothing)


def augmenter(recipe: Recipe, seed: int = 0) -> keras.Sequential | None:
    """Flip → shift → cutout, each on or off; ``None`` when the recipe augments nothing."""
    from cnncourse.layers import Cutout, RandomShift

    steps: list[keras.layers.Layer] = []
    if recipe.flip:
        steps.append(keras.layers.RandomFlip("horizontal", seed=seed + 1))
    if recipe.shift:
        steps.append(RandomShift(recipe.shift, seed=seed + 2))
    if recipe.cutout:
        steps.append(Cutout(recipe.cutout, rate=0.5, seed=seed + 3))
    return keras.Sequential(steps, name="augment") if steps else None


def one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(y).reshape(-1)]


def on_gpu() -> bool:
    from cnncourse.profiles import gpu_available

    return gpu_available()


def predict(model: keras.Model, x: np.ndarray, *, tta: bool = True, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities of a logits model; with ``tta`` the mean over the image and its mirror."""
    from cnncourse.experiments.tta import flip_average

    if tta:
        return flip_average(model, x, batch_size, from_logits=True)
    logits = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _flip_averaged(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return predict(model, x, tta=True)


# ---------------------------------------------------------------------------- training
def compile_model(recipe: Recipe, model: keras.Model, total_steps: int) -> keras.Model:
    model.compile(
        optimizer=make_optimizer(recipe, total_steps),
        loss=make_loss(recipe),
        metrics=["accuracy"],
        jit_compile=acceleration().jit_compile,
    )
    return model


def _check_run(run: Any) -> None:
    if not isinstance(run, Experiment):
        raise ValueError(f"run must be a cnncourse Experiment (e.g. prof['recipe']), got {type(run).__name__}")


def train(
    recipe: Recipe,
    split: Any,
    run: Experiment,
    *,
    seed: int = 0,
    label: str = "recipe",
    budget_seconds: float | None = None,
    clock: str = "wall",
    callbacks: Iterable[keras.callbacks.Callback] = (),
    verbose: int = 0,
    fresh: bool = True,
    backup_dir: str | os.PathLike | None = None,
) -> tuple[RunResult, keras.Model]:
    """Train the recipe's model for ``run.epochs`` (or until the budget), return result and model.

    One run of :func:`cnncourse.experiments.train.fit` on the recipe's input pipeline (flip,
    shift, cutout as the recipe says), with one-hot targets (label smoothing) and, when
    ``recipe.tta``, test-time flip averaging at the end (``result.test_accuracy_tta``;
    ``result.reported_test_accuracy`` is the recipe's number). ``split`` is used as given; the
    one-cycle schedule spans ``run.epochs`` epochs, so a budget that stops the run early also
    cuts the schedule's annealing tail: choose ``run.epochs`` to fit the budget. ``fresh``
    clears the Keras session first; pass ``False`` inside a ``tf.distribute`` scope (clearing
    the session there would drop the scope's graph state) after clearing it before the scope.
    """
    from cnncourse.data import pipeline

    _check_run(run)
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a cnncourse.experiments.recipe.Recipe, got {type(recipe).__name__}")
    if fresh:
        keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    policy = acceleration().dtype_policy
    dtype = None if policy == "float32" else policy
    model = build_model(recipe, split.x_train.shape[1:], int(split.num_classes), dtype=dtype)
    compile_model(recipe, model, run.epochs * steps_per_epoch(len(split.x_train), run.batch_size))
    inputs = pipeline(split.x_train, one_hot(split.y_train, split.num_classes), run.batch_size,
                      augment=augmenter(recipe, seed), seed=seed)
    result = fit(model, split, run, seed=seed, label=label, callbacks=callbacks, verbose=verbose, inputs=inputs,
                 one_hot=True, budget_seconds=budget_seconds, clock=clock,
                 test_time=_flip_averaged if recipe.tta else None, config=recipe.to_dict(), backup_dir=backup_dir)
    return result, model


def train_keras_io(
    split: Any,
    epochs: int,
    *,
    batch_size: int = KERAS_IO_BATCH,
    seed: int = 0,
    budget_seconds: float | None = None,
    clock: str = "wall",
    verbose: int = 0,
) -> tuple[RunResult, keras.Model]:
    """The baseline: keras.io's MNIST convnet (34,826 parameters), Adam, batch 128, no tricks.

    Trained through the same loop and input pipeline as the recipe, so the two are timed alike.
    """
    from cnncourse import models
    from cnncourse.data import pipeline

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    run = Experiment(len(split.x_train), len(split.x_test), epochs=epochs, batch_size=batch_size)
    model = models.build("keras_io_convnet", input_shape=split.x_train.shape[1:], num_classes=int(split.num_classes))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    inputs = pipeline(split.x_train, one_hot(split.y_train, split.num_classes), batch_size, seed=seed)
    result = fit(model, split, run, seed=seed, label="keras-io convnet", verbose=verbose, inputs=inputs, one_hot=True,
                 budget_seconds=budget_seconds, clock=clock,
                 config={"model": "keras_io_convnet", "optimizer": "adam", "batch_size": batch_size})
    return result, model


def race_baseline(
    split: Any,
    *,
    budget_seconds: float,
    max_epochs: int,
    clock: str = "wall",
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    recompute: bool = False,
) -> RunResult:
    """The keras-io convnet trained for the recipe's time budget: the other half of a fair race.

    A race against the clock gives both runners the same clock: the baseline trains until
    ``budget_seconds`` of training time (or ``max_epochs``, whichever comes first) instead of
    keras.io's 15 epochs. At the recipe's budget that is many epochs, so the run is kept in
    ``cache`` (a JSON path) under the data, budget, clock, seed, backend and device, and reused.
    """
    checks.positive_float("budget_seconds", budget_seconds)
    max_epochs = checks.integer("max_epochs", max_epochs, minimum=1)
    store = result_cache.ResultCache(cache, recompute=recompute)
    key = result_cache.key(config={"model": "keras_io_convnet", "optimizer": "adam", "batch_size": KERAS_IO_BATCH,
                                   "budget_seconds": budget_seconds, "clock": clock, "seed": seed},
                           sizes={"epochs": max_epochs}, split=split)
    found = store.get("race", key, RunResult.from_dict)
    if found is not None:
        print(f"reusing {cache}: the keras-io convnet's run in this budget on these data (recompute=True trains again)")
        return found
    result, _ = train_keras_io(split, max_epochs, seed=seed, budget_seconds=budget_seconds, clock=clock)
    store.put("race", key, result.to_dict())
    return result


# ---------------------------------------------------------------------- ensembles, ablation
def ensemble_accuracy(members: Sequence[keras.Model], x: np.ndarray, y: np.ndarray, *, tta: bool = True) -> float:
    """Accuracy of the mean class probabilities of several models (each with optional TTA)."""
    if not members:
        raise ValueError("an ensemble needs at least one model")
    return accuracy(np.mean([predict(m, x, tta=tta) for m in members], axis=0), y)


@dataclasses.dataclass
class Ablation:
    """The recipe ablation: one run per row (full recipe, each ``− ingredient``, each ``+ addition``).

    ``ensemble`` (when asked for) holds ``{"members": [accuracy, ...], "ensemble": accuracy}``.
    """

    rows: dict[str, RunResult]
    ensemble: dict[str, Any] | None = None

    @property
    def full(self) -> RunResult:
        return self.rows["full recipe"]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": {k: r.to_dict() for k, r in self.rows.items()}, "ensemble": self.ensemble}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Ablation:
        rows = {str(k): RunResult.from_dict(r) for k, r in payload["rows"].items()}
        if "full recipe" not in rows:
            raise ValueError("an ablation record needs its 'full recipe' row")
        ensemble = payload.get("ensemble")
        if ensemble is not None and not isinstance(ensemble, dict):
            raise ValueError("the ensemble record must be a mapping")
        return cls(rows, ensemble)


def ingredients_of(base: Recipe) -> list[str]:
    """The ingredients of :data:`ABLATIONS` that ``base`` uses: one it already leaves out (the
    flips, on digits) has nothing to remove, and training it again would only repeat the base."""
    return [name for name in ABLATIONS if base.without(name) != base]


def ablation(
    base: Recipe,
    split: Any,
    run: Experiment,
    *,
    ingredients: Sequence[str] | None = None,
    additions: Sequence[str] | None = None,
    ensemble: int = 0,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    recompute: bool = False,
    progress: bool = True,
) -> Ablation:
    """The full recipe, then each ingredient removed in turn, then each of ``additions`` (default:
    all of :data:`ADDITIONS`) added in turn; optionally an ensemble.

    ``ensemble`` > 1 trains that many full-recipe models (seeds ``seed, seed+1, ...``; the
    first is the base run) and reports each member's and the ensemble's accuracy. With
    ``cache`` (a JSON path), a study trained before under the same key — recipe, ingredients,
    additions, ensemble, seed, sizes, the data's name and fingerprint, backend, device — is
    reused; anything else (or ``recompute=True``) trains again and rewrites it.
    """
    _check_run(run)
    chosen = ingredients_of(base) if ingredients is None else list(ingredients)
    added = list(ADDITIONS) if additions is None else list(additions)
    for name in chosen:  # an unknown name raises here, before any training
        base.without(name)
    for name in added:
        base.plus(name)
    ensemble = checks.integer("ensemble", ensemble, minimum=0)
    store = result_cache.ResultCache(cache, recompute=recompute)
    key = result_cache.key(config={"base": base.to_dict(), "ingredients": chosen, "additions": added,
                                   "ensemble": ensemble, "seed": seed}, sizes=run, split=split)
    found = store.get("ablation", key, Ablation.from_dict)
    if found is not None:
        if progress:
            print(f"reusing {cache}: the same recipe, ingredients, data and sizes (recompute=True trains again)")
        return found

    def log(label: str, r: RunResult) -> None:
        if progress:
            print(f"{label:<24} test accuracy {r.reported_test_accuracy:.4f}  ({r.train_seconds:.0f} s)", flush=True)

    rows: dict[str, RunResult] = {}
    full, model = train(base, split, run, seed=seed, label="full recipe")
    rows["full recipe"] = full
    log("full recipe", full)
    members = [model] if ensemble > 1 else []
    for name in chosen:
        if name in EVALUATION_ONLY:  # the same trained model, evaluated without the ingredient
            r = dataclasses.replace(full, label=f"− {name}", test_accuracy_tta=None,
                                    config=base.without(name).to_dict())
        else:
            r, _ = train(base.without(name), split, run, seed=seed, label=f"− {name}")
        rows[f"− {name}"] = r
        log(f"− {name}", r)
    for name in added:
        r, _ = train(base.plus(name), split, run, seed=seed, label=f"+ {name}")
        rows[f"+ {name}"] = r
        log(f"+ {name}", r)
    summary = None
    if ensemble > 1:
        for k in range(1, ensemble):
            _, m = train(base, split, run, seed=seed + k, label=f"member {k}")
            members.append(m)
        singles = [accuracy(predict(m, split.x_test, tta=base.tta), split.y_test) for m in members]
        summary = {"members": singles, "ensemble": ensemble_accuracy(members, split.x_test, split.y_test, tta=base.tta)}
    study = Ablation(rows, summary)
    store.put("ablation", key, study.to_dict())
    return study


def ablation_table(study: Ablation) -> str:
    """Markdown: each row's accuracy (as its recipe reports it) and its difference from the full recipe."""
    full = study.full.reported_test_accuracy
    lines = ["| recipe | test accuracy | change vs full |", "|:---|---:|---:|"]
    for label, r in study.rows.items():
        delta = "" if label == "full recipe" else f"{100 * (r.reported_test_accuracy - full):+.2f} pts"
        lines.append(f"| {label} | {r.reported_test_accuracy:.4f} | {delta} |")
    return "\n".join(lines)
