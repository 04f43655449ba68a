r"""Three more forms of the convolution, in NumPy: as one matrix multiply, transposed, and dilated.

:mod:`cnncourse.reference.conv` writes the convolution as a sum over kernel offsets. Fast
libraries do not compute it that way, and two layers the course meets later (the decoder half
of a segmentation network, and the "deconvolution" view of notebook 09) use its transpose.
This module completes the picture; the unit tests hold every function to Keras' own layer on
the same weights.

* **im2col** (Chellapilla, Puri & Simard, "High performance convolutional neural networks for
  document processing", 2006; Caffe's ``im2col``; cuDNN's "implicit GEMM" does the same
  without writing the matrix out): copy every window the kernel sees into one row of a
  matrix, and the whole convolution becomes a single matrix product
  ``(N·H_out·W_out, F_h·F_w·C_in) @ (F_h·F_w·C_in, C_out)``, which is what BLAS libraries
  and GPUs are fastest at. The price is memory: each pixel is copied up to ``F_h·F_w``
  times.
* **Transposed convolution**: a convolution is linear in its input, ``vec(y) = C vec(x)``
  for a sparse matrix ``C`` (:func:`conv_matrix`). Multiplying by ``Cᵀ`` instead maps an
  output-sized array back to an input-sized one — that is ``keras.layers.Conv2DTranspose``
  (:func:`conv2d_transpose`), and it is also exactly the backward pass of the convolution
  with respect to its input: ``∂⟨conv2d(x, w), g⟩/∂x = Cᵀ g``. So the layer that
  *upsamples* in a decoder and the gradient that flows *down* through a conv layer are the
  same computation (Dumoulin & Visin, "A guide to convolution arithmetic for deep
  learning", 2016). It is sometimes called "deconvolution", which it is not: it does not
  invert the convolution.
* **Dilated (atrous) convolution** (Yu & Koltun, "Multi-scale context aggregation by
  dilated convolutions", ICLR 2016; ``dilation_rate`` in Keras): the kernel taps are
  ``d`` pixels apart, so an ``F×F`` kernel covers ``d·(F − 1) + 1`` pixels with the same
  ``F²`` weights — a convolution with a larger kernel that has zeros between its taps
  (:func:`dilate_kernel`). Stacking dilations 1, 2, 4, … grows the receptive field
  exponentially with depth instead of linearly.

Conventions are those of :mod:`cnncourse.reference.conv`: NHWC images, HWIO kernels,
``padding`` ``"valid"``, ``"same"`` (Keras/TensorFlow's, the odd zero at the bottom/right,
computed for the *dilated* kernel size) or an integer.
"""

from __future__ import annotations

import numpy as np

from cnncourse.checks import pair as _pair
from cnncourse.checks import positive_int
from cnncourse.reference.conv import _check_padding, _nhwc, float64_grad, padding_amounts, patches

__all__ = [
    "autodiff_input_gradient",
    "conv2d_im2col",
    "conv2d_transpose",
    "conv_matrix",
    "dilate_kernel",
    "im2col",
    "transposed_output_size",
]


def _effective(kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """The span ``d·(F − 1) + 1`` of a dilated kernel, per axis."""
    return tuple(d * (f - 1) + 1 for f, d in zip(kernel, dilation))  # type: ignore[return-value]


def _kernel_hwio(w: np.ndarray, what: str = "w") -> np.ndarray:
    w = np.asarray(w)
    if w.ndim != 4:
        raise ValueError(f"{what} must be a kernel of shape (F_h, F_w, C_in, C_out), got shape {w.shape}")
    return w


# ============================================================================ dilation
def dilate_kernel(w: np.ndarray, dilation=1) -> np.ndarray:
    """The kernel a dilated convolution really applies: ``d − 1`` zeros between neighbouring taps.

    An ``(F_h, F_w, C_in, C_out)`` kernel becomes ``(d_h(F_h − 1) + 1, d_w(F_w − 1) + 1, C_in,
    C_out)``, with the original weights at every ``d``-th row and column and zeros elsewhere.
    A plain convolution with this kernel *is* the dilated convolution with the original one:
    the receptive field grows, the number of weights (and of useful multiplications) does not.
    """
    w = _kernel_hwio(w)
    dh, dw = _pair("dilation", dilation)
    fh, fw = _effective(w.shape[:2], (dh, dw))
    out = np.zeros((fh, fw, *w.shape[2:]), dtype=w.dtype)
    out[::dh, ::dw] = w
    return out


# ============================================================================ im2col
def _windows(x, kernel_size, stride, padding, dilation) -> np.ndarray:
    """Every (dilated) window, ``(N, H_out, W_out, F_h, F_w, C)``: the taps ``d`` apart inside each."""
    kernel, dilation = _pair("kernel_size", kernel_size), _pair("dilation", dilation)
    span = _effective(kernel, dilation)
    return patches(x, span, stride, padding)[:, :, :, :: dilation[0], :: dilation[1], :]


def im2col(x: np.ndarray, kernel_size, stride=1, padding: str | int = "valid", dilation=1) -> np.ndarray:
    """Unroll the windows of an NHWC batch into the rows of one matrix ("image to columns").

    Returns a 2-D array of shape ``(N·H_out·W_out, F_h·F_w·C_in)``: row ``(n·H_out + i)·W_out + j``
    holds the window under output position ``(i, j)`` of image ``n``, flattened in the order
    ``(u, v, c)`` — the order in which ``w.reshape(F_h·F_w·C_in, C_out)`` flattens an HWIO
    kernel, so ``im2col(x, ...) @ w.reshape(-1, C_out)`` is the convolution
    (:func:`conv2d_im2col`). With ``dilation`` the taps of each window are ``d`` pixels apart.

    (Caffe's matrix is the transpose of this one, ``(F·F·C, H_out·W_out)`` per image, hence
    "columns"; the row layout here matches NHWC memory order.)
    """
    x = _nhwc(x)
    windows = _windows(x, kernel_size, stride, padding, dilation)
    n, ho, wo, fh, fw, c = windows.shape
    return windows.reshape(n * ho * wo, fh * fw * c)


def conv2d_im2col(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, padding: str | int = "valid", dilation=1
) -> np.ndarray:
    r"""``keras.layers.Conv2D`` (before its activation) as **one** matrix multiply.

    .. math:: Y = \operatorname{im2col}(x)\, W_{(F_h F_w C_{in}) \times C_{out}} + b

    then reshaped to ``(N, H_out, W_out, C_out)``. ``dilation`` is Keras' ``dilation_rate``
    (Keras refuses ``strides > 1`` together with ``dilation_rate > 1``; this function allows it,
    and it equals :func:`~cnncourse.reference.conv.conv2d` with :func:`dilate_kernel`).
    """
    x, w = _nhwc(x), _kernel_hwio(w)
    if w.shape[2] != x.shape[3]:
        raise ValueError(f"w must be (F_h, F_w, C_in={x.shape[3]}, C_out), got shape {w.shape}")
    windows = _windows(x, w.shape[:2], stride, padding, dilation)
    n, ho, wo = windows.shape[:3]
    cols = windows.reshape(n * ho * wo, -1)
    out = (cols @ w.reshape(-1, w.shape[3])).reshape(n, ho, wo, w.shape[3])
    return out if b is None else out + np.asarray(b)


# ============================================================================ the matrix C
def conv_matrix(input_shape, w: np.ndarray, stride=1, padding: str | int = "valid", dilation=1) -> np.ndarray:
    r"""The matrix :math:`C` with :math:`\operatorname{vec}(y) = C\,\operatorname{vec}(x)` for one image.

    ``input_shape`` is ``(H, W, C_in)``; :math:`C` has one row per output value
    ``(i, j, o)`` and one column per input value ``(r, c, k)`` (both flattened in C order),
    so it is ``(H_out·W_out·C_out) × (H·W·C_in)``. Row ``(i, j, o)`` holds
    ``w[u, v, k, o]`` in column ``(i·S + u·d − top, j·S + v·d − left, k)`` for every tap
    that lands inside the image (taps on the zero padding contribute nothing). Built from
    the indices, not by probing ``conv2d``, so it shows the structure: mostly zeros, the
    same few weights repeated along diagonals (a doubly block-Toeplitz matrix for stride 1).
    Its transpose is the transposed convolution (:func:`conv2d_transpose`). Meant for small
    images: the matrix is dense here.
    """
    w = _kernel_hwio(w)
    if len(input_shape) != 3 or input_shape[2] != w.shape[2]:
        raise ValueError(f"input_shape must be (H, W, C_in={w.shape[2]}), got {tuple(input_shape)}")
    h, wd, c_in = (int(v) for v in input_shape)
    (sh, sw), (dh, dw) = _pair("stride", stride), _pair("dilation", dilation)
    fh, fw, _, c_out = w.shape
    span_h, span_w = _effective((fh, fw), (dh, dw))
    top, bottom = padding_amounts(h, span_h, sh, padding)
    left, right = padding_amounts(wd, span_w, sw, padding)
    ho, wo = (h + top + bottom - span_h) // sh + 1, (wd + left + right - span_w) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"a kernel spanning {(span_h, span_w)} does not fit in the padded {(h, wd)} input")
    matrix = np.zeros((ho, wo, c_out, h, wd, c_in), dtype=np.result_type(w, np.float32))
    for i in range(ho):
        for j in range(wo):
            for u in range(fh):
                for v in range(fw):
                    r, c = i * sh + u * dh - top, j * sw + v * dw - left
                    if 0 <= r < h and 0 <= c < wd:
                        matrix[i, j, :, r, c, :] += w[u, v].T
    return matrix.reshape(ho * wo * c_out, h * wd * c_in)


# ============================================================================ transposed convolution
def transposed_output_size(size: int, kernel: int, stride: int = 1, padding: str = "valid", dilation: int = 1) -> int:
    """Output length of ``keras.layers.Conv2DTranspose`` (``output_padding=None``) along one axis.

    ``"same"``: ``size·S``. ``"valid"``: ``size·S + max(F_eff − S, 0)``, i.e. ``(size − 1)·S + F_eff``
    when the (dilated) kernel is at least as long as the stride — the input size of a valid
    convolution that maps it back to ``size``. A forward convolution maps several input sizes
    to the same output size when the stride does not tile them; Keras picks this one (its
    ``output_padding`` picks another).
    """
    padding = _check_padding(padding)
    if not isinstance(padding, str):
        raise ValueError(f'transposed padding must be "valid" or "same" (as in Keras), got {padding!r}')
    size, kernel = positive_int("size", size), positive_int("kernel", kernel)
    stride, dilation = positive_int("stride", stride), positive_int("dilation", dilation)
    span = dilation * (kernel - 1) + 1
    return size * stride if padding == "same" else size * stride + max(span - stride, 0)


def conv2d_transpose(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, padding: str = "valid", dilation=1
) -> np.ndarray:
    r"""What ``keras.layers.Conv2DTranspose`` computes (before its activation), by scattering.

    ``w`` has Keras' ``Conv2DTranspose`` kernel shape ``(F_h, F_w, C_out, C_in)`` — the
    *same* array as the kernel of the forward ``Conv2D`` from ``C_out`` to ``C_in`` channels
    whose transpose this is. Each input pixel :math:`x[n, i, j, :]` stamps a copy of the
    kernel, weighted by it, onto the output at ``(i·S, j·S)``:

    .. math:: z_p[n,\, iS + u d,\, jS + v d,\, :] \mathrel{+}= w[u, v] \, x[n, i, j, :]

    and the padding that the forward convolution would have added is cut away. Where the
    stamps overlap they add up (the checkerboard artefacts of decoders with ``F`` not a
    multiple of ``S`` come from there). This is exactly the input-gradient loop of
    :func:`~cnncourse.reference.conv.conv2d_backward`: multiplication by :math:`C^\top`
    (see :func:`conv_matrix` and :func:`autodiff_input_gradient`).
    """
    x, w = _nhwc(x), _kernel_hwio(w)
    if w.shape[3] != x.shape[3]:
        raise ValueError(f"w must be (F_h, F_w, C_out, C_in={x.shape[3]}) as in Conv2DTranspose, got shape {w.shape}")
    (sh, sw), (dh, dw) = _pair("stride", stride), _pair("dilation", dilation)
    fh, fw = w.shape[:2]
    span_h, span_w = _effective((fh, fw), (dh, dw))
    n, h, wd, _ = x.shape
    out_h = transposed_output_size(h, span_h, sh, padding)
    out_w = transposed_output_size(wd, span_w, sw, padding)
    # the forward convolution this is the transpose of: input (out_h, out_w), padded (top, left)
    top, bottom = padding_amounts(out_h, span_h, sh, padding)
    left, right = padding_amounts(out_w, span_w, sw, padding)
    full = np.zeros((n, out_h + top + bottom, out_w + left + right, w.shape[2]), dtype=np.result_type(x, w, np.float32))
    for u in range(fh):
        for v in range(fw):
            rows = slice(u * dh, u * dh + sh * (h - 1) + 1, sh)
            cols = slice(v * dw, v * dw + sw * (wd - 1) + 1, sw)
            full[:, rows, cols, :] += x @ w[u, v].T
    out = full[:, top : top + out_h, left : left + out_w, :]
    return out if b is None else out + np.asarray(b)


def autodiff_input_gradient(
    x: np.ndarray, w: np.ndarray, g: np.ndarray, stride=1, padding: str = "valid", dilation=1
) -> np.ndarray:
    r""":math:`\partial \langle \mathrm{conv2d}(x, w), g\rangle / \partial x` by the Keras backend's autodiff, in float64.

    The forward pass is ``keras.ops.conv`` (what ``Conv2D`` calls); the gradient comes from
    ``tf.GradientTape`` or ``jax.grad`` (:func:`~cnncourse.reference.conv.float64_grad`). The
    unit tests show it equals ``conv2d_transpose(g, w)``: the transposed convolution *is*
    the backward pass of a convolution with respect to its input.
    """
    import keras

    x, w, g = _nhwc(x).astype(np.float64), _kernel_hwio(w).astype(np.float64), _nhwc(g, "g").astype(np.float64)
    padding = _check_padding(padding)
    if not isinstance(padding, str):
        raise ValueError(f'padding must be "valid" or "same" (as in keras.ops.conv), got {padding!r}')
    strides, rates = _pair("stride", stride), _pair("dilation", dilation)

    def inner_product(inp):
        y = keras.ops.conv(inp, w, strides=strides, padding=padding, dilation_rate=rates, data_format="channels_last")
        return keras.ops.sum(y * g)

    return float64_grad(inner_product, x)
