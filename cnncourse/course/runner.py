"""Run the course: execute every notebook in the active profile and render it to HTML.

This is what ``make course`` does. Each notebook runs top to bottom in a fresh kernel (the
Python running this module, so the course's virtual environment), the executed copy and an
HTML rendering go to ``build/``, and one progress line per notebook says how long it took. A
failing notebook stops the run with its name and the failing cell, because every later
notebook assumes the earlier ones work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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


def course_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The course's notebooks in order (``NN_name.ipynb``), skipping checkpoints."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def _first_error(nb) -> tuple[int | None, str, str]:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, cell.source, f"{output.get('ename')}: {output.get('evalue')}"
    return None, "", ""


def execute(notebook: Path, out_dir: Path = BUILD_DIR, *, timeout: int = 3600) -> Executed:
    """Execute one notebook in a fresh kernel; write the executed .ipynb and .html to ``out_dir``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    if not notebook.is_file():
        raise ValueError(f"no notebook at {notebook}")
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
    )
    ipynb, html = out_dir / notebook.name, out_dir / notebook.with_suffix(".html").name
    start = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as exc:
        nbformat.write(nb, ipynb)  # keep the partial run for inspection
        index, source, error = _first_error(nb)
        raise NotebookFailed(notebook, index, source, error or str(exc).strip().splitlines()[-1]) from None
    seconds = time.perf_counter() - start
    nbformat.write(nb, ipynb)
    body, _ = HTMLExporter().from_notebook_node(nb)
    html.write_text(body, encoding="utf-8")
    return Executed(notebook, seconds, ipynb, html)


def run_course(notebooks: list[Path], out_dir: Path = BUILD_DIR, *, timeout: int = 3600) -> list[Executed]:
    """Execute notebooks in order, printing a line each; stop at the first failure."""
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
        print(f"ok in {result.seconds:.0f} s → {result.html.relative_to(out_dir.parent) if out_dir.parent in result.html.parents else result.html}", flush=True)
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
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines are noise in a notebook
    try:
        # decide the profile once, here: every kernel inherits it from the environment
        os.environ[ENV_VAR] = profile(args.profile).name
        run_course(args.notebooks or course_notebooks(), args.out, timeout=args.timeout)
    except (NotebookFailed, ValueError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    return 0
