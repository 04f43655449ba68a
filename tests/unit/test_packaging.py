"""The two ways to install the course (pip / conda) must ask for the same things."""

import re

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ]", requirement, maxsplit=1)[0].strip().lower()


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = project["dependencies"] + extras["tensorflow"] + extras["jax"] + extras["test"]  # what `make setup` installs
    return {_name(r): r for r in reqs}


def test_no_keras_backend_is_required():
    """A JAX-only (or PyTorch-only) machine installs the course without pulling TensorFlow."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not {"tensorflow", "jax", "torch"} & {_name(r) for r in project["dependencies"]}
    assert set(project["optional-dependencies"]) >= {"tensorflow", "jax", "jax-cuda", "test"}


# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"playwright-python": "playwright"}


def _conda_requirements() -> dict[str, str]:
    reqs = {}
    in_deps = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        # conda packages, and (6 spaces in) what the pip: section installs from the package index
        match = re.match(r"^  - ([A-Za-z][\w.-]*.*)$", line) or re.match(r"^      - ([A-Za-z][\w.-]*.*)$", line)
        if in_deps and match and not match.group(1).startswith("pip:"):
            name = _name(match.group(1))
            pypi = CONDA_TO_PYPI.get(name, name)
            reqs[pypi] = pypi + match.group(1)[len(name):]
    reqs.pop("python"), reqs.pop("pip")
    return reqs


def test_environment_yml_matches_pyproject():
    assert _conda_requirements() == _pyproject_requirements()


def test_lower_bounds_only():
    for req in _pyproject_requirements().values():
        assert "==" not in req and "<" not in req, req
        assert ">=" in req, f"{req} needs a lower bound"
