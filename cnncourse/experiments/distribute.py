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

With no GPUs, both can be shown on *logical* CPU devices: TensorFlow splits one CPU into
several (``tf.config.set_logical_device_configuration``) and XLA pretends to have several
host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``). Both settings must be
made before the framework initialises its devices, which in a notebook has already happened,
so every run here is a fresh subprocess: :func:`launch` starts ``python -m
cnncourse.experiments.distribute`` with the right environment and returns the JSON line it prints. On 2
cores, two logical devices share the same cores: the point is that the *results* are those
of one device, not a speed-up. :func:`train_runs` runs the recipe on both backends and keeps
the rows in the course's result cache, keyed like every other result (recipe, sizes, the
data's name and fingerprint, backend, device).
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

__all__ = ["BACKENDS", "TASKS", "launch", "main", "results_table", "train_runs"]

BACKENDS = ("tensorflow", "jax")
TASKS = ("step", "train")
_MARK = "CNNCOURSE-RESULT "
_ROOT = Path(__file__).resolve().parents[2]


def _check(backend: str, devices: int, task: str) -> None:
    checks.choice("backend", backend, BACKENDS)
    checks.positive_int("devices", devices)
    checks.choice("task", task, TASKS)


def launch(
    backend: str,
    devices: int,
    task: str = "train",
    *,
    timeout: float = 900,
    **options: Any,
) -> dict[str, Any]:
    """In a fresh process with ``devices`` logical CPU devices, run ``task`` on one device, then data-parallel on all.

    Returns ``{"runs": [one_device, all_devices]}``; both runs share the process, the data and
    the seed, so they differ only in the distribution. ``task="step"``: one SGD step of a small
    convnet on a fixed batch; each run reports the loss, how far the weights moved and the
    weights after the step (the registered ``probe_convnet``). ``task="train"``: the recipe of
    :mod:`cnncourse.experiments.recipe` on a subset of a dataset; options ``dataset``,
    ``train_size``, ``test_size``, ``epochs``, ``batch_size`` (global), ``width``, ``seed``.
    Raises ``RuntimeError`` with the child's error output when it fails.
    """
    _check(backend, devices, task)
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
        env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
    cmd = [sys.executable, "-m", "cnncourse.experiments.distribute", "--backend", backend, "--devices", str(devices), "--task", task]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=str(_ROOT))
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :])
    raise RuntimeError(
        f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}\n{proc.stdout[-1000:]}"
    )


def train_runs(
    backends: Sequence[str] = BACKENDS,
    devices: int = 2,
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
    """The recipe on one device and on ``devices`` for each backend: the rows of :func:`results_table`.

    With ``cache``, rows trained before under the same key are reused: the recipe (at
    ``width``), the backends, the device count, the seed, the sizes, the dataset's name and the
    fingerprint of the exact split the children train on, the backend and device kind of this
    process. Anything else, or ``recompute=True``, launches the runs again (minutes).
    """
    from cnncourse import data
    from cnncourse.experiments import cache as result_cache
    from cnncourse.experiments.recipe import Recipe

    backends = [checks.choice("backend", b, BACKENDS) for b in backends]
    options = {"dataset": dataset, "train_size": train_size, "test_size": test_size, "epochs": epochs,
               "batch_size": batch_size, "width": width, "seed": seed}
    split = data.load_split(dataset, train_size=train_size, test_size=test_size, seed=0)  # what the children load
    key = result_cache.key(config={"recipe": Recipe(width=width).to_dict(), "backends": backends, "devices": devices,
                                   "seed": seed},
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


def results_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One Markdown table for runs of :func:`launch` with ``task="train"``."""
    lines = [
        "| backend | how | devices | global batch | per-replica batch | test accuracy | training time | images/s |",
        "|:---|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['strategy']} | {r['replicas']} | {r['global_batch']} | "
            f"{r['global_batch'] // r['replicas']} | {r['test_accuracy']:.4f} | {r['seconds']:.1f} s | "
            f"{r['images_per_second']:,.0f} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------ the child process
def _tf_runs(devices: int, work) -> list[dict[str, Any]]:
    """One device (no strategy), then ``MirroredStrategy`` over ``devices`` logical CPUs."""
    import keras
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    if devices > 1:  # must happen before TensorFlow initialises its devices
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    runs = [dict(work(), strategy="no strategy (1 device)", replicas=1)]
    if devices > 1:
        names = [d.name for d in tf.config.list_logical_devices("CPU")][:devices]
        strategy = tf.distribute.MirroredStrategy(names)
        keras.backend.clear_session()  # not inside the scope: that would drop the scope's state
        with strategy.scope():
            out = work()
        runs.append(dict(out, strategy=f"MirroredStrategy ({devices} logical CPUs)",
                         replicas=int(strategy.num_replicas_in_sync)))
    return runs


def _jax_runs(devices: int, work) -> list[dict[str, Any]]:
    """One device, then ``keras.distribution.DataParallel`` over ``devices`` host devices."""
    import jax
    import keras

    found = jax.devices("cpu")
    if len(found) < devices:
        raise RuntimeError(f"asked for {devices} devices but JAX sees {len(found)}; set XLA_FLAGS before JAX starts")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=found[:1]))
    runs = [dict(work(), strategy="no distribution (1 device)", replicas=1)]
    if devices > 1:
        keras.backend.clear_session()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=found[:devices]))
        runs.append(dict(work(), strategy=f"DataParallel ({devices} host devices)", replicas=devices))
    return runs


def _step(args: argparse.Namespace, fresh: bool = True) -> dict[str, Any]:
    import keras
    import numpy as np

    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(args.batch_size, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, args.batch_size).astype("int32")
    from cnncourse import models

    keras.utils.set_random_seed(args.seed)
    model = models.build("probe_convnet", input_shape=(8, 8, 1), num_classes=3)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]
    history = model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
    after = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]
    return {"loss": float(history.history["loss"][0]),
            "moved": float(max(np.max(np.abs(a - b)) for a, b in zip(after, before))),
            "weights": [w.ravel().tolist() for w in after]}


def _train(args: argparse.Namespace, fresh: bool = True) -> dict[str, Any]:
    from cnncourse import data
    from cnncourse.experiments import recipe
    from cnncourse.profiles import Experiment

    split = data.load_split(args.dataset, train_size=args.train_size, test_size=args.test_size, seed=0)
    run = Experiment(args.train_size, args.test_size, epochs=args.epochs, batch_size=args.batch_size)
    result, _ = recipe.train(recipe.Recipe(width=args.width), split, run, seed=args.seed, fresh=fresh)
    return {"test_accuracy": result.reported_test_accuracy, "test_accuracy_plain": result.test_accuracy,
            "seconds": result.train_seconds, "images_per_second": result.images_per_second,
            "val_accuracy": result.history.get("val_accuracy", [])}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnncourse.experiments.distribute", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, required=True)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--task", choices=TASKS, default="train")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--train-size", type=int, default=4096)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.batch_size % args.devices:
        parser.error(f"--batch-size {args.batch_size} must be divisible by --devices {args.devices}")
    os.environ["KERAS_BACKEND"] = args.backend  # before keras is imported
    import keras

    if keras.backend.backend() != args.backend:
        parser.error(f"Keras was already imported with backend {keras.backend.backend()!r}")
    task = _step if args.task == "step" else _train
    if args.backend == "tensorflow":
        # keras.backend.clear_session() inside a tf.distribute scope breaks the scope, so the
        # runs clear the session before entering it and the work itself does not
        runs = _tf_runs(args.devices, lambda: task(args, fresh=False))
    else:
        runs = _jax_runs(args.devices, lambda: task(args))
    for r in runs:
        r.update(backend=args.backend, global_batch=args.batch_size)
    print(_MARK + json.dumps({"runs": runs}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
