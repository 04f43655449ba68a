"""Run the course: execute every notebook in the active profile and render it to HTML.

This is what ``make course`` does. Each notebook runs top to bottom in a fresh kernel (the
Python running this module, so the course's virtual environment), the executed copy and an
HTML rendering go to ``build/``, and one progress line per notebook says how long it took. A
failing notebook stops the run with its name and the failing cell, because every later
notebook assumes the earlier ones work.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cnncourse.profiles import ENV_VAR, profile

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
BUILD_DIR = ROOT / "build"


class NotebookFailed(RuntimeError):
    """A notebook raised: names the notebook, the failing cell and the error."""

    def __init__(self, notebook: Path, cell_index: int | None, source: str, error: str) -> None:
        self.notebook, self.cell_index, self.source, self.error = notebook, cell_index, source, error
        where = f"cell {cell_index}" if cell_index is not None else "an unknown cell"
        snippet = "\n".join("    " + line for line in source.strip().splitlines()[:12])
        super().__init__(f"{notebook.name} failed in {where}:\n{snippet}\n{error}")


@dataclass
class Executed:
    notebook: Path
    seconds: float
    ipynb: Path
    html: Path


STAMP_KEY = "cnncourse"  # notebook metadata written by one clean run: see :func:`stamp_problems`
TIMINGS_FILE = ROOT / "results" / "timings.json"


def course_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The course's notebooks in order (``NN_name.ipynb``), skipping checkpoints."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def _first_error(nb) -> tuple[int | None, str, str]:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, cell.source, f"{output.get('ename')}: {output.get('evalue')}"
    return None, "", ""


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def machine_description() -> str:
    """The machine a run's times come from: CPU cores and the load at the moment (times on a busy
    machine are upper bounds, so the load is part of the number's meaning)."""
    cores = os.cpu_count() or 1
    try:
        load = f", load {os.getloadavg()[0]:.1f}"
    except OSError:
        load = ""
    return f"{cores} CPU cores{load}"


@contextlib.contextmanager
def _kernel():
    """A fresh python3 kernel that talks over local IPC sockets where the system has them.

    Over TCP, ipykernel prints a warning about unencrypted transport at every start, once per
    notebook in ``make course``; IPC sockets (Unix domain sockets in a private temporary folder)
    are local by construction. The kernel is shut down here: the client does not own it.
    """
    from jupyter_client.manager import KernelManager

    with tempfile.TemporaryDirectory(prefix="cnncourse-kernel-") as folder:
        if os.name == "posix":
            km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(folder) / "kernel"))
        else:
            km = KernelManager(kernel_name="python3")
        try:
            yield km
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=False)


def execute(notebook: Path, out_dir: Path = BUILD_DIR, *, timeout: int = 3600) -> Executed:
    """Execute one notebook in a fresh kernel; write the executed .ipynb and .html to ``out_dir``.

    The executed notebook carries a stamp in its metadata (``metadata.cnncourse``: profile,
    backend, start and end time, seconds, machine, kernels started = 1) that
    :func:`stamp_problems` checks: stored outputs must come from one top-to-bottom run.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    if not notebook.is_file():
        raise ValueError(f"no notebook at {notebook}")
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(notebook, as_version=4)
    ipynb, html = out_dir / notebook.name, out_dir / notebook.with_suffix(".html").name
    machine = machine_description()
    started = _utc_now()
    start = time.perf_counter()
    with _kernel() as km:
        client = NotebookClient(
            nb, km=km, timeout=timeout, resources={"metadata": {"path": str(notebook.parent)}}, record_timing=True
        )
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError) as exc:
            nbformat.write(nb, ipynb)  # keep the partial run for inspection
            index, source, error = _first_error(nb)
            raise NotebookFailed(notebook, index, source, error or str(exc).strip().splitlines()[-1]) from None
    seconds = time.perf_counter() - start
    nb.metadata[STAMP_KEY] = {
        "profile": profile().name,
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "started": started,
        "finished": _utc_now(),
        "seconds": round(seconds, 1),
        "machine": machine,
        "kernels": 1,
    }
    nbformat.write(nb, ipynb)
    body, _ = HTMLExporter().from_notebook_node(nb)
    html.write_text(body, encoding="utf-8")
    return Executed(notebook, seconds, ipynb, html)


def stamp_problems(nb) -> list[str]:
    """Why a stored notebook is not one clean top-to-bottom run, or ``[]``.

    A clean run (:func:`execute`) executes every code cell once, in order, in one kernel: the
    execution counts are 1, 2, …, n, every cell's execution started after the run started,
    before it finished, and after the previous cell's. Outputs pasted in from another kernel
    (a section re-run on its own, say) break one of these.
    """
    stamp = nb.get("metadata", {}).get(STAMP_KEY)
    if not stamp:
        return ["no run stamp (metadata.cnncourse): store it with `python -m cnncourse run --store`"]
    problems = []
    if stamp.get("kernels") != 1:
        problems.append(f"stamp says {stamp.get('kernels')} kernels")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    if counts != list(range(1, len(code) + 1)):
        problems.append(f"execution counts are not 1..{len(code)}: {counts}")
    previous = stamp.get("started", "")
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        when = cell.get("metadata", {}).get("execution", {}).get("iopub.execute_input")
        if when is None:
            problems.append(f"cell {index} has no execution time")
        elif not previous <= when <= stamp.get("finished", ""):
            problems.append(f"cell {index} ran at {when}, outside the run or before the cell above it")
        else:
            previous = when
    return problems


def record_timings(done: list[Executed], name: str, path: Path | None = None) -> None:
    """Merge this run's wall times into ``results/timings.json`` (per profile, per notebook)."""
    from cnncourse.experiments.cache import write_json

    path = TIMINGS_FILE if path is None else path
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    if not isinstance(table, dict):
        table = {}
    rows = table.setdefault(name, {})
    for result in done:
        stamp = json.loads(result.ipynb.read_text())["metadata"][STAMP_KEY]
        rows[result.notebook.name] = {
            "minutes": round(result.seconds / 60, 2),
            "machine": stamp["machine"],
            "date": stamp["started"][:10],
            "backend": stamp["backend"],
        }
    write_json(path, table)


def run_course(
    notebooks: list[Path], out_dir: Path = BUILD_DIR, *, timeout: int = 3600, store: bool = False,
    record: bool = False,
) -> list[Executed]:
    """Execute notebooks in order, printing a line each; stop at the first failure.

    ``store=True`` copies each executed notebook over its source (the stored outputs readers see)
    and records its run time in ``results/timings.json``, which the course map reads;
    ``record=True`` records the time only (the smoke profile's times, which the gpu estimates
    count as start-up, without storing smoke outputs over the cpu run's).
    """
    if not notebooks:
        raise ValueError(f"no notebooks to run (looked for NN_*.ipynb in {NOTEBOOK_DIR})")
    name = profile().name
    print(f"running {len(notebooks)} notebook(s) in profile {name!r}; output in {out_dir}/", flush=True)
    done: list[Executed] = []
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.name} ...", end=" ", flush=True)
        try:
            result = execute(nb, out_dir, timeout=timeout)
        except NotebookFailed:
            print("FAILED", flush=True)
            raise
        done.append(result)
        if store:
            shutil.copyfile(result.ipynb, nb)
        if store or record:
            record_timings([result], name)
        where = result.html.relative_to(out_dir.parent) if out_dir.parent in result.html.parents else result.html
        print(f"ok in {result.seconds:.0f} s → {where}{' (stored)' if store else ''}", flush=True)
    timings = {r.notebook.name: round(r.seconds, 1) for r in done}
    (out_dir / f"timings_{name}.json").write_text(json.dumps(timings, indent=1) + "\n")
    total = sum(r.seconds for r in done)
    print(f"all {len(done)} notebook(s) ran in {total / 60:.1f} min (profile {name!r})", flush=True)
    return done


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnncourse run", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: all, in order)")
    parser.add_argument("--profile", help=f"smoke | cpu | gpu (default: ${ENV_VAR}, else by device)")
    parser.add_argument("--out", type=Path, default=BUILD_DIR, help="output folder (default: build/)")
    parser.add_argument("--timeout", type=int, default=3600, help="per-cell timeout in seconds")
    parser.add_argument("--store", action="store_true",
                        help="copy each executed notebook over its source and record its time (results/timings.json)")
    parser.add_argument("--record", action="store_true",
                        help="record each notebook's time in results/timings.json without storing it")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines are noise in a notebook
    try:
        # decide the profile once, here: every kernel inherits it from the environment
        os.environ[ENV_VAR] = profile(args.profile).name
        run_course(args.notebooks or course_notebooks(), args.out, timeout=args.timeout, store=args.store,
                   record=args.record)
    except (NotebookFailed, ValueError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    return 0
