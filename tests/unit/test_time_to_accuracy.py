"""benchmarks/time_to_accuracy.py runs end to end (``--quick``) and prints the promised table."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnncourse import data

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "time_to_accuracy.py"


@pytest.mark.slow
@pytest.mark.skipif(not data.available("fashion_mnist"), reason="needs Fashion-MNIST (set CNNCOURSE_DATA)")
def test_quick_run_prints_the_table():
    env = dict(os.environ, CNNCOURSE_PROFILE="smoke")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, env=env,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert len(lines) == 4  # header, rule, keras-io convnet, recipe
    assert all(line.count("|") == 10 for line in lines)
    assert lines[2].startswith("| keras-io convnet | 34,826 | – | 1 |")  # no budget: keras.io's 1 quick epoch
    assert lines[3].startswith("| cnncourse recipe (fast ResNet), 1 epoch | ")
    assert "Time to 93% test accuracy" in proc.stdout and "Load average" in proc.stdout
    for line in lines[2:]:
        accuracy = float(line.split("|")[5])
        assert 0.0 <= accuracy <= 1.0


def test_quick_is_never_written():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--write"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "never written" in proc.stderr


@pytest.mark.parametrize("lengths", [["7"], ["seven:240"], ["0:240"], ["7:-1"]])
def test_bad_trial_lengths_are_refused_before_any_training(lengths):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--lengths", *lengths], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "--lengths" in proc.stderr
