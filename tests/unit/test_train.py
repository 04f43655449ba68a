"""The training runner: bookkeeping, seeding and presentation around keras' own fit()."""

from types import SimpleNamespace

import keras
import numpy as np
import pytest

from cnncourse.experiments import train
from cnncourse.profiles import Experiment

RUN = Experiment(train_size=None, test_size=None, epochs=3, batch_size=32, seeds=2)


@pytest.fixture(scope="module")
def blobs():
    """Two well-separated Gaussian blobs in 8-D: any sensible model learns them."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=400).astype("int32")
    x = rng.normal(size=(400, 8)).astype("float32") + 3.0 * y[:, None]
    return SimpleNamespace(x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])


def make_model(seed, lr=0.05):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)])
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def test_fit_reports_the_run(blobs):
    keras.utils.set_random_seed(0)
    result = train.fit(make_model(0), blobs, RUN, label="mlp")
    assert result.label == "mlp" and result.epochs == RUN.epochs
    assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert result.test_accuracy == result.history["val_accuracy"][-1] > 0.9
    assert result.params == 8 * 16 + 16 + 16 * 2 + 2
    assert result.train_seconds > 0 and result.images_per_second > 0


def test_fit_without_validation_evaluates_once(blobs):
    keras.utils.set_random_seed(0)
    result = train.fit(make_model(0), blobs, RUN, validation=False)
    assert "val_loss" not in result.history
    assert 0.9 < result.test_accuracy <= 1.0


def test_same_seed_same_run_different_seed_different_run(blobs):
    a, b = train.run_seeds(make_model, blobs, RUN, seeds=[1, 1], progress=False)
    (c,) = train.run_seeds(make_model, blobs, RUN, seeds=[2], progress=False)
    assert a.history == b.history
    assert a.history["loss"] != c.history["loss"]


def test_compare_table_plot_and_roundtrip(blobs, tmp_path, capsys):
    makers = {"sgd 0.05": make_model, "sgd 0.001": lambda s: make_model(s, lr=0.001)}
    comp = train.compare(makers, blobs, RUN)
    out = capsys.readouterr().out
    assert "[4/4] sgd 0.001 seed 1" in out
    assert comp.labels == list(makers)
    assert comp.best() == "sgd 0.05"
    assert comp.best("loss", higher_is_better=False) == "sgd 0.05"
    assert comp.curves("sgd 0.05", "val_loss").shape == (2, 3)
    table = comp.table()
    assert table.count("\n") == 3 and "sgd 0.001" in table and "±" in table
    ax = comp.plot("val_accuracy")
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "test accuracy" and ax.get_title()
    loaded = train.Comparison.load(comp.save(tmp_path / "sub" / "comp.json"))
    assert loaded.results == comp.results
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_bad_arguments_are_clear_errors(blobs):
    with pytest.raises(ValueError, match="Experiment"):
        train.fit(make_model(0), blobs, {"epochs": 1})
    uncompiled = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="compile the model first"):
        train.fit(uncompiled, blobs, RUN)
    with pytest.raises(ValueError, match="at least one contender"):
        train.compare({}, blobs, RUN)
    comp = train.Comparison({"a": train.run_seeds(make_model, blobs, RUN, seeds=[0], progress=False)})
    with pytest.raises(ValueError, match="contenders: a"):
        comp.mean("b")
    with pytest.raises(ValueError, match="known metrics"):
        comp.mean("a", "top5")
    assert comp.std("a") == 0.0


def test_live_plot_degrades_to_text_when_headless(blobs, capsys):
    keras.utils.set_random_seed(0)
    live = train.LivePlot(title="demo")
    assert not live.graphical
    train.fit(make_model(0), blobs, RUN, callbacks=[live])
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("demo")]
    assert len(lines) == RUN.epochs and "val_accuracy" in lines[-1]


def test_epoch_timer_ignores_compilation_epoch():
    timer = train.EpochTimer()
    timer.seconds = [10.0, 1.0, 3.0]
    assert timer.steady_seconds == 2.0
    timer.seconds = [4.0]
    assert timer.steady_seconds == 4.0
