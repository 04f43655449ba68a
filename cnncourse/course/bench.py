"""``python -m cnncourse bench``: run every benchmark script and rewrite its results table.

Benchmarks live as scripts in ``benchmarks/`` (each with ``main(argv)`` and a ``--write``
flag that writes ``benchmarks/results/<name>_<device>.md``); speed is measured there, side by
side in one run, never in the tests. Each script runs in its own process so one benchmark's
compiled state or memory cannot skew the next.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def scripts(directory: Path = BENCH_DIR) -> list[Path]:
    return sorted(p for p in directory.glob("*.py") if not p.name.startswith("_"))


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnncourse bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all); e.g. throughput")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    args = parser.parse_args(argv)
    found = {p.stem: p for p in scripts()}
    unknown = sorted(set(args.names) - set(found))
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(found) or 'none'}", file=sys.stderr)
        return 2
    failed = []
    for name in args.names or list(found):
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        cmd = [sys.executable, str(found[name])] + ([] if args.no_write else ["--write"])
        if subprocess.call(cmd) != 0:
            failed.append(name)
        print(f"== {name}: {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
