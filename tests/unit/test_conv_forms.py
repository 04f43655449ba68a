"""im2col, transposed and dilated convolution (cnncourse.reference.conv_forms) against Keras and autodiff."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnncourse.reference import conv, conv_forms

TOL = 1e-5  # float32 Keras layers against the float64 references
EXACT = 1e-10  # float64 against float64: only rounding differs


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)))


def _images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape)


def _kernel(kh, kw, c_in, c_out, seed=1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0 / np.sqrt(kh * kw * c_in), size=(kh, kw, c_in, c_out)), rng.normal(size=c_out)


def _keras_layer(layer, x, weights):
    layer.build(x.shape)
    layer.set_weights([np.asarray(v, np.float32) for v in weights])
    return keras.ops.convert_to_numpy(layer(x.astype(np.float32)))


# ---------------------------------------------------------------------------------- im2col
def test_im2col_rows_are_the_flattened_windows():
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    cols = conv_forms.im2col(x, 2)
    # four 2x2 windows of [[0,1,2],[3,4,5],[6,7,8]], read row by row
    np.testing.assert_array_equal(cols, [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]])
    # channels are the fastest-varying index, as in an HWIO kernel reshaped to (F*F*C, C_out)
    x2 = np.stack([x[..., 0], 10 * x[..., 0]], axis=-1)
    np.testing.assert_array_equal(conv_forms.im2col(x2, 2)[0], [0, 0, 1, 10, 3, 30, 4, 40])
    # dilation 2: the taps are two pixels apart, one window fits
    np.testing.assert_array_equal(conv_forms.im2col(x, 2, dilation=2), [[0, 2, 6, 8]])
    # stride 2 with "same" padding: ceil(3/2) = 2 outputs per axis, the zero row/column bottom/right
    np.testing.assert_array_equal(conv_forms.im2col(x, 2, stride=2, padding="same")[3], [8, 0, 0, 0])


@pytest.mark.parametrize("channels", [(1, 1), (3, 4)], ids=["c1-1", "c3-4"])
@pytest.mark.parametrize("kernel", [1, 3, (2, 5)])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_im2col_equals_keras_conv2d(padding, stride, kernel, channels):
    c_in, c_out = channels
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = _images((2, 10, 9, c_in), seed=kh * 10 + stride)
    w, b = _kernel(kh, kw, c_in, c_out)
    expected = _keras_layer(keras.layers.Conv2D(c_out, (kh, kw), strides=stride, padding=padding), x, [w, b])
    assert _max_diff(conv_forms.conv2d_im2col(x, w, b, stride, padding), expected) <= TOL


def test_conv2d_im2col_is_one_matrix_product_of_the_expected_shape():
    x, (w, _) = _images((2, 8, 8, 3)), _kernel(3, 3, 3, 5)
    cols = conv_forms.im2col(x, 3)
    assert cols.shape == (2 * 6 * 6, 3 * 3 * 3)  # one row per output position, one column per weight
    y = cols @ w.reshape(-1, 5)
    assert _max_diff(y.reshape(2, 6, 6, 5), conv.conv2d(x, w)) <= EXACT


# ---------------------------------------------------------------------------------- dilation
@pytest.mark.parametrize("dilation", [2, 3, (1, 2)])
@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_dilated_conv_equals_keras_dilation_rate(padding, kernel, dilation):
    x = _images((2, 13, 12, 2), seed=7)
    w, b = _kernel(kernel, kernel, 2, 3)
    layer = keras.layers.Conv2D(3, kernel, padding=padding, dilation_rate=dilation)
    expected = _keras_layer(layer, x, [w, b])
    assert _max_diff(conv_forms.conv2d_im2col(x, w, b, 1, padding, dilation), expected) <= TOL


def test_dilate_kernel_puts_zeros_between_the_taps():
    w = np.arange(1.0, 10.0).reshape(3, 3, 1, 1)
    big = conv_forms.dilate_kernel(w, 2)
    assert big.shape == (5, 5, 1, 1)  # d(F - 1) + 1 = 5
    np.testing.assert_array_equal(big[::2, ::2], w)
    assert np.count_nonzero(big) == 9  # still nine weights
    assert conv_forms.dilate_kernel(w, (1, 3)).shape == (3, 7, 1, 1)
    np.testing.assert_array_equal(conv_forms.dilate_kernel(w, 1), w)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["valid", "same", 2])
def test_dilated_conv_is_a_plain_conv_with_the_dilated_kernel(padding, stride):
    # also where Keras refuses (stride > 1 with dilation > 1): the definition still holds
    x, (w, b) = _images((1, 15, 14, 2), seed=3), _kernel(3, 3, 2, 2)
    dilated = conv_forms.conv2d_im2col(x, w, b, stride, padding, dilation=2)
    assert _max_diff(dilated, conv.conv2d(x, conv_forms.dilate_kernel(w, 2), b, stride, padding)) <= EXACT


# ---------------------------------------------------------------------------------- the matrix C
@pytest.mark.parametrize(
    "stride, padding, dilation", [(1, "valid", 1), (2, "same", 1), (1, "same", 2), (2, 1, 1), (3, "valid", 1)]
)
def test_conv_matrix_times_the_image_is_the_convolution(stride, padding, dilation):
    x, (w, _) = _images((1, 7, 8, 2), seed=4), _kernel(3, 3, 2, 3)
    c = conv_forms.conv_matrix(x.shape[1:], w, stride, padding, dilation)
    y = conv_forms.conv2d_im2col(x, w, None, stride, padding, dilation)
    assert c.shape == (y.size, x.size)
    assert _max_diff(c @ x.ravel(), y.ravel()) <= EXACT


def test_conv_matrix_is_sparse_with_repeated_weights():
    w = np.arange(1.0, 10.0).reshape(3, 3, 1, 1)
    c = conv_forms.conv_matrix((5, 5, 1), w)
    assert c.shape == (9, 25)
    assert np.all(np.count_nonzero(c, axis=1) == 9)  # each output sees 9 pixels of 25
    # stride 1: the row of output (0, 1) is the row of output (0, 0) shifted by one pixel
    np.testing.assert_array_equal(c[1, 1:], c[0, :-1])


# ---------------------------------------------------------------------------------- transposed convolution
@pytest.mark.parametrize("channels", [(1, 1), (3, 2)], ids=["c1-1", "c3-2"])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_transpose_equals_keras_conv2d_transpose(padding, stride, kernel, channels):
    c_in, c_out = channels
    x = _images((2, 5, 4, c_in), seed=kernel + 10 * stride)
    w, _ = _kernel(kernel, kernel, c_out, c_in)  # Conv2DTranspose kernels are (F, F, C_out, C_in)
    b = np.random.default_rng(2).normal(size=c_out)
    layer = keras.layers.Conv2DTranspose(c_out, kernel, strides=stride, padding=padding)
    expected = _keras_layer(layer, x, [w, b])
    got = conv_forms.conv2d_transpose(x, w, b, stride, padding)
    assert got.shape[1:3] == (
        conv_forms.transposed_output_size(5, kernel, stride, padding),
        conv_forms.transposed_output_size(4, kernel, stride, padding),
    )
    assert _max_diff(got, expected) <= TOL


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_dilated_conv2d_transpose_equals_keras(padding):
    x, (w, _), b = _images((1, 6, 5, 2), seed=8), _kernel(3, 3, 3, 2), np.array([0.1, -0.2, 0.3])
    expected = _keras_layer(keras.layers.Conv2DTranspose(3, 3, padding=padding, dilation_rate=2), x, [w, b])
    assert _max_diff(conv_forms.conv2d_transpose(x, w, b, 1, padding, 2), expected) <= TOL


def test_transposed_output_size_formulas():
    assert conv_forms.transposed_output_size(4, 3, 2) == 9  # (4 - 1)*2 + 3
    assert conv_forms.transposed_output_size(4, 3, 2, "same") == 8  # 4*2
    assert conv_forms.transposed_output_size(4, 1, 3) == 12  # kernel shorter than the stride: 4*3
    assert conv_forms.transposed_output_size(4, 3, 1, dilation=2) == 8  # (4 - 1) + 5
    with pytest.raises(ValueError, match="padding"):
        conv_forms.transposed_output_size(4, 3, 2, 1)


def test_conv2d_transpose_is_multiplication_by_the_transposed_matrix():
    w, _ = _kernel(3, 3, 2, 3)  # forward conv 2 -> 3 channels; its transpose maps 3 -> 2
    c = conv_forms.conv_matrix((7, 7, 2), w, stride=2)
    g = _images((1, 3, 3, 3), seed=5)
    assert _max_diff(c.T @ g.ravel(), conv_forms.conv2d_transpose(g, w, stride=2).ravel()) <= EXACT


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation",
    [(9, 3, 1, "valid", 1), (9, 3, 2, "valid", 1), (8, 4, 2, "same", 1), (9, 3, 3, "same", 1), (10, 3, 1, "same", 2)],
)
def test_conv2d_transpose_is_the_input_gradient_of_a_convolution(size, kernel, stride, padding, dilation):
    """d<conv2d(x, w), g>/dx by autodiff = conv2d_transpose(g, w) = the hand-written backward pass."""
    x, (w, _) = _images((2, size, size, 2), seed=6), _kernel(kernel, kernel, 2, 3)
    y = conv_forms.conv2d_im2col(x, w, None, stride, padding, dilation)
    g = _images(y.shape, seed=9)
    by_autodiff = conv_forms.autodiff_input_gradient(x, w, g, stride, padding, dilation)
    by_transpose = conv_forms.conv2d_transpose(g, w, None, stride, padding, dilation)
    assert _max_diff(by_autodiff, by_transpose) <= EXACT
    if dilation == 1:
        assert _max_diff(conv.conv2d_backward(x, w, g, stride, padding)[0], by_transpose) <= EXACT


def test_where_the_stride_does_not_tile_the_transpose_is_one_row_short():
    # a valid 3x3 stride-2 conv never reads row 9 of a 10-row image: its gradient there is 0,
    # and Conv2DTranspose (without output_padding) returns the 9 rows that do get a gradient
    x, (w, _) = _images((1, 10, 10, 1), seed=2), _kernel(3, 3, 1, 1)
    g = _images((1, 4, 4, 1), seed=3)
    grad = conv_forms.autodiff_input_gradient(x, w, g, stride=2)
    assert conv_forms.conv2d_transpose(g, w, stride=2).shape == (1, 9, 9, 1)
    assert _max_diff(grad[:, :9, :9], conv_forms.conv2d_transpose(g, w, stride=2)) <= EXACT
    assert np.all(grad[:, 9, :] == 0) and np.all(grad[:, :, 9] == 0)


# ---------------------------------------------------------------------------------- arguments
def test_bad_arguments_raise_value_errors_naming_what_is_allowed():
    x, (w, _) = _images((1, 6, 6, 2)), _kernel(3, 3, 2, 2)
    with pytest.raises(ValueError, match="dilation"):
        conv_forms.conv2d_im2col(x, w, dilation=0)
    with pytest.raises(ValueError, match="C_in=2"):
        conv_forms.conv2d_im2col(x, _kernel(3, 3, 3, 2)[0])
    with pytest.raises(ValueError, match="NHWC"):
        conv_forms.im2col(x[0], 3)
    with pytest.raises(ValueError, match="padding"):
        conv_forms.conv2d_transpose(x, w, padding="full")
    with pytest.raises(ValueError, match="C_in=2"):
        conv_forms.conv2d_transpose(x, _kernel(3, 3, 2, 5)[0])
    with pytest.raises(ValueError, match="input_shape"):
        conv_forms.conv_matrix((6, 6), w)
    with pytest.raises(ValueError, match="does not fit"):
        conv_forms.conv2d_im2col(x, w, dilation=3)  # a 7x7 span on a 6x6 image
