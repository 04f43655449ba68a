"""The course runner behind `make course`: executes notebooks, renders HTML, stops on failure."""

import json
from pathlib import Path

import nbformat
import pytest

from cnncourse.course import runner


def write_notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# test")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_runs_in_order_and_writes_html(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CNNCOURSE_PROFILE", "smoke")
    a = write_notebook(tmp_path / "00_a.ipynb", "import os\nprint(os.environ['CNNCOURSE_PROFILE'])")
    b = write_notebook(tmp_path / "01_b.ipynb", "print(6 * 7)")
    (tmp_path / "notes.ipynb").write_text("not a course notebook")
    assert runner.course_notebooks(tmp_path) == [a, b]
    out = tmp_path / "build"
    done = runner.run_course([a, b], out)
    assert [d.notebook for d in done] == [a, b]
    executed = nbformat.read(out / "00_a.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["text"] == "smoke\n"  # the kernel sees the profile
    assert "42" in (out / "01_b.html").read_text()
    assert set(json.loads((out / "timings_smoke.json").read_text())) == {"00_a.ipynb", "01_b.ipynb"}
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("[1/2] 00_a.ipynb ... ok in") and lines[-1].startswith("all 2 notebook(s) ran")


def test_failure_names_notebook_and_cell_and_stops(tmp_path, capsys):
    bad = write_notebook(tmp_path / "00_bad.ipynb", "x = 1", "raise ValueError('boom')", "print('never')")
    later = write_notebook(tmp_path / "01_later.ipynb", "print('later')")
    with pytest.raises(runner.NotebookFailed) as info:
        runner.run_course([bad, later], tmp_path / "build")
    err = info.value
    assert err.cell_index == 2 and "ValueError: boom" in err.error
    assert "00_bad.ipynb failed in cell 2" in str(err) and "raise ValueError('boom')" in str(err)
    assert (tmp_path / "build" / "00_bad.ipynb").exists()  # partial run kept for inspection
    assert not (tmp_path / "build" / "01_later.ipynb").exists()  # the run stopped
    assert "FAILED" in capsys.readouterr().out


def test_cli_reports_failure_and_bad_profile(tmp_path, capsys):
    bad = write_notebook(tmp_path / "00_bad.ipynb", "1/0")
    assert runner.cli([str(bad), "--out", str(tmp_path / "b"), "--profile", "smoke"]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err
    assert runner.cli([str(bad), "--profile", "tiny"]) == 1
    assert "valid profiles: smoke, cpu, gpu" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no notebook at"):
        runner.execute(tmp_path / "missing.ipynb", tmp_path)


def test_a_run_is_stamped_and_passes_the_clean_run_check(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCOURSE_PROFILE", "smoke")
    nb = write_notebook(tmp_path / "00_a.ipynb", "x = 1", "print(x + 1)")
    done = runner.execute(nb, tmp_path / "build")
    executed = nbformat.read(done.ipynb, as_version=4)
    stamp = executed.metadata["cnncourse"]
    assert stamp["profile"] == "smoke" and stamp["kernels"] == 1 and stamp["started"] < stamp["finished"]
    assert "CPU cores" in stamp["machine"]
    assert runner.stamp_problems(executed) == []


def test_stitched_or_unstamped_notebooks_are_caught(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCOURSE_PROFILE", "smoke")
    nb = write_notebook(tmp_path / "00_a.ipynb", "x = 1", "print(x + 1)", "print(x + 2)")
    executed = nbformat.read(runner.execute(nb, tmp_path / "build").ipynb, as_version=4)
    unstamped = nbformat.read(nb, as_version=4)
    assert "no run stamp" in runner.stamp_problems(unstamped)[0]
    renumbered = nbformat.from_dict(json.loads(nbformat.writes(executed)))
    renumbered.cells[2].execution_count = 7
    assert any("execution counts" in p for p in runner.stamp_problems(renumbered))
    pasted = nbformat.from_dict(json.loads(nbformat.writes(executed)))  # a cell re-run later, elsewhere
    pasted.cells[2].metadata["execution"]["iopub.execute_input"] = "2099-01-01T00:00:00.000000Z"
    assert any("outside the run" in p for p in runner.stamp_problems(pasted))
    earlier = nbformat.from_dict(json.loads(nbformat.writes(executed)))  # out of order
    earlier.cells[3].metadata["execution"]["iopub.execute_input"] = earlier.metadata["cnncourse"]["started"]
    assert any("before the cell above" in p for p in runner.stamp_problems(earlier))


def test_store_copies_the_run_over_the_source_and_records_its_time(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNCOURSE_PROFILE", "smoke")
    monkeypatch.setattr(runner, "TIMINGS_FILE", tmp_path / "results" / "timings.json")
    nb = write_notebook(tmp_path / "00_a.ipynb", "print(6 * 7)")
    runner.run_course([nb], tmp_path / "build", store=True)
    stored = nbformat.read(nb, as_version=4)
    assert stored.cells[1].outputs[0]["text"] == "42\n" and runner.stamp_problems(stored) == []
    timings = json.loads((tmp_path / "results" / "timings.json").read_text())
    assert set(timings["smoke"]["00_a.ipynb"]) == {"minutes", "machine", "date", "backend"}
    assert "(stored)" in capsys.readouterr().out


def test_record_keeps_the_source_and_records_the_time(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNCOURSE_PROFILE", "smoke")
    monkeypatch.setattr(runner, "TIMINGS_FILE", tmp_path / "results" / "timings.json")
    nb = write_notebook(tmp_path / "00_a.ipynb", "print(6 * 7)")
    before = nb.read_text()
    runner.run_course([nb], tmp_path / "build", record=True)
    assert nb.read_text() == before  # the stored notebook is untouched
    timings = json.loads((tmp_path / "results" / "timings.json").read_text())
    assert set(timings["smoke"]) == {"00_a.ipynb"} and "(stored)" not in capsys.readouterr().out
