"""The learning-rate range test: exponential sweep, smoothed loss, stop on divergence, weights restored."""

from __future__ import annotations

import keras
import matplotlib
import numpy as np
import pytest

from cnncourse.experiments.lr_range import LearningRateRangeTest, lr_range_test

matplotlib.use("agg")


def _regression(n=256, seed=0):
    """y = x·w + b + noise, x with variances 9 and 1; and the stability limit 2/λ_max of GD on its MSE."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) * np.array([3.0, 1.0])
    y = x @ np.array([1.0, -2.0]) + 0.5 + 0.3 * rng.normal(size=n)
    design = np.c_[x, np.ones(n)]
    hessian = 2.0 / n * design.T @ design  # of Keras' mean squared error in (w, b)
    return x.astype("float32"), y.astype("float32"), 2.0 / np.linalg.eigvalsh(hessian).max()


def _linear_model(momentum=0.0):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01, momentum=momentum), "mse")
    return model


def test_the_sweep_finds_the_stability_limit_of_a_quadratic_and_suggests_a_rate_below_it():
    """Full-batch GD on least squares diverges above 2/λ_max: the test must stop past it and suggest below it."""
    x, y, critical = _regression()
    model = _linear_model()
    test = lr_range_test(model, x, y, batch_size=len(x), min_lr=critical * 1e-4, max_lr=critical * 100, steps=60, smoothing=0.5)
    assert test.diverged and len(test.losses) < 60
    assert critical < test.learning_rates[-1] < 20 * critical  # stopped after the limit, not long after
    assert critical / 10 < test.suggestion() < critical  # a tenth of the minimum: stable, and not timid
    assert test.smoothed_losses[-1] > 4 * min(test.smoothed_losses)
    assert test.min_loss_rate() == pytest.approx(10 * test.suggestion())
    assert critical * 1e-4 <= test.steepest() < test.min_loss_rate()


def test_rates_grow_exponentially_per_batch():
    x, y, critical = _regression()
    test = lr_range_test(_linear_model(), x, y, batch_size=32, min_lr=1e-5, max_lr=1e-2, steps=13, seed=1)
    assert not test.diverged and len(test.learning_rates) == 13  # 13 batches over two epochs of 8
    np.testing.assert_allclose(test.learning_rates[0], 1e-5)
    np.testing.assert_allclose(test.learning_rates[-1], 1e-2)
    np.testing.assert_allclose(np.diff(np.log10(test.learning_rates)), 0.25)  # 3 decades over 12 steps


def test_batch_losses_are_recovered_from_keras_running_mean():
    x, y, _ = _regression(n=96)
    model = _linear_model()
    test = LearningRateRangeTest(1e-12, 1e-11, steps=6, smoothing=0.0)  # rates too small to move the weights
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[test])
    predictions = model.predict(x, verbose=0)[:, 0]
    per_batch = [float(np.mean((predictions[i : i + 32] - y[i : i + 32]) ** 2)) for i in range(0, 96, 32)]
    np.testing.assert_allclose(test.losses, per_batch * 2, rtol=1e-4)
    np.testing.assert_allclose(test.smoothed_losses, test.losses)  # smoothing 0: the losses themselves


def test_smoothing_is_a_bias_corrected_moving_average():
    x, y, _ = _regression(n=64)
    test = lr_range_test(_linear_model(), x, y, batch_size=16, min_lr=1e-4, max_lr=1e-1, steps=10, smoothing=0.9)
    average, expected = 0.0, []
    for t, loss in enumerate(test.losses, start=1):
        average = 0.9 * average + 0.1 * loss
        expected.append(average / (1 - 0.9**t))
    np.testing.assert_allclose(test.smoothed_losses, expected, rtol=1e-6)
    assert test.smoothed_losses[0] == pytest.approx(test.losses[0])  # no pull towards 0 at the start


def test_weights_and_optimizer_state_are_restored():
    x, y, critical = _regression()
    model = _linear_model(momentum=0.9)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # some momentum and a step count to restore
    weights = [w.copy() for w in model.get_weights()]
    state = [keras.ops.convert_to_numpy(v).copy() for v in model.optimizer.variables]
    test = lr_range_test(model, x, y, batch_size=64, min_lr=1e-4, max_lr=1e3 * critical, steps=40)
    assert test.diverged
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, v in zip(state, model.optimizer.variables):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(v))
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)


def test_plot_marks_the_suggestion():
    x, y, critical = _regression()
    test = lr_range_test(_linear_model(), x, y, batch_size=len(x), min_lr=critical * 1e-3, max_lr=critical * 30, steps=30, smoothing=0.5)
    import matplotlib.pyplot as plt

    other = plt.figure()  # a figure another cell (or test) left open: the plot must not draw into it
    plt.plot([0, 1], label="someone else's line")
    ax = test.plot()
    assert ax.figure is not other and len(ax.get_lines()) == 3
    assert ax.get_xscale() == "log" and "suggestion" in ax.get_legend().get_texts()[2].get_text()
    plt.close("all")


def test_bad_arguments_and_schedules_are_refused():
    for kwargs in ({"min_lr": 0}, {"max_lr": 1e-7}, {"steps": 1}, {"smoothing": 1.0}, {"divergence": 1.0}):
        with pytest.raises(ValueError):
            LearningRateRangeTest(**kwargs)
    with pytest.raises(ValueError, match="no results yet"):
        LearningRateRangeTest().suggestion()
    x, y, _ = _regression(n=64)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)), "mse")
    with pytest.raises(ValueError, match="schedule"):
        lr_range_test(model, x, y, batch_size=16, steps=4)
    with pytest.raises(ValueError, match="batch_size"):
        lr_range_test(_linear_model(), x, y, batch_size=0)
    with pytest.raises(ValueError, match="compile"):
        lr_range_test(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), x, y, batch_size=16)
