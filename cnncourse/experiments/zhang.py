"""The ablation grid of Zhang et al. (ICLR 2017, Table 1), rebuilt at the course's scale (notebook 06).

*Understanding deep learning requires rethinking generalization* (Zhang, Bengio, Hardt, Recht &
Vinyals) trained three architectures on CIFAR-10 with and without the two "explicit"
regularizers, random crops and weight decay. This module is that grid as data and one runner:

* the paper's numbers (:data:`ZHANG_TABLE1`, the only place they are written) and the cells
  (:class:`Cell`, :func:`zhang_cells`);
* the training recipe of each architecture (:class:`ZhangRecipe`, :data:`RECIPES`): SGD with
  momentum, a warm-up and a cosine decay (:func:`cnncourse.experiments.schedules.warmup_cosine`);
* a compiled model for every cell (:func:`grid_model`), built from the registered networks
  ``zhang_inception``, ``zhang_alexnet`` and ``zhang_mlp`` (:mod:`cnncourse.models.zhang`);
* :func:`run_grid`, which trains the cells through :func:`cnncourse.experiments.train.compare`
  and keeps each in the course's result cache under the key of what it was trained with
  (:func:`cell_key`), and :func:`grid_table`, the table beside the paper's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnncourse import checks
from cnncourse.experiments import cache as result_cache
from cnncourse.experiments.callbacks import FinalEvaluation
from cnncourse.experiments.results import Comparison, RunResult
from cnncourse.experiments.schedules import steps_per_epoch, warmup_cosine

__all__ = [
    "ARCHITECTURES",
    "GRID_VERSION",
    "RECIPES",
    "ZHANG_TABLE1",
    "Cell",
    "ZhangRecipe",
    "cell_key",
    "grid_model",
    "grid_table",
    "run_grid",
    "zhang_cells",
]

ARCHITECTURES = ("inception", "inception_no_bn", "alexnet", "mlp")
_PRETTY_ARCH = {
    "inception": "Inception (small)",
    "inception_no_bn": "Inception w/o BatchNorm",
    "alexnet": "AlexNet (small)",
    "mlp": "MLP 3×512",
}

# Zhang, Bengio, Hardt, Recht & Vinyals, "Understanding deep learning requires rethinking
# generalization", ICLR 2017, Table 1 (CIFAR-10): (architecture, random crop, weight decay)
# → (parameters, train accuracy %, test accuracy %). The only place these numbers are written.
ZHANG_TABLE1: dict[tuple[str, bool, bool], tuple[int, float, float]] = {
    ("inception", True, True): (1_649_402, 100.0, 89.05),
    ("inception", True, False): (1_649_402, 100.0, 89.31),
    ("inception", False, True): (1_649_402, 100.0, 86.03),
    ("inception", False, False): (1_649_402, 100.0, 85.75),
    ("inception_no_bn", False, True): (1_649_402, 100.0, 83.00),
    ("inception_no_bn", False, False): (1_649_402, 100.0, 82.00),
    ("alexnet", True, True): (1_387_786, 99.90, 81.22),
    ("alexnet", True, False): (1_387_786, 99.82, 79.66),
    ("alexnet", False, True): (1_387_786, 100.0, 77.36),
    ("alexnet", False, False): (1_387_786, 100.0, 76.07),
    ("mlp", False, True): (1_735_178, 100.0, 53.35),
    ("mlp", False, False): (1_735_178, 100.0, 52.39),
}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One row of the grid: an architecture with random crop (shift) on/off and weight decay on/off."""

    arch: str
    crop: bool
    weight_decay: bool

    def __post_init__(self) -> None:
        checks.choice("arch", self.arch, ARCHITECTURES)
        checks.boolean("crop", self.crop)
        checks.boolean("weight_decay", self.weight_decay)

    @property
    def label(self) -> str:
        yes = {True: "yes", False: "no"}
        return f"{self.arch} · crop {yes[self.crop]} · wd {yes[self.weight_decay]}"

    @property
    def paper(self) -> tuple[int, float, float] | None:
        """(parameters, train %, test %) in Zhang et al.'s Table 1, or None if the paper has no such row."""
        return ZHANG_TABLE1.get((self.arch, self.crop, self.weight_decay))


def zhang_cells(archs: Sequence[str] = ARCHITECTURES) -> list[Cell]:
    """The cells of Table 1 for the chosen architectures, in the paper's row order."""
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if unknown or not archs:
        raise ValueError(f"archs must be a non-empty selection of {ARCHITECTURES}, got {list(archs)!r}")
    return [Cell(a, crop, wd) for (a, crop, wd) in ZHANG_TABLE1 if a in archs]


# Recipes per architecture: Zhang et al. trained with SGD, momentum 0.9, lr 0.1 (0.01 for some
# architectures) decayed by 0.95 per epoch, for many epochs. A CPU budget is a few hundred steps,
# so every architecture gets a linear warm-up over its first epoch (a deep net without batch norm
# diverges or stalls at a full step on its first updates) and a cosine decay to zero (a short run
# that ends at a high learning rate ends wherever the last noisy steps left it: the spread between
# seeds is mostly that), He-normal initialization for the ReLU layers, and its own peak rate.
@dataclasses.dataclass(frozen=True)
class ZhangRecipe:
    """How one architecture of the grid is trained: SGD + momentum, warm-up, cosine decay, L2 penalty.

    ``learning_rate`` is the peak, reached after ``warmup_epochs`` of linear warm-up from 1% of
    it, then cosine-decayed to 0 at the end of the run. ``weight_decay`` is :math:`\\lambda` of
    an L2 penalty :math:`\\tfrac{\\lambda}{2}\\lVert w\\rVert^2` on every kernel, added to the loss
    (Keras' ``L2(λ/2)``, gradient :math:`\\lambda w`), used only in the cells with weight decay
    on. That is weight decay as the papers of the time ran it with SGD and momentum: the
    penalty's gradient enters the velocity like the data gradient, so with momentum
    :math:`\\beta = 0.9` it shrinks the weights about :math:`1/(1-\\beta) = 10` times faster
    than SGD's *decoupled* ``weight_decay`` of the same value would (notebook 06 measures
    it). Biases and batch-norm parameters are not penalized. ``clipnorm`` (Keras'
    per-variable gradient-norm clipping) caps the rare huge step that sends a deep net without
    batch norm to chance for good.
    """

    learning_rate: float
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    weight_decay: float = 5e-4
    kernel_initializer: str = "he_normal"
    clipnorm: float | None = None

    def __post_init__(self) -> None:
        checks.positive_float("learning_rate", self.learning_rate)
        checks.number("momentum", self.momentum, minimum=0.0, maximum=1.0, exclusive_maximum=True)
        checks.non_negative_float("warmup_epochs", self.warmup_epochs)
        checks.non_negative_float("weight_decay", self.weight_decay)
        if not isinstance(self.kernel_initializer, str):
            raise ValueError(f"kernel_initializer must be a Keras initializer name, got {self.kernel_initializer!r}")
        if self.clipnorm is not None:
            checks.positive_float("clipnorm", self.clipnorm)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def schedule(self, steps_per_epoch: int, epochs: int) -> Any:
        """The learning-rate schedule for a run of ``epochs`` × ``steps_per_epoch`` steps."""
        steps_per_epoch = checks.positive_int("steps_per_epoch", steps_per_epoch)
        total = steps_per_epoch * checks.positive_int("epochs", epochs)
        warmup = min(int(round(self.warmup_epochs * steps_per_epoch)), total - 1)
        return warmup_cosine(self.learning_rate, total, warmup, initial=0.01 * self.learning_rate)

    def optimizer(self, steps_per_epoch: int, epochs: int) -> Any:
        """``keras.optimizers.SGD`` with this recipe's schedule, momentum and clipping (no decoupled decay)."""
        import keras

        return keras.optimizers.SGD(
            learning_rate=self.schedule(steps_per_epoch, epochs), momentum=self.momentum, clipnorm=self.clipnorm)

    def penalize(self, model: Any) -> int:
        """Put this recipe's L2 penalty on every kernel of ``model`` (biases, γ and β stay free); returns how many.

        Keras' ``L2(l2)`` adds ``l2·Σw²``, so ``L2(λ/2)`` is the penalty whose gradient is
        ``λ·w``. It is attached to the kernel variables of the built model, which is what a
        ``kernel_regularizer`` on each layer would have done.
        """
        import keras

        if self.weight_decay <= 0:
            return 0
        kernels = [v for v in model.trainable_weights if v.path.split("/")[-1] == "kernel"]
        for variable in kernels:
            variable.regularizer = keras.regularizers.L2(self.weight_decay / 2)
        return len(kernels)


# Peak learning rates from short probes on Fashion-MNIST (5,000 images, batch 64): batch norm
# takes the paper's 0.1; without it the same Inception diverged at 0.1 for one seed of two and
# was still at 0.66 test accuracy after four epochs at 0.01; at 0.05 with gradient clipping it
# trained best. AlexNet and the MLP keep the paper's 0.01.
RECIPES: dict[str, ZhangRecipe] = {
    "inception": ZhangRecipe(0.1),
    "inception_no_bn": ZhangRecipe(0.05, clipnorm=1.0),
    "alexnet": ZhangRecipe(0.01),
    "mlp": ZhangRecipe(0.01),
}

# Bump when grid_model changes what it builds: the cache key includes it.
GRID_VERSION = 4


def _grid_options(run: Any) -> dict[str, Any]:
    """The architecture knobs of a profile's ``ablation`` row, with their defaults."""
    return {
        "inception_width": float(run.option("inception_width", 0.25)),
        "alexnet_width": float(run.option("alexnet_width", 1.0)),
        "alexnet_lrn": bool(run.option("alexnet_lrn", True)),
        "shift_pad": int(run.option("shift_pad", 2)),
    }


def grid_model(
    cell: Cell,
    run: Any,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    train_images: int,
    seed: int = 0,
    recipe: ZhangRecipe | None = None,
) -> Any:
    """A compiled model for one grid cell, trained as :data:`RECIPES` says for its architecture.

    ``run`` is the profile's ``ablation`` row: its ``epochs`` and ``batch_size`` (with
    ``train_images``) set the length of the learning-rate schedule, its options the sizes
    (``inception_width``, ``alexnet_width``, ``alexnet_lrn``, ``shift_pad``).

    * ``inception`` / ``inception_no_bn``: ``zhang_inception``, with / without batch norm;
    * ``alexnet``: ``zhang_alexnet``, the paper's two-conv small AlexNet;
    * ``mlp``: ``zhang_mlp``, three hidden ``Dense(512, relu)`` layers.

    Every model starts as the paper's did: "random crop" (only in cells with crop on) is
    :class:`cnncourse.layers.RandomShift` (pad by ``shift_pad``, crop back; identity at
    inference), then per-image whitening (each image scaled to mean 0, variance 1, as
    TensorFlow's ``per_image_standardization`` that the paper used), written as a
    ``LayerNormalization`` over (H, W, C) without γ and β: no parameters. "Weight decay" is
    an L2 penalty on every kernel in the loss (:meth:`ZhangRecipe.penalize`), never on biases
    or batch-norm parameters.
    """
    import keras

    from cnncourse import layers as course_layers
    from cnncourse import models

    if not isinstance(cell, Cell):
        raise ValueError(f"cell must be a Cell, got {type(cell).__name__}")
    recipe = RECIPES[cell.arch] if recipe is None else recipe
    if not isinstance(recipe, ZhangRecipe):
        raise ValueError(f"recipe must be a ZhangRecipe or None, got {type(recipe).__name__}")
    opts = _grid_options(run)
    keras.utils.set_random_seed(seed)
    shape, init = tuple(input_shape), recipe.kernel_initializer
    inputs = keras.Input(shape)
    x = course_layers.RandomShift(pad=opts["shift_pad"], seed=seed, name="random_shift")(inputs) if cell.crop else inputs
    x = keras.layers.LayerNormalization(axis=[1, 2, 3], center=False, scale=False, epsilon=1e-6, name="whiten")(x)
    common = {"input_shape": shape, "num_classes": num_classes, "kernel_initializer": init}
    if cell.arch in ("inception", "inception_no_bn"):
        body = models.build("zhang_inception", width=opts["inception_width"], batch_norm=cell.arch == "inception",
                            **common)
    elif cell.arch == "alexnet":
        body = models.build("zhang_alexnet", width=opts["alexnet_width"], lrn=opts["alexnet_lrn"], **common)
    else:
        body = models.build("zhang_mlp", **common)
    model = keras.Model(inputs, body(x), name=cell.label.replace(" · ", "_").replace(" ", "_"))
    if cell.weight_decay:
        recipe.penalize(model)
    steps = steps_per_epoch(train_images, run.batch_size)
    model.compile(optimizer=recipe.optimizer(steps, run.epochs), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def cell_key(cell: Cell, data: Any, run: Any, *, seeds: Sequence[int], recipe: ZhangRecipe | None = None) -> dict[str, Any]:
    """Everything one cell's result depends on: the cache reuses a cell only if its key is equal.

    The cell, its recipe and the architecture options it uses, :data:`GRID_VERSION` and the
    seeds, plus what :func:`cnncourse.experiments.cache.key` always adds: the sizes, the
    data's name and fingerprint, the backend and the device.
    """
    recipe = RECIPES[cell.arch] if recipe is None else recipe
    opts = _grid_options(run)
    relevant = {"inception": ("inception_width",), "inception_no_bn": ("inception_width",),
                "alexnet": ("alexnet_width", "alexnet_lrn"), "mlp": ()}[cell.arch]
    config = {
        "version": GRID_VERSION,
        "cell": cell.label,
        "recipe": recipe.to_dict(),
        "options": {k: opts[k] for k in relevant + (("shift_pad",) if cell.crop else ())},
        "seeds": sorted(int(s) for s in seeds),
    }
    sizes = {"train_size": int(len(data.y_train)), "test_size": int(len(data.y_test)), "epochs": int(run.epochs),
             "batch_size": int(run.batch_size)}
    return result_cache.key(config=config, sizes=sizes, split=data)


def _decode_runs(payload: Any) -> list[RunResult]:
    if not isinstance(payload, list) or not payload:
        raise ValueError("a cell record is a non-empty list of runs")
    return [RunResult.from_dict(r) for r in payload]


def run_grid(
    data: Any,
    run: Any,
    *,
    cells: Sequence[Cell],
    path: str | Path | None = None,
    recompute: bool = False,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    make_model: Callable[[Cell, int], Any] | None = None,
) -> Comparison:
    """Train every cell over ``run.seeds`` seeds (``cnncourse.experiments.train.compare``), cached.

    ``data`` is a :class:`cnncourse.data.Split` (with a validation set, the per-epoch curves
    are on it and the test set is evaluated once per run). After training, each run's model
    is evaluated on the training images in inference mode, without augmentation or dropout
    (:class:`cnncourse.experiments.callbacks.FinalEvaluation`): the history's
    ``final_train_accuracy`` is the final training accuracy as the paper reports it. With ``path``, a cell's earlier result there
    is reused when its :func:`cell_key` is the same; only the other cells are trained, and the
    file keeps all of them (and the cells of other profiles). A damaged or mismatched entry is
    reported in one line and trained again; ``recompute=True`` trains every cell again.
    ``make_model(cell, seed)`` defaults to :func:`grid_model` for ``data`` and ``run``. Returns
    a ``Comparison`` keyed by ``Cell.label``, in cell order.
    """
    from cnncourse.experiments import train

    if not cells:
        raise ValueError("cells must name at least one Cell")
    chosen = list(range(run.seeds) if seeds is None else seeds)
    if make_model is None:
        shape, classes, n = tuple(data.x_train.shape[1:]), int(data.num_classes), len(data.y_train)

        def make_model(cell: Cell, seed: int) -> Any:
            return grid_model(cell, run, input_shape=shape, num_classes=classes, train_images=n, seed=seed)

    store = result_cache.ResultCache(path, recompute=recompute)
    keys = {cell.label: cell_key(cell, data, run, seeds=chosen) for cell in cells}
    results: dict[str, list[RunResult]] = {}
    todo = []
    for cell in cells:
        found = store.get(cell.label, keys[cell.label], _decode_runs)
        if found is not None:
            results[cell.label] = found
        else:
            todo.append(cell)
    if progress and path is not None:
        reused = len(cells) - len(todo)
        if reused:
            print(f"reusing {reused} of {len(cells)} cells from {path} (same recipe, data and sizes; "
                  f"recompute=True trains them again)")
        if todo:
            print(f"training {len(todo)} cell(s): " + ", ".join(c.label for c in todo))
    if todo:
        makers = {cell.label: (lambda seed, cell=cell: make_model(cell, seed)) for cell in todo}
        final = FinalEvaluation(data.x_train, data.y_train, name="train")
        trained = train.compare(makers, data, run, seeds=chosen, progress=progress, callbacks=[final]).results
        for cell in todo:
            results[cell.label] = trained[cell.label]
            store.put(cell.label, keys[cell.label], [r.to_dict() for r in trained[cell.label]])
    return Comparison({cell.label: results[cell.label] for cell in cells})


def grid_table(comparison: Comparison, cells: Sequence[Cell], *, dataset: str = "fashion_mnist") -> str:
    """Our grid beside Zhang et al.'s Table 1, one Markdown row per cell in the paper's layout.

    Columns: model, parameters (ours / paper), random crop, weight decay, final training
    accuracy (ours: the trained model evaluated on the training images without augmentation
    or dropout, ``final_train_accuracy``, as the paper measures it), test accuracy (ours as
    mean ± std over seeds, "n/a" for one seed / paper). Accuracies in %. Results without a
    final evaluation (older caches) are refused rather than shown with the running accuracy.
    """
    from cnncourse.experiments.report import mean_std

    head = (
        f"| model | params (ours) | params (paper) | random crop | weight decay "
        f"| final train acc. % (ours, {dataset}) | train acc. % (paper) "
        f"| test acc. % (ours, {dataset}) | test acc. % (paper, CIFAR-10) |"
    )
    lines = [head, "|" + "---|" * 9]
    previous = None
    for cell in cells:
        if cell.label not in comparison.results:
            raise ValueError(f"no result for {cell.label!r}; results hold: {', '.join(comparison.results)}")
        runs = comparison.results[cell.label]
        paper = cell.paper
        name = _PRETTY_ARCH[cell.arch] if cell.arch != previous else ""
        params = f"{runs[0].params:,}" if cell.arch != previous else ""
        paper_params = f"{paper[0]:,}" if paper and cell.arch != previous else ""
        previous = cell.arch
        if any("final_train_accuracy" not in r.history for r in runs):
            raise ValueError(f"{cell.label}: no final training accuracy (train it with run_grid, which evaluates it)")
        train_acc = 100 * comparison.mean(cell.label, "final_train_accuracy")
        test = mean_std([r.test_accuracy for r in runs], ".2f", percent=True).replace(" %", "")
        yes = {True: "yes", False: "no"}
        lines.append(
            f"| {name} | {params} | {paper_params} | {yes[cell.crop]} | {yes[cell.weight_decay]} "
            f"| {train_acc:.2f} | {f'{paper[1]:.2f}' if paper else '—'} "
            f"| {test} | {f'{paper[2]:.2f}' if paper else '—'} |"
        )
    return "\n".join(lines)
