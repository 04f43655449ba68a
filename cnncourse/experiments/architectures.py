"""One training recipe for every classic architecture, the ILSVRC winners, and the results table.

Notebook 07 trains LeNet, AlexNet, ZFNet, VGG, NiN, GoogLeNet and ResNet side by side. Such a
table says something about the *architectures* only when everything else is equal, so the
recipe (optimizer, schedule, augmentation) is one frozen :class:`ArchitectureRecipe` shared
by every model, and the epochs and batch size come from the profile's ``architectures`` row.
Training eight networks takes a CPU many minutes, so :func:`run_architectures` trains them
through :func:`cnncourse.experiments.train.compare` and keeps the table in the course's result
cache (:mod:`cnncourse.experiments.cache`) under a key made of the models, the recipe, the
sizes, the data's fingerprint, the backend and the device: a re-run with the same key reuses
it (and says so); any change trains again.

The published numbers are written here once, each with its source: the ILSVRC winners'
top-5 errors (:data:`ILSVRC_WINNERS`) and the d2l anchors (:data:`D2L_ANCHORS`), the test
accuracies *Dive into Deep Learning* reports for its versions of these networks after 10
epochs on Fashion-MNIST on a GPU.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cnncourse import checks
from cnncourse.experiments import cache as result_cache
from cnncourse.experiments.schedules import steps_per_epoch, warmup_cosine
from cnncourse.inspection.analysis import Table, count_macs, count_params

__all__ = [
    "D2L_ANCHORS",
    "ILSVRC_WINNERS",
    "ArchitectureRecipe",
    "ArchitectureResults",
    "Winner",
    "build_trainable",
    "ilsvrc_table",
    "paper_costs",
    "run_architectures",
]

D2L_ANCHORS: Mapping[str, float] = {
    "lenet5": 0.811,
    "alexnet_small": 0.881,
    "vgg11_small": 0.917,
    "nin_small": 0.871,
    "googlenet_small": 0.898,
    "resnet18_small": 0.912,
}
"""Test accuracy of d2l's LeNet, AlexNet, VGG-11, NiN, GoogLeNet and ResNet-18 on
Fashion-MNIST after 10 epochs on a GPU (Zhang, Lipton, Li & Smola, *Dive into Deep Learning*,
§7.6 and §8.1–8.6, the PyTorch outputs), keyed by the course's small form of each family.
d2l resizes the images (224 px for AlexNet, VGG, NiN and GoogLeNet, 96 px for ResNet); the
course trains at 28 px."""


@dataclasses.dataclass(frozen=True)
class Winner:
    """One ILSVRC classification winner (or, for VGG, the runner-up the lecture shows)."""

    year: int
    entry: str
    top5_error: float
    layers: int | None
    model: str | None
    note: str = ""


ILSVRC_WINNERS: tuple[Winner, ...] = (
    Winner(2010, "NEC-UIUC", 28.2, None, None, "SIFT/LBP + sparse coding + SVM"),
    Winner(2011, "XRCE", 25.8, None, None, "Fisher vectors + SVM"),
    Winner(2012, "AlexNet", 16.4, 8, "alexnet", "15.3 with extra data"),
    Winner(2013, "ZFNet", 11.7, 8, "zfnet", "Clarifai, ZFNet ensemble"),
    Winner(2014, "VGG", 7.3, 19, "vgg19", "runner-up"),
    Winner(2014, "GoogLeNet", 6.7, 22, "googlenet", ""),
    Winner(2015, "ResNet", 3.57, 152, "resnet152", "ensemble"),
)
"""Top-5 error (%) on the ILSVRC test set, as the lecture's chart gives them (cs231n 2019,
lecture 9); ``layers`` counts weight layers; ``model`` is the course's builder, if any."""


def ilsvrc_table(costs: Mapping[str, tuple[int, int]]) -> Table:
    """The winners with parameters and MACs computed from the builders named in ``costs``.

    ``costs`` maps a registry name to ``(params, macs)``; winners without a builder (the
    pre-CNN entries) get blank cells.
    """
    rows = []
    for w in ILSVRC_WINNERS:
        params, macs = costs.get(w.model, (None, None)) if w.model else (None, None)
        rows.append(
            {
                "name": f"{w.year} {w.entry}",
                "top-5 error %": f"{w.top5_error:.2f}".rstrip("0").rstrip("."),
                "layers": w.layers if w.layers is not None else "shallow",
                "builder": w.model or "—",
                "params": params,
                "macs": macs,
                "note": w.note or "",
            }
        )
    columns = ("name", "top-5 error %", "layers", "builder", "params", "macs", "note")
    return Table(columns=columns, rows=rows, totals={}, title="ILSVRC classification winners")


# --------------------------------------------------------------------------- the recipe
@dataclasses.dataclass(frozen=True)
class ArchitectureRecipe:
    """Everything about training that is *not* the architecture, the same for every model.

    AdamW (decoupled weight decay, not applied to biases or batch-norm parameters) with a
    linear warm-up over ``warmup_fraction`` of the steps and a cosine decay to zero
    (:func:`cnncourse.experiments.schedules.warmup_cosine`): Adam needs no per-architecture
    learning-rate search, which SGD would (LeNet's tanh units, AlexNet without batch norm and
    the batch-normalised nets want different rates), and the schedule adapts to any number of
    epochs. Augmentation runs inside the model as its first layers (horizontal flip, a random
    shift of up to ``shift`` pixels); both are the identity at test time. Set ``flip=False``
    for digits.

    ``bn_momentum`` sets every batch-norm layer's moving-average momentum. Keras' default,
    0.99, averages the statistics over the last ~100 steps: a run of a few hundred steps
    ends with test-time statistics that lag far behind the weights, and a batch-normalised
    VGG that reaches 80% training accuracy scores 10–25% on the test set. 0.9 (~10 steps,
    PyTorch's default, which the d2l anchors were trained with) fixes that at no cost.
    """

    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    flip: bool = True
    shift: int = 2
    bn_momentum: float = 0.9

    def __post_init__(self) -> None:
        checks.positive_float("ArchitectureRecipe.learning_rate", self.learning_rate)
        checks.non_negative_float("ArchitectureRecipe.weight_decay", self.weight_decay)
        checks.number("ArchitectureRecipe.warmup_fraction", self.warmup_fraction, minimum=0.0, maximum=1.0,
                      exclusive_maximum=True)
        checks.boolean("ArchitectureRecipe.flip", self.flip)
        checks.integer("ArchitectureRecipe.shift (pixels)", self.shift, minimum=0)
        checks.number("ArchitectureRecipe.bn_momentum", self.bn_momentum, minimum=0.0, maximum=1.0,
                      exclusive_maximum=True)

    def to_dict(self) -> dict[str, Any]:
        return {"optimizer": "adamw", "schedule": "warmup+cosine", **dataclasses.asdict(self)}

    def schedule(self, total_steps: int) -> Any:
        """Linear warm-up over ``warmup_fraction`` of ``total_steps``, then cosine decay to zero."""
        total_steps = checks.positive_int("total_steps", total_steps)
        return warmup_cosine(self.learning_rate, total_steps, int(self.warmup_fraction * total_steps))

    def optimizer(self, total_steps: int) -> Any:
        import keras

        opt = keras.optimizers.AdamW(learning_rate=self.schedule(total_steps), weight_decay=self.weight_decay)
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return opt


def build_trainable(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    recipe: ArchitectureRecipe,
    *,
    total_steps: int,
    seed: int = 0,
) -> Any:
    """The registered model ``name`` behind the recipe's augmentation layers, compiled.

    The architecture itself is the nested model called ``name`` (so its parameters and MACs
    are those of ``models.build(name)``), built with the recipe's batch-norm momentum where it
    has batch norm; the wrapper only adds the augmentation layers, which have no weights.
    """
    import keras

    from cnncourse import layers as course_layers
    from cnncourse import models

    if not isinstance(recipe, ArchitectureRecipe):
        raise ValueError(f"recipe must be a cnncourse.experiments.architectures.ArchitectureRecipe, "
                         f"got {type(recipe).__name__}")
    keras.utils.set_random_seed(seed)
    has_bn = "bn_momentum" in inspect.signature(models.builder(name)).parameters
    options = {"bn_momentum": recipe.bn_momentum} if has_bn else {}
    body = models.build(name, input_shape=tuple(input_shape), num_classes=num_classes, name=name, **options)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    if recipe.flip:
        x = keras.layers.RandomFlip("horizontal", seed=seed, name="random_flip")(x)
    if recipe.shift:
        x = course_layers.RandomShift(pad=recipe.shift, seed=seed, name="random_shift")(x)
    model = keras.Model(inputs, body(x), name=f"{name}_trainable")
    model.compile(recipe.optimizer(total_steps), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# --------------------------------------------------------------------------- results + cache
@dataclasses.dataclass
class ArchitectureResults:
    """The trained table: a ``cnncourse.experiments.results.Comparison``, each model's MACs, the device."""

    key: dict[str, Any]
    device: str
    comparison: Any
    macs: dict[str, int]
    profile: str = ""

    def rows(self) -> list[dict[str, Any]]:
        """One row per model: test accuracy (mean and spread over seeds), d2l anchor, params, MACs, time, images/s, device.

        ``"± std"`` is the sample standard deviation over seeds, or ``"n/a (1 seed)"``: one run
        has no spread, and printing 0 would claim one.
        """
        out = []
        for label in self.comparison.labels:
            runs = self.comparison.results[label]
            out.append(
                {
                    "name": label,
                    "test accuracy": round(self.comparison.mean(label), 4),
                    "± std": round(self.comparison.std(label), 4) if len(runs) > 1 else "n/a (1 seed)",
                    "seeds": len(runs),
                    "d2l (GPU, 10 ep.)": D2L_ANCHORS.get(label),
                    "params": runs[0].params,
                    "macs": self.macs[label],
                    "train s": round(self.comparison.mean(label, "train_seconds"), 1),
                    "images/s": int(round(self.comparison.mean(label, "images_per_second"))),
                    "device": self.device,
                }
            )
        return out

    def table(self) -> Table:
        columns = ("name", "test accuracy", "± std", "seeds", "d2l (GPU, 10 ep.)", "params", "macs", "train s", "images/s",
                   "device")
        title = f"{self.key['dataset']} · {self.key['sizes']['epochs']} epochs · profile {self.profile}"
        return Table(columns=columns, rows=self.rows(), totals={}, title=title)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "device": self.device, "macs": self.macs, "profile": self.profile,
                "results": self.comparison.to_dict()}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> ArchitectureResults:
        from cnncourse.experiments.results import Comparison

        comparison = Comparison.from_dict(payload["results"])
        macs = {str(k): int(v) for k, v in payload["macs"].items()}
        if set(macs) != set(comparison.labels):
            raise ValueError("the MACs and the results name different models")
        return cls(dict(payload["key"]), str(payload["device"]), comparison, macs, str(payload.get("profile", "")))


def run_architectures(
    names: Sequence[str],
    data: Any,
    run: Any,
    recipe: ArchitectureRecipe,
    *,
    profile: str = "",
    path: str | os.PathLike | None = None,
    recompute: bool = False,
    progress: bool = True,
) -> ArchitectureResults:
    """Train every model in ``names`` with ``recipe`` for ``run``'s budget; cache under ``path``.

    ``data`` is a :class:`cnncourse.data.Split`. A result at ``path`` trained under the same
    key (models, recipe, sizes, the data's name and fingerprint, backend, device) is reused
    (printing where it came from); otherwise, or with ``recompute=True``, every model is
    trained (``cnncourse.experiments.train.compare``; no per-epoch evaluation, the test split
    evaluated once at the end) and the entry is (re)written. MACs are those of the bare
    architecture for one image; ``profile`` names the profile in the table's title.
    """
    import keras

    from cnncourse import device_description, models
    from cnncourse.experiments import train

    names = list(names)
    if not names:
        raise ValueError("names must hold at least one registered model name")
    for name in names:
        models.entry(name)  # raises ValueError naming the registered models
    if not isinstance(recipe, ArchitectureRecipe):
        raise ValueError(f"recipe must be a cnncourse.experiments.architectures.ArchitectureRecipe, "
                         f"got {type(recipe).__name__}")
    store = result_cache.ResultCache(path, recompute=recompute)
    key = result_cache.key(config={"models": names, "recipe": recipe.to_dict()}, sizes=run, split=data)
    cached = store.get("architectures", key, ArchitectureResults.from_dict)
    if cached is not None:
        if progress:
            print(f"reusing {path}: trained on {cached.device} with this recipe, data and sizes "
                  "(pass recompute=True to train again)")
        return cached
    input_shape = tuple(int(v) for v in data.x_train.shape[1:])
    num_classes = int(data.num_classes)
    total_steps = run.epochs * steps_per_epoch(len(data.x_train), run.batch_size)
    macs = {}
    for name in names:
        macs[name] = count_macs(models.build(name, input_shape=input_shape, num_classes=num_classes))
        keras.backend.clear_session()
    makers = {
        name: (lambda seed, name=name: build_trainable(name, input_shape, num_classes, recipe,
                                                       total_steps=total_steps, seed=seed))
        for name in names
    }
    comparison = train.compare(makers, data, run, progress=progress, validation=False)
    results = ArchitectureResults(key, device_description(), comparison, macs, profile)
    store.put("architectures", key, results.to_dict())
    return results


def paper_costs(names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``{name: (params, macs)}`` of registered paper-form models, each built once then freed."""
    import keras

    from cnncourse import models

    out = {}
    for name in names:
        model = models.build(name)
        out[name] = (count_params(model), count_macs(model))
        del model
        keras.backend.clear_session()
    return out
