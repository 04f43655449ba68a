"""Start-up: the nbval sanitizers load, TensorFlow starts quietly, an installed backend is chosen."""

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest
from nbval.plugin import get_sanitize_patterns

CONFIG = Path(__file__).resolve().parents[2] / "tests" / "sanitize.cfg"


def test_every_sanitizer_section_is_loaded_by_nbval():
    text = CONFIG.read_text()
    sections = configparser.ConfigParser(interpolation=None)
    sections.read_string(text)
    patterns = get_sanitize_patterns(text)  # nbval's own parser, as --nbval-sanitize-with uses it
    assert sections.sections(), "no sanitizer sections found"
    assert len(patterns) == len(sections.sections()), (
        f"nbval loads {len(patterns)} of {len(sections.sections())} sections of {CONFIG.name}: "
        "each needs 'regex: ...' directly followed by a non-empty 'replace: ...'"
    )
    for (regex, replace), name in zip(patterns, sections.sections()):
        assert regex == sections[name]["regex"] and replace == sections[name]["replace"], name


def test_an_empty_replacement_would_be_dropped():
    """The failure this guards against: nbval's parser needs text after 'replace: '."""
    assert get_sanitize_patterns("[a]\nregex: x\nreplace:\n") == []


@pytest.mark.tf_only
def test_importing_cnncourse_first_silences_tensorflow_start_up(tmp_path):
    code = (
        "import cnncourse, keras, numpy as np\n"
        "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])\n"
        "for n in range(3, 11):\n"  # a new model per call: TensorFlow would warn about retracing
        "    keras.models.clone_model(m).predict(np.zeros((n, 4)), verbose=0)\n"
        "print('done')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["KERAS_BACKEND"] = "tensorflow"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    assert done.stderr == "", f"TensorFlow printed on stderr:\n{done.stderr}"


def _run(code, env_updates, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"KERAS_BACKEND", "KERAS_HOME"}}
    env.update(env_updates)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_an_installed_backend_is_chosen_where_tensorflow_is_missing(tmp_path):
    """Simulate a JAX-only machine: a `tensorflow` that cannot be found."""
    (tmp_path / "home").mkdir()
    blocker = tmp_path / "sitecustomize.py"  # makes find_spec('tensorflow') return None
    blocker.write_text(
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tensorflow' or name.startswith('tensorflow.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    code = "import cnncourse, keras, os; print(keras.backend.backend(), os.environ['KERAS_BACKEND'])"
    done = _run(code, {"PYTHONPATH": str(tmp_path), "KERAS_HOME": str(tmp_path / "home")}, tmp_path)
    if "jax" not in done.stdout and "No module named 'jax'" in done.stderr:
        pytest.skip("jax is not installed here")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] in (["jax", "jax"], ["torch", "torch"])
    explicit = _run("import cnncourse, os; print(os.environ['KERAS_BACKEND'])",
                    {"KERAS_BACKEND": "torch", "PYTHONPATH": str(tmp_path)}, tmp_path)
    assert explicit.stdout.strip() == "torch"  # an explicit choice is never changed


def test_the_gpu_hint_names_the_missing_build(monkeypatch):
    from cnncourse import backend

    monkeypatch.setattr(backend, "_nvidia_gpu_present", lambda: True)
    assert "jax-cuda" in backend.gpu_hint("jax", backend_sees_gpu=False)
    assert backend.gpu_hint("jax", backend_sees_gpu=True) is None
    monkeypatch.setattr(backend, "_nvidia_gpu_present", lambda: False)
    assert backend.gpu_hint("tensorflow", backend_sees_gpu=False) is None
