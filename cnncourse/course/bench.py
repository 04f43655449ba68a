"""``python -m cnncourse bench``: run every benchmark script and rewrite its results table.

Benchmarks live as scripts in a folder (each with ``main(argv)`` and a ``--write`` flag that
writes ``results/<name>_<device>.md`` beside the script); speed is measured there, side by
side in one run, never in the tests. Each script runs in its own process so one benchmark's
compiled state or memory cannot skew the next.

The folder is ``./benchmarks`` in the working directory (``make bench`` runs from the
checkout's root), or the one ``--dir`` names: results are written where the user works, never
into the installed package. The scripts ship with the source checkout, not with an installed
package, so a run that finds none fails and says where it looked.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def default_dir() -> Path:
    return Path.cwd() / "benchmarks"


def scripts(directory: Path | None = None) -> list[Path]:
    """The benchmark scripts in ``directory`` (default :func:`default_dir`), by name."""
    folder = default_dir() if directory is None else Path(directory)
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))


def _nothing_to_run(folder: Path) -> str:
    checkout = Path(__file__).resolve().parents[2]
    hint = ""
    if (checkout / "benchmarks").is_dir() and (checkout / "benchmarks").resolve() != folder.resolve():
        hint = f" (this package runs from the source checkout {checkout}: --dir {checkout / 'benchmarks'})"
    what = "no benchmark scripts (*.py) in" if folder.is_dir() else "no benchmark folder"
    return (
        f"{what} {folder}: nothing to run.\n"
        f"The benchmark scripts ship with the course's source checkout, not with the installed package. "
        f"Run from the checkout's root (`make bench`), or point to them with --dir PATH{hint}."
    )


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnncourse bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all); e.g. throughput")
    parser.add_argument("--dir", type=Path, default=None, metavar="PATH",
                        help="folder of benchmark scripts (default: ./benchmarks); results go to PATH/results")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    args = parser.parse_args(list(argv) if argv is not None else None)
    folder = (args.dir or default_dir()).absolute()
    found = {p.stem: p for p in scripts(folder)}
    if not found:
        print(_nothing_to_run(folder), file=sys.stderr)
        return 2
    unknown = sorted(set(args.names) - set(found))
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)} in {folder}; available: {', '.join(found)}", file=sys.stderr)
        return 2
    failed = []
    for name in list(dict.fromkeys(args.names)) or list(found):
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
