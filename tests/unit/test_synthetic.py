"""cnncourse.experiments.synthetic: random labels (Zhang et al.) and a rendered digit."""

import numpy as np
import pytest

from cnncourse.experiments import synthetic as S


def test_random_labels():
    y = np.repeat(np.arange(10), 100)
    np.testing.assert_array_equal(S.random_labels(y, 10, fraction=0.0), y)
    full = S.random_labels(y, 10, seed=1)
    assert full.dtype == np.int32 and full.min() >= 0 and full.max() <= 9
    assert abs(np.mean(full == y) - 0.1) < 0.04  # agreement only by chance
    np.testing.assert_array_equal(full, S.random_labels(y, 10, seed=1))
    assert not np.array_equal(full, S.random_labels(y, 10, seed=2))
    half = S.random_labels(y, 10, fraction=0.5, seed=0)
    assert 0.5 <= np.mean(half == y) <= 0.6
    for kwargs in ({"fraction": 1.5}, {"fraction": -0.1}):
        with pytest.raises(ValueError):
            S.random_labels(y, 10, **kwargs)
    with pytest.raises(ValueError):
        S.random_labels(y.astype(float), 10)
    with pytest.raises(ValueError):
        S.random_labels(y, 1)


def test_a_rotated_six_looks_like_a_nine():
    six, nine = S.render_digit(6), S.render_digit("9")
    assert six.shape == (28, 28) and 0.0 <= six.min() and six.max() <= 1.0 and six.max() > 0.9
    turned = np.rot90(six, 2)
    assert np.abs(turned - nine).mean() < 0.5 * np.abs(turned - six).mean()
    assert S.render_digit(1, size=16).shape == (16, 16)
    for bad in (10, "a", -1):
        with pytest.raises(ValueError):
            S.render_digit(bad)
    with pytest.raises(ValueError):
        S.render_digit(3, size=4)




def test_numpy_integers_are_accepted():
    y = np.repeat(np.arange(3), 10)
    np.testing.assert_array_equal(S.random_labels(y, np.int64(3), seed=0), S.random_labels(y, 3, seed=0))
    assert S.render_digit(np.int64(4), size=np.int64(16)).shape == (16, 16)
