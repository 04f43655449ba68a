"""cnncourse.reference.optim: from-scratch optimizers equal Keras', test functions, OneCycle."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.reference import optim

TOL = 1e-6  # float32 on both sides; in practice the paths agree bit for bit

# Each from-scratch optimizer with default and with non-default hyperparameters.
CASES = {
    "SGD": lambda: optim.SGD(),
    "SGD lr=0.1": lambda: optim.SGD(0.1),
    "Momentum": lambda: optim.Momentum(),
    "Momentum 0.99": lambda: optim.Momentum(0.003, 0.99),
    "Nesterov": lambda: optim.Nesterov(),
    "Nesterov 0.95": lambda: optim.Nesterov(0.05, 0.95),
    "AdaGrad": lambda: optim.AdaGrad(),
    "AdaGrad lr=0.1": lambda: optim.AdaGrad(0.1, initial_accumulator_value=0.5, epsilon=1e-6),
    "RMSprop": lambda: optim.RMSprop(),
    "RMSprop rho=0.99": lambda: optim.RMSprop(0.01, rho=0.99),
    "Adam": lambda: optim.Adam(),
    "Adam paper eps": lambda: optim.Adam(0.01, 0.8, 0.99, epsilon=1e-8),
    "AdamW": lambda: optim.AdamW(),
    "AdamW wd=0.1": lambda: optim.AdamW(0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_parameters_as_keras_on_random_gradients(case):
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(3, 4)).astype(np.float32)
    grads = rng.normal(scale=2.0, size=(100, 3, 4)).astype(np.float32)
    ours = CASES[case]()
    assert optim.compare_with_keras(ours, grads, w0) <= TOL
    assert ours.iterations == 100


@pytest.mark.parametrize("case", list(CASES))
def test_same_path_as_keras_on_a_quadratic(case):
    """Closed loop: each side's gradient is computed at its own parameters (f = ½ wᵀAw − bᵀw)."""
    rng = np.random.default_rng(2)
    q = rng.normal(size=(5, 5))
    a = (q @ q.T / 5 + 0.1 * np.eye(5)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    w = rng.normal(size=5).astype(np.float32)
    variable = keras.Variable(w.copy())
    ours, theirs = CASES[case](), CASES[case]().to_keras()
    start_loss = 0.5 * w @ a @ w - b @ w
    for _ in range(100):
        w = ours.step(w, a @ w - b)
        kw = keras.ops.convert_to_numpy(variable)
        theirs.apply_gradients([(keras.ops.convert_to_tensor(a @ kw - b), variable)])
    kw = keras.ops.convert_to_numpy(variable)
    assert np.max(np.abs(w - kw)) <= TOL
    assert w.dtype == np.float32
    if not case.startswith("AdamW"):  # weight decay changes the objective
        assert 0.5 * w @ a @ w - b @ w < start_loss


@pytest.mark.parametrize("name", list(optim.FROM_SCRATCH))
def test_closed_loop_comparison_on_the_ravine(name):
    ours = optim.FROM_SCRATCH[name](0.05)
    assert optim.compare_with_keras(ours, optim.ravine.grad, np.array(optim.ravine.start), steps=100) <= TOL
    # the closed loop feeds differences back: a different optimizer drifts away
    other = keras.optimizers.SGD(0.05, momentum=0.5)
    assert optim.compare_with_keras(ours, optim.ravine.grad, np.array(optim.ravine.start), keras_optimizer=other) > 1e-3


def test_a_wrong_rule_is_detected():
    """The comparison can fail: heavy ball is not Nesterov, and the paper's Adam ε is not Keras'."""
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=8).astype(np.float32)
    grads = rng.normal(size=(100, 8)).astype(np.float32)
    assert optim.compare_with_keras(optim.Momentum(), grads, w0, keras_optimizer=optim.Nesterov().to_keras()) > 1e-3
    assert optim.compare_with_keras(optim.Adam(), grads, w0, keras_optimizer=optim.AdamW().to_keras()) > 1e-5
    tiny = grads * 1e-6  # gradients of order ε: where ε-hat and ε differ
    paper = optim.Adam(epsilon_hat=False)
    assert optim.compare_with_keras(paper, tiny, w0, keras_optimizer=optim.Adam().to_keras()) > 1e-5


def test_adam_forms_agree_with_rescaled_epsilon():
    """Keras' ε-hat form equals the paper's Algorithm 1 with ε = ε̂ / √(1 − β2^t); with ε = 0 exactly."""
    rng = np.random.default_rng(4)
    w = rng.normal(size=6)
    a, b = optim.Adam(0.01, epsilon=0.0), optim.Adam(0.01, epsilon=0.0, epsilon_hat=False)
    wa, wb = w.copy(), w.copy()
    for _ in range(50):
        g = rng.normal(size=6)
        wa, wb = a.step(wa, g), b.step(wb, g)
    np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-12)


def test_first_adam_step_is_lr_times_sign():
    """Bias correction: m̂₁ = g₁ and v̂₁ = g₁², so the first step is η·g/|g| (up to ε)."""
    g = np.array([3.0, -0.02, 1e3])
    w = optim.Adam(0.1, epsilon=0.0, epsilon_hat=False).step(np.zeros(3), g)
    np.testing.assert_allclose(w, -0.1 * np.sign(g), rtol=1e-12)


def test_momentum_equals_lecture_form_with_constant_lr():
    """Keras' velocity form (m = βm − ηg; w += m) equals p = βp + g; w −= ηp for constant η."""
    rng = np.random.default_rng(5)
    w_keras, w_lecture, p = rng.normal(size=4), None, np.zeros(4)
    w_lecture = w_keras.copy()
    opt = optim.Momentum(0.05, 0.9)
    for _ in range(30):
        g = rng.normal(size=4)
        w_keras = opt.step(w_keras, g)
        p = 0.9 * p + g
        w_lecture = w_lecture - 0.05 * p
    np.testing.assert_allclose(w_keras, w_lecture, rtol=1e-10)


def test_learning_rate_schedule_is_read_at_previous_step_count():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    opt = optim.SGD(schedule)
    w = np.zeros(1)
    for _ in range(3):
        w = opt.step(w, np.ones(1))
    np.testing.assert_allclose(w, [-(0.1 + 0.05 + 0.025)], rtol=1e-6)
    assert optim.compare_with_keras(optim.Momentum(schedule), np.ones((20, 2)), np.zeros(2)) <= TOL


def test_reset_and_shape_checks():
    opt = optim.Adam()
    opt.step(np.zeros(3), np.ones(3))
    opt.reset()
    assert opt.iterations == 0 and opt.m is None
    with pytest.raises(ValueError, match="gradient shape"):
        opt.step(np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match="momentum"):
        optim.Momentum(momentum=1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        optim.SGD(-1.0)
    with pytest.raises(ValueError, match="epsilon-hat"):
        optim.Adam(epsilon_hat=False).to_keras()


FUNCTIONS = [optim.quadratic_1d, *optim.TEST_FUNCTIONS.values()]


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
    Z = optim.rosenbrock(np.stack([X, Y]))
    assert Z.shape == (4, 5)
    assert Z[0, 0] == optim.rosenbrock([-1.0, -1.0])
    assert optim.rosenbrock.grad(np.stack([X, Y])).shape == (2, 4, 5)


def test_gradient_descent_on_quadratic_follows_closed_form():
    for lr in (0.1, 0.5, 0.75, 1.1):
        path = optim.trajectory(optim.SGD(lr), optim.quadratic_1d, steps=10)
        np.testing.assert_allclose(path[:, 0], 4.0 * (1 - 2 * lr) ** np.arange(11), rtol=1e-12)


def test_trajectory_marks_divergence_with_inf():
    path = optim.trajectory(optim.SGD(2.0), optim.quadratic_1d, steps=1000)
    assert path.shape == (1001, 1)
    assert np.isfinite(path[0, 0]) and np.isinf(path[-1, 0])


def test_trajectory_with_a_keras_optimizer_matches_from_scratch():
    ours = optim.trajectory(optim.Nesterov(0.01, 0.9), optim.ravine, steps=50)
    theirs = optim.trajectory(keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True), optim.ravine, steps=50)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_momentum_beats_gd_on_the_ravine():
    gd = optim.trajectory(optim.SGD(0.4), optim.ravine, steps=60)[-1]
    heavy = optim.trajectory(optim.Momentum(0.4, 0.5), optim.ravine, steps=60)[-1]
    assert optim.ravine(heavy) < optim.ravine(gd) / 10


def test_lr_sweep_finds_the_stable_window():
    lrs = np.logspace(-3, 1, 9)
    gaps = optim.lr_sweep(optim.SGD, optim.quadratic_1d, lrs, steps=50)
    assert gaps.shape == lrs.shape
    assert gaps[-1] > 1e50  # η = 10 > 1 diverges: |1 − 2η|^50 = 19^50
    assert gaps[0] > 1.0  # η = 1e-3 has barely moved
    assert gaps[np.argmin(gaps)] < 1e-10 and 0.1 <= lrs[np.argmin(gaps)] <= 1.0


def test_softmax_regression_gradient_matches_finite_differences_and_keras():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(12, 5)), rng.integers(0, 3, size=12)
    W = rng.normal(scale=0.3, size=(6, 3))
    loss, grad = optim.softmax_regression(W, x, y)
    ref = keras.losses.sparse_categorical_crossentropy(y, np.concatenate([x, np.ones((12, 1))], 1) @ W, from_logits=True)
    np.testing.assert_allclose(loss, np.mean(keras.ops.convert_to_numpy(ref)), rtol=1e-5)
    h, numeric = 1e-6, np.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        e = np.zeros_like(W)
        e[idx] = h
        numeric[idx] = (optim.softmax_regression(W + e, x, y)[0] - optim.softmax_regression(W - e, x, y)[0]) / (2 * h)
    np.testing.assert_allclose(grad, numeric, atol=1e-8)
    losses, per = optim.softmax_regression(W, x, y, per_example=True)
    np.testing.assert_allclose(per.mean(axis=0), grad, atol=1e-12)
    assert losses.shape == (12,)


def test_minibatch_gradient_is_unbiased_with_variance_over_b():
    rng = np.random.default_rng(9)
    per = rng.normal(size=(2000, 10)) + np.arange(10)
    noise = optim.minibatch_gradient_noise(per, [1, 4, 16, 64], draws=400, seed=1)
    ratio = noise["variance"] * noise["batch_sizes"] / noise["sigma2"]
    assert np.all((ratio > 0.8) & (ratio < 1.2))
    slope = np.polyfit(np.log(noise["batch_sizes"]), np.log(noise["variance"]), 1)[0]
    assert -1.15 < slope < -0.85
    assert np.all(noise["bias"] < 5 * noise["variance"] / 400)


def test_one_cycle_shape():
    s = optim.OneCycle(max_lr=0.1, total_steps=1000, pct_start=0.25)
    lr = keras.ops.convert_to_numpy(s(np.arange(0, 1101)))  # vectorized: one call for all steps
    assert lr.shape == (1101,)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(s(137))), lr[137], rtol=1e-6)
    peak = int(np.argmax(lr))
    assert peak == 250
    np.testing.assert_allclose(lr[0], 0.1 / 25, rtol=1e-6)
    np.testing.assert_allclose(lr.max(), 0.1, rtol=1e-6)
    np.testing.assert_allclose(lr[1000:], 0.1 / 25 / 1e4, rtol=1e-5)
    assert np.all(np.diff(lr[: peak + 1]) > 0)  # warm-up rises
    assert np.all(np.diff(lr[peak:1001]) < 0)  # annealing falls
    assert lr.min() >= 0.1 / 25 / 1e4 * (1 - 1e-5)
    lin = optim.OneCycle(max_lr=1.0, total_steps=100, pct_start=0.5, div_factor=2.0, final_div_factor=2.0, anneal="linear")
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(lin(25))), 0.75, rtol=1e-6)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(lin(75))), 0.625, rtol=1e-6)


def test_one_cycle_serializes_and_drives_an_optimizer():
    s = optim.OneCycle(max_lr=0.05, total_steps=200, pct_start=0.4, anneal="linear")
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert isinstance(again, optim.OneCycle) and again.get_config() == s.get_config()
    opt = keras.optimizers.SGD(learning_rate=s)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert restored.get_config()["learning_rate"]["config"] == s.get_config()
    ours = optim.SGD(s)
    assert optim.compare_with_keras(ours, np.ones((30, 3)), np.zeros(3), keras_optimizer=keras.optimizers.SGD(s)) <= TOL


def test_one_cycle_validates_arguments():
    with pytest.raises(ValueError, match="total_steps"):
        optim.OneCycle(0.1, 1)
    with pytest.raises(ValueError, match="pct_start"):
        optim.OneCycle(0.1, 100, pct_start=1.0)
    with pytest.raises(ValueError, match="anneal"):
        optim.OneCycle(0.1, 100, anneal="step")


def test_plot_function_draws_paths():
    import matplotlib

    matplotlib.use("agg")
    paths = {"GD": optim.trajectory(optim.SGD(0.4), optim.ravine, steps=20)}
    ax = optim.plot_function(optim.ravine, paths, title="t")
    assert ax.get_title() == "t" and any(line.get_label() == "GD" for line in ax.get_lines())
    with pytest.raises(ValueError, match="2-D"):
        optim.plot_function(optim.quadratic_1d)
