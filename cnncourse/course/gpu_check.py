"""The ``gpu`` profile, kept ready to run: a dry run of its code paths, time estimates, one command.

No GPU has run this course's ``gpu`` profile yet, and a profile nobody runs rots: a builder
option it alone uses breaks, a batch size it alone uses runs out of memory. Three pieces keep it
honest until a GPU run exists, and record that run when one is lent:

* :func:`dry_run` turns one of the profile's experiments into the same experiment with a
  tiny number of steps: the model sizes, batch size and options stay (those are the code paths
  that differ between profiles), only the counts shrink. The unit tests train the ``gpu``
  profile's networks that way on CPU (``tests/unit/test_gpu_check.py``).
* :func:`estimate_minutes` gives each notebook's ``gpu`` time until one is measured, scaled
  from its measured ``cpu`` time by the work each experiment does in the two profiles and by
  a speed-up computed from counted multiply-adds: the CPU's sustained rate is measured (the
  throughput benchmark's ResNet-50 training images/s times its counted MACs), the GPU's is an
  assumption written down below (a fraction of the H200's measured bf16 matrix rate, with a
  floor per training step). The course map labels these numbers as estimates.
* ``python -m cnncourse gpu-check`` (``make gpu-check``) runs every notebook in the ``gpu``
  profile within a device-time budget, in order, skipping (and saying so) a notebook whose
  estimate no longer fits, records the measured times beside the device's name in
  ``results/timings.json`` (which replaces the estimates in the course map) and writes
  ``results/gpu_check.md``; then the benchmarks, with their tables named by device.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cnncourse import checks
from cnncourse.profiles import ENV_VAR, PROFILES, Experiment, Profile, gpu_available

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
THROUGHPUT_TABLE = ROOT / "benchmarks" / "results" / "throughput_cpu.md"
REPORT = ROOT / "results" / "gpu_check.md"

# Options that count work (steps, points, members, minutes) shrink in a dry run; every other
# option (widths, depths, model lists, LRN on/off, ingredients) is a code path and stays.
DRY_COUNTS: Mapping[str, int | float] = {
    "ascent_steps": 2, "embed_points": 40, "budget_minutes": 0.1, "ensemble": 2,
    "ablation_epochs": 1, "dist_epochs": 1, "range_steps": 2, "sweep_epochs": 1, "where_epochs": 1,
    "where_check": 4, "cycles": 2, "steps": 2, "eager_steps": 1, "race_epochs": 1,
}
# → the dry training size (``*_train``) or one batch (the others)
DRY_SIZES = ("ablation_train", "ablation_test", "dist_train", "dist_test", "sweep_train", "validation",
             "validation_size", "where_train")

# The speed-up assumption behind the gpu estimates (replace by a measured run when there is one).
RESNET50_64_MACS = 316_817_408  # one 64×64 image, counted by cnncourse.inspection.analysis.count_macs
H200_BF16_FLOPS = 790e12  # the H200's large bf16 matrix product, as measured on the lent machine
GPU_UTILISATION = 0.05  # small CNNs at batch 128 keep a few percent of a GPU's matrix units busy
STEP_SECONDS = 0.003  # floor per training step on a GPU: launch, dispatch and the host input path
TRAIN_IMAGES = 60_000  # a training size of None means the whole Fashion-MNIST training split


def dry_run(exp: Experiment, steps: int = 2) -> Experiment:
    """``exp`` with ``steps`` training steps of its own batch size, one epoch, one seed.

    Batch size, model sizes and every option that selects a code path are kept; options that
    only count work shrink (:data:`DRY_COUNTS`).
    """
    steps = checks.positive_int("steps", steps)
    if not isinstance(exp, Experiment):
        raise ValueError(f"exp must be a cnncourse.profiles.Experiment, got {type(exp).__name__}")
    train, test = steps * exp.batch_size, exp.batch_size
    options = dict(exp.options)
    for key in options:
        if key in DRY_COUNTS:
            options[key] = DRY_COUNTS[key]
        elif key in DRY_SIZES:
            options[key] = train if key.endswith("_train") else test
    return Experiment(train, test, epochs=1, batch_size=exp.batch_size, seeds=1, options=options)


def dry_profile(name: str = "gpu", steps: int = 2) -> Profile:
    """Every experiment of profile ``name`` as a :func:`dry_run` (a new ``Profile``, not registered)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    base = PROFILES[name]
    return Profile(f"{name}-dry", f"{base.description}, {steps} steps per experiment",
                   {key: dry_run(exp, steps) for key, exp in base.experiments.items()})


_EXPERIMENT = re.compile(r"""prof(?:ile\(\))?\[["'](\w+)["']\]""")


def notebook_experiments(path: Path) -> tuple[str, ...]:
    """The profile experiments a notebook looks up (``prof["name"]``), in first-use order."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    found: dict[str, None] = {}
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            for name in _EXPERIMENT.findall("".join(cell.get("source", ""))):
                found.setdefault(name, None)
    return tuple(found)


def _variants(exp: Experiment) -> int:
    """How many networks one seed trains: the model list, the depths, else one."""
    for key in ("models", "archs", "depths"):
        if exp.option(key):
            return len(exp.option(key))
    return 1


def work(exp: Experiment) -> float:
    """Relative training work: images seen × networks × their relative cost.

    A width multiplier ``w`` scales a convolution's multiply-adds by ``w²``; several depths
    cost in proportion to their sum. Only ratios of this number between profiles are used.
    """
    images = (exp.train_size or TRAIN_IMAGES) * exp.epochs * exp.seeds
    widths = [float(v) ** 2 for k, v in exp.options.items() if k.endswith("_width")]
    width = sum(widths) / len(widths) if widths else 1.0
    depths = exp.option("depths")
    cost = float(sum(depths)) if depths else float(_variants(exp))
    return images * width * cost


def cpu_flops_per_second(table: Path = THROUGHPUT_TABLE) -> float:
    """The 2-core CPU's sustained training rate: ResNet-50 images/s × 6 × its counted MACs.

    A training step costs about three forward passes (forward, and the two products of the
    backward pass), and one multiply-add is two floating-point operations.
    """
    try:
        text = table.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the CPU throughput table {table} ({exc}); "
                         "run `python benchmarks/throughput.py --write` to make it") from None
    match = re.search(r"^\|\s*resnet50\s*\|\s*train\s*\|\s*([\d.]+)\s*\|", text, re.M)
    if not match:
        raise ValueError(f"{table} has no 'resnet50 | train' row with images/s")
    return float(match.group(1)) * 6 * RESNET50_64_MACS


def speedup(table: Path = THROUGHPUT_TABLE) -> float:
    """Assumed GPU training rate over the measured CPU one (see the module docstring)."""
    return H200_BF16_FLOPS * GPU_UTILISATION / cpu_flops_per_second(table)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A notebook's estimated ``gpu`` minutes and what they are made of."""

    minutes: float
    overhead: float  # minutes that do not scale with training: its smoke run
    training: float  # the cpu run's training minutes, scaled to the gpu profile's work
    steps: int  # gpu-profile training steps (the per-step floor)
    experiments: tuple[str, ...]


def estimate(notebook: str | Path, *, times: Mapping[str, Mapping[str, object]] | None = None,
             table: Path = THROUGHPUT_TABLE) -> Estimate | None:
    """Estimated ``gpu`` minutes for one notebook, or ``None`` without its measured cpu time.

    The cpu run's minutes beyond its smoke run are training; each experiment's share of them is
    its share of the cpu profile's work, scaled by its gpu/cpu work ratio and divided by
    :func:`speedup`, but never below ``steps × STEP_SECONDS`` nor below the experiment's own
    time budget (``budget_minutes``: a run that trains for a fixed time). The smoke run's minutes (start-up,
    compilation, figures) are added once.
    """
    from cnncourse.course.course_map import measured_times

    path = Path(notebook) if Path(notebook).is_absolute() else NOTEBOOK_DIR / Path(notebook).name
    times = measured_times() if times is None else times
    cpu, smoke = times.get("cpu", {}).get(path.name), times.get("smoke", {}).get(path.name)
    if cpu is None or not path.is_file():
        return None
    names = [n for n in notebook_experiments(path) if n in PROFILES["gpu"].experiments]
    overhead = min(float(smoke.minutes), float(cpu.minutes)) if smoke is not None else 0.0
    train_cpu = max(float(cpu.minutes) - overhead, 0.0)
    cpu_work = {n: work(PROFILES["cpu"][n]) for n in names}
    total = sum(cpu_work.values()) or 1.0
    rate = speedup(table)
    training, steps = 0.0, 0
    for n in names:
        gpu = PROFILES["gpu"][n]
        n_steps = -(-(gpu.train_size or TRAIN_IMAGES) // gpu.batch_size) * gpu.epochs * gpu.seeds * _variants(gpu)
        scaled = train_cpu * work(gpu) / total / rate  # its share of the cpu time × its gpu/cpu work ratio
        budget = float(gpu.option("budget_minutes", 0))
        if "race_epochs" in gpu.options:  # the baseline of the race trains for the same budget
            training += budget
        training += max(scaled, n_steps * STEP_SECONDS / 60, budget)
        steps += n_steps
    return Estimate(round(overhead + training, 2), overhead, training, steps, tuple(names))


def estimate_minutes(notebook: str | Path, *, times: Mapping[str, Mapping[str, object]] | None = None) -> float | None:
    found = estimate(notebook, times=times)
    return None if found is None else found.minutes


# ---------------------------------------------------------------------------------------------
# python -m cnncourse gpu-check


@dataclasses.dataclass
class Row:
    notebook: str
    estimate: float | None
    status: str
    minutes: float | None = None


def report(rows: Sequence[Row], device: str, budget: float, *, jobs: int = 1, wall: float | None = None) -> str:
    together = f"{jobs} notebooks at a time" if jobs > 1 else "one notebook at a time"
    took = "" if wall is None else f" The whole run took {wall:.1f} min of wall-clock time."
    lines = [f"# The `gpu` profile on {device}", "",
             f"`python -m cnncourse gpu-check --jobs {jobs}`, budget {budget:g} min of device time, {together}; "
             f"estimates as in the course map (each notebook alone).{took}", "",
             "| notebook | estimate (min) | measured (min) | status |", "|:---|---:|---:|:---|"]
    for r in rows:
        est = "—" if r.estimate is None else f"{r.estimate:.1f}"
        got = "—" if r.minutes is None else f"{r.minutes:.1f}"
        lines.append(f"| {r.notebook} | {est} | {got} | {r.status} |")
    return "\n".join(lines) + "\n"


def makespan(minutes: Sequence[float], jobs: int) -> float:
    """Minutes until ``jobs`` parallel runners finish tasks of ``minutes``, longest first.

    The longest-first greedy order (each task to the runner free first) is what :func:`check` uses,
    so this is the wall-clock estimate of a ``--jobs`` run.
    """
    jobs = checks.integer("jobs", jobs, minimum=1)
    ends = [0.0] * jobs
    for m in sorted(minutes, reverse=True):
        i = ends.index(min(ends))
        ends[i] += m
    return max(ends)


def check(notebooks: Sequence[Path], *, budget_minutes: float, out_dir: Path, allow_cpu: bool = False,
          report_path: Path = REPORT, jobs: int = 1) -> list[Row]:
    """Run ``notebooks`` in the ``gpu`` profile within ``budget_minutes``; record what ran.

    ``jobs`` > 1 runs that many notebooks at once, longest estimate first, in kernels that share
    the device: the course's networks are small, so one keeps a large GPU a few percent busy
    and most of each notebook's time is host work (start-up, compilation, input, plotting)
    that overlaps. JAX is then told not to reserve most of the GPU's memory for the first
    kernel, TensorFlow to grow its share as needed. A notebook starts only if its estimate fits
    the time left; one that does not is skipped and listed.
    """
    from concurrent.futures import ThreadPoolExecutor

    from cnncourse import device_description
    from cnncourse.course.course_map import measured_times
    from cnncourse.course.runner import NotebookFailed, execute, record_timings

    checks.positive_float("budget_minutes", budget_minutes)
    jobs = checks.integer("jobs", jobs, minimum=1)
    if not allow_cpu and not gpu_available():
        raise ValueError("the Keras backend sees no GPU: gpu-check measures the gpu profile on a GPU "
                         "(KERAS_BACKEND=jax with jax[cuda], or TensorFlow's GPU build); "
                         "--allow-cpu runs it anyway (for testing the command)")
    os.environ[ENV_VAR] = "gpu"
    if jobs > 1:  # the kernels inherit these: several processes share one GPU's memory
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    device = device_description()
    deadline = time.monotonic() + budget_minutes * 60
    times = measured_times()  # read once for every notebook's estimate
    guesses = {nb: estimate_minutes(nb, times=times) for nb in notebooks}
    # longest first (unknown estimates count as long): the order that finishes a parallel run soonest
    order = sorted(notebooks, key=lambda nb: -(guesses[nb] if guesses[nb] is not None else float("inf")))
    rows: dict[Path, Row] = {}
    done_runs = []

    def run_one(nb: Path) -> None:
        left, guess = (deadline - time.monotonic()) / 60, guesses[nb]
        if left <= 0 or (guess is not None and guess > left):
            rows[nb] = Row(nb.name, guess, f"skipped: {left:.1f} min of the budget left")
            print(f"{nb.name}: skipped ({left:.1f} min left, estimate {guess})", flush=True)
            return
        print(f"{nb.name}: running (estimate {guess} min, {left:.1f} min left) ...", flush=True)
        try:
            done = execute(nb, out_dir, timeout=max(int(left * 60), 1))
        except NotebookFailed as exc:
            error = " ".join(exc.error.split()).replace("|", "/")[:200]
            rows[nb] = Row(nb.name, guess, f"failed: cell {exc.cell_index}: {error}")
            print(f"{nb.name}: FAILED: {exc}", flush=True)
            return
        done_runs.append(done)
        rows[nb] = Row(nb.name, guess, "ran", round(done.seconds / 60, 2))
        print(f"{nb.name}: ok in {done.seconds:.0f} s", flush=True)

    started = time.monotonic()
    if jobs == 1:
        for nb in notebooks:  # in course order
            run_one(nb)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(run_one, order))
    record_timings(sorted(done_runs, key=lambda d: d.notebook.name), "gpu")  # one writer, after every run
    ordered = [rows[nb] for nb in notebooks]
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(report(ordered, device, budget_minutes, jobs=jobs,
                                  wall=(time.monotonic() - started) / 60), encoding="utf-8")
    print(f"wrote {report_path}", flush=True)
    return ordered


def cli(argv: list[str]) -> int:
    from cnncourse.course.runner import BUILD_DIR, course_notebooks

    parser = argparse.ArgumentParser(prog="python -m cnncourse gpu-check", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: all, in order)")
    parser.add_argument("--budget-minutes", type=float, default=9.0, help="device time for the notebooks")
    parser.add_argument("--out", type=Path, default=BUILD_DIR / "gpu", help="executed notebooks go here")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once on the one device (longest first)")
    parser.add_argument("--allow-cpu", action="store_true", help="run even where Keras sees no GPU")
    parser.add_argument("--estimates", action="store_true", help="print the estimates and exit")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or course_notebooks()
    if args.estimates:
        from cnncourse.course.course_map import measured_times

        times = measured_times()
        found = {nb: estimate(nb, times=times) for nb in notebooks}
        for nb, e in found.items():
            print(f"{nb.name}: " + ("no cpu time measured" if e is None else
                  f"{e.minutes:.1f} min ({e.steps} steps; {', '.join(e.experiments) or 'no training'})"))
        minutes = [e.minutes for e in found.values() if e is not None]
        print(f"one at a time: {sum(minutes):.1f} min; {args.jobs} at a time, longest first: "
              f"{makespan(minutes, args.jobs):.1f} min (of a budget of {args.budget_minutes:g})")
        return 0
    try:
        rows = check(notebooks, budget_minutes=args.budget_minutes, out_dir=args.out, allow_cpu=args.allow_cpu,
                     jobs=args.jobs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if all(r.status == "ran" for r in rows) else 1
