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


# ---------------------------------------------------------------------------------- class models, regularised
def _raw_class_model(model, class_index, steps, learning_rate=0.1, l2=1e-3, seed=0):
    """The unregularised ascent as viz.class_model did it before the regularizers were added."""
    from cnncourse.autodiff import value_and_grad

    rng = np.random.default_rng(seed)
    x = (0.5 + 0.01 * rng.standard_normal((1, *model.input_shape[1:]))).astype("float32")
    scores = []
    for _ in range(steps):
        value, g = value_and_grad(lambda inp: model(inp, training=False)[0, class_index] - l2 * keras.ops.sum(inp * inp), x)
        x = np.clip(x + learning_rate * g / (np.sqrt(np.mean(g**2)) + 1e-8), 0.0, 1.0)
        scores.append(float(value))
    return x[0], scores


def test_class_model_defaults_are_the_raw_ascent(conv_model):
    image, scores = viz.class_model(conv_model, 2, steps=8)
    expected, expected_scores = _raw_class_model(conv_model, 2, 8)
    np.testing.assert_array_equal(image, expected)
    assert scores == expected_scores


def test_decay_and_small_norm_clipping_follow_their_definitions(linear_model):
    w = linear_model.get_weights()[0][:, 1].reshape(6, 6, 2)  # the class score's gradient
    x0 = 0.5 + 0.01 * np.random.default_rng(0).standard_normal((6, 6, 2))
    step = x0 + 0.1 * w / np.sqrt(np.mean(w**2))
    image, _ = viz.class_model(linear_model, 1, steps=1, l2=0.0, clip=None, decay=0.2)
    np.testing.assert_allclose(image, 0.8 * step, rtol=1e-5)
    image, _ = viz.class_model(linear_model, 1, steps=1, l2=0.0, clip=None, small_norm_percentile=50)
    norms = np.sqrt((step**2).sum(axis=-1))
    kept = norms >= np.percentile(norms, 50)
    assert kept.sum() == 18  # half of the 36 pixels
    np.testing.assert_allclose(image[kept], step[kept], rtol=1e-5)
    assert np.all(image[~kept] == 0)


def _roughness(image) -> float:
    """Mean squared difference between neighbouring pixels: the high-frequency energy."""
    return float(np.mean(np.diff(image, axis=0) ** 2) + np.mean(np.diff(image, axis=1) ** 2))


def test_regularised_class_model_is_smoother_and_still_raises_the_score(conv_model):
    raw, raw_scores = viz.class_model(conv_model, 0, steps=30, learning_rate=0.05)
    smooth, smooth_scores = viz.class_model(
        conv_model, 0, steps=30, learning_rate=0.05, jitter=1, decay=0.02, blur_every=4, blur_sigma=0.8
    )
    assert smooth_scores[-1] > smooth_scores[0] and raw_scores[-1] > raw_scores[0]
    assert _roughness(smooth) < 0.5 * _roughness(raw)
    again, _ = viz.class_model(conv_model, 0, steps=30, learning_rate=0.05, jitter=1, decay=0.02, blur_every=4, blur_sigma=0.8)
    np.testing.assert_array_equal(smooth, again)  # the jitter offsets come from the seed
    with pytest.raises(ValueError, match="jitter"):
        viz.class_model(conv_model, 0, jitter=-1)
    with pytest.raises(ValueError, match="decay"):
        viz.class_model(conv_model, 0, decay=1.0)
    with pytest.raises(ValueError, match="blur_every"):
        viz.class_model(conv_model, 0, blur_every=1.5)
    with pytest.raises(ValueError, match="small_norm_percentile"):
        viz.class_model(conv_model, 0, small_norm_percentile=100)


# ---------------------------------------------------------------------------------- FGSM in grey levels
def test_perturbation_size_in_grey_levels():
    x = np.full((4, 5, 5, 1), 0.5)
    adv = x.copy()
    adv[:2] += 0.1  # half of the pixels by ε = 0.1
    size = viz.perturbation_size(x, adv)
    assert size.epsilon_grey_levels == pytest.approx(25.5) == viz.grey_levels(0.1)
    assert size.mean_grey_levels == pytest.approx(12.75)
    assert size.fraction_changed == 0.5
    assert size.psnr_db == pytest.approx(10 * np.log10(1 / (0.5 * 0.01)))
    assert "25.5 grey levels of 255" in str(size) and "50% of the pixel values change" in str(size)
    # a change under half a grey level does not survive an 8-bit image
    tiny = viz.perturbation_size(x, x + 0.001)
    assert tiny.epsilon_grey_levels == pytest.approx(0.255) and tiny.fraction_changed == 0.0
    assert viz.grey_levels(0.1, (-1.0, 1.0)) == pytest.approx(12.75)  # the same ε on a [-1, 1] scale
    with pytest.raises(ValueError, match="same shape"):
        viz.perturbation_size(x, adv[:1])
    with pytest.raises(ValueError, match="value_range"):
        viz.grey_levels(0.1, (1.0, 1.0))


def test_fgsm_epsilon_is_what_perturbation_size_reports(conv_model, images):
    y = np.argmax(conv_model.predict(images, verbose=0), axis=1)
    size = viz.perturbation_size(images, viz.fgsm(conv_model, images, y, 0.05))
    assert size.epsilon_grey_levels == pytest.approx(viz.grey_levels(0.05), rel=1e-4)  # 12.75 grey levels
    assert 0.5 < size.fraction_changed <= 1.0
