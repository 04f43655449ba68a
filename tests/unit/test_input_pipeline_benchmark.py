"""benchmarks/input_pipeline.py runs each installed backend in its own process and prints one table."""

import subprocess
import sys
from pathlib import Path

import keras
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "input_pipeline.py"


@pytest.mark.slow
def test_a_tiny_run_prints_the_rows_of_this_backend():
    backend = keras.backend.backend()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--images", "512", "--batch-size", "128", "--epochs", "1",
                           "--backends", backend], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith(f"| {backend} |")]
    paths = 1 if backend == "tensorflow" else 2  # tf.data; PyDataset without and with prefetching threads
    assert len(rows) == 3 * paths  # two augmentations per input path, then the recipe through each
    assert all(line.count("|") == 8 for line in rows)
    assert "| recipe (width 16) |" in rows[-1] and "| float32 |" in rows[-1]  # a CPU keeps float32
    if backend == "jax":
        assert all("| yes |" in line for line in rows)  # every JAX step compiled
    assert all(float(line.split("|")[-2].replace(",", "")) > 0 for line in rows)


def test_arguments_are_checked():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--images", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--images" in proc.stderr
    proc = subprocess.run([sys.executable, str(SCRIPT), "--backends", "torch"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "not installed" in proc.stderr
