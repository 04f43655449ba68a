"""Data-parallel training on several devices gives the results of one device, on the devices the machine has.

Each run is a fresh subprocess (the device split must happen before the framework starts).
One SGD step on the same global batch: two replicas each see half the batch and their
gradients are averaged, so the weights after the step equal one device's up to float
rounding of the split sum. Where the children run (GPUs, else logical CPU devices) is
planned from the GPUs the machine has; here the plan is tested with a given GPU count, and
the real runs on this machine's CPU.
"""

import subprocess

import keras
import numpy as np
import pytest

from cnncourse import backend as backend_module
from cnncourse.experiments import distribute


def test_launch_rejects_bad_arguments():
    with pytest.raises(ValueError, match="backend"):
        distribute.launch("torch", 2)
    with pytest.raises(ValueError, match="devices"):
        distribute.launch("jax", 0)
    with pytest.raises(ValueError, match="task"):
        distribute.launch("jax", 2, "predict")


def test_the_plan_uses_every_gpu_and_logical_cpus_only_without_one():
    assert distribute.plan("train", gpus=0) == {"platform": "cpu", "devices": 2}
    assert distribute.plan("train", 4, gpus=0) == {"platform": "cpu", "devices": 4}
    assert distribute.plan("train", gpus=1) == {"platform": "gpu", "devices": 1}  # nothing to split: that GPU alone
    assert distribute.plan("train", gpus=8) == {"platform": "gpu", "devices": 8}
    assert distribute.plan("train", 2, gpus=8) == {"platform": "gpu", "devices": 2}
    with pytest.raises(ValueError, match="8 GPU"):
        distribute.plan("train", 16, gpus=8)
    # the one-step comparison needs two devices of one kind
    assert distribute.plan("step", gpus=1) == {"platform": "cpu", "devices": 2}
    assert distribute.plan("step", gpus=2) == {"platform": "gpu", "devices": 2}
    with pytest.raises(ValueError, match="gpus"):
        distribute.plan("train", gpus=-1)


class _Done:
    returncode = 0
    stderr = ""

    def __init__(self, stdout):
        self.stdout = stdout


def _capture_launch(monkeypatch, gpus):
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"], seen["env"] = cmd, kwargs["env"]
        return _Done('noise\nCNNCOURSE-RESULT {"runs": []}\n')

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(distribute, "available_backends", lambda: ["jax", "tensorflow"])
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")  # a parent forced to CPU must not force its children
    out = distribute.launch("jax", None, "train", gpus=gpus, dataset="fashion_mnist")
    return out, seen


def test_a_child_on_a_gpu_machine_sees_the_gpus(monkeypatch):
    out, seen = _capture_launch(monkeypatch, gpus=2)
    assert out["plan"] == {"platform": "gpu", "devices": 2}
    assert "CUDA_VISIBLE_DEVICES" not in seen["env"] or seen["env"]["CUDA_VISIBLE_DEVICES"] != ""
    assert "JAX_PLATFORMS" not in seen["env"]
    assert seen["cmd"][seen["cmd"].index("--platform") + 1] == "gpu"


def test_a_child_without_gpus_gets_logical_cpu_devices(monkeypatch):
    out, seen = _capture_launch(monkeypatch, gpus=0)
    assert out["plan"] == {"platform": "cpu", "devices": 2}
    assert seen["env"]["CUDA_VISIBLE_DEVICES"] == "" and seen["env"]["JAX_PLATFORMS"] == "cpu"
    assert "--xla_force_host_platform_device_count=2" in seen["env"]["XLA_FLAGS"]
    assert seen["cmd"][seen["cmd"].index("--platform") + 1] == "cpu"


def test_a_backend_that_is_not_installed_is_refused_before_starting(monkeypatch):
    monkeypatch.setattr(distribute, "available_backends", lambda: ["jax"])
    with pytest.raises(ValueError, match="not installed"):
        distribute.launch("tensorflow", task="step")


def test_available_backends_are_the_installed_ones():
    assert distribute.available_backends() == [b for b in backend_module.installed_backends() if b in distribute.BACKENDS]
    assert keras.backend.backend() in distribute.available_backends()


def test_the_timeout_grows_with_the_work():
    small = distribute.default_timeout("train", {"train_size": 512, "epochs": 1})
    large = distribute.default_timeout("train", {"train_size": 60_000, "epochs": 5})
    assert 600 <= small < large and large >= 3 * 60_000 * 5 / 100


def test_results_table():
    rows = [
        {"backend": "tensorflow", "strategy": "MirroredStrategy (2 logical CPUs)", "replicas": 2, "global_batch": 256,
         "test_accuracy": 0.91234, "seconds": 12.3, "images_per_second": 1234.5, "device": "CPU",
         "dtype_policy": "float32", "jit_compile": False, "seed": 0},
        {"backend": "jax", "strategy": "DataParallel (8 GPUs)", "replicas": 8, "global_batch": 512,
         "test_accuracy": 0.9, "seconds": 10.0, "images_per_second": 999.0, "device": "NVIDIA H200",
         "dtype_policy": "mixed_bfloat16", "jit_compile": True, "seed": 0},
    ]
    lines = distribute.results_table(rows).splitlines()
    assert len(lines) == 4 and all(line.count("|") == 13 for line in lines)
    assert "| 2 | CPU | float32 | no | 0 | 256 | 128 | 0.9123 |" in lines[2] and "1,234" in lines[2]
    assert "| 8 | NVIDIA H200 | mixed_bfloat16 | yes | 0 | 512 | 64 | 0.9000 |" in lines[3]


def _row(backend, replicas, seed, accuracy):
    return {"backend": backend, "replicas": replicas, "seed": seed, "test_accuracy": accuracy}


def test_agreement_bands_the_distributed_run_by_what_randomness_alone_moves():
    rows = [_row("jax", 1, 0, 0.80), _row("jax", 1, 1, 0.78), _row("jax", 2, 0, 0.75)]
    found = distribute.agreement(rows, "jax", test_size=2000)
    sampling = (2 * 0.8 * 0.2 / 2000) ** 0.5
    assert found["seed_gap"] == pytest.approx(0.02) and found["sampling_gap"] == pytest.approx(sampling)
    assert found["band"] == pytest.approx(0.06) and found["gap"] == pytest.approx(0.05) and found["holds"]
    rows[2] = _row("jax", 2, 0, 0.70)  # further from its one-device run than three seed gaps
    assert not distribute.agreement(rows, "jax", test_size=2000)["holds"]
    # two seeds that happen to agree: test-set sampling sets the floor of the band
    same = [_row("jax", 1, 0, 0.80), _row("jax", 1, 1, 0.80), _row("jax", 2, 0, 0.79)]
    found = distribute.agreement(same, "jax", test_size=2000)
    assert found["band"] == pytest.approx(3 * sampling) and found["holds"]
    single_gpu = [_row("jax", 1, 0, 0.80), _row("jax", 1, 1, 0.79)]
    assert distribute.agreement(single_gpu, "jax", test_size=2000)["gap"] is None
    with pytest.raises(ValueError, match="two seeds"):
        distribute.agreement(rows[:1], "jax", test_size=2000)


def assert_same_step(backend):
    one, two = distribute.launch(backend, 2, "step", batch_size=32, timeout=600)["runs"]
    assert one["replicas"] == 1 and two["replicas"] == 2 and two["backend"] == backend
    assert one["placed_on"] == 1 and two["placed_on"] == 2  # the distribution really split the work
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert len(one["weights"]) == len(two["weights"]) == 4
    for a, b in zip(one["weights"], two["weights"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-5, atol=1e-6)
    assert one["moved"] > 1e-3  # the step did change the weights (equal is not "both untouched")
    assert one["dtype_policy"] == "float32"


@pytest.mark.slow
@pytest.mark.tf_only
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow half of the pair")
def test_mirrored_strategy_step_equals_one_device():
    assert_same_step("tensorflow")


@pytest.mark.slow
def test_jax_data_parallel_step_equals_one_device():
    assert_same_step("jax")


@pytest.mark.slow
def test_jax_data_parallel_training_runs_on_both_devices_compiled():
    """Two bugs: the recipe's session reset dropped the distribution (the '2-device' run used one),
    and its uncompiled steps made every operation a 2-device all-reduce that aborted the child."""
    from cnncourse import data

    if not data.available("fashion_mnist"):
        pytest.skip("needs Fashion-MNIST (set CNNCOURSE_DATA)")
    out = distribute.launch("jax", 2, "train", dataset="fashion_mnist", train_size=256, test_size=200, epochs=1,
                            batch_size=128, width=4)
    one, other_seed, two = out["runs"]
    assert [r["replicas"] for r in out["runs"]] == [1, 1, 2] and [r["seed"] for r in out["runs"]] == [0, 1, 0]
    assert [r["placed_on"] for r in out["runs"]] == [1, 1, 2]
    assert all(r["jit_compile"] and r["dtype_policy"] == "float32" and r["device"] == "CPU" for r in out["runs"])
    assert out["plan"] == {"platform": "cpu", "devices": 2}


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
                          "seconds": 1.0, "images_per_second": 1.0} for r in (1, 1, 2)]}

    monkeypatch.setattr(distribute, "launch", fake_launch)
    monkeypatch.setattr(distribute, "available_backends", lambda: ["tensorflow", "jax"])
    monkeypatch.setattr(backend_module, "nvidia_gpu_count", lambda: 0)
    kwargs = dict(dataset="fashion_mnist", train_size=64, test_size=32, epochs=1, batch_size=32,
                  cache=tmp_path / "d.json")
    rows = distribute.train_runs(**kwargs)
    assert len(rows) == 6 and len(launches) == 2
    assert distribute.train_runs(**kwargs) == rows and len(launches) == 2  # reused
    assert "reusing" in capsys.readouterr().out
    distribute.train_runs(**{**kwargs, "train_size": 96})
    assert len(launches) == 4  # other sizes: other data, trained
    distribute.train_runs(**{**kwargs, "width": 8})
    assert len(launches) == 6  # another recipe
    distribute.train_runs(**kwargs, recompute=True)
    assert len(launches) == 8
    monkeypatch.setattr(backend_module, "nvidia_gpu_count", lambda: 2)
    distribute.train_runs(**kwargs)
    assert len(launches) == 10  # the same request on a machine with GPUs: other devices, trained
    with pytest.raises(ValueError, match="backend"):
        distribute.train_runs(["torch"], **kwargs)
    monkeypatch.setattr(distribute, "available_backends", lambda: ["jax"])
    distribute.train_runs(**{**kwargs, "cache": tmp_path / "jax-only.json"})
    assert launches[-1][0] == "jax" and len(launches) == 11  # only what is installed runs
