"""Which precision and compilation a device gets, how many GPUs a child process could use, JAX's compile cache."""

import os
import subprocess
import sys

import keras
import pytest

from cnncourse import backend


@pytest.fixture
def no_overrides(monkeypatch):
    monkeypatch.delenv(backend.PRECISION_VAR, raising=False)
    monkeypatch.delenv(backend.JIT_VAR, raising=False)


def _machine(monkeypatch, names, capability=None):
    monkeypatch.setattr(backend, "gpu_names", lambda: list(names))
    monkeypatch.setattr(backend, "_gpu_compute_capability", lambda: capability)


def test_a_cpu_keeps_float32_and_compiles_only_on_jax(monkeypatch, no_overrides):
    _machine(monkeypatch, [])
    chosen = backend.acceleration()
    assert chosen.dtype_policy == "float32" and chosen.device == "cpu"
    assert chosen.jit_compile == (keras.backend.backend() == "jax")
    assert "float32" in str(chosen) and "cpu" in str(chosen)


def test_a_gpu_with_bfloat16_tensor_cores_gets_mixed_bfloat16_and_xla(monkeypatch, no_overrides):
    _machine(monkeypatch, ["NVIDIA H200"], (9, 0))
    chosen = backend.acceleration()
    assert (chosen.dtype_policy, chosen.jit_compile, chosen.device) == ("mixed_bfloat16", True, "NVIDIA H200")
    _machine(monkeypatch, ["NVIDIA A100", "NVIDIA A100"], (8, 0))
    assert backend.acceleration().dtype_policy == "mixed_bfloat16"
    assert backend.acceleration().device == "NVIDIA A100+NVIDIA A100"


def test_an_older_gpu_gets_float16_with_loss_scaling(monkeypatch, no_overrides):
    _machine(monkeypatch, ["Tesla T4"], (7, 5))
    chosen = backend.acceleration()
    assert chosen.dtype_policy == "mixed_float16" and chosen.jit_compile
    assert "7.5" in chosen.reason and "loss scaling" in chosen.reason


def test_the_environment_overrides_the_choice(monkeypatch, no_overrides):
    _machine(monkeypatch, [])
    monkeypatch.setenv(backend.PRECISION_VAR, "mixed_bfloat16")
    monkeypatch.setenv(backend.JIT_VAR, "1")
    chosen = backend.acceleration()
    assert (chosen.dtype_policy, chosen.jit_compile) == ("mixed_bfloat16", True)
    assert backend.PRECISION_VAR in chosen.reason and backend.JIT_VAR in chosen.reason
    monkeypatch.setenv(backend.JIT_VAR, "off")
    assert backend.acceleration().jit_compile is False
    monkeypatch.setenv(backend.PRECISION_VAR, "float8")
    with pytest.raises(ValueError, match="mixed_bfloat16"):
        backend.acceleration()
    monkeypatch.setenv(backend.PRECISION_VAR, "float32")
    monkeypatch.setenv(backend.JIT_VAR, "maybe")
    with pytest.raises(ValueError, match="1 or 0"):
        backend.acceleration()


def test_the_gpu_count_reads_the_driver_and_cuda_visible_devices(tmp_path, monkeypatch):
    gpus = tmp_path / "gpus"
    monkeypatch.setattr(backend, "NVIDIA_GPUS_DIR", str(gpus))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert backend.nvidia_gpu_count() == 0  # no driver
    gpus.mkdir()
    for bus in ("0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "0000:04:00.0"):
        (gpus / bus).mkdir()
    assert backend.nvidia_gpu_count() == 4
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert backend.nvidia_gpu_count() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert backend.nvidia_gpu_count() == 0  # empty hides every GPU
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert backend.nvidia_gpu_count() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    assert backend.nvidia_gpu_count() == 4  # cannot see more than the driver has


def test_the_jax_cache_folder_is_set_unless_the_user_chose(tmp_path, monkeypatch):
    for var in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", backend.JAX_CACHE_VAR):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert backend.jax_compilation_cache() == str(tmp_path / "xdg" / "cnncourse" / "jax")
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "xdg" / "cnncourse" / "jax")
    assert float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]) > 0
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
    assert backend.jax_compilation_cache() == str(tmp_path / "mine")  # the user's own setting wins
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    monkeypatch.setenv(backend.JAX_CACHE_VAR, str(tmp_path / "chosen"))
    assert backend.jax_compilation_cache() == str(tmp_path / "chosen")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    monkeypatch.setenv(backend.JAX_CACHE_VAR, "0")
    assert backend.jax_compilation_cache() is None and "JAX_COMPILATION_CACHE_DIR" not in os.environ


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's persistent compilation cache")
def test_a_jax_program_compiled_once_is_read_back_by_the_next_process(tmp_path):
    code = (
        "import cnncourse, jax, jax.numpy as jnp\n"
        "f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum())\n"
        "print(float(f(jnp.ones((64, 64)))))\n"
    )
    env = {**os.environ, backend.JAX_CACHE_VAR: str(tmp_path / "cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "KERAS_BACKEND": "jax"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
    entries = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert entries, "nothing was written to the compilation cache"
