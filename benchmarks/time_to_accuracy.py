"""Time to accuracy: the course's fast recipe against the keras-io convnet, in one run.

A speed claim means little without a baseline measured on the same machine at the same
time, so this script trains both, one after the other, on the same data: the keras.io
"simple MNIST convnet" (34,826 parameters, Adam, batch 128, 15 epochs; no augmentation) and
the recipe of :mod:`cnncourse.experiments.recipe` (sizes from the active profile's ``recipe`` row, a
wall-clock budget, test-time flip averaging). For each it reports the final test accuracy,
the training time (validation passes excluded) until the test accuracy first reached the
target, the epochs that took, and images/s. The machine's load average is printed beside
the table, because on a shared machine every time here is an upper bound.

``--trials`` also trains the recipe at the other lengths of :data:`TRIALS`, one row each, to show
how close each comes to the CPU targets (≥ 93 % within 4 minutes, ≥ 94 % within 10): the
one-cycle schedule has to end inside its budget, so each length is its own run, not a cut.

``--precision mixed_bfloat16`` trains the recipe in that dtype policy instead of the one
:func:`cnncourse.backend.acceleration` picks (float32 on a CPU; notebook 10 measures a bfloat16 step
at about 0.8× the time of a float32 one on a CPU with ``avx512_bf16``), and ``--lengths 7:240 18:600``
trains the recipe at exactly those lengths (epochs:seconds); such a table has the policy in its name.

``--write`` saves the table as ``benchmarks/results/time_to_accuracy_<device>.md``;
``--quick`` trains on a small subset for a minute (for tests, not for the table).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results"
KERAS_IO_EPOCHS, KERAS_IO_BATCH = 15, 128  # keras.io's example trains 15 epochs at batch 128
COLUMNS = ("model", "params", "budget", "epochs", "final test accuracy", "epochs to target", "time to target",
           "training time", "images/s")
# (epochs, budget in seconds) of the recipe's other tried lengths: the epochs that fit 4 and 10 minutes
# of training at 1,600-2,000 images/s, the recipe's range on this machine (30-37 s an epoch), with a margin
TRIALS = ((6, 240.0), (16, 600.0))


def device_slug() -> str:
    import re

    from cnncourse import device_description

    text = device_description()
    if text.startswith("CPU"):
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "_", text.lower().removeprefix("gpu: ")).strip("_")


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "not reached"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def row(result, target: float, budget: float | None) -> list[str]:
    epochs_to = result.epochs_to(target)
    return [
        result.label,
        f"{result.params:,}",
        "–" if budget is None else _fmt_time(budget),
        str(result.epochs),
        f"{result.reported_test_accuracy:.4f}",
        "–" if epochs_to is None else str(epochs_to),
        _fmt_time(result.time_to(target)),
        _fmt_time(result.train_seconds),
        f"{result.images_per_second:,.0f}",
    ]


def table(results, args: argparse.Namespace, env: str, loads: tuple[float, float]) -> str:
    lines = [
        f"# Time to {100 * args.target:.0f}% test accuracy: {args.dataset}",
        "",
        f"`{env}`",
        "",
        f"Load average (1 min) at start / end: {loads[0]:.1f} / {loads[1]:.1f} on {os.cpu_count()} cores "
        "(when it is above the core count, other work shared the machine and every time is an upper bound).",
        f"Train {args.train_desc}, test {args.test_desc}. Times are training time only (the per-epoch "
        "validation passes that find the time-to-target are excluded); the target is checked once per "
        f"epoch on the single-view test accuracy; the final accuracy is the recipe's own (with test-time flips "
        f"where they keep labels). Recipe: `{args.recipe_desc}`; a row's budget stops its training, and its "
        f"epochs set the length of its one-cycle schedule; it trains in {args.accel.dtype_policy}"
        f"{' with' if args.accel.jit_compile else ' without'} XLA ({args.accel.reason}). "
        f"keras-io convnet: Adam, batch {KERAS_IO_BATCH}, {args.keras_io_epochs} epochs, no augmentation.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|:---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    for r, budget in results:
        lines.append("| " + " | ".join(row(r, args.target, budget)) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist", choices=("fashion_mnist", "mnist", "cifar10"))
    parser.add_argument("--target", type=float, default=None, help="default: 0.93 on CPU, 0.95 on a GPU")
    parser.add_argument("--budget", type=float, default=600.0, help="wall-clock training budget (s) of the recipe")
    parser.add_argument("--profile", default=None, help="profile whose 'recipe' row sizes the run (default: active)")
    parser.add_argument("--trials", action="store_true", help="also train the recipe at the lengths of TRIALS")
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16", "mixed_float16"), default=None,
                        help="the recipe's dtype policy (default: what cnncourse.backend.acceleration() picks)")
    parser.add_argument("--lengths", nargs="+", default=None, metavar="EPOCHS:SECONDS",
                        help="train the recipe at exactly these lengths, e.g. 7:240 18:600")
    parser.add_argument("--quick", action="store_true", help="a small subset, 1 epoch each (a smoke test)")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/time_to_accuracy_<device>.md")
    args = parser.parse_args(argv)
    if not 0 < (args.target or 0.5) < 1 or args.budget <= 0:
        parser.error("need 0 < --target < 1 and --budget > 0")
    if args.quick and args.write:
        parser.error("--quick runs are smoke tests and are never written as a results table")
    asked = None
    if args.lengths is not None:
        try:
            asked = [(int(e), float(b)) for e, b in (item.split(":") for item in args.lengths)]
        except ValueError:
            parser.error(f"--lengths takes EPOCHS:SECONDS pairs such as 7:240, got {' '.join(args.lengths)}")
        if not all(e >= 1 and b > 0 for e, b in asked):
            parser.error("--lengths needs epochs >= 1 and seconds > 0")
    if args.precision is not None:  # read by cnncourse.backend.acceleration(), which the recipe compiles with
        from cnncourse.backend import PRECISION_VAR

        os.environ[PRECISION_VAR] = args.precision

    import cnncourse
    from cnncourse import data
    from cnncourse.experiments import recipe
    from cnncourse.profiles import Experiment

    prof = cnncourse.setup(0, args.profile, deterministic=False, quiet=True)
    env = cnncourse.environment_line()
    print(env, flush=True)
    if args.target is None:
        args.target = 0.95 if recipe.on_gpu() else 0.93
    run = prof["recipe"]
    args.keras_io_epochs = KERAS_IO_EPOCHS
    if args.quick:
        run = Experiment(2048, 1000, epochs=1, batch_size=256)
        args.keras_io_epochs = 1
    image_size = 32 if args.dataset == "cifar10" else None
    split = data.load_split(args.dataset, train_size=run.train_size, test_size=run.test_size, image_size=image_size)
    args.train_desc = f"{len(split.x_train):,} images"
    args.test_desc = f"{len(split.x_test):,} images"
    base = recipe.Recipe.for_run(args.dataset, run, **({"width": 8} if args.quick else {}))
    args.recipe_desc = f"{base}, batch {run.batch_size}"
    load_start = os.getloadavg()[0]
    results = []
    start = time.perf_counter()
    baseline, _ = recipe.train_keras_io(split, args.keras_io_epochs, batch_size=KERAS_IO_BATCH)
    results.append((baseline, None))
    print(f"keras-io convnet: {baseline.reported_test_accuracy:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    from cnncourse.backend import acceleration

    args.accel = acceleration()
    if args.quick:
        lengths = [(run.epochs, args.budget)]
    elif asked is not None:  # exactly the lengths asked for
        lengths = asked
    else:
        lengths = [(run.epochs, args.budget)] + (list(TRIALS) if args.trials else [])
    for epochs, budget in sorted(set(lengths)):
        start = time.perf_counter()
        label = f"cnncourse recipe (fast ResNet), {epochs} epoch{'' if epochs == 1 else 's'}"
        ours, _ = recipe.train(base, split, dataclasses.replace(run, epochs=epochs), budget_seconds=budget, label=label)
        results.append((ours, budget))
        print(f"{label}: {ours.reported_test_accuracy:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    text = table(results, args, env, (load_start, os.getloadavg()[0]))
    print(text)
    if args.write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        name = (f"time_to_accuracy_{device_slug()}{'' if args.dataset == 'fashion_mnist' else '_' + args.dataset}"
                f"{'' if args.precision is None else '_' + args.precision}.md")
        path = RESULTS / name
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
