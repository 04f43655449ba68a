"""Backups never lose, mix up or delete data (issue 15): each test reproduced a defect of the old loop first.

The interruption is a KeyboardInterrupt raised at the start of an epoch (what a student's
Ctrl-C does): Keras has saved the epochs before it, and nothing is cleaned up.
"""

import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from cnncourse.experiments import train
from cnncourse.experiments.backup import BackupError, run_folder_name
from cnncourse.profiles import Experiment

RUN = Experiment(None, None, epochs=4, batch_size=32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=200).astype("int32")
    x = rng.normal(size=(200, 8)).astype("float32") + 3.0 * y[:, None]
    return SimpleNamespace(x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[150:])


def make(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


class Interrupt(keras.callbacks.Callback):
    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def interrupted(data, backup, label="m", seed=0, at=2):
    with pytest.raises(KeyboardInterrupt):
        train.fit(make(seed), data, RUN, label=label, seed=seed, backup_dir=backup, callbacks=[Interrupt(at)],
                  shuffle=False)
    return backup / run_folder_name(label, seed)


def test_backup_dir_keeps_the_users_files(data, tmp_path):
    """Keras' delete_checkpoint=True used to delete the whole folder, the user's files with it."""
    (tmp_path / "thesis.tex").write_text("years of work")
    (tmp_path / "notes").mkdir()
    train.fit(make(), data, RUN, backup_dir=tmp_path)
    assert (tmp_path / "thesis.tex").read_text() == "years of work" and (tmp_path / "notes").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "thesis.tex"]  # and nothing of ours is left


def test_a_folder_the_course_did_not_make_is_refused(data, tmp_path):
    folder = tmp_path / run_folder_name("m", 0)
    folder.mkdir()
    (folder / "latest.weights.h5").write_text("someone else's")
    with pytest.raises(BackupError, match="not made by cnncourse"):
        train.fit(make(), data, RUN, label="m", backup_dir=tmp_path)
    assert (folder / "latest.weights.h5").read_text() == "someone else's"


def test_foreign_files_in_a_run_folder_are_refused_and_kept(data, tmp_path):
    folder = interrupted(data, tmp_path)
    (folder / "my_plot.png").write_text("mine")
    with pytest.raises(BackupError, match="did not write.*my_plot.png"):
        train.fit(make(), data, RUN, label="m", backup_dir=tmp_path)
    assert (folder / "my_plot.png").exists()


def test_resumed_run_says_so_and_keeps_the_whole_history(data, tmp_path, capsys):
    interrupted(data, tmp_path / "b")
    result = train.fit(make(), data, RUN, label="m", seed=0, backup_dir=tmp_path / "b", shuffle=False)
    assert "resuming m seed 0 from epoch 2" in capsys.readouterr().out
    assert result.epochs == RUN.epochs and result.resumed_from_epoch == 2
    assert len(result.seconds) == len(result.cpu_seconds) == RUN.epochs and result.seconds == sorted(result.seconds)
    assert all(len(v) == RUN.epochs for v in result.history.values())
    reference = train.fit(make(), data, RUN, label="m", seed=0, shuffle=False)
    np.testing.assert_allclose(result.history["loss"], reference.history["loss"], rtol=1e-5)
    assert not (tmp_path / "b").exists()  # finished: the folders the course made are gone


def test_seeds_and_contenders_never_share_a_backup(data, tmp_path):
    """run_seeds used to let seed 0 resume seed 1's checkpoint (and report its accuracy)."""
    interrupted(data, tmp_path / "b", seed=1)
    r0, r1 = train.run_seeds(make, data, RUN, label="m", seeds=[0, 1], backup_dir=tmp_path / "b", progress=False)
    assert r0.resumed_from_epoch is None and r0.epochs == RUN.epochs  # seed 0 trained from scratch
    assert r1.resumed_from_epoch == 2 and r1.epochs == RUN.epochs  # seed 1 resumed its own
    interrupted(data, tmp_path / "c", label="a")
    comp = train.compare({"a": make, "b": make}, data, RUN, seeds=[0], backup_dir=tmp_path / "c", progress=False)
    assert comp.results["a"][0].resumed_from_epoch == 2 and comp.results["b"][0].resumed_from_epoch is None


def test_a_truncated_weights_file_gives_one_clear_message(data, tmp_path):
    folder = interrupted(data, tmp_path)
    weights = folder / "latest.weights.h5"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(BackupError, match=f"Delete the folder {folder}") as err:
        train.fit(make(), data, RUN, label="m", backup_dir=tmp_path)
    assert "truncated" in str(err.value) and "\n" not in str(err.value)
    assert weights.exists()  # nothing is deleted on the user's behalf


def test_a_missing_training_metadata_is_not_a_silent_restart(data, tmp_path):
    """With weights but no training_metadata.json, Keras restarted at epoch 0 from trained weights."""
    folder = interrupted(data, tmp_path)
    (folder / "training_metadata.json").unlink()
    with pytest.raises(BackupError, match="no training_metadata.json.*Delete the folder"):
        train.fit(make(), data, RUN, label="m", backup_dir=tmp_path)


def test_a_missing_history_is_named_instead_of_losing_epochs(data, tmp_path):
    folder = interrupted(data, tmp_path)
    (folder / "history.json").write_text("{")
    with pytest.raises(BackupError, match="history.json is missing or damaged"):
        train.fit(make(), data, RUN, label="m", backup_dir=tmp_path)


def test_weights_of_another_model_are_named(data, tmp_path):
    interrupted(data, tmp_path)
    other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(7), keras.layers.Dense(2)])
    other.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    with pytest.raises(BackupError, match="Keras could not restore it"):
        train.fit(other, data, RUN, label="m", backup_dir=tmp_path)


def test_another_runs_folder_is_refused(data, tmp_path):
    folder = tmp_path / run_folder_name("m", 0)
    folder.mkdir()
    (folder / ".cnncourse-run").write_text(json.dumps({"label": "m/other", "seed": 0}))
    with pytest.raises(BackupError, match="belongs to another run"):
        train.fit(make(), data, RUN, label="m", backup_dir=tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BackupError, match="is a file"):
        train.fit(make(), data, RUN, backup_dir=tmp_path / "file")


def test_folder_names_are_safe_and_keyed_by_label_and_seed():
    assert run_folder_name("sgd 0.05", 3) == "sgd_0.05-seed3"
    assert run_folder_name("../../etc", 0) == "etc-seed0"
    assert run_folder_name("−", 1) == "run-seed1"
