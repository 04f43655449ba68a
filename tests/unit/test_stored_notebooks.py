"""The stored notebooks tell the truth: one clean cpu run each, no log noise, checks that assert.

A reader on GitHub (or on the course's site) sees the stored outputs, not a fresh run, so they
are held to what DESIGN.md promises: each comes from one top-to-bottom run in the ``cpu`` profile
in one kernel (``python -m cnncourse run --store``; never stitched from several kernels), holds
no TensorFlow/absl/kernel log lines, never prints a spread from one seed as "± 0.0000", and every
cell marked as a check (``# NBVAL_CHECK_OUTPUT``) also asserts, so ``make course`` fails when a
check fails and not only nbval's output comparison does.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from cnncourse.course import runner

NOTEBOOKS = runner.course_notebooks()

LOG_NOISE = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d"  # glog/absl C++ lines: I0000 00:00:1795450716.241109 ...
    r"|absl::InitializeLog|failed call to cuInit|NodeDef mentions attribute"
    r"|^WARNING:(tensorflow|absl)|oneDNN custom operations|Kernel is running over TCP"
    r"|rebuild TensorFlow with the appropriate compiler flags",
    re.M,
)
SPREAD_OF_ONE = re.compile(r"±\s*0\.0+(?![0-9])")
ASSERTS = re.compile(r"\bassert\b|\bcheck\(|\bclose\(|\bclaim\(|np\.testing\.|\bassert_\w+\(|pytest\.raises")


def _texts(cell):
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            yield output.get("name", ""), output.get("text", "")
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/"):
                yield mime, value if isinstance(value, str) else "".join(value)


@pytest.fixture(scope="module", params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_there_are_eleven_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(11)]


def test_each_is_one_clean_cpu_run(notebook):
    path, nb = notebook
    assert runner.stamp_problems(nb) == [], f"{path.name}: re-run and store it whole (python -m cnncourse run --store)"
    assert nb.metadata["cnncourse"]["profile"] == "cpu", f"{path.name}: stored outputs must come from the cpu profile"


def test_no_errors_and_no_log_noise(notebook):
    path, nb = notebook
    for index, cell in enumerate(nb.cells):
        assert not any(o.get("output_type") == "error" for o in cell.get("outputs", [])), f"{path.name} cell {index}"
        for kind, text in _texts(cell):
            match = LOG_NOISE.search(text)
            assert match is None, f"{path.name} cell {index} ({kind}) stores a log line: {match.group(0)!r}"


def test_no_spread_from_a_single_seed(notebook):
    path, nb = notebook
    for index, cell in enumerate(nb.cells):
        for kind, text in _texts(cell):
            assert not SPREAD_OF_ONE.search(text), f"{path.name} cell {index}: '± 0.0…' (one seed: print n/a)"


def test_every_check_cell_asserts(notebook):
    path, nb = notebook
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
            assert ASSERTS.search(cell.source), (
                f"{path.name} cell {index} is marked as a check but asserts nothing: add the assertion "
                "that makes `make course` fail when the check fails"
            )


def test_no_stray_return_values(notebook):
    """A cell ending in ``claim(...)`` or ``in_band(...)`` shows the returned sentence or flag a second
    time, as a quoted string or a bare True: noise beside the printed line (assign it: ``_ = ...``)."""
    path, nb = notebook
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "execute_result":
                text = "".join(output.get("data", {}).get("text/plain", ""))
                assert not (text.startswith(("'", '"')) or text in ("True", "False", "None")), (
                    f"{path.name} cell {index} displays its last value {text[:60]!r}: assign it (_ = ...)")
