"""The input path and the recipe's training speed, TensorFlow and JAX side by side in one run.

``cnncourse.data.pipeline`` feeds ``model.fit`` with ``tf.data`` on TensorFlow and with a
``keras.utils.PyDataset`` elsewhere: batches gathered by worker threads that prefetch, the
augmentation run as one XLA-compiled call per batch on JAX. Whether that input side keeps up
is a question of each backend, so this script starts one child process per installed backend
(a backend is chosen once per process) and puts their rows in one table:

* **input path**: ``fit`` of a model that does almost nothing (flatten + one dense layer), so
  the epoch's time is the time to shuffle, gather, augment and hand over the batches; with
  the recipe's flip alone and with flip + a 2-pixel shift + cutout, and on JAX/torch without
  prefetching (``workers=1``: Keras then makes each batch in the training loop itself) and with
  the default prefetching threads (:func:`cnncourse.data.batches.default_workers`);
* **recipe**: ``fit`` of the recipe's network (``cnncourse.experiments.recipe``, width 16) on
  the same pipeline with its flip, compiled and in the precision
  :func:`cnncourse.backend.acceleration` picks for the device (printed in the table), through
  each input path: the images/s a training run of notebook 10 gets.

Every number is the median over the timed epochs after a first one that traces and compiles.
Fashion-MNIST-sized images (28×28×1, random here: speed does not depend on the pixels).

Usage::

    python benchmarks/input_pipeline.py            # print the table
    python benchmarks/input_pipeline.py --write    # also write results/input_pipeline_<device>.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"
MARK = "INPUT-PIPELINE-ROWS "


def _epoch_seconds(model, ds, epochs: int) -> list[float]:
    import keras

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    times: list[float] = []
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[Clock()])
    return times[1:]  # the first epoch traces and compiles


def child(args: argparse.Namespace) -> list[dict]:
    import cnncourse  # noqa: F401  picks the backend's quiet start-up
    import keras
    import numpy as np

    from cnncourse import data
    from cnncourse.backend import acceleration
    from cnncourse.data.batches import default_workers
    from cnncourse.experiments import recipe

    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.images, 28, 28, 1)).astype("float32")
    y = recipe.one_hot(rng.integers(0, 10, args.images), 10)
    light = recipe.Recipe()
    heavy = recipe.Recipe(shift=2, cutout=8)
    rows = []
    if backend == "tensorflow":
        paths = [("tf.data (prefetch: AUTOTUNE)", None)]
    else:
        # Keras runs a PyDataset with workers=1 in the training loop itself; with more, threads prefetch
        paths = [("PyDataset, no prefetch (workers=1)", 1),
                 (f"PyDataset, {default_workers()} prefetching threads (default)", None)]
    for what, r in (("flip", light), ("flip + shift 2 + cutout 8", heavy)):
        for path, workers in paths:
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
            model.compile(keras.optimizers.SGD(0.01), keras.losses.CategoricalCrossentropy(from_logits=True))
            kwargs = {} if workers is None else {"workers": workers}
            ds = data.pipeline(x, y, args.batch_size, augment=recipe.augmenter(r, seed=0), seed=0, **kwargs)
            seconds = statistics.median(_epoch_seconds(model, ds, args.epochs + 1))
            rows.append({"backend": backend, "part": "input path", "how": path, "augmentation": what,
                         "precision": "float32", "xla": bool(model.jit_compile), "images_per_second": args.images / seconds})
            print(f"{backend}: input path, {path}, {what}: {args.images / seconds:,.0f} images/s", file=sys.stderr, flush=True)
    accel = acceleration()
    for path, workers in paths:
        keras.utils.set_random_seed(0)
        model = recipe.build_model(light, (28, 28, 1), 10,
                                   dtype=None if accel.dtype_policy == "float32" else accel.dtype_policy)
        recipe.compile_model(light, model, total_steps=10_000)
        model.jit_compile = accel.jit_compile  # what acceleration() picks; the recipe turns XLA on only on a GPU
        kwargs = {} if workers is None else {"workers": workers}
        ds = data.pipeline(x, y, args.batch_size, augment=recipe.augmenter(light, seed=0), seed=0, **kwargs)
        seconds = statistics.median(_epoch_seconds(model, ds, args.epochs + 1))
        rows.append({"backend": backend, "part": "recipe (width 16)", "how": path, "augmentation": "flip",
                     "precision": accel.dtype_policy, "xla": bool(model.jit_compile),
                     "images_per_second": args.images / seconds})
        print(f"{backend}: recipe, {path}: {args.images / seconds:,.0f} images/s", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], device: str, args: argparse.Namespace, load: tuple[float, float]) -> str:
    import keras

    lines = [
        f"# Input path and recipe throughput, TensorFlow and JAX side by side ({device})",
        "",
        f"Written by `benchmarks/input_pipeline.py --write` on {time.strftime('%Y-%m-%d')}; Keras {keras.__version__}. "
        f"{args.images:,} images of 28×28×1 per epoch, batch {args.batch_size}, median of {args.epochs} epochs after "
        f"a first that compiles; each backend in its own process, one after the other (load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end: on a shared machine compare rows of one run).",
        "Input path = `fit` of flatten + one dense layer, so the time is the pipeline's; recipe = `fit` of the "
        "recipe's network on the same pipeline, compiled and in the precision `cnncourse.backend.acceleration()` picks.",
        "",
        "| backend | part | input path | augmentation | precision | XLA | images/s |",
        "|:---|:---|:---|:---|:---|:---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['part']} | {r['how']} | {r['augmentation']} | {r['precision']} | "
                     f"{'yes' if r['xla'] else 'no'} | {r['images_per_second']:,.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8192, help="images per epoch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one that compiles)")
    parser.add_argument("--backends", nargs="*", default=None, help="default: every installed one of tensorflow, jax")
    parser.add_argument("--write", action="store_true", help="write results/input_pipeline_<device>.md")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("images", "batch_size", "epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.child:
        print(MARK + json.dumps(child(args)), flush=True)
        return 0
    import cnncourse
    from cnncourse.experiments.distribute import available_backends

    backends = args.backends or available_backends()
    unknown = [b for b in backends if b not in available_backends()]
    if unknown:
        parser.error(f"not installed here: {', '.join(unknown)}; installed: {', '.join(available_backends())}")
    rows, start = [], os.getloadavg()[0]
    for backend in backends:
        cmd = [sys.executable, __file__, "--child", "--images", str(args.images), "--batch-size", str(args.batch_size),
               "--epochs", str(args.epochs)]
        done = subprocess.run(cmd, env={**os.environ, "KERAS_BACKEND": backend}, stdout=subprocess.PIPE, text=True,
                              cwd=str(ROOT))
        found = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
        if done.returncode or not found:
            print(f"{backend}: the child failed (exit {done.returncode})", file=sys.stderr)
            return 1
        rows += json.loads(found[-1][len(MARK):])
    description = cnncourse.device_description()
    kind = "cpu" if description.startswith("CPU") else "gpu"
    text = table(rows, description, args, (start, os.getloadavg()[0]))
    print(text)
    if args.write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"input_pipeline_{kind}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
