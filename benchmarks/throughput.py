"""Throughput of the course's ResNet-50 and VGG-16 builders against ``keras.applications``.

Our builders should cost nothing over the reference implementations: same layers, same
parameters, same speed. This script measures images per second for training
(``train_on_batch`` steps) and inference (``predict_on_batch``) of both implementations at the
same input size, batch and dtype, in one process, alternating ours/theirs in every repeat so
that a busy machine slows both alike, and reports medians and the ratio ours/keras (≥ 0.95
expected). ``--write`` saves the Markdown table as
``benchmarks/results/throughput_<device>.md``.

Defaults suit a 2-core CPU (64×64 input, batch 8, a few steps: minutes); on a GPU use e.g.
``--size 224 --batch 64 --steps 20``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("resnet50", "vgg16")


# keras.applications.VGG16 has no dropout in its classifier; the paper's (and our default)
# fc6/fc7 dropout 0.5 is extra work in training, so the comparison builds the same graph.
SAME_GRAPH = {"vgg16": {"dropout": 0.0}}


def _ours(name: str, size: int, classes: int):
    from cnncourse import models

    return models.build(name, input_shape=(size, size, 3), num_classes=classes, **SAME_GRAPH.get(name, {}))


def _keras(name: str, size: int, classes: int):
    import keras

    make = {"resnet50": keras.applications.ResNet50, "vgg16": keras.applications.VGG16}[name]
    return make(weights=None, input_shape=(size, size, 3), classes=classes)


def _time(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - start


def measure(name: str, size: int, batch: int, steps: int, repeats: int, classes: int, dtype: str) -> dict:
    """Median images/s for ours and keras.applications, training and inference."""
    import keras
    import numpy as np

    keras.config.set_dtype_policy(dtype)  # both implementations build under the same policy
    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, batch)
    built = {}
    for impl, make in (("ours", _ours), ("keras", _keras)):
        keras.utils.set_random_seed(0)
        model = make(name, size, classes)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
        model.train_on_batch(x, y)  # compile / trace once, outside the timings
        model.predict_on_batch(x)
        built[impl] = model
    samples: dict[str, dict[str, list[float]]] = {impl: {"train": [], "infer": []} for impl in built}
    for _ in range(repeats):
        for impl, model in built.items():  # alternate: ours, keras, ours, keras ...
            seconds = _time(lambda: model.train_on_batch(x, y), steps)
            samples[impl]["train"].append(batch * steps / seconds)
            seconds = _time(lambda: model.predict_on_batch(x), steps)
            samples[impl]["infer"].append(batch * steps / seconds)
    params = {impl: model.count_params() for impl, model in built.items()}
    del built
    keras.backend.clear_session()
    return {
        "name": name,
        "params": params,
        "median": {impl: {mode: statistics.median(v) for mode, v in modes.items()} for impl, modes in samples.items()},
    }


def device_slug() -> str:
    from cnncourse import device_description

    text = device_description()
    if text.startswith("CPU"):
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "_", text.lower().removeprefix("gpu: ")).strip("_")


def table(results: list[dict], args: argparse.Namespace, env: str) -> str:
    lines = [
        "# Throughput: cnncourse builders vs keras.applications",
        "",
        f"`{env}`",
        "",
        f"Input {args.size}×{args.size}×3, batch {args.batch}, {args.dtype}, {args.classes} classes; "
        f"{args.steps} steps per sample, median of {args.repeats} alternating samples. "
        "Training = `train_on_batch` (SGD momentum), inference = `predict_on_batch`. "
        + "".join(f"Ours built with {kw} for {m}, the graph keras.applications builds. " for m, kw in SAME_GRAPH.items()),
        "",
        "| model | mode | ours (img/s) | keras.applications (img/s) | ratio ours/keras | params equal |",
        "|:---|:---|---:|---:|---:|:---|",
    ]
    for r in results:
        same = "yes" if r["params"]["ours"] == r["params"]["keras"] else f"no ({r['params']['ours']:,} vs {r['params']['keras']:,})"
        for mode in ("train", "infer"):
            ours, theirs = r["median"]["ours"][mode], r["median"]["keras"][mode]
            lines.append(f"| {r['name']} | {mode} | {ours:,.1f} | {theirs:,.1f} | {ours / theirs:.3f} | {same} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--size", type=int, default=64, help="input height = width (>= 32)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed sample")
    parser.add_argument("--repeats", type=int, default=5, help="alternating samples per implementation")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dtype", choices=("float32", "mixed_bfloat16", "mixed_float16"), default="float32",
                        help="Keras dtype policy for both implementations")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a ratio is below 0.95")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/throughput_<device>.md")
    args = parser.parse_args(argv)
    if args.size < 32 or args.batch < 1 or args.steps < 1 or args.repeats < 1 or args.classes < 2:
        parser.error("need --size >= 32, --batch/--steps/--repeats >= 1, --classes >= 2")

    import cnncourse

    env = cnncourse.environment_line()
    print(env, flush=True)
    results = []
    for name in args.models:
        start = time.perf_counter()
        results.append(measure(name, args.size, args.batch, args.steps, args.repeats, args.classes, args.dtype))
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    text = table(results, args, env)
    print(text)
    if args.write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"throughput_{device_slug()}.md"
        path.write_text(text)
        print(f"wrote {path}")
    worst = min(r["median"]["ours"][m] / r["median"]["keras"][m] for r in results for m in ("train", "infer"))
    if worst < 0.95:
        print(f"warning: lowest ratio ours/keras is {worst:.3f} < 0.95", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
