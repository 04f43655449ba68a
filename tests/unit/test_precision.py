"""Number formats from their bits, checked against the backend; step timing under dtype policies and XLA."""

import keras
import numpy as np
import pytest

from cnncourse.experiments import precision


def test_the_formats_match_numpy_where_numpy_has_them():
    formats = {f.name: f for f in precision.number_formats()}
    for name, dtype in (("float32", np.float32), ("float16", np.float16)):
        info = np.finfo(dtype)
        f = formats[name]
        assert f.bits == info.bits and f.mantissa == info.nmant
        assert f.max == float(info.max) and f.smallest_normal == float(info.smallest_normal)
        assert f.epsilon == float(info.eps) and f.smallest_subnormal == float(info.smallest_subnormal)
    bf16 = formats["bfloat16"]
    assert bf16.bits == 16 and bf16.epsilon == 2.0**-7
    assert bf16.smallest_normal == float(np.finfo(np.float32).smallest_normal)  # float32's exponent range
    assert bf16.max == pytest.approx(3.3895e38, rel=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_the_backend_rounds_as_the_bits_say(dtype):
    f = next(f for f in precision.number_formats() if f.name == dtype)
    stored = precision.round_trip([f.max, 1 + f.epsilon, 1 + f.epsilon / 2, 1 + 0.75 * f.epsilon, f.smallest_normal],
                                  dtype)
    assert list(stored) == [f.max, 1 + f.epsilon, 1.0, 1 + f.epsilon, f.smallest_normal]
    assert np.isinf(precision.round_trip([70_000.0], dtype)[0]) == (dtype == "float16")  # past float16's 65,504


def test_round_trip_rejects_an_unknown_format():
    with pytest.raises(ValueError, match="bfloat16"):
        precision.round_trip([1.0], "float8")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 f16c avx512_bf16\nprocessor\t: 1\nflags\t\t: fpu amx_bf16\n")
    assert precision.cpu_16bit_instructions(str(info)) == ["avx512_bf16", "amx_bf16", "f16c"]
    assert precision.cpu_16bit_instructions(str(tmp_path / "missing")) == []


def _build(dtype):
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, dtype=dtype), keras.layers.Flatten(),
                             keras.layers.Dense(3, dtype="float32")])


X = np.random.default_rng(0).normal(size=(16, 6, 6, 1)).astype("float32")
Y = np.random.default_rng(1).integers(0, 3, 16)


def test_step_timing_trains_under_the_policy_and_reports_it():
    r = precision.step_timing(_build, X, Y, dtype_policy="mixed_bfloat16", steps=3,
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert (r.dtype_policy, r.compute_dtype, r.steps, r.batch_size) == ("mixed_bfloat16", "bfloat16", 3, 16)
    assert r.seconds_per_step > 0 and r.images_per_second == pytest.approx(16 / r.seconds_per_step)
    assert r.loss_last < r.loss_first
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


def test_float16_gets_loss_scaling_from_compile():
    r = precision.step_timing(_build, X, Y, dtype_policy="mixed_float16", steps=1)
    assert r.optimizer == "LossScaleOptimizer" and r.compute_dtype == "float16"
    assert precision.step_timing(_build, X, Y, steps=1).optimizer == "SGD"


def test_the_grid_covers_every_setting_and_caps_eager_jax_steps():
    rows = precision.grid(_build, X, Y, policies=("float32", "mixed_bfloat16"), jit=(False, True), steps=3,
                          eager_steps=1)
    assert [(r.dtype_policy, r.jit_compile) for r in rows] == [
        ("float32", False), ("float32", True), ("mixed_bfloat16", False), ("mixed_bfloat16", True)]
    eager = 1 if keras.backend.backend() == "jax" else 3
    assert [r.steps for r in rows] == [eager, 3, eager, 3]
    # the same seed and data: every setting starts from the same loss, up to 16-bit rounding
    assert rows[1].loss_first == pytest.approx(rows[0].loss_first, rel=1e-5)
    assert rows[2].loss_first == pytest.approx(rows[0].loss_first, rel=0.05)
    table = precision.grid_table(rows).splitlines()
    assert len(table) == 6 and "| 1.00 |" in table[2]  # float32 without XLA is the unit


def test_xla_is_timed_even_where_the_course_turned_on_tensorflow_determinism():
    """cnncourse.setup() enables TensorFlow's op determinism, and Keras then quietly drops jit_compile=True."""
    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.framework import config as tf_config

        tf_config.enable_op_determinism()
    try:
        rows = precision.grid(_build, X, Y, policies=("float32",), jit=(True,), steps=1)
        assert [r.jit_compile for r in rows] == [True]
        if keras.backend.backend() == "tensorflow":
            assert tf_config.is_op_determinism_enabled()  # restored afterwards
    finally:
        if keras.backend.backend() == "tensorflow":
            tf_config.disable_op_determinism()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="dtype_policy"):
        precision.step_timing(_build, X, Y, dtype_policy="float64")
    with pytest.raises(ValueError, match="steps"):
        precision.step_timing(_build, X, Y, steps=0)
    with pytest.raises(ValueError, match="same length|non-empty"):
        precision.step_timing(_build, X, Y[:3])


@pytest.mark.slow
def test_the_benchmark_prints_the_grid_of_the_recipe_network():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "precision.py"
    proc = subprocess.run([sys.executable, str(script), "--batch", "16", "--steps", "1", "--eager-steps", "1",
                           "--width", "4"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| float32") or line.startswith("| mixed")]
    assert [r.split("|")[1].strip() for r in rows] == ["float32", "float32", "mixed_bfloat16", "mixed_bfloat16"]
    assert "acceleration()` picks here: float32" in proc.stdout
    bad = subprocess.run([sys.executable, str(script), "--policies", "float64"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "float64" in bad.stderr
