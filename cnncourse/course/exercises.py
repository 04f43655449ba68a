"""Exercises: the check every exercise ends with, and the nbgrader cells that hold them.

Each notebook 01–10 ends with an ``## Exercises`` section. An exercise is a Markdown prompt,
a solution cell in nbgrader's markup (``### BEGIN SOLUTION`` / ``### END SOLUTION``), and a
check cell::

    with check("01.2", hint="The output side is (n + 2p - k) // s + 1, rounded down."):
        assert out_size(32, 5, stride=1, padding=2) == 32

On the reference solution the check prints ``✓ Exercise 01.2 passed`` (so nbval tests the
solutions). On a student's wrong or unfinished answer, whatever went wrong inside the block
(a failed ``assert``, the ``NotImplementedError`` nbgrader leaves in a cleared cell, a name
that is not defined yet) becomes one :class:`ExerciseCheckFailed` whose notebook output is the
hint alone: IPython renders an exception through its ``_render_traceback_`` when it has one,
so the student sees the hint, not a traceback that shows how the check computes its answer.

The cell builders give every cell the nbgrader metadata a teacher's ``nbgrader generate_assignment``
expects (schema 3, unique ``grade_id``), so the course works with nbgrader as it is.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

EXERCISES_HEADING = "## Exercises"
_ID = re.compile(r"^\d{2}\.\d+$")


class ExerciseCheckFailed(AssertionError):
    """A check that did not pass; shown in a notebook as its hint only."""

    def __init__(self, exercise: str, hint: str, detail: str = "") -> None:
        self.exercise, self.hint, self.detail = exercise, hint, detail
        message = f"✗ Exercise {exercise} is not solved yet. Hint: {hint}"
        if detail:
            message += f"\n  ({detail})"
        super().__init__(message)

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def _validate_id(exercise: str) -> None:
    if not isinstance(exercise, str) or not _ID.match(exercise):
        raise ValueError(f"exercise ids look like '01.2' (notebook.number), got {exercise!r}")


@contextlib.contextmanager
def check(exercise: str, hint: str) -> Iterator[None]:
    """Run a block of assertions about exercise ``exercise``; on any failure raise the hint.

    The detail of a failed ``assert`` with a message (written by the check's author to say
    what was wrong, never what is right) is kept; other errors say only their kind, e.g.
    that the solution cell has not been filled in yet.
    """
    _validate_id(exercise)
    if not hint or not isinstance(hint, str):
        raise ValueError("a check needs a non-empty hint")
    try:
        yield
    except ExerciseCheckFailed:
        raise
    except NotImplementedError:
        raise ExerciseCheckFailed(exercise, hint, "the solution cell above has not been filled in yet") from None
    except NameError as error:
        raise ExerciseCheckFailed(exercise, hint, f"{error}; run the solution cell above first") from None
    except AssertionError as error:
        raise ExerciseCheckFailed(exercise, hint, str(error)) from None
    except Exception as error:  # noqa: BLE001 - any failure of a student's code is a failed check
        raise ExerciseCheckFailed(exercise, hint, f"your code raised {type(error).__name__}") from None
    print(f"✓ Exercise {exercise} passed")


def close(actual: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-6, what: str = "value") -> None:
    """Assert two arrays are equal to a tolerance, saying how far apart (not what is expected)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"{what} has shape {a.shape}; the check expects another shape")
    if not np.allclose(a, e, rtol=rtol, atol=atol):
        gap = float(np.max(np.abs(a - e)))
        raise AssertionError(f"{what} differs from the reference by up to {gap:.3g}")


# --- nbgrader cells -------------------------------------------------------------------------

def _nbgrader(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None,
              task: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"grade": grade, "grade_id": grade_id, "locked": locked,
                            "schema_version": 3, "solution": solution, "task": task}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _grade_id(exercise: str, part: str) -> str:
    _validate_id(exercise)
    return f"ex{exercise.replace('.', '-')}-{part}"


def prompt_cell(exercise: str, markdown: str):
    """The exercise's statement: a locked Markdown cell."""
    import nbformat

    return nbformat.v4.new_markdown_cell(
        markdown, metadata=_nbgrader(_grade_id(exercise, "prompt"), grade=False, solution=False, locked=True))


def solution_cell(exercise: str, source: str, *, part: str = "solution"):
    """A code cell the student completes; the reference sits between nbgrader's markers."""
    import nbformat

    if "### BEGIN SOLUTION" not in source or "### END SOLUTION" not in source:
        raise ValueError("a solution cell must hold '### BEGIN SOLUTION' and '### END SOLUTION'")
    return nbformat.v4.new_code_cell(
        source, metadata=_nbgrader(_grade_id(exercise, part), grade=False, solution=True, locked=False))


def answer_cell(exercise: str, markdown: str, *, points: float = 1, part: str = "answer"):
    """A written answer (e.g. explain an experiment): a manually graded Markdown solution cell.

    nbgrader replaces the whole source of such a cell with 'YOUR ANSWER HERE' in student copies.
    """
    import nbformat

    return nbformat.v4.new_markdown_cell(
        markdown, metadata=_nbgrader(_grade_id(exercise, part), grade=True, solution=True, locked=False, points=points))


def check_cell(exercise: str, source: str, *, points: float = 1, part: str = "check"):
    """A locked, autograded code cell: it must use :func:`check` so a failure shows the hint."""
    import nbformat

    if f'check("{exercise}"' not in source:
        raise ValueError(f'a check cell must call check("{exercise}", hint=...)')
    return nbformat.v4.new_code_cell(
        source, metadata=_nbgrader(_grade_id(exercise, part), grade=True, solution=False, locked=True, points=points))


def exercise_section(cells: list[Any]) -> list[Any]:
    """The cells from the ``## Exercises`` heading to the end (empty if there is none)."""
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "markdown" and "".join(cell.get("source", "")).lstrip().startswith(EXERCISES_HEADING):
            return list(cells[i:])
    return []
