"""cnncourse.reference.optim: from-scratch optimizers equal Keras', step for step; mini-batch gradient noise."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.reference import landscapes, optim

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
    assert optim.compare_with_keras(ours, landscapes.ravine.grad, np.array(landscapes.ravine.start), steps=100) <= TOL
    # the closed loop feeds differences back: a different optimizer drifts away
    other = keras.optimizers.SGD(0.05, momentum=0.5)
    assert optim.compare_with_keras(ours, landscapes.ravine.grad, np.array(landscapes.ravine.start), keras_optimizer=other) > 1e-3


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
