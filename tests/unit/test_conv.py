"""The NumPy convolution, pooling and backprop of cnncourse.reference.conv agree with Keras, NumPy and autodiff."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.reference import conv

TOL = 1e-5  # float32 Keras layers against the float64 reference
GRAD_TOL = 1e-6  # float64 gradients

LECTURE_POOL = np.array([[2, 2, 4, 4], [2, 4, 8, 4], [4, 4, 4, 1], [6, 10, 3, 4]], dtype=np.float64)
# The lecture's 6x6 binary image and its two 3x3 filters (diagonal, vertical line).
IMAGE_6X6 = np.array(
    [
        [1, 0, 0, 0, 0, 1],
        [0, 1, 0, 0, 1, 0],
        [0, 0, 1, 1, 0, 0],
        [1, 0, 0, 0, 1, 0],
        [0, 1, 0, 0, 1, 0],
        [0, 0, 1, 0, 1, 0],
    ],
    dtype=np.float64,
)
FILTER_DIAGONAL = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64)
FILTER_VERTICAL = np.array([[-1, 1, -1], [-1, 1, -1], [-1, 1, -1]], dtype=np.float64)


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)))


def _images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=shape).astype(np.float32)


def _kernel(k, c_in, c_out, seed=1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0 / np.sqrt(k * k * c_in), size=(k, k, c_in, c_out)).astype(np.float32)
    return w, rng.normal(size=c_out).astype(np.float32)


def _numerical_grad(fn, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        up = fn(x)
        x[idx] = old - h
        down = fn(x)
        x[idx] = old
        grad[idx] = (up - down) / (2 * h)
    return grad


# ---------------------------------------------------------------------------------- 1-D
@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize("f", [1, 2, 3, 4, 5])
def test_1d_correlation_and_convolution_match_numpy(mode, f):
    rng = np.random.default_rng(f)
    x, w = rng.normal(size=11), rng.normal(size=f)
    assert _max_diff(conv.correlate1d(x, w, mode), np.correlate(x, w, mode)) <= 1e-12
    assert _max_diff(conv.conv1d(x, w, mode), np.convolve(x, w, mode)) <= 1e-12


def test_convolution_is_correlation_with_the_flipped_kernel():
    x, w = np.arange(8.0), np.array([1.0, 2.0, 0.0])
    assert np.allclose(conv.conv1d(x, w), conv.correlate1d(x, w[::-1]))
    # an asymmetric kernel tells the two apart: correlation with [1, 2, 0] is x[n] + 2 x[n+1]
    assert conv.correlate1d(x, w).tolist() == [2.0, 5.0, 8.0, 11.0, 14.0, 17.0]
    assert conv.conv1d(x, w).tolist() == [4.0, 7.0, 10.0, 13.0, 16.0, 19.0]
    img, k = np.arange(16.0).reshape(4, 4), np.array([[1.0, 0.0], [0.0, 0.0]])
    assert np.array_equal(conv.correlate2d(img, k), img[:3, :3])  # the kernel's 1 picks the top-left pixel
    assert np.array_equal(conv.convolve2d(img, k), img[1:, 1:])  # flipped, it picks the bottom-right one


def test_1d_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        conv.correlate1d(np.ones(5), np.ones(2), "circular")
    with pytest.raises(ValueError, match="1-D"):
        conv.conv1d(np.ones(2), np.ones(3))


# ---------------------------------------------------------------------------------- 2-D vs Keras
@pytest.mark.parametrize("channels", [(1, 1), (3, 4)], ids=["c1-1", "c3-4"])
@pytest.mark.parametrize("kernel", [1, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_equals_keras_conv2d(padding, stride, kernel, channels):
    c_in, c_out = channels
    x = _images((2, 10, 9, c_in), seed=kernel * 10 + stride)
    w, b = _kernel(kernel, c_in, c_out)
    layer = keras.layers.Conv2D(c_out, kernel, strides=stride, padding=padding)
    layer.build(x.shape)
    layer.set_weights([w, b])
    expected = keras.ops.convert_to_numpy(layer(x))
    assert _max_diff(conv.conv2d(x.astype(np.float64), w.astype(np.float64), b, stride, padding), expected) <= TOL


def test_same_padding_puts_the_extra_zero_bottom_right():
    assert conv.padding_amounts(6, 3, 2, "same") == (0, 1)
    assert conv.padding_amounts(5, 3, 2, "same") == (1, 1)
    assert conv.padding_amounts(7, 4, 1, "same") == (1, 2)
    assert conv.padding_amounts(7, 4, 1, 2) == (2, 2)
    assert conv.padding_amounts(7, 4, 1, "valid") == (0, 0)


def test_integer_padding_is_zero_padding_and_gives_the_formula_sizes():
    x, (w, _) = _images((1, 7, 7, 2)), _kernel(3, 2, 2)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    assert _max_diff(conv.conv2d(x, w, padding=2, stride=2), conv.conv2d(padded, w, stride=2)) == 0.0
    # AlexNet's first layers: (227 - 11)/4 + 1 = 55, then a 3x3 stride-2 pool: (55 - 3)/2 + 1 = 27
    out = conv.conv2d(np.zeros((1, 227, 227, 1)), np.zeros((11, 11, 1, 1)), stride=4)
    assert out.shape == (1, 55, 55, 1)
    assert conv.max_pool2d(out, 3, 2).shape == (1, 27, 27, 1)


@pytest.mark.parametrize("padding", ["valid", "same", 1])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [1, 3, 6])
def test_fft_convolution_equals_direct_convolution(kernel, stride, padding):
    x, (w, b) = _images((2, 12, 11, 3)).astype(np.float64), _kernel(kernel, 3, 2)
    assert _max_diff(conv.conv2d_fft(x, w, b, stride, padding), conv.conv2d(x, w, b, stride, padding)) <= 1e-9


def test_convolution_is_translation_equivariant():
    x = np.zeros((1, 16, 16, 1))
    x[0, 4:9, 5:8, 0] = _images((5, 3), seed=3)
    w, _ = _kernel(3, 1, 1)
    shifted = np.roll(x, (3, 2), axis=(1, 2))
    assert _max_diff(conv.conv2d(shifted, w), np.roll(conv.conv2d(x, w), (3, 2), axis=(1, 2))) <= 1e-12
    # max pooling is not: a 1-pixel shift changes a 2x2 max-pooled map
    assert _max_diff(conv.max_pool2d(np.roll(x, 1, axis=1)), conv.max_pool2d(x)) > 0.0


def test_lecture_6x6_feature_maps():
    s1 = conv.correlate2d(IMAGE_6X6, FILTER_DIAGONAL)
    assert s1.tolist() == [[3, -1, -3, -1], [-3, 1, 0, -3], [-3, -3, 0, 1], [3, -2, -2, -1]]
    assert conv.correlate2d(IMAGE_6X6, FILTER_DIAGONAL, stride=2).tolist() == [[3, -3], [-3, 0]]
    s2 = conv.correlate2d(IMAGE_6X6, FILTER_VERTICAL)
    assert s2.tolist() == [[-1, -1, -1, -1], [-1, -1, -2, 1], [-1, -1, -2, 1], [-1, 0, -4, 3]]


def test_conv2d_rejects_bad_arguments():
    x, (w, _) = _images((1, 5, 5, 2)), _kernel(3, 2, 1)
    with pytest.raises(ValueError, match="padding"):
        conv.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match="stride"):
        conv.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="C_in"):
        conv.conv2d(x, _kernel(3, 3, 1)[0])
    with pytest.raises(ValueError, match="NHWC"):
        conv.conv2d(x[0], w)
    with pytest.raises(ValueError, match="window"):
        conv.conv2d(x, _kernel(6, 2, 1)[0])


# ---------------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("pool", [2, 3])
def test_pooling_equals_keras(pool, stride, padding):
    x = np.random.default_rng(pool + stride).normal(size=(2, 7, 8, 3)).astype(np.float32)
    for ours, theirs in [
        (conv.max_pool2d, keras.layers.MaxPooling2D),
        (conv.avg_pool2d, keras.layers.AveragePooling2D),
    ]:
        expected = keras.ops.convert_to_numpy(theirs(pool, strides=stride, padding=padding)(x))
        assert _max_diff(ours(x, pool, stride, padding), expected) <= TOL


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_l2_pooling_equals_the_course_layer(padding):
    from cnncourse.layers import L2Pooling2D

    x = np.random.default_rng(4).normal(size=(2, 7, 8, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(L2Pooling2D(3, strides=2, padding=padding)(x))
    assert _max_diff(conv.l2_pool2d(x, 3, 2, padding), expected) <= TOL


def test_lecture_pooling_example():
    x = LECTURE_POOL[None, :, :, None]
    assert conv.max_pool2d(x)[0, :, :, 0].tolist() == [[4, 8], [10, 4]]
    assert conv.avg_pool2d(x)[0, :, :, 0].tolist() == [[2.5, 5], [6, 3]]
    l2 = conv.l2_pool2d(x)[0, :, :, 0]
    assert np.allclose(l2, np.sqrt([[7, 28], [42, 10.5]]))
    assert np.all((l2 >= [[2.5, 5], [6, 3]]) & (l2 <= [[4, 8], [10, 4]]))
    with pytest.raises(ValueError, match="padding"):
        conv.max_pool2d(x, padding=1)


# ---------------------------------------------------------------------------------- gradients
def _conv_case(stride, padding, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 7, 6, 2))
    w = rng.normal(size=(3, 3, 2, 3))
    out = conv.conv2d(x, w, stride=stride, padding=padding)
    return x, w, rng.normal(size=out.shape)


@pytest.mark.parametrize("stride,padding", [(1, "valid"), (2, "same"), (2, 1)])
def test_unsharing_the_kernel_gives_the_same_convolution(stride, padding):
    x, w, g = _conv_case(stride, padding)
    ho, wo = g.shape[1:3]
    copies = np.broadcast_to(w, (ho, wo, *w.shape))
    assert _max_diff(conv.unshared_conv2d(x, copies, stride, padding), conv.conv2d(x, w, None, stride, padding)) <= 1e-12


@pytest.mark.parametrize("stride,padding", [(1, "valid"), (2, "same"), (3, "same")])
def test_shared_gradient_is_the_sum_of_per_position_gradients(stride, padding):
    x, w, g = _conv_case(stride, padding)
    per_position = conv.unshared_conv_gradients(x, g, w.shape[:2], stride, padding)
    assert per_position.shape == (*g.shape[1:3], *w.shape)
    _, grad_w, grad_b = conv.conv2d_backward(x, w, g, stride, padding)
    assert _max_diff(per_position.sum(axis=(0, 1)), grad_w) <= 1e-12
    # ... and both equal the backend's autodiff of L = sum(conv(x, w) * g)
    xt = keras.ops.convert_to_tensor(x)
    gt = keras.ops.convert_to_tensor(g)

    def loss(kernel):
        return keras.ops.sum(keras.ops.conv(xt, kernel, strides=stride, padding=padding) * gt)

    assert _max_diff(conv.float64_grad(loss, w), grad_w) <= GRAD_TOL
    # the per-position gradients themselves are autodiff's gradient of the untied copies
    windows = keras.ops.convert_to_tensor(np.ascontiguousarray(conv.patches(x, 3, stride, padding)))

    def untied_loss(copies):
        return keras.ops.sum(keras.ops.einsum("nijuvc,ijuvco->nijo", windows, copies) * gt)

    copies = np.broadcast_to(w, per_position.shape).copy()
    assert _max_diff(conv.float64_grad(untied_loss, copies), per_position) <= GRAD_TOL
    assert _max_diff(grad_b, g.sum(axis=(0, 1, 2))) == 0.0


@pytest.mark.parametrize("stride,padding", [(1, "valid"), (2, "same"), (2, 1)])
def test_conv2d_backward_matches_finite_differences(stride, padding):
    x, w, g = _conv_case(stride, padding, seed=5)
    grad_x, grad_w, _ = conv.conv2d_backward(x, w, g, stride, padding)
    num_x = _numerical_grad(lambda v: np.sum(conv.conv2d(v, w, None, stride, padding) * g), x)
    num_w = _numerical_grad(lambda v: np.sum(conv.conv2d(x, v, None, stride, padding) * g), w)
    assert _max_diff(grad_x, num_x) <= GRAD_TOL
    assert _max_diff(grad_w, num_w) <= GRAD_TOL


def _chains():
    return {
        "conv1d-tanh-linear": (
            conv.Sequential(conv.Conv1D(3, 2, 4, seed=1), conv.Tanh(), conv.Flatten(), conv.Linear(4 * 6, 1, seed=2)),
            np.random.default_rng(0).normal(size=(3, 8, 2)),
        ),
        "conv2d-relu-linear-tanh-linear": (
            conv.Sequential(
                conv.Conv2D(3, 2, 3, stride=2, padding="same", seed=3),
                conv.ReLU(),
                conv.Flatten(),
                conv.Linear(3 * 3 * 3, 5, seed=4),
                conv.Tanh(),
                conv.Linear(5, 1, seed=5),
            ),
            np.random.default_rng(1).normal(size=(2, 6, 5, 2)),
        ),
    }


@pytest.mark.parametrize("name", list(_chains()))
def test_module_chain_gradients_match_finite_differences_and_autodiff(name):
    model, x = _chains()[name]
    out = model.forward(x)
    grad_x = model.backward(np.ones_like(out))
    auto = conv.autodiff_gradients(model, x)
    assert set(auto) == {"input", *model.grads}
    assert _max_diff(grad_x, auto["input"]) <= GRAD_TOL
    for key, value in model.params.items():
        assert _max_diff(model.grads[key], auto[key]) <= GRAD_TOL, key

        def total(v, key=key):
            saved = value.copy()
            value[...] = v
            result = float(np.sum(model.forward(x)))
            value[...] = saved
            return result

        assert _max_diff(model.grads[key], _numerical_grad(total, value)) <= GRAD_TOL, key


def test_conv1d_module_equals_keras_conv1d():
    module = conv.Conv1D(3, 2, 4, seed=7)
    x = np.random.default_rng(2).normal(size=(2, 9, 2)).astype(np.float32)
    layer = keras.layers.Conv1D(4, 3)
    layer.build(x.shape)
    layer.set_weights([module.params["w"].astype(np.float32), module.params["b"].astype(np.float32)])
    assert _max_diff(module.forward(x), keras.ops.convert_to_numpy(layer(x))) <= TOL


def test_sequential_rejects_non_modules():
    with pytest.raises(ValueError, match="Module"):
        conv.Sequential()
    with pytest.raises(ValueError, match="Module"):
        conv.Sequential(conv.ReLU(), np.tanh)
    with pytest.raises(ValueError, match="padding"):
        conv.Conv2D(3, 1, 1, padding=2)


def test_plot_matrix_writes_every_value():
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    conv.plot_matrix(LECTURE_POOL, ax, title="4x4")
    assert [t.get_text() for t in ax.texts] == [f"{v:g}" for v in LECTURE_POOL.ravel()]
    assert ax.get_title() == "4x4" and ax.get_xlabel() == "column"
    plt.close(fig)
    with pytest.raises(ValueError, match="2-D"):
        conv.plot_matrix(np.ones(3))
