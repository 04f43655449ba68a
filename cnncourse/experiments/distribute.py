"""Scaling out: the same training on several devices, data-parallel, on TensorFlow and on JAX.

Data parallelism copies the model to every device, splits each *global* batch into equal
per-replica slices, computes gradients on each slice, and averages them (an all-reduce)
before one shared update. Keras does this with

* TensorFlow: build and compile the model inside ``tf.distribute.MirroredStrategy().scope()``;
  ``fit`` then splits every batch across the strategy's devices and Keras scales each
  replica's loss by ``1 / replicas`` so the summed gradients are those of the global mean;
* JAX: ``keras.distribution.set_distribution(keras.distribution.DataParallel(devices))``
  before building the model; the batch is sharded over a 1-D device mesh and XLA inserts
  the all-reduce (one SPMD program, so batch-norm statistics are even global).

**Which devices.** Every run here is a fresh process of the backend it demonstrates (a
framework chooses its devices once, when it starts, and a notebook's has started long ago):
:func:`launch` starts ``python -m cnncourse.experiments.distribute`` and reads back the JSON
line it prints. The child trains on **every GPU it sees** when there are several; with one
GPU a training run has nothing to split and runs on that GPU alone; with **no GPU** it shows
the mechanics on *logical* CPU devices — TensorFlow splits the CPU
(``tf.config.set_logical_device_configuration``), XLA pretends to have several host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``). On 2 cores two logical devices share
the same cores: the point is that the *results* are those of one device, not a speed-up. The
single SGD step of ``task="step"`` compares weights to 1e-6, which needs two devices of one
kind, so on a machine with fewer than two GPUs it runs on logical CPU devices (the child is
started with ``CUDA_VISIBLE_DEVICES=""``). Each run trains with the precision and compilation
its device calls for (:func:`cnncourse.backend.acceleration`: 16-bit mixed precision and XLA on
a GPU, float32 on CPU replicas) and reports them.

**Which backends.** :func:`available_backends` lists those installed; a machine with JAX alone
(the lent GPU machines, many labs) runs the JAX half, and the notebook shows the TensorFlow
code instead of running it. :func:`train_runs` keeps the rows in the course's result cache,
keyed like every other result (recipe, sizes, the data's name and fingerprint, backend and
device of this process) plus the backends run and the GPUs the children could use.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnncourse import checks

__all__ = ["BACKENDS", "TASKS", "available_backends", "default_timeout", "launch", "main", "plan", "results_table",
           "train_runs"]

BACKENDS = ("tensorflow", "jax")
TASKS = ("step", "train")
CPU_DEVICES = 2  # logical CPU devices when the machine has no GPU
_MARK = "CNNCOURSE-RESULT "
_ROOT = Path(__file__).resolve().parents[2]


def available_backends() -> list[str]:
    """The backends of :data:`BACKENDS` installed here (what :func:`launch` can start)."""
    from cnncourse.backend import installed_backends

    return [b for b in installed_backends() if b in BACKENDS]


def plan(task: str, devices: int | None = None, *, gpus: int | None = None) -> dict[str, Any]:
    """Where the child runs ``task``: ``{"platform": "gpu" | "cpu", "devices": n}``.

    ``gpus`` (default: :func:`cnncourse.backend.nvidia_gpu_count`) is how many GPUs the machine
    has. Training uses all of them (``devices`` caps the number), or ``devices`` (default
    :data:`CPU_DEVICES`) logical CPU devices when there is none. The one-step comparison needs
    two devices of one kind: GPUs when there are two or more, else logical CPU devices.
    """
    checks.choice("task", task, TASKS)
    if devices is not None:
        devices = checks.positive_int("devices", devices)
    if gpus is None:
        from cnncourse.backend import nvidia_gpu_count

        gpus = nvidia_gpu_count()
    gpus = checks.integer("gpus", gpus, minimum=0)
    enough = gpus >= 2 if task == "step" else gpus >= 1
    if enough:
        if devices is not None and devices > gpus:
            raise ValueError(f"devices={devices} but this machine has {gpus} GPU(s); use devices <= {gpus} or None")
        return {"platform": "gpu", "devices": devices or gpus}
    return {"platform": "cpu", "devices": devices or CPU_DEVICES}


def default_timeout(task: str, options: Mapping[str, Any]) -> float:
    """Seconds a child may run: generous for 2 CPU cores (about 100 images/s per run, three runs)."""
    if task == "step":
        return 600.0
    images = int(options.get("train_size", 4096)) * int(options.get("epochs", 2))
    return 600.0 + 3 * images / 100.0


def launch(
    backend: str,
    devices: int | None = None,
    task: str = "train",
    *,
    timeout: float | None = None,
    gpus: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """In a fresh process of ``backend``, run ``task`` on one device, then data-parallel on all of :func:`plan`'s.

    Returns ``{"runs": [...], "plan": {...}}``: the runs share the process, the data and the
    seed, so they differ only in the distribution. ``task="step"``: one SGD step of a small
    convnet on a fixed batch; each run reports the loss, how far the weights moved and the
    weights after the step (the registered ``probe_convnet``). ``task="train"``: the recipe of
    :mod:`cnncourse.experiments.recipe` on a subset of a dataset, first on one device with the
    seed and with ``seed + 1`` (the spread any change of randomness causes), then on all
    devices with the seed; options ``dataset``, ``train_size``, ``test_size``, ``epochs``,
    ``batch_size`` (global), ``width``, ``seed``. With a single GPU there is no data-parallel
    run. ``timeout`` defaults to :func:`default_timeout`. Raises ``RuntimeError`` with the
    child's error output when it fails, ``ValueError`` for a backend that is not installed.
    """
    checks.choice("backend", backend, BACKENDS)
    checks.choice("task", task, TASKS)
    if backend not in available_backends():
        raise ValueError(f"backend {backend!r} is not installed here; installed: {', '.join(available_backends()) or 'none'}")
    where = plan(task, devices, gpus=gpus)
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("JAX_PLATFORMS", None)
    if where["platform"] == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU plan on a GPU machine: the child must not see the GPUs
        if backend == "jax":
            env["JAX_PLATFORMS"] = "cpu"
    # harmless on a GPU (it only multiplies the host platform); JAX reads it once, at start-up
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={where['devices']}"])
    cmd = [sys.executable, "-m", "cnncourse.experiments.distribute", "--backend", backend,
           "--devices", str(where["devices"]), "--platform", where["platform"], "--task", task]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    limit = default_timeout(task, options) if timeout is None else timeout
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=limit, cwd=str(_ROOT))
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            found = json.loads(line[len(_MARK) :])
            found["plan"] = where
            return found
    raise RuntimeError(
        f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}\n{proc.stdout[-1000:]}"
    )


def train_runs(
    backends: Sequence[str] | None = None,
    devices: int | None = None,
    *,
    dataset: str,
    train_size: int,
    test_size: int,
    epochs: int,
    batch_size: int,
    width: int = 16,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    recompute: bool = False,
) -> list[dict[str, Any]]:
    """The recipe on one device (two seeds) and on all devices, for each backend: the rows of :func:`results_table`.

    ``backends`` defaults to :func:`available_backends`. With ``cache``, rows trained before
    under the same key are reused: the recipe (at ``width``), the backends, the device plan
    (GPUs or logical CPUs, how many), the seed, the sizes, the dataset's name and the
    fingerprint of the exact split the children train on, the backend and device kind of this
    process. Anything else, or ``recompute=True``, launches the runs again (minutes).
    """
    from cnncourse import data
    from cnncourse.experiments import cache as result_cache
    from cnncourse.experiments.recipe import Recipe

    if backends is None:
        backends = available_backends()
    backends = [checks.choice("backend", b, BACKENDS) for b in backends]
    if not backends:
        raise ValueError(f"no backend to run: none of {', '.join(BACKENDS)} is installed")
    where = plan("train", devices)
    options = {"dataset": dataset, "train_size": train_size, "test_size": test_size, "epochs": epochs,
               "batch_size": batch_size, "width": width, "seed": seed}
    split = data.load_split(dataset, train_size=train_size, test_size=test_size, seed=0)  # what the children load
    key = result_cache.key(config={"recipe": Recipe(width=width).to_dict(), "backends": backends, "plan": where,
                                   "seed": seed, "runs": "seed, seed + 1, distributed"},
                           sizes={"train_size": train_size, "test_size": test_size, "epochs": epochs,
                                  "batch_size": batch_size}, split=split)
    store = result_cache.ResultCache(cache, recompute=recompute)
    found = store.get("runs", key)
    if isinstance(found, list) and all(isinstance(r, dict) and "test_accuracy" in r for r in found):
        print(f"reusing {cache}: the same recipe, data, sizes and devices (recompute=True trains again)")
        return found
    rows = [r for b in backends for r in launch(b, devices, "train", **options)["runs"]]
    store.put("runs", key, rows)
    return rows


def agreement(rows: Sequence[Mapping[str, Any]], backend: str, test_size: int) -> dict[str, Any]:
    """How far the data-parallel run of ``backend`` lands from its one-device run, against a band.

    The band is what changing only the randomness moves a run by: three times the larger of
    the measured gap between the one-device runs with seeds ``s`` and ``s + 1`` and the gap
    that sampling ``test_size`` test images alone gives two equally good models
    (sqrt(2 p (1 - p) / n)). A data-parallel run is the same computation with other
    float rounding (and, on TensorFlow, other augmentation draws and per-replica batch-norm
    statistics), so it should differ from the one-device run by no more than another seed does.
    Returns ``{"gap", "seed_gap", "sampling_gap", "band", "holds"}``; ``gap`` is ``None`` when
    there is no data-parallel run (a single GPU).
    """
    import math

    mine = [r for r in rows if r.get("backend") == backend]
    one = [r for r in mine if r["replicas"] == 1]
    many = [r for r in mine if r["replicas"] > 1]
    if len(one) < 2:
        raise ValueError(f"need the one-device runs with two seeds for {backend!r}, got {len(one)}")
    first, second = one[0], one[1]
    p = first["test_accuracy"]
    sampling = math.sqrt(2 * p * (1 - p) / checks.positive_int("test_size", test_size))
    seed_gap = abs(first["test_accuracy"] - second["test_accuracy"])
    band = 3 * max(seed_gap, sampling)
    gap = abs(many[0]["test_accuracy"] - first["test_accuracy"]) if many else None
    return {"gap": gap, "seed_gap": seed_gap, "sampling_gap": sampling, "band": band,
            "holds": gap is None or gap <= band}


def results_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One Markdown table for runs of :func:`launch` with ``task="train"``."""
    lines = [
        "| backend | how | devices | device | precision | XLA | seed | global batch | per-replica batch | "
        "test accuracy | training time | images/s |",
        "|:---|:---|---:|:---|:---|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['strategy']} | {r['replicas']} | {r.get('device', '?')} | "
            f"{r.get('dtype_policy', '?')} | {'yes' if r.get('jit_compile') else 'no'} | {r.get('seed', '?')} | "
            f"{r['global_batch']} | {r['global_batch'] // r['replicas']} | {r['test_accuracy']:.4f} | "
            f"{r['seconds']:.1f} s | {r['images_per_second']:,.0f} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------ the child process
def _tf_runs(platform: str, devices: int, works) -> list[dict[str, Any]]:
    """One device (no strategy) for each of ``works[:-1]``, then ``MirroredStrategy`` over ``devices`` for ``works[-1]``."""
    import keras
    import tensorflow as tf

    if platform == "cpu":
        cpu = tf.config.list_physical_devices("CPU")[0]
        if devices > 1:  # must happen before TensorFlow initialises its devices
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
        names = [d.name for d in tf.config.list_logical_devices("CPU")][:devices]
        what = f"{devices} logical CPUs"
    else:
        names = [d.name for d in tf.config.list_logical_devices("GPU")][:devices]
        if len(names) < devices:
            raise RuntimeError(f"asked for {devices} GPUs but TensorFlow sees {len(names)} (a CPU-only build?)")
        what = f"{devices} GPUs"
    runs = [dict(work(), strategy="no strategy (1 device)", replicas=1) for work in works[:-1]]
    if devices > 1:
        strategy = tf.distribute.MirroredStrategy(names)
        keras.backend.clear_session()  # not inside the scope: that would drop the scope's state
        with strategy.scope():
            out = works[-1]()
        runs.append(dict(out, strategy=f"MirroredStrategy ({what})", replicas=int(strategy.num_replicas_in_sync)))
    return runs


def _jax_runs(platform: str, devices: int, works) -> list[dict[str, Any]]:
    """One device for each of ``works[:-1]``, then ``keras.distribution.DataParallel`` over ``devices`` for ``works[-1]``."""
    import jax
    import keras

    try:
        found = jax.devices(platform)
    except RuntimeError:
        found = []
    if len(found) < devices:
        raise RuntimeError(f"asked for {devices} {platform} devices but JAX sees {len(found)}; "
                           "set XLA_FLAGS before JAX starts (CPU) or install jax[cuda12] (GPU)")
    what = f"{devices} host devices" if platform == "cpu" else f"{devices} GPUs"
    runs = []
    for work in works[:-1]:
        keras.backend.clear_session()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=found[:1]))
        runs.append(dict(work(), strategy="no distribution (1 device)", replicas=1))
    if devices > 1:
        keras.backend.clear_session()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=found[:devices]))
        runs.append(dict(works[-1](), strategy=f"DataParallel ({what})", replicas=devices))
    return runs


def _placed_on(model) -> int:
    """On how many devices the model's weights live (what a distribution really did)."""
    import keras

    if keras.backend.backend() == "jax":
        value = model.trainable_variables[0].value
        sharding = getattr(value, "sharding", None)
        return len(sharding.device_set) if sharding is not None else 1
    strategy = getattr(model, "distribute_strategy", None)
    return int(strategy.num_replicas_in_sync) if strategy is not None else 1


def _step(args: argparse.Namespace, seed: int, fresh: bool = True) -> dict[str, Any]:
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(args.batch_size, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, args.batch_size).astype("int32")
    from cnncourse import models

    keras.utils.set_random_seed(seed)
    model = models.build("probe_convnet", input_shape=(8, 8, 1), num_classes=3)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]
    history = model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
    after = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]
    return {"loss": float(history.history["loss"][0]), "seed": seed,
            "moved": float(max(np.max(np.abs(a - b)) for a, b in zip(after, before))),
            "weights": [w.ravel().tolist() for w in after], "placed_on": _placed_on(model),
            "dtype_policy": model.dtype_policy.name, "jit_compile": bool(model.jit_compile)}


def _compile_for_this_device(recipe) -> None:
    """Make the recipe's ``compile_model`` use :func:`cnncourse.backend.acceleration`'s XLA choice.

    The recipe compiles with ``jit_compile=False`` wherever no GPU is present. On JAX that runs
    every training step op by op: slow, and with a ``DataParallel`` distribution each eager
    operation becomes a separate two-device program whose all-reduce must rendezvous, which on a
    busy machine missed XLA's 40-second deadline and aborted the process. A no-op once the
    recipe takes its settings from ``acceleration()`` itself.
    """
    from cnncourse.backend import acceleration

    original = recipe.compile_model
    if getattr(original, "_follows_acceleration", False):
        return

    def compile_model(chosen, model, total_steps):
        model = original(chosen, model, total_steps)
        wanted = acceleration().jit_compile
        if bool(model.jit_compile) != wanted:
            model.jit_compile = wanted
        return model

    compile_model._follows_acceleration = True
    recipe.compile_model = compile_model


def _train(args: argparse.Namespace, seed: int, fresh: bool = True) -> dict[str, Any]:
    from cnncourse import data
    from cnncourse.experiments import recipe
    from cnncourse.profiles import Experiment

    _compile_for_this_device(recipe)
    split = data.load_split(args.dataset, train_size=args.train_size, test_size=args.test_size, seed=0)
    run = Experiment(args.train_size, args.test_size, epochs=args.epochs, batch_size=args.batch_size)
    result, model = recipe.train(recipe.Recipe(width=args.width), split, run, seed=seed, fresh=fresh)
    return {"test_accuracy": result.reported_test_accuracy, "test_accuracy_plain": result.test_accuracy,
            "seconds": result.train_seconds, "images_per_second": result.images_per_second,
            "val_accuracy": result.history.get("val_accuracy", []), "seed": seed, "placed_on": _placed_on(model),
            "dtype_policy": model.dtype_policy.name, "jit_compile": bool(model.jit_compile)}


def _device_name(platform: str) -> str:
    if platform == "cpu":
        return "CPU"
    from cnncourse.backend import gpu_names

    names = gpu_names()
    return names[0] if names else "GPU"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnncourse.experiments.distribute", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, required=True)
    parser.add_argument("--devices", type=int, default=CPU_DEVICES)
    parser.add_argument("--platform", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--task", choices=TASKS, default="train")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--train-size", type=int, default=4096)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.devices < 1:
        parser.error(f"--devices must be positive, got {args.devices}")
    if args.batch_size % args.devices:
        parser.error(f"--batch-size {args.batch_size} must be divisible by --devices {args.devices}")
    os.environ["KERAS_BACKEND"] = args.backend  # before keras is imported
    import keras

    if keras.backend.backend() != args.backend:
        parser.error(f"Keras was already imported with backend {keras.backend.backend()!r}")
    task = _step if args.task == "step" else _train
    # the step compares one device with many on the same seed; training adds a second seed on
    # one device, the yardstick for how far a change of randomness alone moves the result
    seeds = [args.seed] if args.task == "step" else [args.seed, args.seed + 1]
    seeds.append(args.seed)
    # keras.backend.clear_session() inside a tf.distribute scope breaks the scope, and on JAX it
    # forgets the distribution set before it: the runners clear the session before setting
    # either, and the distributed work does not clear it again
    last = len(seeds) - 1
    if args.backend == "tensorflow":
        works = [lambda s=s, i=i: task(args, s, fresh=i < last) for i, s in enumerate(seeds)]
        runs = _tf_runs(args.platform, args.devices, works)
    else:
        works = [lambda s=s: task(args, s, fresh=False) for s in seeds]
        runs = _jax_runs(args.platform, args.devices, works)
    device = _device_name(args.platform)
    for r in runs:
        r.update(backend=args.backend, global_batch=args.batch_size, device=device)
    print(_MARK + json.dumps({"runs": runs}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
