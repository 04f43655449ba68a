"""The exercise check (hint, not traceback), the nbgrader cell builders, and the rule that
every notebook 01–10 ends with 3–5 exercises, each with a solution and a check."""

import re

import nbformat
import numpy as np
import pytest

from cnncourse.course import exercises as ex
from cnncourse.course.runner import NOTEBOOK_DIR, course_notebooks


def test_check_prints_passed_on_success(capsys):
    with ex.check("01.2", hint="think"):
        assert 1 + 1 == 2
    assert capsys.readouterr().out == "✓ Exercise 01.2 passed\n"


@pytest.mark.parametrize(("body", "detail"), [
    (lambda: (_ for _ in ()).throw(AssertionError("the shape is wrong")), "the shape is wrong"),
    (lambda: (_ for _ in ()).throw(NotImplementedError()), "has not been filled in yet"),
    (lambda: undefined_name, "run the solution cell above first"),  # noqa: F821
    (lambda: 1 / 0, "your code raised ZeroDivisionError"),
])
def test_any_failure_becomes_the_hint(body, detail, capsys):
    with pytest.raises(ex.ExerciseCheckFailed) as info:
        with ex.check("03.1", hint="Divide by the count."):
            body()
    err = info.value
    assert err.exercise == "03.1" and err.hint == "Divide by the count."
    assert str(err).startswith("✗ Exercise 03.1 is not solved yet. Hint: Divide by the count.")
    assert detail in str(err)
    assert err._render_traceback_() == [str(err)]  # IPython shows this one line, no frames
    assert err.__cause__ is None and err.__suppress_context__  # the check's own error is hidden
    assert "passed" not in capsys.readouterr().out


def test_nested_check_failure_is_not_rewrapped():
    with pytest.raises(ex.ExerciseCheckFailed) as info:
        with ex.check("02.1", hint="outer"):
            with ex.check("02.2", hint="inner"):
                raise AssertionError("x")
    assert info.value.exercise == "02.2"


@pytest.mark.parametrize("bad", ["1.2", "01", "01.x", "ex01.2", 12])
def test_check_rejects_bad_ids(bad):
    with pytest.raises(ValueError, match="exercise ids look like '01.2'"):
        with ex.check(bad, hint="h"):
            pass


def test_check_needs_a_hint():
    with pytest.raises(ValueError, match="non-empty hint"):
        with ex.check("01.1", hint=""):
            pass


def test_close_says_how_far_not_what():
    ex.close([1.0, 2.0], np.array([1.0, 2.0 + 1e-9]))
    with pytest.raises(AssertionError, match=r"^w differs from the reference by up to 0\.5$"):
        ex.close([1.0, 2.5], [1.0, 2.0], what="w")
    with pytest.raises(AssertionError, match="has shape \\(3,\\); the check expects another shape") as info:
        ex.close([1, 2, 3], [1, 2])
    assert "(2,)" not in str(info.value)


def test_cell_builders_write_nbgrader_metadata():
    prompt = ex.prompt_cell("04.3", "Explain.")
    solution = ex.solution_cell("04.3", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    answer = ex.answer_cell("04.3", "Because.", points=2)
    check = ex.check_cell("04.3", 'with check("04.3", hint="h"):\n    assert x == 1')
    meta = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"] for c in (prompt, solution, answer, check)}
    assert set(meta) == {"ex04-3-prompt", "ex04-3-solution", "ex04-3-answer", "ex04-3-check"}
    assert meta["ex04-3-prompt"]["locked"] and not meta["ex04-3-prompt"]["grade"]
    assert meta["ex04-3-solution"]["solution"] and not meta["ex04-3-solution"]["grade"]
    assert meta["ex04-3-answer"]["solution"] and meta["ex04-3-answer"]["grade"] and meta["ex04-3-answer"]["points"] == 2
    assert meta["ex04-3-check"]["grade"] and meta["ex04-3-check"]["locked"] and not meta["ex04-3-check"]["solution"]
    assert all(m["schema_version"] == 3 for m in meta.values())
    assert (prompt.cell_type, solution.cell_type, answer.cell_type, check.cell_type) == (
        "markdown", "code", "markdown", "code")
    nb = nbformat.v4.new_notebook(cells=[prompt, solution, answer, check])
    nbformat.validate(nb)


def test_cell_builders_reject_malformed_cells():
    with pytest.raises(ValueError, match="BEGIN SOLUTION"):
        ex.solution_cell("01.1", "x = 1")
    with pytest.raises(ValueError, match='must call check\\("01.1"'):
        ex.check_cell("01.1", 'with check("01.2", hint="h"):\n    pass')
    with pytest.raises(ValueError, match="exercise ids"):
        ex.prompt_cell("1.1", "text")


def test_exercise_section_runs_from_heading_to_end():
    cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_markdown_cell("## Exercises and more"),
             nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell("## Exercises (again)")]
    assert ex.exercise_section(cells) == cells[1:]
    assert ex.exercise_section(cells[:1] + cells[2:3]) == []


# --- the course's notebooks ---------------------------------------------------------------

TEACHING = [p for p in course_notebooks(NOTEBOOK_DIR) if 1 <= int(p.name[:2]) <= 10]


@pytest.mark.parametrize("path", TEACHING, ids=lambda p: p.stem)
def test_every_teaching_notebook_ends_with_3_to_5_exercises(path):
    from cnncourse.course import student

    nb = nbformat.read(path, as_version=4)
    section = ex.exercise_section(nb.cells)
    assert section, f"{path.name} has no '## Exercises' section"
    grade_ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(grade_ids) == len(set(grade_ids)), f"{path.name}: duplicate nbgrader grade_ids"
    found = student.exercises(nb)
    assert 3 <= len(found) <= 5, f"{path.name} has {len(found)} exercises"
    number = path.name[:2]
    for name, parts in found.items():
        assert name.startswith(number + "."), f"{path.name}: exercise {name} belongs to another notebook"
        assert parts.prompts >= 1 and parts.solutions >= 1 and parts.checks >= 1, f"{path.name}: {parts}"
    for cell in section:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            assert "# NBVAL_CHECK_OUTPUT" in cell.source, f"{meta['grade_id']} is not marked # NBVAL_CHECK_OUTPUT"
            assert re.search(r"✓ Exercise \d\d\.\d+ passed", "".join(o.get("text", "") for o in cell.outputs)), \
                f"{meta['grade_id']} has no stored '✓ Exercise ... passed' output"
