"""Data-parallel training on 2 logical CPU devices gives the results of one device.

Each run is a fresh subprocess (the device split must happen before the framework starts).
One SGD step on the same global batch: two replicas each see half the batch and their
gradients are averaged, so the weights after the step equal one device's up to float
rounding of the split sum.
"""

import keras
import numpy as np
import pytest

from cnncourse.experiments import distribute


def test_launch_rejects_bad_arguments():
    with pytest.raises(ValueError, match="backend"):
        distribute.launch("torch", 2)
    with pytest.raises(ValueError, match="devices"):
        distribute.launch("jax", 0)
    with pytest.raises(ValueError, match="task"):
        distribute.launch("jax", 2, "predict")


def test_results_table():
    rows = [
        {"backend": "tensorflow", "strategy": "MirroredStrategy (2 logical CPUs)", "replicas": 2, "global_batch": 256,
         "test_accuracy": 0.91234, "seconds": 12.3, "images_per_second": 1234.5},
        {"backend": "jax", "strategy": "no distribution (1 device)", "replicas": 1, "global_batch": 256,
         "test_accuracy": 0.9, "seconds": 10.0, "images_per_second": 999.0},
    ]
    lines = distribute.results_table(rows).splitlines()
    assert len(lines) == 4 and all(line.count("|") == 9 for line in lines)
    assert "| 2 | 256 | 128 | 0.9123 |" in lines[2] and "1,234" in lines[2]


def assert_same_step(backend):
    one, two = distribute.launch(backend, 2, "step", batch_size=32, timeout=600)["runs"]
    assert one["replicas"] == 1 and two["replicas"] == 2 and two["backend"] == backend
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert len(one["weights"]) == len(two["weights"]) == 4
    for a, b in zip(one["weights"], two["weights"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-5, atol=1e-6)
    assert one["moved"] > 1e-3  # the step did change the weights (equal is not "both untouched")


@pytest.mark.slow
@pytest.mark.tf_only
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow half of the pair")
def test_mirrored_strategy_step_equals_one_device():
    assert_same_step("tensorflow")


@pytest.mark.slow
def test_jax_data_parallel_step_equals_one_device():
    assert_same_step("jax")


def test_batch_must_split_evenly(capsys):
    with pytest.raises(SystemExit):
        distribute.main(["--backend", "jax", "--devices", "3", "--batch-size", "32"])
    assert "divisible" in capsys.readouterr().err


def test_the_step_task_trains_the_registered_probe():
    from cnncourse import models

    probe = models.build("probe_convnet", input_shape=(8, 8, 1), num_classes=3)
    assert [w.shape for w in probe.get_weights()] == [(3, 3, 1, 4), (4,), (256, 3), (3,)]


def test_train_runs_are_cached_by_recipe_data_and_sizes(tmp_path, monkeypatch, capsys):
    """The distribution cache was keyed by neither dataset nor input shape."""
    from cnncourse import data

    if not data.available("fashion_mnist"):
        pytest.skip("needs Fashion-MNIST (set CNNCOURSE_DATA)")
    launches = []

    def fake_launch(backend, devices, task="train", **options):
        launches.append((backend, options["dataset"], options["train_size"]))
        return {"runs": [{"backend": backend, "strategy": "x", "replicas": r, "global_batch": 64, "test_accuracy": 0.5,
                          "seconds": 1.0, "images_per_second": 1.0} for r in (1, devices)]}

    monkeypatch.setattr(distribute, "launch", fake_launch)
    kwargs = dict(dataset="fashion_mnist", train_size=64, test_size=32, epochs=1, batch_size=32,
                  cache=tmp_path / "d.json")
    rows = distribute.train_runs(**kwargs)
    assert len(rows) == 4 and len(launches) == 2
    assert distribute.train_runs(**kwargs) == rows and len(launches) == 2  # reused
    assert "reusing" in capsys.readouterr().out
    distribute.train_runs(**{**kwargs, "train_size": 96})
    assert len(launches) == 4  # other sizes: other data, trained
    distribute.train_runs(**{**kwargs, "width": 8})
    assert len(launches) == 6  # another recipe
    distribute.train_runs(**kwargs, recompute=True)
    assert len(launches) == 8
    with pytest.raises(ValueError, match="backend"):
        distribute.train_runs(["torch"], **kwargs)
