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


def _objects(n=12, size=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 1.0, (n, size, size, 1)).astype("float32")
    return x, np.arange(n) % 3


def test_clutter_scenes_paste_each_image_in_its_box_and_clutter_only_outside():
    x, y = _objects()
    scenes = S.clutter_scenes(x, y, canvas=30, pieces=5, piece_size=4, seed=1)
    assert scenes.images.shape == (12, 30, 30, 1) and scenes.images.dtype == np.float32
    np.testing.assert_array_equal(scenes.labels, y)
    assert scenes.box_fraction == 100 / 900
    rows = set()
    for i in range(len(x)):
        r, c, h, w = scenes.boxes[i]
        assert (h, w) == (10, 10) and 0 <= r <= 20 and 0 <= c <= 20
        rows.add(int(r))
        np.testing.assert_array_equal(scenes.images[i, r : r + h, c : c + w], x[i])  # the object, untouched
        inside = scenes.box_mask(i)
        assert inside.sum() == 100 and inside[r, c] and inside[r + 9, c + 9]
        outside = scenes.images[i, ..., 0][~inside]
        assert (outside > 0).sum() > 0, "the clutter is missing"
        assert (outside > 0).sum() <= 5 * 16, "more clutter than 5 pieces of 4×4"
        assert not np.any(np.isin(outside[outside > 0], x[i])), "clutter must come from other images"
    assert len(rows) > 3, "the boxes should be at many places"


def test_clutter_scenes_are_deterministic_and_checked():
    x, y = _objects()
    a = S.clutter_scenes(x, y, canvas=24, seed=3, piece_size=3)
    np.testing.assert_array_equal(a.images, S.clutter_scenes(x, y, canvas=24, seed=3, piece_size=3).images)
    assert not np.array_equal(a.boxes, S.clutter_scenes(x, y, canvas=24, seed=4, piece_size=3).boxes)
    clean = S.clutter_scenes(x, y, canvas=24, pieces=0)
    for i in range(len(x)):
        assert np.count_nonzero(clean.images[i]) == np.count_nonzero(x[i])  # nothing but the object
    with pytest.raises(ValueError, match="canvas"):
        S.clutter_scenes(x, y, canvas=8)
    with pytest.raises(ValueError, match="piece_size"):
        S.clutter_scenes(x, y, piece_size=11)
    with pytest.raises(ValueError, match="labels"):
        S.clutter_scenes(x, y[:3])
    with pytest.raises(ValueError, match="at least 2 images"):
        S.clutter_scenes(x[:1], y[:1])
    with pytest.raises(ValueError, match="shape"):
        S.clutter_scenes(x[..., 0], y)
    with pytest.raises(ValueError, match="index"):
        a.box_mask(12)
