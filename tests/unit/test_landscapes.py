"""cnncourse.reference.landscapes: test functions with exact gradients, optimizer paths, sweeps, contours."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.reference import landscapes, optim

FUNCTIONS = [landscapes.quadratic_1d, *landscapes.TEST_FUNCTIONS.values()]


@pytest.mark.parametrize("f", FUNCTIONS, ids=lambda f: f.name)
def test_gradients_equal_finite_differences(f):
    rng = np.random.default_rng(6)
    lo = np.array([f.xlim[0], f.ylim[0]][: f.dims])
    hi = np.array([f.xlim[1], f.ylim[1]][: f.dims])
    h = 1e-6
    for _ in range(20):
        p = rng.uniform(lo, hi) * 0.9
        numeric = np.array([(f(p + h * e) - f(p - h * e)) / (2 * h) for e in np.eye(f.dims)])
        np.testing.assert_allclose(f.grad(p), numeric, rtol=1e-5, atol=1e-5 * max(1.0, abs(f(p))))


@pytest.mark.parametrize("f", FUNCTIONS, ids=lambda f: f.name)
def test_minimum_is_stationary_and_lowest(f):
    m = np.asarray(f.minimum)
    np.testing.assert_allclose(f.grad(m), 0.0, atol=1e-12)
    rng = np.random.default_rng(7)
    around = m + rng.normal(scale=0.1, size=(200, f.dims))
    assert np.all(f(around.T) >= f(m))


def test_functions_evaluate_on_grids():
    X, Y = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 4))
    Z = landscapes.rosenbrock(np.stack([X, Y]))
    assert Z.shape == (4, 5)
    assert Z[0, 0] == landscapes.rosenbrock([-1.0, -1.0])
    assert landscapes.rosenbrock.grad(np.stack([X, Y])).shape == (2, 4, 5)


def test_gradient_descent_on_quadratic_follows_closed_form():
    for lr in (0.1, 0.5, 0.75, 1.1):
        path = landscapes.trajectory(optim.SGD(lr), landscapes.quadratic_1d, steps=10)
        np.testing.assert_allclose(path[:, 0], 4.0 * (1 - 2 * lr) ** np.arange(11), rtol=1e-12)


def test_trajectory_marks_divergence_with_inf():
    path = landscapes.trajectory(optim.SGD(2.0), landscapes.quadratic_1d, steps=1000)
    assert path.shape == (1001, 1)
    assert np.isfinite(path[0, 0]) and np.isinf(path[-1, 0])


def test_trajectory_with_a_keras_optimizer_matches_from_scratch():
    ours = landscapes.trajectory(optim.Nesterov(0.01, 0.9), landscapes.ravine, steps=50)
    theirs = landscapes.trajectory(keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True), landscapes.ravine, steps=50)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_momentum_beats_gd_on_the_ravine():
    gd = landscapes.trajectory(optim.SGD(0.4), landscapes.ravine, steps=60)[-1]
    heavy = landscapes.trajectory(optim.Momentum(0.4, 0.5), landscapes.ravine, steps=60)[-1]
    assert landscapes.ravine(heavy) < landscapes.ravine(gd) / 10


def test_lr_sweep_finds_the_stable_window():
    lrs = np.logspace(-3, 1, 9)
    gaps = landscapes.lr_sweep(optim.SGD, landscapes.quadratic_1d, lrs, steps=50)
    assert gaps.shape == lrs.shape
    assert gaps[-1] > 1e50  # η = 10 > 1 diverges: |1 − 2η|^50 = 19^50
    assert gaps[0] > 1.0  # η = 1e-3 has barely moved
    assert gaps[np.argmin(gaps)] < 1e-10 and 0.1 <= lrs[np.argmin(gaps)] <= 1.0


def test_plot_function_draws_paths():
    import matplotlib

    matplotlib.use("agg")
    paths = {"GD": landscapes.trajectory(optim.SGD(0.4), landscapes.ravine, steps=20)}
    ax = landscapes.plot_function(landscapes.ravine, paths, title="t")
    assert ax.get_title() == "t" and any(line.get_label() == "GD" for line in ax.get_lines())
    with pytest.raises(ValueError, match="2-D"):
        landscapes.plot_function(landscapes.quadratic_1d)
