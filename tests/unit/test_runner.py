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
