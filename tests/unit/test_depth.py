"""cnncourse.reference.depth: random-Jacobian chains with and without the identity path."""

import numpy as np
import pytest

from cnncourse.reference.depth import jacobian_chain, spread


def test_plain_chain_shrinks_geometrically_with_gain_below_one():
    norms = jacobian_chain(width=256, depth=30, gain=0.5, residual=False, seed=1)
    assert norms.shape == (31,) and norms[0] == 1.0
    # about 0.5**k: within a factor of 3 at every depth (width 256 makes the estimate tight)
    ratio = norms / 0.5 ** np.arange(31)
    assert np.all((ratio > 1 / 3) & (ratio < 3)), ratio
    assert norms[-1] < 1e-7


def test_residual_chain_keeps_the_signal_with_the_same_matrices():
    norms = jacobian_chain(width=256, depth=30, gain=0.5, residual=True, seed=1)
    expected = (1 + 0.25) ** (np.arange(31) / 2)
    ratio = norms / expected
    assert np.all((ratio > 1 / 3) & (ratio < 3)), ratio
    assert np.all(norms >= 0.5)


def test_same_seed_same_chain_and_identity_is_the_only_difference():
    a = jacobian_chain(width=8, depth=5, gain=0.3, seed=7)
    b = jacobian_chain(width=8, depth=5, gain=0.3, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, jacobian_chain(width=8, depth=5, gain=0.3, seed=8))
    # one block by hand: plain → ‖Wᵀv‖, residual → ‖v + Wᵀv‖ with the same draws
    rng = np.random.default_rng(3)
    v = rng.standard_normal(4)
    v /= np.linalg.norm(v)
    w = rng.standard_normal((4, 4)) * (0.3 / 2.0)
    assert jacobian_chain(width=4, depth=1, gain=0.3, seed=3)[1] == pytest.approx(np.linalg.norm(w.T @ v))
    assert jacobian_chain(width=4, depth=1, gain=0.3, residual=True, seed=3)[1] == pytest.approx(
        np.linalg.norm(v + w.T @ v)
    )


@pytest.mark.parametrize(
    "kwargs", [{"width": 0}, {"depth": -1}, {"depth": 2.5}, {"gain": 0.0}, {"gain": float("nan")}, {"width": True}]
)
def test_jacobian_chain_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        jacobian_chain(**kwargs)


def test_spread_of_lists_and_mappings():
    assert spread([2.0, 0.5, 1.0]) == pytest.approx(4.0)
    assert spread({"a/kernel": 10.0, "b/kernel": 0.01}) == pytest.approx(1000.0)
    assert spread([3.0]) == 1.0


@pytest.mark.parametrize("bad", [[], [1.0, 0.0], [1.0, -2.0], [1.0, float("inf")]])
def test_spread_rejects_non_positive_or_empty(bad):
    with pytest.raises(ValueError):
        spread(bad)
