"""The course map: one entry per notebook, times per profile, honest about what is measured."""

from __future__ import annotations

import pytest

from cnncourse.course import course_map
from cnncourse.course.course_map import NotebookInfo, RunTime


def test_map_covers_notebooks_00_to_10_in_order_with_forward_prerequisites():
    numbers = [nb.number for nb in course_map.NOTEBOOKS]
    assert numbers == list(range(11))
    for nb in course_map.NOTEBOOKS:
        assert nb.topics and nb.title
        assert all(0 <= pre < nb.number for pre in nb.builds_on)
        assert set(nb.minutes) == set(course_map.PROFILES)
        assert nb.filename.startswith(f"{nb.number:02d}_") and nb.filename.endswith(".ipynb")
    assert course_map.notebook(0).filename == "00_start_here.ipynb"


def test_run_times_say_whether_they_were_measured():
    assert str(RunTime(0.6, True, "2 CPU cores")) == "0.6 (measured)"
    assert str(RunTime(10.0)) == "≤10 (budget)"
    assert str(RunTime(3.25, estimated=True)) == "≈3.2 (estimate)"
    assert str(RunTime(None)) == "not measured"
    with pytest.raises(ValueError, match="estimated"):
        RunTime(1.0, True, "2 CPU cores", estimated=True)
    with pytest.raises(ValueError, match="where="):
        RunTime(1.0, measured=True)
    with pytest.raises(ValueError, match="positive"):
        RunTime(0.0)


def test_measured_times_come_from_the_runner_record(tmp_path, monkeypatch):
    record = tmp_path / "timings.json"
    record.write_text('{"cpu": {"00_start_here.ipynb": {"minutes": 2.345, "machine": "2 CPU cores, load 1.0", '
                      '"date": "2026-11-29", "backend": "jax"}}, "laptop": {}, "smoke": {"x.ipynb": {"minutes": "?"}}}')
    monkeypatch.setattr(course_map, "TIMINGS_FILE", record)
    assert course_map.measured_times() == {"cpu": {"00_start_here.ipynb": RunTime(2.345, True, "2 CPU cores, load 1.0, 2026-11-29")}}
    nb = course_map.notebook(0)
    assert str(nb.minutes["cpu"]) == "2.3 (measured)" and str(nb.minutes["smoke"]) == "≤1.0 (budget)"
    record.write_text("not json")
    assert course_map.measured_times() == {}
    assert str(NotebookInfo(99, "x", "X", ("t",)).minutes["cpu"]) == "≤10 (budget)"


def test_gpu_times_are_estimates_until_a_gpu_run_is_recorded(tmp_path, monkeypatch):
    record = tmp_path / "timings.json"
    row = '{"minutes": %s, "machine": "m", "date": "2026-11-29", "backend": "jax"}'
    record.write_text('{"smoke": {"08_depth_and_residuals.ipynb": %s}, "cpu": {"08_depth_and_residuals.ipynb": %s}}'
                      % (row % 1.5, row % 10.0))
    monkeypatch.setattr(course_map, "TIMINGS_FILE", record)
    nb = course_map.notebook(8)
    assert nb.minutes["gpu"].estimated and str(nb.minutes["gpu"]).endswith("(estimate)")
    assert str(course_map.notebook(99 % 11).minutes["gpu"]) == "not measured"  # 00: no cpu time in this record
    record.write_text('{"gpu": {"08_depth_and_residuals.ipynb": %s}, "cpu": {"08_depth_and_residuals.ipynb": %s}}'
                      % (row % 2.0, row % 10.0))
    assert str(nb.minutes["gpu"]) == "2.0 (measured)"


def test_markdown_table_has_a_row_per_notebook_and_rejects_unknown_profiles():
    table = course_map.markdown_table(("smoke", "cpu"))
    lines = table.splitlines()
    assert lines[0] == "| # | notebook | what it teaches | builds on | smoke (min) | cpu (min) |"
    assert len(lines) == 2 + len(course_map.NOTEBOOKS)
    assert "[Start here](notebooks/00_start_here.ipynb)" in lines[2]
    with pytest.raises(ValueError, match="valid profiles: smoke, cpu, gpu"):
        course_map.markdown_table(("laptop",))
    with pytest.raises(ValueError, match="valid numbers"):
        course_map.notebook(11)


def test_readme_notebook_map_is_up_to_date(tmp_path):
    """The README's map is generated: run `python -c "from cnncourse import course_map; course_map.update_readme()"`."""
    from cnncourse.course import course_map

    readme = course_map.NOTEBOOK_DIR.parent / "README.md"
    copy = tmp_path / "README.md"
    copy.write_text(readme.read_text(encoding="utf-8"), encoding="utf-8")
    assert not course_map.update_readme(copy), "README.md's notebook map is stale: regenerate it"


def test_unwritten_notebooks_are_not_linked():
    from cnncourse.course import course_map

    table = course_map.markdown_table()
    for nb in course_map.NOTEBOOKS:
        assert (f"]({'notebooks/'}{nb.filename})" in table) == nb.exists
