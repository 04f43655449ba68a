"""The hand-written layers of cnncourse.layers against direct NumPy references."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from cnncourse import layers as L

TF = keras.backend.backend() == "tensorflow"
needs_tf = pytest.mark.skipif(not TF, reason="needs the TensorFlow backend")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


# ---------------------------------------------------------------------------------------------
# LocalResponseNormalization
# ---------------------------------------------------------------------------------------------
def _lrn_reference(a: np.ndarray, size: int, k: float, alpha: float, beta: float) -> np.ndarray:
    """The AlexNet formula, one channel at a time, in float64."""
    a = a.astype(np.float64)
    n = a.shape[-1]
    out = np.empty_like(a)
    for i in range(n):
        lo, hi = max(0, i - size // 2), min(n - 1, i + size // 2)
        s = np.sum(a[..., lo : hi + 1] ** 2, axis=-1)
        out[..., i] = a[..., i] / (k + alpha * s) ** beta
    return out


@pytest.mark.parametrize(
    "shape, size, k, alpha, beta",
    [
        ((2, 4, 5, 12), 5, 2.0, 1e-4, 0.75),  # AlexNet's values
        ((2, 4, 5, 12), 5, 1.0, 0.2, 0.75),  # a large alpha, so the normalization matters
        ((3, 7), 3, 0.5, 0.5, 1.0),  # dense activations, window of 3
        ((2, 3, 3, 4), 9, 1.0, 0.1, 0.5),  # window wider than the channel count
        ((2, 3, 3, 4), 1, 1.0, 0.3, 0.75),  # window of one channel
    ],
)
def test_lrn_matches_the_paper_formula(shape, size, k, alpha, beta):
    x = (_rng(1).normal(size=shape) * 3).astype(np.float32)
    layer = L.LocalResponseNormalization(size=size, k=k, alpha=alpha, beta=beta)
    np.testing.assert_allclose(_np(layer(x)), _lrn_reference(x, size, k, alpha, beta), rtol=2e-5, atol=1e-6)


def test_lrn_changes_its_input_and_uses_neighbours():
    x = np.zeros((1, 1, 1, 6), np.float32)
    x[..., 2] = 1.0
    x[..., 4] = 10.0  # a strong neighbour two channels away, inside a window of 5
    y = _np(L.LocalResponseNormalization(size=5, k=1.0, alpha=0.01, beta=1.0)(x))
    assert y[0, 0, 0, 2] == pytest.approx(1.0 / (1.0 + 0.01 * (1.0 + 100.0)), rel=1e-5)
    y3 = _np(L.LocalResponseNormalization(size=3, k=1.0, alpha=0.01, beta=1.0)(x))
    assert y3[0, 0, 0, 2] == pytest.approx(1.0 / (1.0 + 0.01 * 1.0), rel=1e-5)  # neighbour outside


@pytest.mark.tf_only
@needs_tf
@pytest.mark.parametrize("size, k, alpha, beta", [(5, 2.0, 1e-4, 0.75), (3, 1.0, 0.3, 0.5), (7, 0.5, 0.05, 1.0)])
def test_lrn_equals_tensorflow_lrn_with_depth_radius(size, k, alpha, beta):
    import tensorflow as tf

    x = (_rng(2).normal(size=(2, 5, 5, 16)) * 2).astype(np.float32)
    expected = tf.nn.local_response_normalization(x, depth_radius=size // 2, bias=k, alpha=alpha, beta=beta)
    got = L.LocalResponseNormalization(size=size, k=k, alpha=alpha, beta=beta)(x)
    np.testing.assert_allclose(_np(got), expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs", [{"size": 4}, {"size": 0}, {"size": 2.5}, {"alpha": -1.0}, {"beta": float("nan")}, {"k": 0.0}]
)
def test_lrn_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        L.LocalResponseNormalization(**kwargs)


# ---------------------------------------------------------------------------------------------
# DropConnect
# ---------------------------------------------------------------------------------------------
def _dense_pair(units=5, features=8, rate=0.5, **kw):
    x = _rng(3).normal(size=(16, features)).astype(np.float32)
    dc = L.DropConnect(units, rate=rate, seed=1, **kw)
    dc.build(x.shape)
    dense = keras.layers.Dense(units, activation=kw.get("activation"))
    dense.build(x.shape)
    w = _rng(4).normal(size=(features, units)).astype(np.float32)
    b = _rng(5).normal(size=(units,)).astype(np.float32)
    dc.set_weights([w, b])
    dense.set_weights([w, b])
    return x, dc, dense, w, b


def test_dropconnect_is_dense_at_inference_and_with_rate_zero():
    x, dc, dense, _, _ = _dense_pair(activation="relu")
    np.testing.assert_allclose(_np(dc(x)), _np(dense(x)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(dc(x, training=False)), _np(dense(x)), rtol=1e-6, atol=1e-6)
    x0, dc0, dense0, _, _ = _dense_pair(rate=0.0)
    np.testing.assert_allclose(_np(dc0(x0, training=True)), _np(dense0(x0)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mask_per", ["batch", "example"])
def test_dropconnect_drops_single_weights_with_inverted_scaling(mask_per):
    features, units, rate = 6, 40, 0.25
    x, dc, _, w, b = _dense_pair(units, features, rate=rate, mask_per=mask_per, use_bias=True)
    dc.set_weights([w, np.zeros_like(b)])
    eye = np.repeat(np.eye(features, dtype=np.float32), 2, axis=0)  # each basis vector twice
    y = _np(dc(eye, training=True))  # row 2i and 2i+1 both pick out row i of the masked kernel
    scaled = np.repeat(w, 2, axis=0) / (1 - rate)
    kept = np.isclose(y, scaled, rtol=1e-5)
    dropped = y == 0.0
    assert np.all(kept | dropped), "every output entry is either a kept weight / (1 - p) or 0"
    assert abs(dropped.mean() - rate) < 0.1
    same = np.array_equal(y[0::2], y[1::2])
    assert same == (mask_per == "batch"), "a batch shares one mask; examples get their own"


@pytest.mark.parametrize("mask_per", ["batch", "example"])
def test_dropconnect_mean_over_masks_is_dense(mask_per):
    units, features, rate = 3, 8, 0.5
    x, dc, dense, w, b = _dense_pair(units, features, rate=rate, mask_per=mask_per)
    x1 = x[:1]
    draws = 4000
    if mask_per == "example":
        outs = _np(dc(np.repeat(x1, draws, axis=0), training=True))
    else:
        outs = np.concatenate([_np(dc(x1, training=True)) for _ in range(200)])
    expected = _np(dense(x1))[0]
    # variance of one draw: sum_i x_i^2 w_ij^2 p/(1-p) + b_j^2 p/(1-p)
    var = (np.sum((x1[0][:, None] * w) ** 2, axis=0) + b**2) * rate / (1 - rate)
    tolerance = 5 * np.sqrt(var / len(outs))
    assert np.all(np.abs(outs.mean(axis=0) - expected) < tolerance)
    assert np.all(outs.std(axis=0) > 0.1 * np.sqrt(var)), "training outputs must vary"


def test_dropconnect_works_on_higher_rank_inputs_like_dense():
    x = _rng(6).normal(size=(2, 3, 4)).astype(np.float32)
    dc = L.DropConnect(5, rate=0.5)
    assert tuple(dc(x).shape) == (2, 3, 5)
    assert tuple(dc(x, training=True).shape) == (2, 3, 5)
    with pytest.raises(ValueError, match="example"):
        L.DropConnect(5, mask_per="example")(x)


@pytest.mark.parametrize("kwargs", [{"rate": 1.0}, {"rate": -0.1}, {"units": 0}, {"mask_per": "pixel"}])
def test_dropconnect_rejects_bad_arguments(kwargs):
    args = {"units": 4, **kwargs}
    with pytest.raises(ValueError):
        L.DropConnect(**args)


# ---------------------------------------------------------------------------------------------
# L2Pooling2D
# ---------------------------------------------------------------------------------------------
def _l2pool_reference(x, pool, strides, padding):
    n, h, w, c = x.shape
    if padding == "valid":
        oh, ow = (h - pool[0]) // strides[0] + 1, (w - pool[1]) // strides[1] + 1
        top = left = 0
    else:
        oh, ow = -(-h // strides[0]), -(-w // strides[1])
        top = max((oh - 1) * strides[0] + pool[0] - h, 0) // 2
        left = max((ow - 1) * strides[1] + pool[1] - w, 0) // 2
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * strides[0] - top, j * strides[1] - left
            win = x[:, max(r0, 0) : r0 + pool[0], max(c0, 0) : c0 + pool[1], :].astype(np.float64)
            out[:, i, j, :] = np.sqrt(np.mean(win**2, axis=(1, 2)))  # mean over in-image positions
    return out


@pytest.mark.parametrize(
    "pool, strides, padding", [((2, 2), None, "valid"), ((3, 3), (2, 2), "valid"), ((3, 2), (2, 1), "same")]
)
def test_l2pool_is_root_mean_square_of_each_window(pool, strides, padding):
    x = _rng(7).normal(size=(2, 7, 6, 3)).astype(np.float32)
    layer = L.L2Pooling2D(pool, strides, padding)
    y = _np(layer(x))
    ref = _l2pool_reference(x, pool, strides or pool, padding)
    assert y.shape == ref.shape == tuple(layer.compute_output_shape(x.shape))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_l2pool_lies_between_mean_and_max_of_abs_and_matches_the_lecture_example():
    x = np.array([[2, 2, 4, 4], [2, 4, 8, 4], [4, 4, 4, 1], [6, 10, 3, 4]], np.float32)[None, :, :, None]
    y = _np(L.L2Pooling2D(2)(x))[0, :, :, 0]
    np.testing.assert_allclose(y, [[np.sqrt(7.0), np.sqrt(28.0)], [np.sqrt(42.0), np.sqrt(10.5)]], rtol=1e-6)
    mean = _np(keras.layers.AveragePooling2D(2)(x))[0, :, :, 0]
    peak = _np(keras.layers.MaxPooling2D(2)(x))[0, :, :, 0]
    assert np.all(mean <= y) and np.all(y <= peak)


def _grad_of_sum(layer, x):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = tf.reduce_sum(layer(xt))
        return tape.gradient(y, xt).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: layer(v).sum())(x))
    pytest.skip(f"no gradient helper for {backend}")


def test_l2pool_gradient_is_finite_on_an_all_zero_window():
    x = _rng(8).normal(size=(1, 4, 4, 1)).astype(np.float32)
    x[:, :2, :2] = 0.0
    g = _grad_of_sum(L.L2Pooling2D(2), x)
    assert np.all(np.isfinite(g))
    assert np.all(g[:, :2, :2] == 0.0) and np.any(g[:, 2:, 2:] != 0.0)


@pytest.mark.parametrize("kwargs", [{"pool_size": 0}, {"pool_size": (2, 2, 2)}, {"strides": -1}, {"padding": "full"}])
def test_l2pool_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        L.L2Pooling2D(**kwargs)


# ---------------------------------------------------------------------------------------------
# RandomLighting
# ---------------------------------------------------------------------------------------------
def _colour_images(n=64, seed=9, size=8):
    rng = _rng(seed)
    mix = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    return np.clip(rng.uniform(size=(n, size, size, 3)) @ mix, 0, 1).astype(np.float32)


def test_fit_pca_lighting_returns_the_sorted_eigendecomposition_of_the_pixel_covariance():
    images = _colour_images()
    values, vectors = L.fit_pca_lighting(images, max_pixels=None)
    cov = np.cov(images.reshape(-1, 3).astype(np.float64), rowvar=False)
    assert values.shape == (3,) and vectors.shape == (3, 3)
    assert np.all(np.diff(values) <= 0), "eigenvalues in decreasing order"
    np.testing.assert_allclose(cov @ vectors, vectors * values, atol=1e-6)  # columns are p_i
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(3), atol=1e-6)
    sub_values, _ = L.fit_pca_lighting(images, max_pixels=2000)
    np.testing.assert_allclose(sub_values, values, rtol=0.2)


def test_random_lighting_adds_one_colour_offset_per_image_along_the_principal_components():
    images = _colour_images()
    values, vectors = L.fit_pca_lighting(images)
    layer = L.RandomLighting(values, vectors, stddev=0.1, seed=3)
    x = images[:32]
    np.testing.assert_array_equal(_np(layer(x)), x)  # inference: identity
    delta = _np(layer(x, training=True)).astype(np.float64) - x
    offsets = delta[:, 0, 0, :]
    np.testing.assert_allclose(delta, np.broadcast_to(offsets[:, None, None, :], delta.shape), atol=1e-6)
    assert np.all(np.abs(offsets).max(axis=1) > 0), "every image is shifted"
    alphas = (offsets @ vectors) / values  # coordinates along p_i, divided by lambda_i
    assert 0.05 < alphas.std() < 0.2, "alpha_i ~ N(0, 0.1)"

    # with one non-zero eigenvalue the offset must lie on that single eigenvector
    flat = L.RandomLighting([values[0], 0.0, 0.0], vectors, seed=4)
    offsets = (_np(flat(x, training=True)) - x)[:, 0, 0, :].astype(np.float64)
    residual = offsets - np.outer(offsets @ vectors[:, 0], vectors[:, 0])
    assert np.max(np.abs(residual)) < 1e-6 and np.max(np.abs(offsets)) > 1e-4


def test_random_lighting_fit_builds_a_layer_and_checks_channels():
    layer = L.RandomLighting.fit(_colour_images(), stddev=0.2, seed=0)
    assert layer.stddev == 0.2 and len(layer.eigenvalues) == 3
    with pytest.raises(ValueError, match="channels"):
        layer(np.zeros((2, 4, 4, 1), np.float32))


@pytest.mark.parametrize(
    "values, vectors",
    [([1.0, 2.0], np.eye(3)), ([1.0, -1.0, 0.5], np.eye(3)), ([], np.zeros((0, 0))), ([1.0, 1.0, np.nan], np.eye(3))],
)
def test_random_lighting_rejects_bad_eigendecompositions(values, vectors):
    with pytest.raises(ValueError):
        L.RandomLighting(values, vectors)


# ---------------------------------------------------------------------------------------------
# RandomShift
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fill_mode", ["constant", "reflect", "symmetric"])
def test_random_shift_crops_the_padded_image_at_the_given_offsets(fill_mode):
    pad = 3
    x = _rng(10).normal(size=(5, 7, 6, 2)).astype(np.float32)
    layer = L.RandomShift(pad, fill_mode=fill_mode, fill_value=0.5 if fill_mode == "constant" else 0.0)
    offsets = np.array([[0, 0], [6, 6], [0, 6], [6, 0], [2, 5]], np.int32)
    y = _np(layer.apply_offsets(x, offsets))
    spec = [(0, 0), (pad, pad), (pad, pad), (0, 0)]
    padded = np.pad(x, spec, constant_values=0.5) if fill_mode == "constant" else np.pad(x, spec, mode=fill_mode)
    for b, (dy, dx) in enumerate(offsets):
        np.testing.assert_array_equal(y[b], padded[b, dy : dy + 7, dx : dx + 6])


def test_random_shift_outputs_are_crops_at_every_offset_and_identity_at_inference():
    pad, n = 2, 400
    x = _rng(11).uniform(size=(n, 6, 5, 3)).astype(np.float32)
    layer = L.RandomShift(pad, seed=0)
    np.testing.assert_array_equal(_np(layer(x)), x)
    y = _np(layer(x, training=True))
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    used = set()
    for b in range(n):
        matches = [
            (dy, dx)
            for dy, dx in itertools.product(range(2 * pad + 1), repeat=2)
            if np.array_equal(y[b], padded[b, dy : dy + 6, dx : dx + 5])
        ]
        assert len(matches) == 1, f"output {b} is not exactly one crop of its padded input"
        used.add(matches[0])
    assert used == set(itertools.product(range(2 * pad + 1), repeat=2)), "every offset occurs"
    single = _np(layer(x[0], training=True))  # one unbatched image
    assert single.shape == x[0].shape


@pytest.mark.parametrize("kwargs", [{"pad": 0}, {"pad": 1.5}, {"fill_mode": "wrap"}, {"fill_value": "zero"}])
def test_random_shift_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        L.RandomShift(**kwargs)


def test_random_shift_reflect_needs_a_pad_smaller_than_the_image():
    with pytest.raises(ValueError, match="reflect"):
        L.RandomShift(8, fill_mode="reflect")(np.zeros((1, 6, 6, 1), np.float32), training=True)


# ---------------------------------------------------------------------------------------------
# Cutout
# ---------------------------------------------------------------------------------------------
def test_cutout_blanks_the_clipped_square_around_each_centre():
    x = _rng(12).uniform(0.1, 1.0, size=(4, 10, 9, 2)).astype(np.float32)
    layer = L.Cutout(size=4, fill_value=-1.0)
    centres = np.array([[5, 4], [0, 0], [9, 8], [1, 7]], np.int32)
    y = _np(layer.apply_centres(x, centres))
    for b, (cy, cx) in enumerate(centres):
        expected = x[b].copy()
        expected[max(cy - 2, 0) : cy + 2, max(cx - 2, 0) : cx + 2] = -1.0
        np.testing.assert_array_equal(y[b], expected)


def test_cutout_in_training_erases_one_square_per_image_some_clipped():
    size, n = 6, 300
    x = np.ones((n, 12, 12, 3), np.float32)
    layer = L.Cutout(size=size, seed=0)
    np.testing.assert_array_equal(_np(layer(x)), x)
    zero = _np(layer(x, training=True))[..., 0] == 0.0
    areas = zero.sum(axis=(1, 2))
    for b in range(n):
        rows, cols = np.nonzero(zero[b])
        assert rows.size > 0
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert height * width == areas[b], "erased region is a rectangle"
        assert height <= size and width <= size
        assert height == size or rows.min() == 0 or rows.max() == 11, "only clipped at the border"
        assert width == size or cols.min() == 0 or cols.max() == 11
    assert np.mean(areas == size * size) > 0.3 and np.mean(areas < size * size) > 0.3
    half = _np(L.Cutout(size=size, rate=0.5, seed=1)(x, training=True))
    untouched = np.all(half == 1.0, axis=(1, 2, 3)).mean()
    assert 0.35 < untouched < 0.65


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"rate": 1.5}, {"fill_value": None}])
def test_cutout_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        L.Cutout(**kwargs)


# ---------------------------------------------------------------------------------------------
# SobelEdges
# ---------------------------------------------------------------------------------------------
def _sobel_reference(x, padding):
    if padding == "valid":
        padded = x
    elif padding == "zeros":
        padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    else:
        padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode=padding)
    h, w = padded.shape[1] - 2, padded.shape[2] - 2
    gx = np.zeros((x.shape[0], h, w, x.shape[3]))
    gy = np.zeros_like(gx)
    for i in range(3):
        for j in range(3):
            patch = padded[:, i : i + h, j : j + w, :].astype(np.float64)
            gx += L.SOBEL_X[i, j] * patch
            gy += L.SOBEL_Y[i, j] * patch
    return np.sqrt(gx**2 + gy**2)


@pytest.mark.parametrize("padding", ["reflect", "symmetric", "zeros", "valid"])
def test_sobel_edges_is_the_per_channel_gradient_magnitude(padding):
    x = _rng(13).uniform(size=(2, 7, 8, 3)).astype(np.float32)
    layer = L.SobelEdges(padding=padding)
    y = _np(layer(x))
    ref = _sobel_reference(x, padding)
    assert y.shape == ref.shape == tuple(layer.compute_output_shape(x.shape))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_sobel_edges_finds_a_vertical_step_and_normalizes_to_one():
    x = np.zeros((1, 6, 6, 1), np.float32)
    x[:, :, 3:] = 1.0
    y = _np(L.SobelEdges()(x))[0, :, :, 0]
    np.testing.assert_allclose(y[:, 2:4], 4.0)  # columns beside the step see the full kernel
    np.testing.assert_allclose(y[:, [0, 1, 4, 5]], 0.0)
    patches = np.array(list(itertools.product([0.0, 1.0], repeat=9)), np.float32).reshape(-1, 3, 3, 1)
    normalized = _np(L.SobelEdges(padding="valid", normalize=True)(patches))
    assert normalized.max() == pytest.approx(1.0, rel=1e-6) and normalized.min() == 0.0


def test_sobel_edges_rejects_bad_arguments():
    with pytest.raises(ValueError):
        L.SobelEdges(padding="same")


# ---------------------------------------------------------------------------------------------
# Serialization and compiled training with every layer
# ---------------------------------------------------------------------------------------------
def _model_with_every_layer(seed=0) -> keras.Model:
    values, vectors = L.fit_pca_lighting(_colour_images(16))
    inputs = keras.Input((12, 12, 3))
    x = L.RandomShift(2, seed=seed)(inputs)
    x = L.Cutout(4, seed=seed)(x)
    x = L.RandomLighting(values, vectors, seed=seed)(x)
    edges = L.SobelEdges(normalize=True)(x)
    x = keras.layers.Concatenate()([x, edges])
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = L.LocalResponseNormalization(size=3, k=1.0, alpha=0.1, beta=0.75)(x)
    branch = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.Add()([x, L.StochasticDepth(0.3, seed=seed)(branch)])
    x = L.L2Pooling2D(2)(x)
    x = L.FractionalMaxPooling2D(1.5, overlapping=True, seed=seed)(x)
    x = L.Swish(1.702, trainable_beta=True)(x)
    x = keras.layers.Flatten()(x)
    x = L.Dice()(x)
    outputs = L.DropConnect(4, rate=0.3, activation="softmax", seed=seed)(x)
    return keras.Model(inputs, outputs)


def test_a_model_with_every_layer_saves_loads_and_predicts_the_same(tmp_path):
    keras.utils.set_random_seed(0)
    model = _model_with_every_layer()
    x = _colour_images(8, seed=14, size=12)
    before = model.predict(x, verbose=0)
    path = tmp_path / "x.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, rtol=1e-6, atol=1e-7)
    for a, b in zip(model.layers, loaded.layers):
        assert type(a) is type(b) and a.get_config() == b.get_config()
    layer_classes = {n for n in L.__all__ if isinstance(getattr(L, n), type) and issubclass(getattr(L, n), keras.layers.Layer)}
    assert {type(layer).__name__ for layer in loaded.layers} >= layer_classes


@pytest.mark.parametrize(
    "layer",
    [
        L.LocalResponseNormalization(3, 1.5, 0.01, 0.5),
        L.DropConnect(3, rate=0.2, activation="relu", mask_per="example", seed=5),
        L.L2Pooling2D((3, 2), (1, 2), "same"),
        L.RandomLighting([0.5, 0.1], [[1.0, 0.0], [0.0, 1.0]], stddev=0.3, seed=2),
        L.RandomShift(3, "symmetric", seed=1),
        L.Cutout(5, rate=0.5, fill_value=0.5, seed=4),
        L.SobelEdges("zeros", normalize=True),
        L.StochasticDepth(0.25, scaling="test", seed=3),
        L.FractionalMaxPooling2D((1.25, 1.5), pseudo_random=False, overlapping=True, seed=6),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["module"] == "cnncourse.layers" or serialized.get("registered_name", "").startswith("cnncourse>")
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config


def test_every_layer_trains_inside_a_compiled_train_step():
    keras.utils.set_random_seed(1)
    model = _model_with_every_layer(seed=None)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = _colour_images(32, seed=15, size=12)
    y = np.arange(32) % 4
    weights_before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.array_equal(a, b) for a, b in zip(weights_before, model.get_weights()))


@pytest.mark.parametrize("mask_per", ["batch", "example"])
def test_dropconnect_trains_in_a_compiled_model_and_learns(mask_per):
    keras.utils.set_random_seed(2)
    rng = _rng(16)
    x = rng.normal(size=(256, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    model = keras.Sequential([keras.Input((6,)), L.DropConnect(2, rate=0.3, activation="softmax", mask_per=mask_per)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=32, epochs=5, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
