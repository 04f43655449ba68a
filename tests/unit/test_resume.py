"""An interrupted training run resumes where it stopped (keras.callbacks.BackupAndRestore).

A child process trains with a backup directory and is killed (SIGKILL, no chance to clean
up) after a chosen epoch; a second process with the same command finishes the run. It must
say that it resumes, report the whole history (the epochs before the kill too) and, the run
being deterministic (no shuffling, no dropout), end with exactly the weights and history of an
uninterrupted run. The course removes only what it wrote.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

JOB = textwrap.dedent(
    """
    import json, os, signal, sys
    from types import SimpleNamespace
    import keras, numpy as np
    import cnncourse
    from cnncourse.experiments import train
    from cnncourse.profiles import Experiment

    out, backup = sys.argv[1], sys.argv[2]
    kill_after = int(os.environ.get("KILL_AFTER_EPOCH", "-1"))
    cnncourse.setup(0, quiet=True)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600).astype("int32")
    x = (rng.normal(size=(600, 12)) + y[:, None]).astype("float32")
    data = SimpleNamespace(x_train=x[:480], y_train=y[:480], x_test=x[480:], y_test=y[480:])
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

    class Killer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            print("epoch", epoch, flush=True)
            if epoch == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    run = Experiment(None, None, epochs=6, batch_size=32)
    result = train.fit(model, data, run, callbacks=[Killer()], shuffle=False, backup_dir=backup, label="mlp")
    np.savez(out, *model.get_weights())
    print(json.dumps({"epochs": result.epochs, "resumed_from": result.resumed_from_epoch, "acc": result.test_accuracy,
                      "loss": result.history["loss"], "seconds": len(result.seconds)}), flush=True)
    """
)


def run_job(tmp_path, name, backup, kill_after=None):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = dict(os.environ)
    if kill_after is not None:
        env["KILL_AFTER_EPOCH"] = str(kill_after)
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / f"{name}.npz"), str(backup)],
        capture_output=True, text=True, env=env, timeout=300,
    )


@pytest.mark.slow
def test_killed_run_resumes_to_identical_weights(tmp_path):
    reference = run_job(tmp_path, "reference", tmp_path / "backup_ref")
    assert reference.returncode == 0, reference.stderr[-2000:]
    uninterrupted = json.loads(reference.stdout.splitlines()[-1])

    backup = tmp_path / "backup"
    killed = run_job(tmp_path, "resumed", backup, kill_after=3)
    assert killed.returncode == -9, killed.stderr[-2000:]  # died by SIGKILL mid-run
    assert "epoch 3" in killed.stdout and not (tmp_path / "resumed.npz").exists()
    assert (backup / "mlp-seed0" / "history.json").exists()  # the backup and its history survived the kill

    resumed = run_job(tmp_path, "resumed", backup)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    lines = resumed.stdout.splitlines()
    assert lines[0].startswith("resuming mlp seed 0 from epoch 3")  # it says so ...
    assert lines[1] == "epoch 3"  # ... and picks up where it was killed
    summary = json.loads(lines[-1])
    assert summary["epochs"] == 6 and summary["seconds"] == 6 and summary["resumed_from"] == 3  # the whole history
    np.testing.assert_allclose(summary["loss"], uninterrupted["loss"], rtol=1e-6)
    assert summary["acc"] > 0.6
    assert not backup.exists()  # the course created the folder, so a finished run removes it

    ref, res = np.load(tmp_path / "reference.npz"), np.load(tmp_path / "resumed.npz")
    assert ref.files == res.files
    for key in ref.files:
        np.testing.assert_array_equal(ref[key], res[key])
