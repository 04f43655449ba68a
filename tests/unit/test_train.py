"""The one training loop: bookkeeping, validation discipline, budgets, seeds, comparisons and their table."""

import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from cnncourse.data import Split
from cnncourse.experiments import train
from cnncourse.experiments.results import RunResult
from cnncourse.profiles import Experiment

RUN = Experiment(train_size=None, test_size=None, epochs=3, batch_size=32, seeds=2)


def _blobs(n=400, seed=0):
    """Two well-separated Gaussian blobs in 8-D: any sensible model learns them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n).astype("int32")
    x = rng.normal(size=(n, 8)).astype("float32") + 3.0 * y[:, None]
    return x, y


@pytest.fixture(scope="module")
def blobs():
    x, y = _blobs()
    return SimpleNamespace(x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])


@pytest.fixture(scope="module")
def with_validation():
    """A Split whose validation and test sets differ visibly: the test half is mislabelled."""
    x, y = _blobs(500, seed=1)
    y_test = 1 - y[400:]  # every test label flipped: test accuracy ≈ 0 while validation ≈ 1
    return Split("blobs", x[:300], y[:300], x[400:], y_test, ("a", "b"), x_val=x[300:400], y_val=y[300:400])


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
    result = train.fit(make_model(0), blobs, RUN, label="mlp", config={"lr": 0.05})
    assert result.label == "mlp" and result.epochs == RUN.epochs
    assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert result.validation_source == "test"  # no validation set: the curve is on the test set, and says so
    assert result.test_accuracy == pytest.approx(result.history["val_accuracy"][-1]) and result.test_accuracy > 0.9
    assert result.params == 8 * 16 + 16 + 16 * 2 + 2
    assert len(result.seconds) == len(result.cpu_seconds) == RUN.epochs
    assert result.seconds == sorted(result.seconds) and result.train_seconds == result.seconds[-1] > 0
    assert result.images_per_second > 0 and result.config == {"lr": 0.05}
    assert result.test_accuracy_tta is None and result.reported_test_accuracy == result.test_accuracy
    assert not result.stopped_by_budget and result.resumed_from_epoch is None
    assert RunResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_with_a_validation_set_the_curves_use_it_and_the_test_set_is_used_once(with_validation):
    keras.utils.set_random_seed(0)
    result = train.fit(make_model(0), with_validation, RUN)
    assert result.validation_source == "validation"
    assert result.history["val_accuracy"][-1] > 0.9  # measured on the validation set ...
    assert result.test_accuracy < 0.1  # ... while the (mislabelled) test set is evaluated at the end
    without = train.fit(make_model(0), with_validation, RUN, validation=False)
    assert without.validation_source is None and "val_loss" not in without.history
    assert without.test_accuracy < 0.1


def test_fit_trains_on_an_input_pipeline_with_one_hot_targets(blobs):
    from cnncourse.data import pipeline

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
                  metrics=["accuracy"])
    inputs = pipeline(blobs.x_train, np.eye(2, dtype="float32")[blobs.y_train], 32, seed=0)
    flips = []

    def test_time(m, x):
        flips.append(len(x))
        return keras.ops.convert_to_numpy(keras.ops.softmax(m(x)))

    result = train.fit(model, blobs, RUN, inputs=inputs, one_hot=True, test_time=test_time)
    assert result.test_accuracy > 0.9 and result.history["val_accuracy"][-1] > 0.9
    assert flips == [len(blobs.x_test)] and result.test_accuracy_tta == pytest.approx(result.test_accuracy, abs=0.02)
    assert result.reported_test_accuracy == result.test_accuracy_tta


def test_a_time_budget_stops_training_on_either_clock(blobs):
    for clock in ("wall", "cpu"):
        keras.utils.set_random_seed(0)
        stopped = train.fit(make_model(0), blobs, RUN, budget_seconds=1e-6, clock=clock)
        assert stopped.stopped_by_budget and stopped.epochs == 1
    with pytest.raises(ValueError, match="budget"):
        train.fit(make_model(0), blobs, RUN, budget_seconds=0)
    with pytest.raises(ValueError, match="clock"):
        train.fit(make_model(0), blobs, RUN, budget_seconds=10, clock="gpu")


def test_same_seed_same_run_different_seed_different_run(blobs):
    a, b = train.run_seeds(make_model, blobs, RUN, seeds=[1, 1], progress=False)
    (c,) = train.run_seeds(make_model, blobs, RUN, seeds=[2], progress=False)
    assert a.history == b.history
    assert a.history["loss"] != c.history["loss"]


def test_compare_table_plot_and_roundtrip(blobs, capsys):
    makers = {"sgd 0.05": make_model, "sgd 0.001": lambda s: make_model(s, lr=0.001)}
    comp = train.compare(makers, blobs, RUN)
    out = capsys.readouterr().out
    assert "[4/4] sgd 0.001 seed 1" in out
    assert comp.labels == list(makers)
    assert comp.best() == "sgd 0.05"
    assert comp.best("loss", higher_is_better=False) == "sgd 0.05"
    assert comp.curves("sgd 0.05", "val_loss").shape == (2, 3)
    table = comp.table()
    assert table.count("\n") == 3 and "sgd 0.001" in table and "± " in table and "(2 seeds)" in table
    ax = comp.plot("val_accuracy")
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "test accuracy" and ax.get_title()
    assert all(float(t).is_integer() for t in ax.get_xticks())  # epochs are whole numbers
    assert train.Comparison.from_dict(json.loads(json.dumps(comp.to_dict()))).results == comp.results
    assert repr(comp) == "Comparison(2 contenders × 2 seed(s): sgd 0.05, sgd 0.001)"
    import matplotlib.pyplot as plt

    plt.close("all")


def test_one_seed_prints_no_spread(blobs):
    """Issue 14: one seed printed "± 0.0000", a spread that was never measured."""
    comp = train.Comparison({"a": train.run_seeds(make_model, blobs, RUN, seeds=[0], progress=False)})
    assert "± 0.0000" not in comp.table() and "± n/a (1 seed)" in comp.table()
    assert np.isnan(comp.std("a")) and comp.rows()[0]["test_accuracy_std"] is None


def test_plot_names_the_validation_set_when_it_was_used(with_validation):
    comp = train.compare({"m": make_model}, with_validation, RUN, seeds=[0], progress=False)
    assert comp.validation_source == "validation"
    ax = comp.plot("val_accuracy")
    assert ax.get_ylabel() == "validation accuracy"
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


def test_compare_caches_under_the_recipe_and_the_data(tmp_path, with_validation, capsys):
    path = tmp_path / "comparison.json"
    calls = []

    def maker(seed):
        calls.append(seed)
        return make_model(seed)

    kwargs = {"seeds": [0], "progress": False, "cache": path, "config": {"lr": 0.05}}
    first = train.compare({"m": maker}, with_validation, RUN, **kwargs)
    again = train.compare({"m": maker}, with_validation, RUN, **kwargs)
    assert calls == [0] and again.results == first.results
    train.compare({"m": maker}, with_validation, RUN, **{**kwargs, "config": {"lr": 0.1}})
    assert calls == [0, 0]  # another recipe is trained, not read
    other = Split("blobs", with_validation.x_train[::-1].copy(), with_validation.y_train[::-1].copy(),
                  with_validation.x_test, with_validation.y_test, ("a", "b"))
    train.compare({"m": maker}, other, RUN, **{**kwargs, "config": {"lr": 0.1}})
    assert calls == [0, 0, 0]  # same sizes and name, other arrays: trained
    train.compare({"m": maker}, with_validation, RUN, recompute=True, **kwargs)
    assert calls == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="config"):
        train.compare({"m": maker}, with_validation, RUN, cache=path)


def test_bad_arguments_are_clear_errors(blobs):
    with pytest.raises(ValueError, match="Experiment"):
        train.fit(make_model(0), blobs, {"epochs": 1})
    uncompiled = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="compile the model first"):
        train.fit(uncompiled, blobs, RUN)
    with pytest.raises(ValueError, match="at least one contender"):
        train.compare({}, blobs, RUN)
    with pytest.raises(ValueError, match="seed"):
        train.fit(make_model(0), blobs, RUN, seed=-1)
    comp = train.Comparison({"a": train.run_seeds(make_model, blobs, RUN, seeds=[0], progress=False)})
    with pytest.raises(ValueError, match="contenders: a"):
        comp.mean("b")
    with pytest.raises(ValueError, match="known metrics"):
        comp.mean("a", "top5")
    with pytest.raises(ValueError, match="run record"):
        RunResult.from_dict({"label": "x", "surprise": 1})


def test_live_plot_degrades_to_text_when_headless(blobs, capsys):
    keras.utils.set_random_seed(0)
    live = train.LivePlot(title="demo")
    assert not live.graphical
    train.fit(make_model(0), blobs, RUN, callbacks=[live])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("demo")]
    assert len(lines) == RUN.epochs and "val_accuracy" in lines[-1]
    assert live.held_out == "test"  # fit told it which set its val_* curve is on


def test_epoch_timer_ignores_compilation_epoch_and_continues_a_resumed_clock():
    timer = train.EpochTimer()
    timer.laps = [10.0, 1.0, 3.0]
    assert timer.steady_seconds == 2.0
    timer.laps = [4.0]
    assert timer.steady_seconds == 4.0
    resumed = train.EpochTimer(budget_seconds=5.0, start_seconds=6.0)
    assert resumed._spent("wall") == 6.0  # a resumed run's budget counts the epochs before the interruption


def test_result_time_to_target():
    hist = {"loss": [1.0, 0.5, 0.4], "val_accuracy": [0.80, 0.931, 0.92]}
    r = RunResult("r", 0, hist, 0.3, 0.92, [10.0, 21.0, 30.0], [5.0, 11.0, 16.0], 100.0, 1, "test")
    assert r.epochs == 3
    assert r.epochs_to(0.93) == 2 and r.time_to(0.93) == 21.0 and r.time_to(0.93, clock="cpu") == 11.0
    assert r.epochs_to(0.95) is None and r.time_to(0.95) is None
    with pytest.raises(ValueError, match="clock"):
        r.time_to(0.9, clock="gpu")
