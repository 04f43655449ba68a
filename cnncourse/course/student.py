"""Student copies of the notebooks: solutions cleared, outputs removed, checks kept.

``make student`` writes ``student/NN_name.ipynb`` for every notebook. The clearing is done by
nbgrader's own preprocessors, run through nbconvert's exporter API, so a student copy is
exactly what ``nbgrader generate_assignment`` would release (the same stubs, the same locked
cells), without nbgrader's course directory or database: a teacher who wants nbgrader's
collect/autograde workflow can still run it on the notebooks as they are, because every
exercise cell already carries nbgrader's metadata (see :mod:`cnncourse.course.exercises`).

A copy is refused, not written, when any solution text survives in it: the preprocessors
clear only what is marked, so a solution typed outside its markers would otherwise leak.

The command reads ``notebooks/`` and writes ``student/`` of the working directory (never the
package's folder, which may be installed read-only), and exits non-zero, saying why, when it
has nothing to do.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncourse.course.runner import NOTEBOOK_DIR, course_notebooks

# relative to the working directory
STUDENT_DIR = Path("student")
COURSE_DIR = Path("notebooks")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_GRADE_ID = re.compile(r"^ex(\d{2})-(\d+)-(.+)$")


def _preprocessors() -> list[type]:
    """nbgrader's release pipeline, less the steps that need its database (SaveCells) or a
    course directory (IncludeHeaderFooter), in the order ``generate_assignment`` runs them."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearHiddenTests,
        ClearMarkScheme,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    return [LockCells, ClearSolutions, ClearOutput, CheckCellMetadata, ComputeChecksums,
            ClearHiddenTests, ClearMarkScheme, ComputeChecksums, CheckCellMetadata]


def _nbgrader(cell: Any) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {})


def solution_texts(cell: Any) -> list[str]:
    """The solution text a student must not see in ``cell``: each marked region of a code
    cell, or the whole source of a written (Markdown) answer cell; empty for other cells."""
    meta = _nbgrader(cell)
    if not meta.get("solution"):
        return []
    lines = cell.source.split("\n")
    regions: list[str] = []
    current: list[str] | None = None
    for line in lines:
        if "BEGIN SOLUTION" in line:
            current = []
        elif "END SOLUTION" in line and current is not None:
            regions.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    if not regions and cell.cell_type == "markdown":
        regions.append(cell.source)
    return [r for r in regions if r.strip()]


def _scaffold_lines(cell: Any) -> set[str]:
    """Lines of a solution cell outside its markers: the student keeps these."""
    keep, inside = set(), False
    for line in cell.source.split("\n"):
        if "BEGIN SOLUTION" in line:
            inside = True
        elif "END SOLUTION" in line:
            inside = False
        elif not inside:
            keep.add(line.strip())
    return keep


def leaked_solutions(original: Any, copy: Any) -> list[str]:
    """Solution text of ``original`` still present in ``copy`` (both notebooks, same cells).

    A region leaks when it appears whole anywhere in the copy, or when any of its lines
    (other than blank ones, pure punctuation such as a closing ``}``, and the scaffolding the
    student keeps) is still a line of the copy's cell.
    """
    whole = "\n".join(cell.source for cell in copy.cells)
    leaks: list[str] = []
    for before, after in zip(original.cells, copy.cells, strict=True):
        scaffold = _scaffold_lines(before)
        kept = {line.strip() for line in after.source.split("\n")}
        for region in solution_texts(before):
            if region.strip() in whole:
                leaks.append(region)
                continue
            for line in region.split("\n"):
                text = line.strip()
                if re.search(r"\w", text) and text not in scaffold and text in kept:
                    leaks.append(line)
    return leaks


def student_copy(nb: Any) -> Any:
    """The student version of notebook ``nb`` (a NotebookNode; ``nb`` itself is unchanged)."""
    import copy

    import nbformat
    from nbconvert.exporters import NotebookExporter

    for index, cell in enumerate(nb.cells):
        if not _nbgrader(cell).get("solution") and ("BEGIN SOLUTION" in cell.source or "END SOLUTION" in cell.source):
            raise ValueError(
                f"cell {index} is not a solution cell but contains a solution marker; nbgrader clears every "
                f"line between the markers and refuses such a notebook (in prose, say 'the solution markers' "
                f"instead): {cell.source.strip().splitlines()[0][:80]!r}")
    exporter = NotebookExporter()
    for preprocessor in _preprocessors():
        exporter.register_preprocessor(preprocessor(), enabled=True)
    body, _ = exporter.from_notebook_node(copy.deepcopy(nb), resources={})
    result = nbformat.reads(body, as_version=4)
    leaks = leaked_solutions(nb, result)
    if leaks:
        raise ValueError(f"solution text survives clearing (put it between {BEGIN!r} and {END!r}): {leaks[0]!r}")
    return result


@dataclass(frozen=True)
class Exercise:
    """What the exercise section of a notebook holds for one exercise ``NN.k``."""

    exercise: str
    prompts: int = 0
    solutions: int = 0
    answers: int = 0
    checks: int = 0


def exercises(nb: Any) -> dict[str, Exercise]:
    """The exercises in ``nb``'s exercise section, read from their nbgrader grade_ids.

    Raises ``ValueError`` for a grade_id used twice (nbgrader refuses such a notebook) or one
    not of the form ``exNN-k-part`` that :mod:`cnncourse.course.exercises` writes.
    """
    from cnncourse.course.exercises import exercise_section

    counts: dict[str, dict[str, int]] = {}
    seen: set[str] = set()
    for cell in exercise_section(nb.cells):
        meta = _nbgrader(cell)
        if not meta:
            continue
        grade_id = meta.get("grade_id", "")
        if grade_id in seen:
            raise ValueError(f"grade_id {grade_id!r} is used by more than one cell")
        seen.add(grade_id)
        match = _GRADE_ID.match(grade_id)
        if not match:
            raise ValueError(f"grade_id {grade_id!r} is not of the form exNN-k-part (e.g. ex01-2-check)")
        exercise = f"{match.group(1)}.{match.group(2)}"
        kind = ("answers" if cell.cell_type == "markdown" else "solutions") if meta.get("solution") else (
            "checks" if meta.get("grade") else "prompts")
        counts.setdefault(exercise, {}).setdefault(kind, 0)
        counts[exercise][kind] += 1
    return {name: Exercise(name, **kinds) for name, kinds in counts.items()}


def write_student_copies(notebooks: Iterable[Path], out_dir: Path = STUDENT_DIR) -> list[Path]:
    """Write the student copy of each notebook into ``out_dir``; return the paths written.

    Nothing is written unless every notebook can be copied (``ValueError`` names the first
    that cannot)."""
    import nbformat

    copies = []
    for path in map(Path, notebooks):  # every copy first: one bad notebook writes nothing
        if not path.is_file():
            raise ValueError(f"no notebook at {path}")
        try:
            result = student_copy(nbformat.read(path, as_version=4))
        except (ValueError, RuntimeError) as error:  # nbgrader raises RuntimeError on bad markup
            raise ValueError(f"{path.name}: {error}") from None
        nbformat.validate(result)
        copies.append((path.name, result))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, result in copies:
        nbformat.write(result, out_dir / name)
    return [out_dir / name for name, _ in copies]


def execute_exercises(nb: Any, *, cwd: Path = NOTEBOOK_DIR, timeout: int = 600, profile: str | None = None) -> Any:
    """Run only the exercise section of ``nb`` in a fresh kernel and return it, executed.

    The section is self-contained (it does its own imports), so this is how the checks are
    tested on a student copy. Its outputs are never stored in the course's notebooks: stored
    outputs come from one top-to-bottom run (``python -m cnncourse run --store``), never
    stitched from a second kernel. Errors do not stop the run: every cell gets its output.
    ``profile`` sets the kernel's ``$CNNCOURSE_PROFILE`` (default: this process's).
    """
    import os

    import nbformat
    from nbclient import NotebookClient

    from cnncourse.course.exercises import exercise_section
    from cnncourse.profiles import ENV_VAR
    from cnncourse.profiles import profile as lookup

    section = nbformat.v4.new_notebook(metadata=dict(nb.metadata))
    section.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    section.cells = [nbformat.from_dict(dict(cell)) for cell in exercise_section(nb.cells)]
    if not section.cells:
        raise ValueError("the notebook has no exercise section (a Markdown cell starting '## Exercises')")
    env = dict(os.environ)
    # TensorFlow's C++ start-up lines would land in whichever cell first touches it (a check
    # cell, whose output nbval compares), not in the notebook's own setup cell as in a full run
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if profile is not None:
        env[ENV_VAR] = lookup(profile).name  # validates the name
    client = NotebookClient(section, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env)
    return section


def cli(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cnncourse student",
        description="Write student copies of the notebooks: solutions cleared by nbgrader, outputs removed.")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to copy (default: every NN_name.ipynb in ./notebooks)")
    parser.add_argument("--out", type=Path, default=STUDENT_DIR, help="output folder (default: ./student)")
    args = parser.parse_args(list(argv))
    import nbformat

    notebooks = args.notebooks or course_notebooks(COURSE_DIR)
    if not notebooks:
        print(f"nothing to do: no notebooks named and no NN_name.ipynb in {COURSE_DIR.resolve()} "
              "(run this from the course's folder, or name the notebooks)", file=sys.stderr)
        return 2
    try:
        written = write_student_copies(notebooks, args.out)
    except ValueError as error:
        print(f"student copies not written: {error}", file=sys.stderr)
        return 1
    for path in written:
        found = exercises(nbformat.read(path, as_version=4))
        print(f"{path}: {len(found)} exercise(s)")
    print(f"{len(written)} student notebook(s) in {args.out}")
    return 0
