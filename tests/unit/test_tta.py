"""Test-time augmentation helpers: the right views, averaged the right way."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.experiments import tta


def _images(n=6, h=9, w=8, c=2, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, h, w, c)).astype(np.float32)


def _linear_model(input_shape, classes=4, seed=0, softmax=True) -> keras.Model:
    """A model that sees pixel positions (so flips and crops change its output)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(classes, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, outputs)


def test_ten_crops_are_the_corners_the_centre_and_their_mirrors():
    x = _images(h=9, w=8)
    crops = tta.ten_crops(x, (5, 4))
    assert crops.shape == (10, 6, 5, 4, 2) and len(tta.CROP_NAMES) == 10
    expected = [x[:, :5, :4], x[:, :5, 4:], x[:, 4:, :4], x[:, 4:, 4:], x[:, 2:7, 2:6]]
    for i, e in enumerate(expected):
        np.testing.assert_array_equal(crops[i], e, err_msg=tta.CROP_NAMES[i])
        np.testing.assert_array_equal(crops[i + 5], e[:, :, ::-1], err_msg=tta.CROP_NAMES[i + 5])
    square = tta.ten_crops(x[:, :8], 8)  # crop = whole image: five identical views + five mirrors
    np.testing.assert_array_equal(square[:5], np.broadcast_to(x[:, :8], (5, *x[:, :8].shape)))


@pytest.mark.parametrize("crop_size", [0, 10, (5,), (5, 4.0), "5", True])
def test_ten_crops_rejects_bad_crop_sizes(crop_size):
    with pytest.raises(ValueError):
        tta.ten_crops(_images(h=9, w=8), crop_size)


def test_flip_average_is_the_mean_of_the_two_views_and_exact_for_a_flip_invariant_model():
    x = _images()
    model = _linear_model(x.shape[1:])
    expected = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(tta.flip_average(model, x, batch_size=4), expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(model.predict(x, verbose=0), expected, atol=1e-4), "the flip changes this model"

    keras.utils.set_random_seed(1)
    inputs = keras.Input(x.shape[1:])
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)  # blind to left/right
    invariant = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))
    np.testing.assert_allclose(tta.flip_average(invariant, x), invariant.predict(x, verbose=0), rtol=1e-6)


def test_from_logits_averages_softmax_probabilities():
    x = _images()
    logits_model = _linear_model(x.shape[1:], softmax=False)
    logits = [logits_model.predict(v, verbose=0).astype(np.float64) for v in (x, x[:, :, ::-1])]
    probs = [np.exp(z) / np.exp(z).sum(axis=1, keepdims=True) for z in logits]
    got = tta.flip_average(logits_model, x, from_logits=True)
    np.testing.assert_allclose(got, (probs[0] + probs[1]) / 2, rtol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)


def test_ten_crop_predict_averages_the_ten_views():
    x = _images(n=5, h=10, w=10)
    model = _linear_model((8, 8, 2))
    expected = np.mean([model.predict(v, verbose=0) for v in tta.ten_crops(x, 8)], axis=0)
    got = tta.ten_crop_predict(model, x, 8, batch_size=3)
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, None])
def test_bad_batch_sizes_and_shapes_are_refused(batch_size):
    model = _linear_model((9, 8, 2))
    with pytest.raises(ValueError):
        tta.flip_average(model, _images(), batch_size=batch_size)
    with pytest.raises(ValueError):
        tta.flip_average(model, _images()[0])


def test_without_flips_only_the_five_unmirrored_crops_are_averaged():
    x = _images(h=9, w=8)
    crops = tta.ten_crops(x, (5, 4), flips=False)
    assert crops.shape == (5, 6, 5, 4, 2)
    np.testing.assert_array_equal(crops, tta.ten_crops(x, (5, 4))[:5])
    model = _linear_model((5, 4, 2))
    expected = np.mean([model.predict(v, verbose=0) for v in crops], axis=0)
    np.testing.assert_allclose(tta.ten_crop_predict(model, x, (5, 4), flips=False), expected, rtol=1e-5, atol=1e-7)
    assert not np.allclose(tta.ten_crop_predict(model, x, (5, 4)), expected, atol=1e-4)  # the mirrors count otherwise
    with pytest.raises(ValueError, match="flips"):
        tta.ten_crops(x, 4, flips="no")
