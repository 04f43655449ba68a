"""The teacher's grading loop: nbgrader's own commands over the course's notebooks.

``make grade NB=04_activations_init`` (``python -m cnncourse grade 04_activations_init``) runs,
in the course directory ``grading/`` (its ``nbgrader_config.py`` says why each setting is what
it is), ``nbgrader generate_assignment`` (the student version goes to ``release/``), then
``nbgrader autograde`` of every submission in ``submitted/<student>/<assignment>/`` and
``nbgrader generate_feedback``, and prints each student's points. Nothing here grades by
itself: it calls nbgrader as a teacher would, in a subprocess whose ``PATH`` starts with this
Python's scripts folder (nbgrader calls ``alembic`` by name to set up its database).

``--self-test`` submits two students of its own before autograding: the release copy unchanged
(every check must score 0) and the notebook with its reference solutions (every check full
marks, written answers left for manual grading); the course's tests run exactly this.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GRADING_DIR = Path("grading")  # the course directory, relative to the working directory
CONFIG = "nbgrader_config.py"
UNCHANGED, SOLUTIONS = "release-unchanged", "reference-solutions"


class GradingError(RuntimeError):
    """An nbgrader command failed, or the course directory is not one."""


def _course_dir(course_dir: Path) -> Path:
    course_dir = Path(course_dir)
    if not (course_dir / CONFIG).is_file():
        raise ValueError(f"{course_dir.resolve()} is not the course's nbgrader directory (no {CONFIG}): "
                           "run this from the course's folder, or pass --course-dir")
    return course_dir


def assignments(course_dir: Path = GRADING_DIR) -> list[str]:
    """The assignments of the course directory: ``source/NAME/NAME.ipynb`` that exist."""
    source = _course_dir(course_dir) / "source"
    return sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file()) if source.is_dir() else []


def nbgrader(course_dir: Path, *args: str, timeout: float | None = None) -> str:
    """Run ``nbgrader ARGS`` in ``course_dir``; return its output, raise :class:`GradingError`
    with the output's end when it fails."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=_course_dir(course_dir), env=env,
                          capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise GradingError(f"nbgrader {' '.join(args)} failed (exit {done.returncode}):\n{output[-4000:]}")
    return output


def _check_assignment(course_dir: Path, assignment: str) -> None:
    known = assignments(course_dir)
    if assignment not in known:
        raise ValueError(f"no assignment {assignment!r} in {Path(course_dir) / 'source'}; "
                         f"valid assignments: {', '.join(known) or 'none'}")


def release(course_dir: Path, assignment: str) -> Path:
    """``nbgrader generate_assignment``: the student version of ``assignment``; returns its path."""
    _check_assignment(course_dir, assignment)
    nbgrader(course_dir, "generate_assignment", assignment, "--force")
    return Path(course_dir) / "release" / assignment / f"{assignment}.ipynb"


def submit(course_dir: Path, assignment: str, student: str, notebook: Path) -> Path:
    """Put ``notebook`` where nbgrader looks for ``student``'s submission (what ``nbgrader
    collect`` or a teacher's copy does); returns the submitted file."""
    folder = Path(course_dir) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{assignment}.ipynb"
    shutil.copyfile(notebook, target)
    return target


def submissions(course_dir: Path, assignment: str) -> list[str]:
    """The students with a submission of ``assignment``."""
    submitted = Path(course_dir) / "submitted"
    return sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir()) if submitted.is_dir() else []


def autograde(course_dir: Path, assignment: str) -> None:
    """``nbgrader autograde`` of every submission of ``assignment`` (students added to the
    gradebook as needed), then ``nbgrader generate_feedback``."""
    _check_assignment(course_dir, assignment)
    nbgrader(course_dir, "autograde", assignment, "--create", "--force")
    nbgrader(course_dir, "generate_feedback", assignment, "--force")


@dataclass(frozen=True)
class CellGrade:
    """One graded cell of one submission, as nbgrader's gradebook holds it."""

    grade_id: str
    cell_type: str
    max_score: float
    auto_score: float | None
    needs_manual_grade: bool

    @property
    def autograded(self) -> bool:
        """A check cell (code, scored by running it), as opposed to a written answer."""
        return self.cell_type == "code"


def grades(course_dir: Path, assignment: str, student: str) -> list[CellGrade]:
    """The graded cells of ``student``'s ``assignment`` in the course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{Path(course_dir).resolve() / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        return [CellGrade(g.name, g.cell_type, float(g.max_score), g.auto_score, bool(g.needs_manual_grade))
                for g in notebook.grades]


def self_test_failures(course_dir: Path, assignment: str) -> list[str]:
    """What went wrong in the self-test's grades: the unchanged release must score 0 on every
    check, the reference solutions full marks, their written answers wait for a teacher."""
    problems = []
    for grade in grades(course_dir, assignment, UNCHANGED):
        if grade.autograded and grade.auto_score != 0:
            problems.append(f"{UNCHANGED}: {grade.grade_id} scored {grade.auto_score}, expected 0")
    solved = grades(course_dir, assignment, SOLUTIONS)
    for grade in solved:
        if grade.autograded and grade.auto_score != grade.max_score:
            problems.append(f"{SOLUTIONS}: {grade.grade_id} scored {grade.auto_score} of {grade.max_score}")
        if not grade.autograded and not grade.needs_manual_grade:
            problems.append(f"{SOLUTIONS}: written answer {grade.grade_id} is not left for manual grading")
    if not any(g.autograded for g in solved):
        problems.append(f"{assignment} has no autograded cell")
    return problems


def _summary(course_dir: Path, assignment: str, student: str) -> str:
    found = grades(course_dir, assignment, student)
    auto = [g for g in found if g.autograded]
    manual = [g for g in found if g.needs_manual_grade]
    points = sum(g.auto_score or 0 for g in auto)
    return (f"  {student}: {points:g} of {sum(g.max_score for g in auto):g} autograded points"
            + (f"; {len(manual)} written answer(s) to grade by hand" if manual else ""))


def cli(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cnncourse grade",
        description="Run nbgrader's loop for one assignment: generate_assignment, autograde every submission, "
                    "generate_feedback.")
    parser.add_argument("assignment", help="the assignment, e.g. 04_activations_init (a notebook's name)")
    parser.add_argument("--course-dir", type=Path, default=GRADING_DIR,
                        help="nbgrader's course directory (default: ./grading)")
    parser.add_argument("--self-test", action="store_true",
                        help=f"first submit the release copy unchanged ({UNCHANGED}) and the reference solutions "
                             f"({SOLUTIONS}), and fail unless they score 0 and full marks")
    args = parser.parse_args(list(argv))
    try:
        released = release(args.course_dir, args.assignment)
        print(f"released: {released}")
        if args.self_test:
            submit(args.course_dir, args.assignment, UNCHANGED, released)
            submit(args.course_dir, args.assignment, SOLUTIONS,
                   args.course_dir / "source" / args.assignment / f"{args.assignment}.ipynb")
        students = submissions(args.course_dir, args.assignment)
        if not students:
            print(f"no submissions to grade yet: put each student's notebook in "
                  f"{args.course_dir / 'submitted' / '<student>' / args.assignment}/ (or run with --self-test)")
            return 0
        profile = os.environ.get("CNNCOURSE_PROFILE", "smoke (nbgrader_config.py)")
        print(f"autograding {len(students)} submission(s) in the {profile} profile ...", flush=True)
        autograde(args.course_dir, args.assignment)
        print(f"graded (feedback in {args.course_dir / 'feedback'}/):")
        for student in students:
            print(_summary(args.course_dir, args.assignment, student))
    except (ValueError, GradingError) as error:
        print(f"grading stopped: {error}", file=sys.stderr)
        return 2 if isinstance(error, ValueError) else 1
    if args.self_test:
        problems = self_test_failures(args.course_dir, args.assignment)
        for problem in problems:
            print(f"self-test failed: {problem}", file=sys.stderr)
        if problems:
            return 1
        print("self-test passed: the unchanged release scores 0, the reference solutions full marks")
    return 0
