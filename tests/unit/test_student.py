"""Student copies (`make student`): nbgrader clears the solutions, the checks stay and fail
with their hint on the cleared stubs, never with a traceback that shows the check's code."""

import ast
import shutil
from pathlib import Path
import json

import keras
import nbformat
import pytest

from cnncourse.course import exercises as ex
from cnncourse.course import student
from cnncourse.course.runner import NOTEBOOK_DIR, course_notebooks

pytest.importorskip("nbgrader", reason="nbgrader is in the test extra: pip install -e '.[test]'")

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
HINT = "Count the positions where the kernel fits."
SOLUTION = "return (n + 2 * p - k) // s + 1"
ANSWER = "The kernel fits 28 times along each side, so the map has 28 × 28 positions."


def teaching_notebook() -> nbformat.NotebookNode:
    """A small notebook in the course's shape: lecture cells with outputs, then exercises."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Output sizes"),
        nbformat.v4.new_code_cell("print(6 * 7)", execution_count=1,
                                  outputs=[nbformat.v4.new_output("stream", text="42\n")]),
        nbformat.v4.new_markdown_cell("## Exercises\nEach one ends with a check."),
        nbformat.v4.new_code_cell("from cnncourse.course.exercises import check, close\nimport numpy as np"),
        ex.prompt_cell("01.1", "Complete `out_size(n, k, s, p)`: $\\lfloor (n + 2p - k)/s \\rfloor + 1$."),
        ex.solution_cell("01.1", f"def out_size(n, k, s=1, p=0):\n    ### BEGIN SOLUTION\n    {SOLUTION}\n    ### END SOLUTION"),
        ex.check_cell("01.1", f'with check("01.1", hint="{HINT}"):\n'
                              '    assert out_size(32, 5, 1, 2) == 32, "same padding must keep the size"\n'
                              '    assert out_size(28, 5) == 24, "a valid convolution must shrink the map"'),
        ex.prompt_cell("01.2", "Compute the mean of `x = np.arange(5)` as `m`, and explain."),
        ex.solution_cell("01.2", "x = np.arange(5)\n### BEGIN SOLUTION\nm = x.sum() / x.size\n### END SOLUTION"),
        ex.check_cell("01.2", 'with check("01.2", hint="Divide the sum by the count."):\n'
                              '    close(m, np.mean(x), what="m")'),
        ex.answer_cell("01.2", ANSWER),
    ]
    nb.cells[-2].outputs = [nbformat.v4.new_output("stream", text="✓ Exercise 01.2 passed\n")]
    nb.cells[-2].execution_count = 9
    return nb


def hint_of(source: str) -> str | None:
    """The literal hint a check cell passes to check(..., hint=...), if it is a literal."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check":
            for keyword in node.keywords:
                if keyword.arg == "hint":
                    try:
                        return ast.literal_eval(keyword.value)
                    except ValueError:
                        return None
    return None


def assert_checks_fail_with_hint(executed: nbformat.NotebookNode) -> int:
    """Every check cell of an executed student section failed with its hint, and nothing else."""
    failed = 0
    for cell in executed.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        exercise = meta["grade_id"].split("-")[0][2:] + "." + meta["grade_id"].split("-")[1]
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert len(errors) == 1, f"check {meta['grade_id']} did not fail on the cleared solution: {cell.outputs}"
        error = errors[0]
        assert error.ename == "ExerciseCheckFailed", f"{meta['grade_id']} failed with {error.ename}: {error.evalue}"
        shown = "\n".join(error.traceback)
        assert shown.startswith(f"✗ Exercise {exercise} is not solved yet. Hint: "), shown
        hint = hint_of(cell.source)
        if hint is not None:
            assert hint in shown
        # no traceback: no frames, no source lines of the check
        assert "Traceback" not in shown and "File " not in shown and "---->" not in shown
        for line in cell.source.splitlines():
            if line.strip().startswith(("assert", "close(")):
                assert line.strip() not in shown, f"the check's code shows in its output: {line.strip()}"
        failed += 1
    return failed


def test_copy_clears_solutions_and_outputs_keeps_checks_and_prompts():
    nb = teaching_notebook()
    original = json.dumps(nb, sort_keys=True)
    copy = student.student_copy(nb)
    assert json.dumps(nb, sort_keys=True) == original  # the teacher's notebook is untouched
    nbformat.validate(copy)
    text = json.dumps(copy)
    assert SOLUTION not in text and "x.sum() / x.size" not in text and ANSWER not in text
    assert "### BEGIN SOLUTION" not in text
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in copy.cells if c.cell_type == "code")
    by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in copy.cells if "nbgrader" in c.metadata}
    for grade_id in ("ex01-1-check", "ex01-2-check", "ex01-1-prompt", "ex01-2-prompt"):
        before = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
        assert by_id[grade_id].source == before.source
        assert by_id[grade_id].metadata["editable"] is False  # nbgrader's LockCells
    assert by_id["ex01-1-solution"].source.startswith("def out_size(n, k, s=1, p=0):\n")  # scaffolding kept
    assert "raise NotImplementedError" in by_id["ex01-1-solution"].source
    assert by_id["ex01-2-solution"].source.startswith("x = np.arange(5)\n")
    assert by_id["ex01-2-answer"].source == "YOUR ANSWER HERE"
    assert nb.cells[0].source == copy.cells[0].source and copy.cells[1].source == "print(6 * 7)"


def test_exercises_are_read_from_grade_ids():
    found = student.exercises(teaching_notebook())
    assert found == {"01.1": student.Exercise("01.1", prompts=1, solutions=1, checks=1),
                     "01.2": student.Exercise("01.2", prompts=1, solutions=1, answers=1, checks=1)}
    nb = teaching_notebook()
    nb.cells.append(ex.check_cell("01.1", 'with check("01.1", hint="again"):\n    pass'))
    with pytest.raises(ValueError, match="used by more than one cell"):
        student.exercises(nb)


def test_markers_in_prose_are_refused_with_the_cell():
    nb = teaching_notebook()
    nb.cells[2].source += "\nThe answers sit between `### BEGIN SOLUTION` and `### END SOLUTION`."
    with pytest.raises(ValueError, match="cell 2 is not a solution cell .* '## Exercises'"):
        student.student_copy(nb)


def test_solution_outside_its_markers_is_refused():
    nb = teaching_notebook()
    nb.cells.insert(2, nbformat.v4.new_code_cell(f"def out_size(n, k, s=1, p=0):\n    {SOLUTION}"))
    with pytest.raises(ValueError, match="solution text survives"):
        student.student_copy(nb)


def test_markers_in_a_cell_without_nbgrader_metadata_are_refused(tmp_path):
    nb = teaching_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("### BEGIN SOLUTION\ny = 1\n### END SOLUTION"))
    good, path = tmp_path / "00_good.ipynb", tmp_path / "01_bad.ipynb"
    nbformat.write(teaching_notebook(), good)
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="01_bad.ipynb: cell 11 is not a solution cell but contains a solution marker"):
        student.write_student_copies([good, path], tmp_path / "student")
    assert not (tmp_path / "student").exists()  # one bad notebook: no copy at all


def test_checks_pass_on_solutions_and_fail_with_hint_on_student_copy():
    nb = teaching_notebook()
    solved = student.execute_exercises(nb)
    passed = [o.text for c in solved.cells for o in c.get("outputs", []) if o.output_type == "stream"]
    assert passed == ["✓ Exercise 01.1 passed\n", "✓ Exercise 01.2 passed\n"]
    executed = student.execute_exercises(student.student_copy(nb))
    assert assert_checks_fail_with_hint(executed) == 2


def test_execute_exercises_needs_a_section():
    nb = teaching_notebook()
    nb.cells = nb.cells[:2]
    with pytest.raises(ValueError, match="no exercise section"):
        student.execute_exercises(nb)


def test_cli_writes_one_copy_per_notebook(tmp_path, capsys):
    paths = []
    for name in ("00_intro.ipynb", "01_sizes.ipynb"):
        nbformat.write(teaching_notebook(), tmp_path / name)
        paths.append(tmp_path / name)
    out = tmp_path / "student"
    assert student.cli([*map(str, paths), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00_intro.ipynb", "01_sizes.ipynb"]
    assert "2 student notebook(s)" in capsys.readouterr().out
    assert student.cli([str(tmp_path / "missing.ipynb"), "--out", str(out)]) == 1
    assert "no notebook at" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # stored outputs come from one clean run, never a section re-run alone
        student.cli([str(paths[0]), "--store-outputs", "cpu"])


# --- the course's own notebooks -----------------------------------------------------------

COURSE = course_notebooks(NOTEBOOK_DIR)
WITH_EXERCISES = [p for p in COURSE if ex.exercise_section(nbformat.read(p, as_version=4).cells)]


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.stem)
def test_course_student_copy_has_no_solution_and_keeps_checks(path):
    nb = nbformat.read(path, as_version=4)
    copy = student.student_copy(nb)  # raises if any solution text survives
    nbformat.validate(copy)
    assert not student.leaked_solutions(nb, copy)
    assert not any(c.get("outputs") for c in copy.cells if c.cell_type == "code")
    checks = [c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
    assert checks == [c.source for c in copy.cells
                      if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]


@pytest.mark.tf_only
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the notebooks run on the TensorFlow backend")
@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_course_checks_fail_with_hint_on_student_copy(path):
    copy = student.student_copy(nbformat.read(path, as_version=4))
    executed = student.execute_exercises(copy, cwd=path.parent)
    assert assert_checks_fail_with_hint(executed) >= 3


def test_leak_check_finds_a_surviving_solution_line_but_not_punctuation():
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [ex.solution_cell("01.1", "d = {\n    ### BEGIN SOLUTION\n    'a': secret(),\n    ### END SOLUTION\n}\nprint({k: v for k, v in d.items()})")]
    cleared = nbformat.from_dict(json.loads(json.dumps(nb)))
    cleared.cells[0].source = "d = {\n    # YOUR CODE HERE\n    raise NotImplementedError()\n}\nprint({k: v for k, v in d.items()})"
    assert student.leaked_solutions(nb, cleared) == []  # the braces around the region are not solution text
    cleared.cells[0].source = cleared.cells[0].source.replace("# YOUR CODE HERE", "'a': secret(),")
    assert student.leaked_solutions(nb, cleared) == ["    'a': secret(),"]


def test_cli_writes_into_the_working_directory_not_the_package(tmp_path, monkeypatch, capsys):
    (tmp_path / "notebooks").mkdir()
    nbformat.write(teaching_notebook(), tmp_path / "notebooks" / "01_sizes.ipynb")
    monkeypatch.chdir(tmp_path)
    assert student.cli([]) == 0
    assert (tmp_path / "student" / "01_sizes.ipynb").is_file()
    package_root = Path(student.__file__).resolve().parents[2]
    assert not (package_root / "student" / "01_sizes.ipynb").exists()
    assert "1 student notebook(s) in student" in capsys.readouterr().out


def test_cli_with_nothing_to_do_exits_non_zero_and_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no notebooks/ here
    assert student.cli([]) == 2
    assert "nothing to do" in capsys.readouterr().err and not (tmp_path / "student").exists()


# --- the grading loop: nbgrader's own commands, run for real --------------------------------------

GRADING = Path(__file__).resolve().parents[2] / "grading"


def test_grading_sources_are_the_course_notebooks():
    """grading/source/NN_name/NN_name.ipynb links to notebooks/NN_name.ipynb for every notebook
    with exercises, so the teacher's nbgrader sources are the course's, never a stale copy."""
    sources = sorted((GRADING / "source").glob("*/*.ipynb"))
    assert [p.name for p in sources] == [p.name for p in WITH_EXERCISES]
    for link, notebook in zip(sources, WITH_EXERCISES, strict=True):
        assert link.parent.name == link.stem and link.is_symlink()
        assert link.resolve() == notebook.resolve()


def _config(profile, monkeypatch):
    from traitlets.config.loader import PyFileConfigLoader

    monkeypatch.setenv("CNNCOURSE_PROFILE", profile) if profile else monkeypatch.delenv("CNNCOURSE_PROFILE",
                                                                                          raising=False)
    return PyFileConfigLoader("nbgrader_config.py", path=str(GRADING)).load_config()


def test_grading_config_profile_timeout_and_kernel(monkeypatch):
    import os

    config = _config(None, monkeypatch)
    assert os.environ["CNNCOURSE_PROFILE"] == "smoke"  # set by the config, inherited by the kernels
    assert config.Execute.timeout == 600 and config.Execute.kernel_name == "python3"
    assert config.Execute.timeout > 30  # nbgrader's default, too short for the course
    assert config.CourseDirectory.root == str(GRADING)
    cpu = _config("cpu", monkeypatch)
    assert cpu.Execute.timeout == 1800 > 704  # the longest stored cpu cell (08, 2 shared cores)


def test_grade_cli_refuses_what_is_not_there(tmp_path, monkeypatch, capsys):
    from cnncourse.course import grading

    monkeypatch.chdir(tmp_path)
    assert grading.cli(["04_activations_init"]) == 2
    assert "not the course's nbgrader directory" in capsys.readouterr().err
    assert grading.cli(["99_nothing", "--course-dir", str(GRADING)]) == 2
    assert "valid assignments: 01_" in capsys.readouterr().err


GRADED = ["01_convolution", "04_activations_init"]


@pytest.mark.slow
@pytest.mark.tf_only
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the notebooks run on the TensorFlow backend")
def test_grading_loop_release_scores_zero_solutions_full_marks(tmp_path, monkeypatch):
    """nbgrader generate_assignment, then autograde of the release copy unchanged (0 on every
    check, no crash) and of the notebook with its solutions (full marks; the written answers
    wait for a teacher), for two notebooks in the smoke profile: what `make grade
    GRADE_ARGS=--self-test` does, in a course directory of its own."""
    from cnncourse.course import grading

    course = tmp_path / "grading"
    course.mkdir()
    shutil.copy(GRADING / "nbgrader_config.py", course)
    for name in GRADED:
        (course / "source" / name).mkdir(parents=True)
        (course / "source" / name / f"{name}.ipynb").symlink_to((GRADING / "source" / name / f"{name}.ipynb").resolve())
    monkeypatch.delenv("CNNCOURSE_PROFILE", raising=False)  # the config's own choice: smoke
    for name in GRADED:
        assert grading.cli([name, "--course-dir", str(course), "--self-test"]) == 0
        assert grading.self_test_failures(course, name) == []
        unchanged = grading.grades(course, name, grading.UNCHANGED)
        solved = grading.grades(course, name, grading.SOLUTIONS)
        checks = [g for g in solved if g.autograded]
        assert len(checks) >= 3 and all(g.auto_score == g.max_score for g in checks)
        assert all(g.auto_score == 0 for g in unchanged if g.autograded)
        assert [g.grade_id for g in solved if not g.autograded] == [g.grade_id for g in solved if g.needs_manual_grade]
        feedback = course / "feedback" / grading.SOLUTIONS / name / f"{name}.html"
        assert feedback.is_file() and "CellTimeoutError" not in feedback.read_text()
        released = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
        assert not student.leaked_solutions(nbformat.read(GRADING / "source" / name / f"{name}.ipynb", as_version=4),
                                            released)
