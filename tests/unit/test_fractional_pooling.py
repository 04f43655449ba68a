"""Fractional max-pooling: the NumPy reference follows Graham (2014); the Keras layer equals it."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from cnncourse import layers as L
from cnncourse.layers import pooling
from cnncourse.reference import fractional_pooling as fmp


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def _images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# ---------------------------------------------------------------------------------- the reference
@pytest.mark.parametrize("n_in, ratio", [(32, math.sqrt(2)), (25, 1.5), (10, 1.25), (7, 1.9), (100, 1.01), (5, 1.9)])
@pytest.mark.parametrize("pseudo_random", [True, False])
def test_sequences_step_by_k_or_k_plus_one_from_zero_to_n_in(n_in, ratio, pseudo_random):
    n_out = fmp.output_size(n_in, ratio)
    assert n_out == math.floor(n_in / ratio)
    rng = np.random.default_rng(0)
    k = n_in // n_out
    for _ in range(50):
        a = fmp.pooling_sequence(n_in, n_out, pseudo_random=pseudo_random, rng=rng)
        assert len(a) == n_out + 1 and a[0] == 0 and a[-1] == n_in
        assert set(np.diff(a)) <= {k, k + 1}
        assert np.sum(np.diff(a) == k + 1) == n_in - k * n_out  # the same number of long steps every time


def test_pseudo_random_sequence_is_the_paper_formula_shifted_to_zero():
    n_in, n_out, u = 25, 17, 0.3
    alpha = n_in / n_out
    paper = [math.ceil(alpha * (i + u)) for i in range(n_out)]  # a_i = ceil(alpha (i + u))
    a = fmp.pooling_sequence(n_in, n_out, u=u)
    assert list(a[:-1]) == [p - paper[0] for p in paper]
    # for alpha in (1, 2) the steps are 1s and 2s, spread evenly: no two 2s in a row when alpha < 1.5
    assert set(np.diff(fmp.pooling_sequence(32, 22, u=0.7))) == {1, 2}
    steps = np.diff(fmp.pooling_sequence(30, 25, u=0.5))
    assert not np.any((steps[1:] == 2) & (steps[:-1] == 2))


def test_regions_are_disjoint_tilings_or_overlap_by_one():
    a = np.array([0, 2, 3, 5, 6])
    assert fmp.regions(a) == [(0, 1), (2, 2), (3, 4), (5, 5)]
    assert fmp.regions(a, overlapping=True) == [(0, 2), (2, 3), (3, 5), (5, 5)]  # the last stops at the border


def test_reference_pooling_takes_the_max_of_each_region():
    x = np.arange(25.0).reshape(1, 5, 5, 1)
    rows, cols = np.array([0, 2, 3, 5]), np.array([0, 1, 3, 5])
    out = fmp.fractional_max_pool2d(x, rows, cols)[0, :, :, 0]
    # rows {0,1}, {2}, {3,4}; columns {0}, {1,2}, {3,4}: the bottom-right corner of each region
    np.testing.assert_array_equal(out, [[5, 7, 9], [10, 12, 14], [20, 22, 24]])
    over = fmp.fractional_max_pool2d(x, rows, cols, overlapping=True)[0, :, :, 0]
    np.testing.assert_array_equal(over, [[11, 13, 14], [16, 18, 19], [21, 23, 24]])


def test_reference_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"pooling ratio must be a number in \(1.0, 2.0\)"):
        fmp.output_size(10, 2.0)
    with pytest.raises(ValueError, match=r"pooling ratio must be a number in \(1.0, 2.0\)"):
        fmp.output_size(10, 1)
    with pytest.raises(ValueError, match="leaves nothing"):
        fmp.output_size(1, 1.5)
    with pytest.raises(ValueError, match="u must be"):
        fmp.pooling_sequence(10, 7, u=1.0)
    with pytest.raises(ValueError, match="at most n_in"):
        fmp.pooling_sequence(5, 7)


@pytest.mark.tf_only
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="needs the TensorFlow backend")
@pytest.mark.parametrize("pseudo_random", [True, False])
@pytest.mark.parametrize("overlapping", [False, True])
def test_reference_equals_tensorflow_fractional_max_pool_on_its_own_sequences(pseudo_random, overlapping):
    """tf.nn.fractional_max_pool returns the sequences it drew: pooled by the reference they give its output."""
    import tensorflow as tf

    x = _images((2, 17, 13, 3), seed=9)
    for seed in range(5):
        out, rows, cols = tf.nn.fractional_max_pool(
            x, [1.0, math.sqrt(2), 1.5, 1.0], pseudo_random=pseudo_random, overlapping=overlapping, seed=seed + 1
        )
        rows, cols = rows.numpy(), cols.numpy()
        assert out.shape == (2, fmp.output_size(17, math.sqrt(2)), fmp.output_size(13, 1.5), 3) == (2, 12, 8, 3)
        assert rows[0] == 0 and rows[-1] == 17 and set(np.diff(rows)) <= {1, 2}
        np.testing.assert_array_equal(out.numpy(), fmp.fractional_max_pool2d(x, rows, cols, overlapping))


# ---------------------------------------------------------------------------------- the layer's pieces
@pytest.mark.parametrize("n_in, n_out", [(32, 22), (25, 16), (10, 8), (7, 3), (9, 5)])
def test_keras_pseudo_random_boundaries_equal_the_reference(n_in, n_out):
    for u in np.random.default_rng(n_in).uniform(size=40):
        got = _np(pooling.pseudo_random_boundaries(n_in, n_out, keras.ops.convert_to_tensor(u, "float32")))
        np.testing.assert_array_equal(got, fmp.pooling_sequence(n_in, n_out, u=float(np.float32(u))))


def test_keras_random_boundaries_are_permutations_of_the_steps():
    seen = set()
    gen = keras.random.SeedGenerator(0)
    for _ in range(30):
        a = _np(pooling.random_boundaries(25, 16, gen))
        assert a[0] == 0 and a[-1] == 25 and sorted(np.diff(a)) == [1] * 7 + [2] * 9
        seen.add(tuple(a))
    assert len(seen) > 20, "the order is random"


@pytest.mark.parametrize("overlapping", [False, True])
@pytest.mark.parametrize("size, out", [((12, 11), (8, 7)), ((9, 9), (6, 5)), ((7, 10), (3, 6))])
def test_keras_pooling_equals_the_reference_on_given_sequences(size, out, overlapping):
    rng = np.random.default_rng(sum(size))
    x = _images((2, *size, 3), seed=1)
    for pseudo in (True, False):
        rows = fmp.pooling_sequence(size[0], out[0], pseudo_random=pseudo, rng=rng)
        cols = fmp.pooling_sequence(size[1], out[1], pseudo_random=pseudo, rng=rng)
        expected = fmp.fractional_max_pool2d(x, rows, cols, overlapping)
        got = pooling.fractional_max_pool(x, keras.ops.convert_to_tensor(rows, "int32"), keras.ops.convert_to_tensor(cols, "int32"), overlapping)
        np.testing.assert_array_equal(_np(got), expected)


# ---------------------------------------------------------------------------------- the layer
@pytest.mark.parametrize("pseudo_random", [True, False])
@pytest.mark.parametrize("overlapping", [False, True])
def test_layer_in_training_pools_over_the_sequences_it_draws(pseudo_random, overlapping):
    x = _images((3, 16, 15, 2), seed=2)
    layer = L.FractionalMaxPooling2D(1.4, pseudo_random=pseudo_random, overlapping=overlapping, seed=5)
    twin = L.FractionalMaxPooling2D(1.4, pseudo_random=pseudo_random, overlapping=overlapping, seed=5)
    outputs = []
    for _ in range(3):  # each call draws anew; the twin with the same seed replays the draws
        rows, cols = (_np(v) for v in twin.sample_boundaries(16, 15))
        y = _np(layer(x, training=True))
        assert y.shape == (3, 11, 10, 2)  # floor(16/1.4), floor(15/1.4)
        np.testing.assert_array_equal(y, fmp.fractional_max_pool2d(x, rows, cols, overlapping))
        outputs.append(y)
    assert not all(np.array_equal(outputs[0], o) for o in outputs[1:]), "new regions at every step"


def test_layer_at_inference_is_deterministic_with_the_u_one_half_sequence():
    x = _images((2, 20, 20, 1), seed=3)
    layer = L.FractionalMaxPooling2D(math.sqrt(2), seed=1)
    y = _np(layer(x))
    np.testing.assert_array_equal(y, _np(layer(x, training=False)))
    a = fmp.pooling_sequence(20, 14, u=0.5)
    np.testing.assert_array_equal(y, fmp.fractional_max_pool2d(x, a, a))
    assert layer.compute_output_shape((None, 20, 20, 1)) == (None, 14, 14, 1)


def test_layer_gradient_reaches_exactly_the_winners():
    from cnncourse.autodiff import grad

    x = _images((1, 10, 10, 1), seed=4)
    layer = L.FractionalMaxPooling2D(1.5)
    g = grad(lambda v: keras.ops.sum(layer(v)), x)
    a = fmp.pooling_sequence(10, 6, u=0.5)
    winners = np.zeros_like(x)
    for r0, r1 in fmp.regions(a):
        for c0, c1 in fmp.regions(a):
            block = x[0, r0 : r1 + 1, c0 : c1 + 1, 0]
            i, j = np.unravel_index(block.argmax(), block.shape)
            winners[0, r0 + i, c0 + j, 0] = 1
    np.testing.assert_array_equal(g, winners)


@pytest.mark.parametrize(
    "kwargs",
    [{"pooling_ratio": 2.0}, {"pooling_ratio": 1.0}, {"pooling_ratio": (1.5, 3)}, {"pooling_ratio": "1.5"}, {"overlapping": 1}, {"pseudo_random": None}],
)
def test_layer_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="pooling_ratio|overlapping|pseudo_random"):
        L.FractionalMaxPooling2D(**kwargs)


def test_layer_needs_a_known_image_size():
    with pytest.raises(ValueError, match="known size"):
        L.FractionalMaxPooling2D().build((None, None, None, 3))
    with pytest.raises(ValueError, match="leaves nothing"):
        L.FractionalMaxPooling2D(1.9).build((None, 1, 8, 3))


@pytest.mark.slow
def test_a_network_with_fractional_pooling_trains_compiled():
    keras.utils.set_random_seed(6)
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 0.5, size=(256, 16, 16, 1)).astype("float32")
    y = np.arange(256) % 2
    for i in np.nonzero(y)[0]:  # class 1: a bright 3x3 square somewhere
        r, c = rng.integers(0, 13, size=2)
        x[i, r : r + 3, c : c + 3] = 1.0
    model = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            L.FractionalMaxPooling2D(math.sqrt(2), overlapping=True, seed=1),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            L.FractionalMaxPooling2D(math.sqrt(2), pseudo_random=False),
            keras.layers.GlobalMaxPooling2D(),
            keras.layers.Dense(2),
        ]
    )
    assert model.layers[1].output.shape[1:3] == (11, 11) and model.layers[3].output.shape[1:3] == (7, 7)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
