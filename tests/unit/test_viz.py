import keras
import matplotlib
import numpy as np
import pytest

from cnncourse.inspection import viz

matplotlib.use("agg")


@pytest.fixture(scope="module")
def linear_model():
    """Flatten → Dense(3), no bias: the class score's input gradient is a weight column."""
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Flatten(), keras.layers.Dense(3, use_bias=False)])


@pytest.fixture(scope="module")
def conv_model():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(5, 3, activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((6, 12, 12, 1)).astype("float32")


def test_saliency_is_the_abs_gradient_of_the_class_score(linear_model):
    image = np.random.default_rng(0).random((6, 6, 2)).astype("float32")
    w = linear_model.get_weights()[0]
    for c in range(3):
        expected = np.abs(w[:, c].reshape(6, 6, 2)).max(axis=-1)
        np.testing.assert_allclose(viz.saliency(linear_model, image, c), expected, rtol=1e-6)
    with pytest.raises(ValueError, match=r"class_index must be in \[0, 2\]"):
        viz.saliency(linear_model, image, 3)


def test_fgsm_identity_at_zero_and_increases_the_loss(conv_model, images):
    y = np.argmax(conv_model.predict(images, verbose=0), axis=1)  # the model's own predictions
    np.testing.assert_array_equal(viz.fgsm(conv_model, images, y, 0.0), images)
    adv = viz.fgsm(conv_model, images, y, 0.05)
    assert adv.min() >= 0 and adv.max() <= 1
    step = np.abs(adv - images)[(adv > 0) & (adv < 1)]  # where no clipping happened
    moved = np.isclose(step, 0.05, atol=1e-6)
    assert np.all(moved | (step == 0))  # ε·sign(g), or 0 where a dead ReLU gives g = 0
    assert moved.mean() > 0.5
    lossf = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    before = float(lossf(y, conv_model.predict(images, verbose=0)))
    after = float(lossf(y, conv_model.predict(adv, verbose=0)))
    assert after > before
    with pytest.raises(ValueError, match="epsilon"):
        viz.fgsm(conv_model, images, y, -0.1)


def test_class_model_raises_the_class_score(conv_model):
    image, scores = viz.class_model(conv_model, 1, steps=20, learning_rate=0.05)
    assert image.shape == (12, 12, 1) and 0 <= image.min() and image.max() <= 1
    assert scores[-1] > scores[0]


def test_feature_maps_and_unknown_layers(conv_model, images):
    maps = viz.feature_maps(conv_model, ["c1", "c2"], images)
    assert maps["c1"].shape == (6, 10, 10, 4) and maps["c2"].shape == (6, 8, 8, 5)
    with pytest.raises(ValueError, match="no layer.*nope"):
        viz.feature_maps(conv_model, ["nope"], images)


def test_top_patches_are_the_receptive_fields(conv_model, images):
    patches, values = viz.top_activating_patches(conv_model, "c2", images, unit=0, k=4)
    assert patches.shape == (4, 5, 5, 1)  # two valid 3×3 convs see 5×5 pixels
    assert np.all(np.diff(values) <= 0)
    maps = viz.feature_maps(conv_model, ["c2"], images)["c2"][..., 0]
    best = int(np.argmax(maps.reshape(6, -1).max(axis=1)))
    r, c = divmod(int(maps[best].argmax()), maps.shape[2])
    np.testing.assert_array_equal(patches[0], images[best, r : r + 5, c : c + 5])
    with pytest.raises(ValueError, match="unit must be"):
        viz.top_activating_patches(conv_model, "c2", images, unit=9)


def test_grids_are_titled_figures(conv_model, images):
    fig = viz.image_grid(images, [str(i) for i in range(6)], ncols=4, title="six images")
    assert fig._suptitle.get_text() == "six images" and len(fig.axes) == 8
    fig = viz.filter_grid(conv_model.get_layer("c1").get_weights()[0])
    assert fig._suptitle.get_text() == "first-layer filters" and len(fig.axes) == 4
    with pytest.raises(ValueError, match="titles"):
        viz.image_grid(images, ["a"])
    with pytest.raises(ValueError, match="kernel must have shape"):
        viz.filter_grid(np.ones((3, 3, 1)))
