"""Training-step speed of the recipe's network in float32 and 16-bit mixed precision, with and without XLA.

The grid notebook 10 (section 9) draws on the machine it runs on, as a benchmark: every dtype
policy × compile setting trains the recipe's network (``cnncourse.experiments.recipe``) on one
batch, the steps of all settings interleaved so that a machine that gets busier halfway slows
every row alike (:func:`cnncourse.experiments.precision.grid`). ``--write`` saves the table as
``benchmarks/results/precision_<device>.md`` (``cpu`` or ``gpu``), which notebook 10 shows
beside its own measurement. On a GPU older than compute capability 8.0 add ``mixed_float16``
(``--policies float32 mixed_float16``): it has no bfloat16 tensor cores.

Usage::

    python benchmarks/precision.py                       # print the table (batch 256, 12 steps)
    python benchmarks/precision.py --batch 512 --steps 30 --write
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per setting")
    parser.add_argument("--eager-steps", type=int, default=3, help="timed steps without XLA on JAX (op by op: slow)")
    parser.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--width", type=int, default=16, help="the recipe network's width")
    parser.add_argument("--write", action="store_true", help="write results/precision_<device>.md")
    args = parser.parse_args(argv)
    for name in ("batch", "steps", "eager_steps", "width"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    import cnncourse
    import keras
    import numpy as np

    from cnncourse.backend import acceleration
    from cnncourse.experiments import precision, recipe

    bad = [p for p in args.policies if p not in precision.POLICIES]
    if bad:
        parser.error(f"unknown policies {bad}; allowed: {', '.join(precision.POLICIES)}")
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.batch, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, args.batch)
    base = recipe.Recipe(width=args.width)
    load = os.getloadavg()[0]
    rows = precision.grid(lambda dtype: recipe.build_model(base, (28, 28, 1), 10, dtype=dtype), x, y,
                          policies=args.policies, jit=(False, True), steps=args.steps, eager_steps=args.eager_steps,
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), progress=True)
    device = cnncourse.device_description()
    flags = precision.cpu_16bit_instructions()
    text = "\n".join([
        f"# Mixed precision and XLA: training steps of the recipe's network ({device})",
        "",
        f"Written by `benchmarks/precision.py --write` on {time.strftime('%Y-%m-%d')}; Keras {keras.__version__} on "
        f"{keras.backend.backend()}; batch {args.batch} of 28×28×1, width {args.width}; median of {args.steps} timed "
        f"steps ({args.eager_steps} without XLA on JAX) after a first that traces and compiles, settings interleaved; "
        f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
        + ("" if not device.startswith("CPU") else
           f" 16-bit instructions this CPU reports: {', '.join(flags) or 'none'}."),
        f"`cnncourse.backend.acceleration()` picks here: {acceleration()}.",
        "",
        precision.grid_table(rows),
        "",
    ])
    print(text)
    if args.write:
        RESULTS.mkdir(exist_ok=True)
        kind = "cpu" if device.startswith("CPU") else "gpu"
        (RESULTS / f"precision_{kind}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
