"""Attribution maps (cnncourse.inspection.attribution): definitions on tiny nets, and maps that find a known object."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.inspection import attribution as A
from cnncourse.reference import conv

TOL = 1e-5  # float32 Keras against float64 NumPy


# ---------------------------------------------------------------------------------- a tiny net, by hand
@pytest.fixture(scope="module")
def tiny():
    """Conv(2, 3×3, relu) → MaxPool(2) → Flatten → Dense(4, relu) → Dense(3): small enough to backprop by hand."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(2, 3, activation="relu", name="conv"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(4, activation="relu", name="hidden"),
            keras.layers.Dense(3, name="scores"),
        ]
    )
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, 0.7, w.shape).astype("float32") for w in model.get_weights()])
    return model


def _relu_backward(r, z, rule):
    """The three ReLU backward rules (Springenberg et al. 2015, Fig. 1)."""
    if rule == "gradient":
        return r * (z > 0)
    if rule == "guided":
        return r * (z > 0) * (r > 0)
    return np.maximum(r, 0)  # deconvnet


def _by_hand(model, image, rule, target):
    """Forward and backward pass of the tiny net in NumPy (float64), with ReLUs backpropagating by ``rule``."""
    w1, b1, w2, b2, w3, b3 = (np.asarray(w, np.float64) for w in model.get_weights())
    x = image[None].astype(np.float64)
    z1 = conv.conv2d(x, w1, b1)  # (1, 4, 4, 2)
    a1 = np.maximum(z1, 0)
    windows = a1.reshape(1, 2, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4, 5).reshape(1, 2, 2, 4, 2)  # (n, i, j, window, c)
    switches = windows.argmax(axis=3)  # where each max came from
    pooled = windows.max(axis=3)
    z2 = pooled.reshape(1, -1) @ w2 + b2
    a2 = np.maximum(z2, 0)
    if target == "conv":  # the strongest activation of channel 1 of the conv layer
        r1 = np.zeros_like(a1)
        r1[np.unravel_index(np.argmax(a1[..., 1]), a1[..., 1].shape) + (1,)] = 1.0
    else:
        r2 = _relu_backward(w3[:, target][None], z2, rule)  # d score_c / d a2 = W3[:, c]
        r_pooled = (r2 @ w2.T).reshape(pooled.shape)
        r_windows = np.zeros(windows.shape)
        for i, j, c in np.ndindex(2, 2, 2):  # unpool: the signal goes back to the switch position only
            r_windows[0, i, j, switches[0, i, j, c], c] = r_pooled[0, i, j, c]
        r1 = r_windows.reshape(1, 2, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4, 5).reshape(a1.shape)
    r1 = _relu_backward(r1, z1, rule)
    return conv.conv2d_backward(x, w1, r1)[0][0]  # through the convolution: its transpose


def _image_with_signal(model, class_index, seed):
    """The first random image whose guided map is not all zero (one that passes no signal would prove nothing)."""
    for s in range(seed, seed + 50):
        image = np.random.default_rng(s).uniform(size=(6, 6, 1)).astype("float32")
        if np.abs(_by_hand(model, image, "guided", class_index)).max() > 0.01:
            return image
    raise AssertionError("no image passes a signal")


@pytest.mark.parametrize("class_index", [0, 1, 2])
def test_guided_backprop_equals_its_definition_on_a_tiny_net(tiny, class_index):
    image = _image_with_signal(tiny, class_index, 10 * class_index)
    expected = _by_hand(tiny, image, "guided", class_index)
    np.testing.assert_allclose(A.guided_backprop(tiny, image, class_index), expected, rtol=0, atol=TOL)
    # and it is not the plain gradient nor the deconvnet: the three rules differ on this image
    assert not np.allclose(expected, _by_hand(tiny, image, "gradient", class_index), atol=TOL) or not np.allclose(
        expected, _by_hand(tiny, image, "deconvnet", class_index), atol=TOL
    )


@pytest.mark.parametrize("class_index", [0, 1, 2])
def test_deconvnet_equals_its_definition_on_a_tiny_net(tiny, class_index):
    image = _image_with_signal(tiny, class_index, 100 + 10 * class_index)
    expected = _by_hand(tiny, image, "deconvnet", class_index)
    np.testing.assert_allclose(A.deconvnet(tiny, image, class_index), expected, rtol=0, atol=TOL)


def test_the_rules_differ_and_the_plain_rule_is_the_gradient(tiny):
    from cnncourse.autodiff import grad

    image = np.random.default_rng(5).uniform(size=(6, 6, 1)).astype("float32")
    plain = grad(lambda v: tiny(v)[0, 2], image[None])[0]
    np.testing.assert_allclose(plain, _by_hand(tiny, image, "gradient", 2), atol=TOL)  # the hand-written net is right
    views = [_by_hand(tiny, image, rule, 2) for rule in ("gradient", "guided", "deconvnet")]
    assert not np.allclose(views[0], views[1]) and not np.allclose(views[1], views[2])


@pytest.mark.parametrize("view", [A.guided_backprop, A.deconvnet])
def test_projecting_a_first_layer_unit_gives_its_filter_at_the_strongest_position(tiny, view):
    """Zeiler & Fergus: the strongest activation of a first-layer map, projected down, is that filter, placed there."""
    image = np.random.default_rng(7).uniform(size=(6, 6, 1)).astype("float32")
    got = view(tiny, image, layer_name="conv", unit=1)
    np.testing.assert_allclose(got, _by_hand(tiny, image, "guided", "conv"), atol=TOL)
    maps = keras.Model(tiny.inputs, tiny.get_layer("conv").output).predict(image[None], verbose=0)[0, ..., 1]
    i, j = np.unravel_index(maps.argmax(), maps.shape)
    placed = np.zeros((6, 6))
    placed[i : i + 3, j : j + 3] = tiny.get_layer("conv").get_weights()[0][:, :, 0, 1]
    np.testing.assert_allclose(got[..., 0], placed, atol=TOL)


def test_a_model_ending_in_softmax_is_explained_by_its_scores(tiny):
    soft = keras.Sequential([keras.Input((6, 6, 1)), *tiny.layers[:-1], keras.layers.Dense(3, activation="softmax")])
    soft.layers[-1].set_weights(tiny.layers[-1].get_weights())
    image = np.random.default_rng(8).uniform(size=(6, 6, 1)).astype("float32")
    np.testing.assert_allclose(A.guided_backprop(soft, image, 1), A.guided_backprop(tiny, image, 1), atol=TOL)
    np.testing.assert_allclose(A.grad_cam(soft, image, 1, "conv"), A.grad_cam(tiny, image, 1, "conv"), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        A.occlusion_sensitivity(soft, image, 1, size=2).probability, A.occlusion_sensitivity(tiny, image, 1, size=2).probability, atol=1e-6
    )
    np.testing.assert_allclose(A.class_scores(soft).predict(image[None], verbose=0), tiny.predict(image[None], verbose=0), atol=1e-6)
    assert A.class_scores(tiny) is tiny


# ---------------------------------------------------------------------------------- Grad-CAM's definition
def test_grad_cam_on_global_average_pooling_and_dense_is_cam():
    """With GAP → Dense the gradient is W[:, c]/(h·w) everywhere, so Grad-CAM = ReLU(Σ_k W_kc A^k)/(h·w) (Zhou et al.'s CAM)."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((12, 12, 2))
    maps = keras.layers.Conv2D(5, 3, activation="relu", name="maps")(inputs)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(maps))
    model = keras.Model(inputs, outputs)
    image = np.random.default_rng(4).uniform(size=(12, 12, 2)).astype("float32")
    a = keras.Model(inputs, maps).predict(image[None], verbose=0)[0]
    w = model.layers[-1].get_weights()[0]
    for c in range(4):
        cam = np.maximum(a @ w[:, c], 0) / (10 * 10)
        np.testing.assert_allclose(A.grad_cam(model, image, c, upsample=False), cam, rtol=1e-5, atol=1e-7)
    assert A.grad_cam(model, image, 0).shape == (12, 12)  # upsampled to the image


def test_grad_cam_refuses_a_layer_that_a_skip_connection_bypasses_and_other_bad_arguments():
    inputs = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="a")(inputs)
    b = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="b")(a)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Add(name="add")([a, b])))
    model = keras.Model(inputs, out)
    image = np.zeros((8, 8, 1), "float32")
    with pytest.raises(ValueError, match="skip connection"):
        A.grad_cam(model, image, 0, "b")
    assert A.grad_cam(model, image, 0, "add").shape == (8, 8)  # after the join every path goes through
    with pytest.raises(ValueError, match="no layer 'nope'"):
        A.grad_cam(model, image, 0, "nope")
    with pytest.raises(ValueError, match=r"class_index must be an integer in \[0, 1\]"):
        A.grad_cam(model, image, 2)
    with pytest.raises(ValueError, match="input shape"):
        A.grad_cam(model, np.zeros((8, 8), "float32"), 0)


def test_backward_views_refuse_nets_without_relus_and_mixed_targets(tiny):
    tanh = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no ReLU"):
        A.guided_backprop(tanh, np.zeros(4, "float32"), 0)
    image = np.zeros((6, 6, 1), "float32")
    with pytest.raises(ValueError, match="not both"):
        A.guided_backprop(tiny, image, 0, layer_name="conv", unit=0)
    with pytest.raises(ValueError, match="unit needs layer_name"):
        A.deconvnet(tiny, image, unit=0)
    with pytest.raises(ValueError, match=r"unit \(a channel of .*\) must be an integer in \[0, "):
        A.deconvnet(tiny, image, layer_name="conv", unit=2)
    with pytest.raises(ValueError, match="rule must be"):
        A.rewire_relus(tiny, "zeiler")


def test_relu_layers_of_every_kind_are_rewired():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.ReLU(), keras.layers.Dense(3), keras.layers.Activation("relu"), keras.layers.Dense(2)]
    )
    keras.utils.set_random_seed(9)
    x = np.random.default_rng(9).normal(size=4).astype("float32")
    rewired = A.rewire_relus(model, "deconvnet")
    np.testing.assert_allclose(rewired.predict(x[None], verbose=0), model.predict(x[None], verbose=0), atol=1e-6)  # same forward
    w1, b1, w2, b2, w3, _ = model.get_weights()
    z1 = x @ w1 + b1
    z2 = np.maximum(z1, 0) @ w2 + b2
    r = np.maximum(w3[:, 0], 0)  # deconvnet rule at both ReLUs
    r = np.maximum(w2 @ r, 0)
    np.testing.assert_allclose(A.deconvnet(model, x, 0), w1 @ r, atol=TOL)
    assert np.any(z2 <= 0) or np.any(z1 <= 0)  # some ReLU is off, so the rule is exercised


def test_as_image_maps_zero_to_grey():
    a = np.array([[-2.0, 0.0], [1.0, 100.0]])
    img = A.as_image(a, percentile=50)  # scale = median |a| = 1.5
    np.testing.assert_allclose(img, [[0.0, 0.5], [0.5 + 0.5 / 1.5, 1.0]])
    np.testing.assert_array_equal(A.as_image(np.zeros((2, 2))), np.full((2, 2), 0.5))


# ---------------------------------------------------------------------------------- maps that find the object
SIZE = 20


def _scene(rng, kind, row, col, image=None):
    """A noisy 20×20 image with a bright bar: kind 1 horizontal (2×6), kind 2 vertical (6×2), kind 0 none."""
    image = rng.uniform(0.0, 0.3, (SIZE, SIZE, 1)).astype("float32") if image is None else image
    if kind == 1:
        image[row : row + 2, col : col + 6] = 1.0
    elif kind == 2:
        image[row : row + 6, col : col + 2] = 1.0
    return image


def _box(kind, row, col, margin=0):
    box = np.zeros((SIZE, SIZE), bool)
    h, w = (2, 6) if kind == 1 else (6, 2)
    box[max(row - margin, 0) : row + h + margin, max(col - margin, 0) : col + w + margin] = True
    return box


@pytest.fixture(scope="module")
def bars():
    """A small CNN trained to tell 'horizontal bar', 'vertical bar' and 'nothing' apart, the bar anywhere."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = np.arange(600) % 3
    x = np.stack([_scene(rng, k, *rng.integers(0, SIZE - 5, 2)) for k in y])
    inputs = keras.Input((SIZE, SIZE, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv")(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h)))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    assert history.history["accuracy"][-1] > 0.95, "the detector must work before its maps can be judged"
    return model


PLACES = [(1, 3, 12), (1, 14, 2), (2, 2, 3), (2, 11, 15)]  # (kind, row, col): off the diagonal, so a transposed map fails


@pytest.mark.slow
@pytest.mark.parametrize("kind, row, col", PLACES)
def test_occlusion_map_peaks_on_the_object(bars, kind, row, col):
    image = _scene(np.random.default_rng(row * 20 + col), kind, row, col)
    result = A.occlusion_sensitivity(bars, image, kind, size=7)
    centre = result.centre()
    inside = _box(kind, row, col)
    ratio = result.pixels[inside].mean() / max(result.pixels[~inside].mean(), 1e-9)
    print(
        f"occlusion, bar {kind} at {(row, col)}: baseline p = {result.baseline:.4f}, largest drop {result.drop.max():.3f}, "
        f"centre of the drops ({centre[0]:.1f}, {centre[1]:.1f}), mean drop on the bar / elsewhere = {ratio:.1f}"
    )
    assert inside[round(centre[0]), round(centre[1])], f"the occlusion map is centred at {centre}, off the bar"
    assert result.drop.max() > 0.5 and result.baseline > 0.9
    assert ratio > 5


def test_occlusion_drops_exactly_where_the_square_hides_the_one_pixel_that_matters():
    """A 'network' whose class-0 score is 10 × pixel (4, 6): the probability falls only for squares covering that pixel."""
    model = keras.Sequential([keras.Input((10, 12, 1)), keras.layers.Flatten(), keras.layers.Dense(2, use_bias=False)])
    w = np.zeros((120, 2), "float32")
    w[4 * 12 + 6, 0] = 10.0
    model.set_weights([w])
    image = np.zeros((10, 12, 1), "float32")
    image[4, 6] = 1.0
    result = A.occlusion_sensitivity(model, image, 0, size=3, fill=0.0)
    assert result.baseline == pytest.approx(1 / (1 + np.exp(-10)))
    hidden = np.zeros((10, 12), bool)
    hidden[3:6, 5:8] = True  # the centres within one pixel of (4, 6)
    np.testing.assert_allclose(result.drop[hidden], result.baseline - 0.5, rtol=1e-5)
    np.testing.assert_allclose(result.drop[~hidden], 0.0, atol=1e-6)
    assert result.centre() == pytest.approx((4.0, 6.0))
    coarse = A.occlusion_sensitivity(model, image, 0, size=3, stride=2, fill=0.0)
    assert coarse.drop.shape == (5, 6) and coarse.pixels.shape == (10, 12)
    assert coarse.pixels[4, 6] == pytest.approx(result.baseline - 0.5, rel=1e-5)  # the centre (4, 6) is on the grid
    with pytest.raises(ValueError, match="size must be at most"):
        A.occlusion_sensitivity(model, image, 0, size=11)


@pytest.mark.slow
@pytest.mark.parametrize("kind, row, col", PLACES)
def test_grad_cam_peaks_on_the_object_for_its_class_only(bars, kind, row, col):
    image = _scene(np.random.default_rng(row * 20 + col), kind, row, col)
    cam = A.grad_cam(bars, image, kind)  # the default layer: the last 4-D output, 'last_conv'
    peak = np.unravel_index(cam.argmax(), cam.shape)
    near = _box(kind, row, col, margin=1)  # the map has half the image's resolution
    on_bar = _box(kind, row, col)
    ratio = cam[on_bar].mean() / max(cam[~near].mean(), 1e-9)
    # class-discriminative: the maps of the classes that are not in the image light the bar up less
    others = {c: A.grad_cam(bars, image, c)[on_bar].mean() / cam[on_bar].mean() for c in (0, 1, 2) if c != kind}
    print(
        f"Grad-CAM, bar {kind} at {(row, col)}: peak at {peak}, mean on the bar / mean elsewhere = {ratio:.1f}; "
        "on the bar, relative to its own class: " + ", ".join(f"class {c} {v:.2f}" for c, v in others.items())
    )
    assert near[peak], f"the Grad-CAM map peaks at {peak}, off the bar"
    assert ratio > 3
    assert all(v < 0.8 for v in others.values())


@pytest.mark.slow
def test_guided_backprop_concentrates_on_the_object(bars):
    kind, row, col = PLACES[0]
    image = _scene(np.random.default_rng(row * 20 + col), kind, row, col)
    inside = _box(kind, row, col, margin=1)
    share = {}
    for name, view in (("guided", A.guided_backprop), ("deconvnet", A.deconvnet)):
        magnitude = np.abs(view(bars, image, kind)[..., 0])
        share[name] = magnitude[inside].sum() / magnitude.sum()
    print(f"share of |map| on the bar (+1 px, {inside.mean():.0%} of the image): " + ", ".join(f"{k} {v:.0%}" for k, v in share.items()))
    assert share["guided"] > 2 * inside.mean()
