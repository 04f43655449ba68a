"""Run profiles: how big each experiment of the course is on a given machine.

One course has to serve three audiences: the test suite (``smoke``: every notebook in about a
minute on 2 CPU cores), a student on a laptop (``cpu``: meaningful results in minutes) and a
GPU (``gpu``: published-scale runs). Instead of sprinkling ``if gpu:`` through the notebooks,
every training run looks up its sizes here by experiment name, so a notebook never hard-codes
an epoch count and a teacher can re-size the whole course in one place.

The active profile is chosen by ``$CNNCOURSE_PROFILE``; without it, ``gpu`` when the Keras
backend sees a GPU, else ``cpu``. Choosing ``gpu`` on a machine without one prints a warning.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

ENV_VAR = "CNNCOURSE_PROFILE"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """The sizes of one training experiment in one profile.

    ``train_size`` / ``test_size`` of ``None`` mean the whole split. ``seeds`` is how many
    independent runs a result is averaged over (results that vary are reported as mean ± std).
    ``options`` holds experiment-specific knobs (for example the depths of the degradation
    experiment), read with ``exp.option("depths")``.
    """

    train_size: int | None
    test_size: int | None
    epochs: int
    batch_size: int
    seeds: int = 1
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        from cnncourse import checks

        for field in ("epochs", "batch_size", "seeds"):
            object.__setattr__(self, field, checks.positive_int(f"Experiment.{field}", getattr(self, field)))
        for field in ("train_size", "test_size"):
            value = getattr(self, field)
            if value is not None:
                try:
                    value = checks.positive_int(f"Experiment.{field}", value)
                except ValueError:
                    raise ValueError(f"Experiment.{field} must be None or a positive integer, got {value!r}") from None
                object.__setattr__(self, field, value)
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    def __repr__(self) -> str:
        sizes = ", ".join(
            f"{k}={getattr(self, k)!r}" for k in ("train_size", "test_size", "epochs", "batch_size", "seeds")
        )
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"Experiment({sizes}{extra})"


E = Experiment  # short alias that keeps the tables below readable

# Experiment name → sizes, one table per profile. The names are used by the notebooks:
#   convnet         02  the lecture's MLP (101,770 params) and keras-io convnet (34,826); the epoch kept is
#                       chosen on `validation` images held out from the training set
#   optimizers      03  SGD / momentum / Nesterov / RMSprop / Adam / AdamW on a small CNN, each at the rate
#                       chosen by a range test (`range_steps` batches) and a validation sweep (`sweep_train`
#                       images, `sweep_epochs`, rates = suggestion × `rate_factors`, scored on `validation`)
#   init            04  training curves after each weight initialisation
#   batchnorm       05  with / without batch normalisation at a high learning rate
#   small_batch     05  batch norm vs group norm at batch size 2 (and a normal batch)
#   regularization  06  dropout, DropConnect, weight decay, early stopping
#   tta             06  a shift-augmented CNN evaluated with test-time augmentation
#   snapshots       06  snapshot vs independent ensembles at equal cost (epochs = per cycle)
#   stochastic_depth 06 a small residual net with and without stochastic depth
#   ablation        06  the Zhang et al. grid: architecture × augmentation × weight decay
#   memorization    06  the same network on true vs random labels
#   architectures   07  every family's small-input form, one shared recipe
#   degradation     08  plain vs residual networks at two depths
#   inside          09  the network the notebook looks inside; where_*: the scene classifier whose maps are
#                       checked against known object places (scenes, epochs, scenes checked)
#   transfer        09  pretrain on 8 classes → the 2 held-out ones from few images, vs scratch
#   recipe          10  the fast, strong model within `budget_minutes` (`recipe_width` × 16 channels, 1 if absent); the
#                       keras-io convnet races it for the same budget (≤ `race_epochs`)
#   precision       10  training steps in float32 / mixed bfloat16, with and without XLA (batch, timed steps)
_SMOKE = {
    "convnet": E(2_000, 1_000, epochs=2, batch_size=128, options={"validation": 500}),
    "optimizers": E(1_000, 1_000, epochs=1, batch_size=64, seeds=1, options={"validation": 500, "range_steps": 40, "sweep_train": 1_000, "sweep_epochs": 1, "rate_factors": (1.0,)}),
    "init": E(2_000, 1_000, epochs=1, batch_size=64, options={"validation_size": 500}),
    "batchnorm": E(2_000, 1_000, epochs=1, batch_size=64, options={"validation_size": 500}),
    "small_batch": E(300, 500, epochs=1, batch_size=2, options={"batch_sizes": (2, 32), "validation_size": 300}),
    "regularization": E(1_000, 1_000, epochs=2, batch_size=64, options={"validation_size": 300}),
    "tta": E(1_000, 500, epochs=1, batch_size=64, options={"validation_size": 300}),
    "snapshots": E(1_000, 500, epochs=1, batch_size=64, options={"cycles": 2}),
    "stochastic_depth": E(1_000, 500, epochs=1, batch_size=64, options={"blocks_per_stage": 2, "validation_size": 300}),
    "ablation": E(500, 250, epochs=2, batch_size=50, seeds=1, options={"archs": ("alexnet", "mlp"), "inception_width": 0.0625, "alexnet_width": 0.25, "alexnet_lrn": False, "validation_size": 100}),
    "memorization": E(500, 500, epochs=5, batch_size=50),
    "architectures": E(256, 500, epochs=1, batch_size=64, options={"models": ("lenet5", "alexnet_small", "vgg11_small")}),
    "degradation": E(1_000, 200, epochs=2, batch_size=64, options={"depths": (8, 14)}),
    "inside": E(3_000, 1_000, epochs=1, batch_size=64, options={"ascent_steps": 30, "embed_points": 400, "where_train": 3_000, "where_epochs": 3, "where_check": 12}),
    "transfer": E(20, 500, epochs=5, batch_size=10, seeds=2),
    "recipe": E(2_000, 1_000, epochs=1, batch_size=128, seeds=1, options={"budget_minutes": 1, "target": 0.93, "ablation_train": 1_024, "ablation_test": 500, "ablation_epochs": 1, "ingredients": ("label smoothing", "test-time flip"), "race_epochs": 2, "ensemble": 2, "dist_train": 512, "dist_test": 500, "dist_epochs": 1}),
    "precision": E(None, None, epochs=1, batch_size=128, options={"steps": 2, "eager_steps": 1, "compare_xla": False}),
    "exercises": E(1_000, 500, epochs=1, batch_size=64, seeds=1),
}

_CPU = {
    "convnet": E(30_000, None, epochs=6, batch_size=128, seeds=2, options={"validation": 6_000}),
    "optimizers": E(10_000, 5_000, epochs=5, batch_size=64, seeds=2, options={"validation": 2_000, "range_steps": 180, "sweep_train": 4_000, "sweep_epochs": 2, "rate_factors": (1 / 3, 1.0, 3.0)}),
    "init": E(10_000, 5_000, epochs=5, batch_size=64, seeds=2, options={"validation_size": 2_000}),
    "batchnorm": E(5_000, 5_000, epochs=3, batch_size=64, seeds=2, options={"validation_size": 2_000}),
    "small_batch": E(1_500, 2_000, epochs=2, batch_size=2, seeds=2, options={"batch_sizes": (2, 32), "validation_size": 1_000}),
    "regularization": E(2_000, 3_000, epochs=15, batch_size=64, seeds=2, options={"validation_size": 1_000}),
    "tta": E(5_000, 5_000, epochs=6, batch_size=64, seeds=2, options={"validation_size": 2_000}),
    "snapshots": E(5_000, 5_000, epochs=2, batch_size=64, seeds=2, options={"cycles": 4}),
    "stochastic_depth": E(3_000, 5_000, epochs=4, batch_size=64, seeds=2, options={"blocks_per_stage": 3, "validation_size": 1_000}),
    "ablation": E(5_000, 2_000, epochs=6, batch_size=64, seeds=2, options={"inception_width": 0.125, "alexnet_width": 0.5, "alexnet_lrn": False, "validation_size": 1_000}),
    "memorization": E(1_000, 2_000, epochs=60, batch_size=50),
    "architectures": E(5_000, 2_000, epochs=3, batch_size=64, seeds=2, options={"models": ("lenet5", "alexnet_small", "vgg11_small", "nin_small", "googlenet_small", "resnet18_small")}),
    "degradation": E(2_000, 500, epochs=6, batch_size=64, seeds=2, options={"depths": (20, 44)}),
    "inside": E(30_000, 5_000, epochs=3, batch_size=128, options={"ascent_steps": 100, "embed_points": 1000, "where_train": 10_000, "where_epochs": 4, "where_check": 40}),
    "transfer": E(20, 2_000, epochs=30, batch_size=10, seeds=5),
    "recipe": E(None, None, epochs=10, batch_size=256, seeds=1, options={"budget_minutes": 10, "target": 0.93, "ablation_train": 10_000, "ablation_test": 5_000, "ablation_epochs": 3, "ingredients": None, "race_epochs": 100, "ensemble": 3, "dist_train": 6_000, "dist_test": 2_000, "dist_epochs": 2}),
    "precision": E(None, None, epochs=1, batch_size=256, options={"steps": 12, "eager_steps": 3, "compare_xla": True}),
    "exercises": E(3_000, 1_000, epochs=2, batch_size=64, seeds=1),
}

# The gpu profile: full datasets and the paper-scale widths, depths and models, with epochs and
# seeds chosen so the whole course runs in minutes on one GPU (`make gpu-check`; the course
# map's gpu column shows the estimate until a GPU run is recorded).
_GPU = {
    "convnet": E(None, None, epochs=15, batch_size=128, seeds=3, options={"validation": 6_000}),
    "optimizers": E(None, None, epochs=8, batch_size=128, seeds=3, options={"validation": 5_000, "range_steps": 300, "sweep_train": 20_000, "sweep_epochs": 3, "rate_factors": (1 / 3, 1.0, 3.0)}),
    "init": E(None, None, epochs=10, batch_size=128, seeds=2, options={"validation_size": 5_000}),
    "batchnorm": E(None, None, epochs=10, batch_size=128, seeds=3, options={"validation_size": 5_000}),
    "small_batch": E(5_000, None, epochs=2, batch_size=2, seeds=2, options={"batch_sizes": (2, 4, 32), "validation_size": 5_000}),
    "regularization": E(None, None, epochs=20, batch_size=128, seeds=2, options={"validation_size": 5_000}),
    "tta": E(None, None, epochs=10, batch_size=128, seeds=2, options={"validation_size": 5_000}),
    "snapshots": E(None, None, epochs=4, batch_size=128, seeds=2, options={"cycles": 5}),
    "stochastic_depth": E(None, None, epochs=15, batch_size=128, seeds=2, options={"blocks_per_stage": 9, "validation_size": 5_000}),
    "ablation": E(None, None, epochs=15, batch_size=128, seeds=2, options={"inception_width": 1.0, "alexnet_width": 1.0, "alexnet_lrn": True, "validation_size": 5_000}),
    "memorization": E(10_000, 10_000, epochs=100, batch_size=128),
    "architectures": E(None, None, epochs=5, batch_size=128, seeds=2, options={"models": ("lenet5", "alexnet_small", "zfnet_small", "vgg11_small", "vgg16_small", "nin_small", "googlenet_small", "resnet18_small")}),
    "degradation": E(None, None, epochs=20, batch_size=128, seeds=2, options={"depths": (20, 56)}),
    "inside": E(None, None, epochs=10, batch_size=128, options={"ascent_steps": 200, "embed_points": 2000, "where_train": 60_000, "where_epochs": 10, "where_check": 200}),
    "transfer": E(20, None, epochs=30, batch_size=10, seeds=10),
    "recipe": E(None, None, epochs=20, batch_size=512, seeds=3, options={"recipe_width": 3.0, "budget_minutes": 1, "target": 0.95, "ablation_train": 60_000, "ablation_test": 10_000, "ablation_epochs": 10, "ingredients": None, "race_epochs": 100, "ensemble": 3, "dist_train": 60_000, "dist_test": 10_000, "dist_epochs": 5}),
    "precision": E(None, None, epochs=1, batch_size=512, options={"steps": 30, "eager_steps": 3, "compare_xla": True}),
    "exercises": E(10_000, 2_000, epochs=3, batch_size=128, seeds=1),
}


@dataclasses.dataclass(frozen=True)
class Profile:
    """A named table of experiments; ``profile["optimizers"]`` gives that run's sizes."""

    name: str
    description: str
    experiments: Mapping[str, Experiment]

    def __getitem__(self, experiment: str) -> Experiment:
        try:
            return self.experiments[experiment]
        except KeyError:
            raise ValueError(
                f"unknown experiment {experiment!r} in profile {self.name!r}; "
                f"known experiments: {', '.join(sorted(self.experiments))}"
            ) from None

    def __repr__(self) -> str:
        return f"Profile({self.name!r}: {self.description})"


PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "smoke": Profile("smoke", "test-sized: each notebook in about a minute on 2 CPU cores", _SMOKE),
        "cpu": Profile("cpu", "laptop-sized: meaningful results in minutes per notebook", _CPU),
        "gpu": Profile("gpu", "published-scale runs on one GPU", _GPU),
    }
)


def gpu_available() -> bool:
    """Whether the active Keras backend can see a GPU (imports the backend lazily)."""
    from cnncourse.backend import gpu_names

    return bool(gpu_names())


_warned_no_gpu = False


def warn_if_gpu_profile_without_gpu(name: str) -> bool:
    """Print one warning line (once per process) when the ``gpu`` profile is chosen without a GPU.

    The ``gpu`` profile sizes runs for a GPU (full datasets, tens of epochs); on a CPU a single
    notebook would then run for hours. Choosing it there is allowed (a teacher may want to see
    the sizes), but never silently. Returns whether the warning applies.
    """
    global _warned_no_gpu
    if name != "gpu" or gpu_available():
        return False
    if not _warned_no_gpu:
        _warned_no_gpu = True
        print(
            "warning: profile 'gpu' chosen but Keras sees no GPU: its full-scale runs will take hours on "
            f"this CPU; set {ENV_VAR}=cpu (or smoke) unless that is what you want",
            file=sys.stderr,
            flush=True,
        )
    return True


def default_profile_name() -> str:
    """``$CNNCOURSE_PROFILE`` when set, else ``gpu`` if a GPU is visible, else ``cpu``."""
    name = os.environ.get(ENV_VAR, "").strip()
    if name:
        return name
    return "gpu" if gpu_available() else "cpu"


def profile(name: str | None = None) -> Profile:
    """Return the profile called ``name``, or the active one when ``name`` is ``None``."""
    chosen = default_profile_name() if name is None else name
    try:
        found = PROFILES[chosen]
    except KeyError:
        source = f" (from ${ENV_VAR})" if name is None else ""
        raise ValueError(
            f"unknown profile {chosen!r}{source}; valid profiles: {', '.join(PROFILES)}"
        ) from None
    if name is None and os.environ.get(ENV_VAR, "").strip():  # chosen by the user, not detected
        warn_if_gpu_profile_without_gpu(chosen)
    return found
