"""The ``backend_neutral`` marker: only test modules that cannot reach a Keras backend skip the second backend."""

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("unit_conftest", HERE / "conftest.py")
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)


def neutral(tmp_path, source):
    path = tmp_path / f"test_m{abs(hash(source))}.py"
    path.write_text(source)
    return conftest.module_is_backend_neutral(str(path))


def test_plain_python_and_backend_free_helpers_are_neutral(tmp_path):
    assert neutral(tmp_path, "import json\ndef test_a():\n    assert json.loads('1') == 1\n")
    assert neutral(tmp_path, "from cnncourse import checks\ndef test_a():\n    checks.positive_int('n', 1)\n")
    # a mention in data or a docstring is not a use
    assert neutral(tmp_path, '"""Runs on jax and tensorflow alike."""\nROW = {"backend": "jax"}\n')


@pytest.mark.parametrize("source", [
    "import keras\n",
    "def test_a():\n    import jax\n",  # a function-level import runs when the test does
    "from tensorflow import nn\n",
    "from cnncourse import data\n",  # cnncourse.data imports keras in its functions
    "from cnncourse.experiments import recipe\n",
    "import importlib\nm = importlib.import_module('x')\n",  # a computed import could be anything
    "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'pass'])\n",  # another Python
    "CELL = '''\nimport keras\nkeras.ops.add(1, 2)\n'''\n",  # code for a notebook kernel
])
def test_anything_that_can_reach_a_backend_is_not(tmp_path, source):
    assert not neutral(tmp_path, source)


def test_the_real_suite_is_split_as_expected():
    assert conftest.module_is_backend_neutral(str(HERE / "test_checks.py"))
    for name in ("test_batches.py", "test_distribute.py", "test_precision.py", "test_backend_neutral.py"):
        assert not conftest.module_is_backend_neutral(str(HERE / name)), name


def test_a_package_init_is_followed_only_through_its_module_level_imports():
    # cnncourse/__init__.py has functions that import keras, but importing a submodule does not run them
    assert not conftest.reaches_backend("cnncourse", top_level=True)
    assert conftest.reaches_backend("cnncourse")
    assert not conftest.reaches_backend("cnncourse.checks")
