"""Convolution, pooling and backpropagation written out in NumPy, to teach and to check Keras.

Keras computes a ``Conv2D`` layer in one fused, opaque call. Notebook 01 opens that box: the
functions here spell each operation out in a few lines of NumPy that read like the
formulas, and the unit tests hold them against Keras' own layers (same weights, same
padding, same stride, agreement to 1e-5). Once they agree, the notebook can use them to
show what Keras does not print: the flip that separates convolution from
cross-correlation, where TensorFlow puts the extra row of "same" padding, why the gradient
of a shared kernel is a *sum*, and what FFT convolution buys.

None of this is meant for training: Keras' layers are faster by orders of magnitude.

Conventions (those of ``keras.layers``): images are NHWC batches ``(N, H, W, C)``, kernels
HWIO ``(F_h, F_w, C_in, C_out)``, and "convolution" in a layer means cross-correlation
(the kernel is not flipped). ``padding`` is ``"valid"`` (none), ``"same"`` (Keras/TF:
output size ``ceil(W / S)``; when the total padding is odd the extra row/column goes at
the bottom/right) or an integer ``P`` (``P`` zeros on every side, as in the formula
``(W − F + 2P)/S + 1``). The 1-D functions follow NumPy's ``np.correlate`` /
``np.convolve`` instead, so they can be checked against NumPy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from cnncourse import checks

__all__ = [
    "Conv1D",
    "Conv2D",
    "Flatten",
    "Linear",
    "Module",
    "ReLU",
    "Sequential",
    "Tanh",
    "autodiff_gradients",
    "avg_pool2d",
    "conv1d",
    "conv2d",
    "conv2d_backward",
    "conv2d_fft",
    "convolve2d",
    "correlate1d",
    "correlate2d",
    "float64_grad",
    "l2_pool2d",
    "max_pool2d",
    "padding_amounts",
    "patches",
    "plot_matrix",
    "unshared_conv2d",
    "unshared_conv_gradients",
]

_1D_MODES = ("valid", "same", "full")


# ============================================================================ argument checks
def _check_padding(padding: str | int) -> str | int:
    if isinstance(padding, str) and padding.lower() in ("valid", "same"):
        return padding.lower()
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool) and padding >= 0:
        return int(padding)
    raise ValueError(f'padding must be "valid", "same" or a non-negative integer, got {padding!r}')


def _nhwc(x: np.ndarray, what: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{what} must be an NHWC batch of shape (N, H, W, C), got shape {x.shape}")
    return x


# ============================================================================ 1-D
def correlate1d(x: np.ndarray, w: np.ndarray, mode: str = "valid") -> np.ndarray:
    r"""Cross-correlation :math:`y[n] = \sum_k x[n + k]\, w[k]`: slide ``w`` over ``x``, no flip.

    This is what a 1-D convolutional layer computes. ``mode`` as in ``np.correlate``:
    ``"valid"`` (``len(x) − len(w) + 1`` outputs), ``"same"`` (``len(x)``; zeros padded
    ``len(w)//2`` before and ``(len(w) − 1)//2`` after) or ``"full"`` (every overlap).
    """
    x, w = np.asarray(x, dtype=np.result_type(x, w, np.float32)), np.asarray(w)
    if x.ndim != 1 or w.ndim != 1 or len(w) == 0 or len(w) > len(x):
        raise ValueError(f"need 1-D x and a non-empty 1-D w no longer than x, got shapes {x.shape}, {w.shape}")
    if mode not in _1D_MODES:
        raise ValueError(f"mode must be one of {_1D_MODES}, got {mode!r}")
    f = len(w)
    before, after = {"valid": (0, 0), "same": (f // 2, (f - 1) // 2), "full": (f - 1, f - 1)}[mode]
    xp = np.pad(x, (before, after))
    return np.array([xp[n : n + f] @ w for n in range(len(xp) - f + 1)])


def conv1d(x: np.ndarray, w: np.ndarray, mode: str = "valid") -> np.ndarray:
    r"""True convolution :math:`(x * w)[n] = \sum_m x[m]\, w[n - m]`: cross-correlation with ``w`` flipped.

    Written as ``correlate1d(x, w[::-1])`` on purpose: that one line *is* the relation
    between the two operations. Equals ``np.convolve(x, w, mode)``. Convolution is
    commutative and associative (cross-correlation is not), which is why the mathematics
    prefers it; a learned kernel does not care, so layers skip the flip.
    """
    return correlate1d(x, np.asarray(w)[::-1], mode)


# ============================================================================ 2-D forward
def padding_amounts(size: int, kernel: int, stride: int, padding: str | int) -> tuple[int, int]:
    """Zeros added ``(before, after)`` along one spatial axis, exactly as Keras/TensorFlow pad.

    ``"same"`` makes the output ``ceil(size / stride)`` long; it needs
    ``max((out − 1)·stride + kernel − size, 0)`` zeros in total and puts the odd one
    *after* (bottom/right). So with stride 2 a "same" layer can pad 0 at the top and 1 at
    the bottom: a detail that makes a hand-written layer disagree with Keras if missed.
    """
    padding = _check_padding(padding)
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2
    return padding, padding


def _pad(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], padding, value: float = 0.0):
    (top, bottom) = padding_amounts(x.shape[1], kernel[0], strides[0], padding)
    (left, right) = padding_amounts(x.shape[2], kernel[1], strides[1], padding)
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)
    if xp.shape[1] < kernel[0] or xp.shape[2] < kernel[1]:
        raise ValueError(f"a {kernel} window does not fit in the padded input of shape {xp.shape[1:3]}")
    return xp


def patches(x: np.ndarray, kernel_size, stride=1, padding: str | int = "valid") -> np.ndarray:
    """Every window a kernel sees: shape ``(N, H_out, W_out, F_h, F_w, C)`` ("im2col").

    A convolution is a dot product of each of these windows with the kernel; pooling is a
    max or mean over each. A read-only view where possible, so it costs no copy.
    """
    x = _nhwc(x)
    kernel, strides = checks.pair("kernel_size", kernel_size), checks.pair("stride", stride)
    xp = _pad(x, kernel, strides, padding)
    windows = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(1, 2))  # N, H', W', C, Fh, Fw
    windows = windows[:, :: strides[0], :: strides[1]]
    return np.moveaxis(windows, 3, -1)


def _conv_inputs(x, w, stride, padding):
    """Checked NHWC input, HWIO kernel, padded input, kernel size and strides: what every conv2d needs."""
    x = _nhwc(x)
    w = np.asarray(w)
    if w.ndim != 4 or w.shape[2] != x.shape[3]:
        raise ValueError(f"w must be (F_h, F_w, C_in={x.shape[3]}, C_out), got shape {w.shape}")
    kernel = w.shape[:2]
    strides = checks.pair("stride", stride)
    return x, w, _pad(x, kernel, strides, padding), kernel, strides


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, padding: str | int = "valid") -> np.ndarray:
    r"""What ``keras.layers.Conv2D`` computes (before its activation), written as a sum over the kernel.

    .. math:: y[n, i, j, o] = b[o] + \sum_{u, v, c} x_p[n,\, iS + u,\, jS + v,\, c]\; w[u, v, c, o]

    with :math:`x_p` the padded input. The loops run over the :math:`F_h F_w` kernel
    offsets only: each adds one shifted, strided slice of the image times a
    :math:`C_{in} \times C_{out}` matrix, so the cost is visibly
    :math:`O(N_{out} \cdot F^2 \cdot C_{in} C_{out})`.
    """
    x, w, xp, (fh, fw), (sh, sw) = _conv_inputs(x, w, stride, padding)
    ho, wo = (xp.shape[1] - fh) // sh + 1, (xp.shape[2] - fw) // sw + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[3]), dtype=np.result_type(x, w, np.float32))
    for u in range(fh):
        for v in range(fw):
            window = xp[:, u : u + sh * (ho - 1) + 1 : sh, v : v + sw * (wo - 1) + 1 : sw, :]
            out += window @ w[u, v]
    return out if b is None else out + np.asarray(b)


def correlate2d(image: np.ndarray, kernel: np.ndarray, stride=1, padding: str | int = "valid") -> np.ndarray:
    """One grey image, one kernel: the cross-correlation a one-filter ``Conv2D`` computes (2-D in, 2-D out)."""
    image, kernel = np.asarray(image), np.asarray(kernel)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"image and kernel must be 2-D, got shapes {image.shape} and {kernel.shape}")
    return conv2d(image[None, :, :, None], kernel[:, :, None, None], stride=stride, padding=padding)[0, :, :, 0]


def convolve2d(image: np.ndarray, kernel: np.ndarray, stride=1, padding: str | int = "valid") -> np.ndarray:
    """True 2-D convolution: flip the kernel in both axes, then cross-correlate (the lecture's definition)."""
    return correlate2d(image, np.asarray(kernel)[::-1, ::-1], stride=stride, padding=padding)


def conv2d_fft(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, padding: str | int = "valid") -> np.ndarray:
    r""":func:`conv2d` computed with the FFT, to compare its cost with the direct sum.

    Convolution theorem: a (linear, zero-padded) convolution is a product of Fourier
    transforms, :math:`x * w = \mathcal F^{-1}(\mathcal F x \cdot \mathcal F w)`. Transforms
    of size :math:`M = (H + F_h − 1)(W + F_w − 1)` cost :math:`O(M \log M)` whatever the
    kernel size, against :math:`O(M F^2)` for the direct sum, so the FFT wins for large
    kernels. Cross-correlation is convolution with the flipped kernel; a strided output is
    the stride-1 output subsampled (wasteful, but this function exists to time and to check).
    """
    x, w, xp, (fh, fw), (sh, sw) = _conv_inputs(x, w, stride, padding)
    hp, wp = xp.shape[1:3]
    shape = (hp + fh - 1, wp + fw - 1)  # the full linear convolution fits: no wrap-around
    # in float64: NumPy 2 transforms float32 in single precision, too coarse to check against
    x_f = np.fft.rfft2(xp.astype(np.float64), s=shape, axes=(1, 2))  # N, H, W//2+1, C_in
    w_f = np.fft.rfft2(w[::-1, ::-1].astype(np.float64), s=shape, axes=(0, 1))  # H, W//2+1, C_in, C_out
    full = np.fft.irfft2(np.einsum("nhwc,hwco->nhwo", x_f, w_f), s=shape, axes=(1, 2))
    valid = full[:, fh - 1 : hp, fw - 1 : wp, :][:, ::sh, ::sw, :]
    out = valid.astype(np.result_type(x, w, np.float32), copy=False)
    return out if b is None else out + np.asarray(b)


# ============================================================================ pooling
def _pool(x: np.ndarray, pool_size, strides, padding: str):
    x = _nhwc(x)
    if padding not in ("valid", "same"):
        raise ValueError(f'pooling padding must be "valid" or "same", got {padding!r}')
    pool = checks.pair("pool_size", pool_size)
    step = pool if strides is None else checks.pair("strides", strides)
    values = patches(x, pool, step, padding)
    inside = patches(np.ones_like(x[..., :1], dtype=bool), pool, step, padding)  # False on padding
    return values, inside


def max_pool2d(x: np.ndarray, pool_size=2, strides=None, padding: str = "valid") -> np.ndarray:
    r""":math:`h[n] = \max_{i \in N(n)} \tilde h[i]` per channel, as ``keras.layers.MaxPooling2D``.

    ``strides`` defaults to ``pool_size`` (non-overlapping windows), as in Keras. Padded
    positions never win the max. No parameters: nothing here is learned.
    """
    values, inside = _pool(x, pool_size, strides, padding)
    return np.where(inside, values, -np.inf).max(axis=(3, 4))


def avg_pool2d(x: np.ndarray, pool_size=2, strides=None, padding: str = "valid") -> np.ndarray:
    r""":math:`h[n] = \frac1{|N(n)|}\sum_{i \in N(n)} \tilde h[i]`, as ``keras.layers.AveragePooling2D``.

    With ``"same"`` padding Keras/TensorFlow divide by the number of *real* pixels in the
    window, not by the window size, so a border window is not darkened by the padding.
    """
    values, inside = _pool(x, pool_size, strides, padding)
    return np.where(inside, values, 0).sum(axis=(3, 4)) / inside.sum(axis=(3, 4))


def l2_pool2d(x: np.ndarray, pool_size=2, strides=None, padding: str = "valid") -> np.ndarray:
    r"""L2 pooling :math:`\sqrt{\frac1{|N(n)|}\sum_{i\in N(n)} \tilde h[i]^2}`: the root-mean-square of each window.

    Keras has no such layer (``cnncourse.layers.L2Pooling2D`` adds it, with the same
    definition); it lies between average pooling of :math:`|h|` and max pooling.
    """
    return np.sqrt(avg_pool2d(np.square(np.asarray(x)), pool_size, strides, padding))


# ============================================================================ 2-D backward
def conv2d_backward(
    x: np.ndarray, w: np.ndarray, grad_out: np.ndarray, stride=1, padding: str | int = "valid"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of a loss with respect to the input, kernel and bias of :func:`conv2d`.

    Given :math:`g = \partial L / \partial y` (``grad_out``, the shape of the output):

    * :math:`\partial L/\partial w[u,v,c,o] = \sum_{n,i,j} x_p[n, iS+u, jS+v, c]\, g[n,i,j,o]`
      — one term per output position, *summed*, because every position uses the same
      kernel (weight sharing; see :func:`unshared_conv_gradients`);
    * :math:`\partial L/\partial x` scatters each :math:`g[n,i,j,:] w[u,v]^\top` back to
      the pixel that was multiplied by :math:`w[u,v]` (then the padding is cut away);
    * :math:`\partial L/\partial b[o] = \sum_{n,i,j} g[n,i,j,o]`.
    """
    x, w, g = _nhwc(x), np.asarray(w), _nhwc(grad_out, "grad_out")
    fh, fw = w.shape[:2]
    sh, sw = checks.pair("stride", stride)
    top, _ = padding_amounts(x.shape[1], fh, sh, padding)
    left, _ = padding_amounts(x.shape[2], fw, sw, padding)
    xp = _pad(x, (fh, fw), (sh, sw), padding)
    ho, wo = g.shape[1:3]
    grad_xp = np.zeros_like(xp, dtype=np.result_type(xp, g))
    grad_w = np.zeros_like(w, dtype=np.result_type(w, g))
    for u in range(fh):
        for v in range(fw):
            rows = slice(u, u + sh * (ho - 1) + 1, sh)
            cols = slice(v, v + sw * (wo - 1) + 1, sw)
            grad_w[u, v] = np.einsum("nijc,nijo->co", xp[:, rows, cols, :], g)
            grad_xp[:, rows, cols, :] += g @ w[u, v].T
    grad_x = grad_xp[:, top : top + x.shape[1], left : left + x.shape[2], :]
    return grad_x, grad_w, g.sum(axis=(0, 1, 2))


def unshared_conv2d(x: np.ndarray, w_local: np.ndarray, stride=1, padding: str | int = "valid") -> np.ndarray:
    """A convolution whose every output position ``(i, j)`` has its *own* kernel ``w_local[i, j]``.

    ``w_local`` has shape ``(H_out, W_out, F_h, F_w, C_in, C_out)`` (a "locally connected"
    layer). With all copies equal to one kernel it is exactly :func:`conv2d`: the thought
    experiment that turns weight sharing into a sum of gradients.
    """
    w_local = np.asarray(w_local)
    win = patches(x, w_local.shape[2:4], stride, padding)
    if win.shape[1:3] != w_local.shape[:2]:
        raise ValueError(f"w_local must start with the output size {win.shape[1:3]}, got shape {w_local.shape}")
    return np.einsum("nijuvc,ijuvco->nijo", win, w_local)


def unshared_conv_gradients(
    x: np.ndarray, grad_out: np.ndarray, kernel_size, stride=1, padding: str | int = "valid"
) -> np.ndarray:
    r"""The gradient of each output position's private kernel copy, shape ``(H_out, W_out, F_h, F_w, C_in, C_out)``.

    Untie the shared kernel into one copy per position (:func:`unshared_conv2d`): copy
    :math:`(i, j)` touches only output :math:`y[:, i, j, :]`, so its gradient is the outer
    product of the window it saw with :math:`g[:, i, j, :]` (summed over the batch).
    Tying the copies back together, the chain rule adds them up:
    ``unshared_conv_gradients(...).sum(axis=(0, 1))`` is the shared kernel's gradient.
    """
    win = patches(x, kernel_size, stride, padding)
    g = _nhwc(grad_out, "grad_out")
    if g.shape[:3] != win.shape[:3]:
        raise ValueError(f"grad_out must have the output shape {win.shape[:3]} + (C_out,), got {g.shape}")
    return np.einsum("nijuvc,nijo->ijuvco", win, g)


# ============================================================================ modules
class Module:
    r"""One function :math:`z_i = f_i(z_{i-1}, w_i)` of a chain, with a forward and a backward pass.

    ``forward(z_prev)`` returns :math:`z_i` and remembers what backward needs;
    ``backward(g)`` takes :math:`g(z_i) = \partial z/\partial z_i`, stores
    :math:`g(w_i) = g(z_i)\,\partial z_i/\partial w_i` in ``self.grads`` and returns
    :math:`g(z_{i-1}) = g(z_i)\,\partial z_i/\partial z_{i-1}`. ``ops_forward`` is the same
    forward pass in ``keras.ops``, so the backend's autodiff can check ``backward``.
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def ops_forward(self, z, params: dict):
        raise NotImplementedError

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


def _init(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=shape)


class Linear(Module):
    """``z = x W + b`` on ``(N, in)`` inputs (a Keras ``Dense`` layer without activation)."""

    def __init__(self, n_in: int, n_out: int, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.params = {"W": _init(rng, (n_in, n_out), n_in), "b": _init(rng, (n_out,), n_in)}

    def forward(self, z):
        self._z = np.asarray(z, dtype=np.float64)
        return self._z @ self.params["W"] + self.params["b"]

    def backward(self, grad):
        self.grads = {"W": self._z.T @ grad, "b": grad.sum(axis=0)}
        return grad @ self.params["W"].T

    def ops_forward(self, z, params):
        from keras import ops

        return ops.matmul(z, params["W"]) + params["b"]


class ReLU(Module):
    """``max(z, 0)``: the backward pass lets the gradient through where the input was positive."""

    def forward(self, z):
        self._mask = np.asarray(z) > 0
        return np.where(self._mask, z, 0.0)

    def backward(self, grad):
        return grad * self._mask

    def ops_forward(self, z, params):
        from keras import ops

        return ops.relu(z)


class Tanh(Module):
    """``tanh(z)``, whose derivative ``1 − tanh²`` is computed from the stored output."""

    def forward(self, z):
        self._out = np.tanh(z)
        return self._out

    def backward(self, grad):
        return grad * (1.0 - self._out**2)

    def ops_forward(self, z, params):
        from keras import ops

        return ops.tanh(z)


class Flatten(Module):
    """Reshape ``(N, ...)`` to ``(N, features)``; backward reshapes the gradient back."""

    def forward(self, z):
        self._shape = np.shape(z)
        return np.reshape(z, (self._shape[0], -1))

    def backward(self, grad):
        return np.reshape(grad, self._shape)

    def ops_forward(self, z, params):
        from keras import ops

        return ops.reshape(z, (ops.shape(z)[0], -1))


class Conv1D(Module):
    r"""``z[n, i, o] = b[o] + Σ_{k,c} x[n, i + k, c] w[k, c, o]`` on ``(N, L, C_in)``: a valid, stride-1 ``keras.layers.Conv1D``.

    The same :math:`F \times C_{in} \times C_{out}` kernel is used at every position
    :math:`i`, so backward *sums* one contribution per position into ``grads["w"]``.
    """

    def __init__(self, kernel_size: int, c_in: int, c_out: int, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        fan_in = kernel_size * c_in
        self.params = {"w": _init(rng, (kernel_size, c_in, c_out), fan_in), "b": _init(rng, (c_out,), fan_in)}

    def forward(self, z):
        self._z = np.asarray(z, dtype=np.float64)
        w = self.params["w"]
        length = self._z.shape[1] - w.shape[0] + 1
        return sum(self._z[:, k : k + length, :] @ w[k] for k in range(w.shape[0])) + self.params["b"]

    def backward(self, grad):
        w = self.params["w"]
        length = grad.shape[1]
        grad_w = np.stack([np.einsum("nic,nio->co", self._z[:, k : k + length, :], grad) for k in range(w.shape[0])])
        grad_z = np.zeros_like(self._z)
        for k in range(w.shape[0]):
            grad_z[:, k : k + length, :] += grad @ w[k].T
        self.grads = {"w": grad_w, "b": grad.sum(axis=(0, 1))}
        return grad_z

    def ops_forward(self, z, params):
        from keras import ops

        return ops.conv(z, params["w"], strides=1, padding="valid", data_format="channels_last") + params["b"]


class Conv2D(Module):
    """:func:`conv2d` / :func:`conv2d_backward` as a module: a ``keras.layers.Conv2D`` without activation."""

    def __init__(self, kernel_size: int, c_in: int, c_out: int, stride: int = 1, padding: str = "valid", seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        fan_in = kernel_size * kernel_size * c_in
        self.params = {
            "w": _init(rng, (kernel_size, kernel_size, c_in, c_out), fan_in),
            "b": _init(rng, (c_out,), fan_in),
        }
        self.stride, self.padding = stride, _check_padding(padding)
        if not isinstance(self.padding, str):
            raise ValueError(f'Conv2D padding must be "valid" or "same" (as in Keras), got {padding!r}')

    def forward(self, z):
        self._z = np.asarray(z, dtype=np.float64)
        return conv2d(self._z, self.params["w"], self.params["b"], self.stride, self.padding)

    def backward(self, grad):
        grad_z, grad_w, grad_b = conv2d_backward(self._z, self.params["w"], grad, self.stride, self.padding)
        self.grads = {"w": grad_w, "b": grad_b}
        return grad_z

    def ops_forward(self, z, params):
        from keras import ops

        return ops.conv(z, params["w"], strides=self.stride, padding=self.padding, data_format="channels_last") + params["b"]


class Sequential(Module):
    r"""A chain :math:`z_0 = x,\ z_i = f_i(z_{i-1}, w_i)`: forward left to right, backward right to left.

    ``backward(g)`` walks the modules in reverse, handing each one
    :math:`g(z_i)` and receiving :math:`g(z_{i-1})` — the lecture's recursion
    :math:`g(z_{i-1}) = g(z_i)\,\partial z_i/\partial z_{i-1}`. Parameters and their
    gradients are reported under ``"<index>.<name>"`` (``"0.w"``, ``"2.b"`` ...).
    """

    def __init__(self, *modules: Module) -> None:  # no Module.__init__: parameters live in the modules
        if not modules or not all(isinstance(m, Module) for m in modules):
            raise ValueError("Sequential needs one or more Module instances")
        self.modules = list(modules)

    def forward(self, z):
        for module in self.modules:
            z = module.forward(z)
        return z

    def backward(self, grad):
        for module in reversed(self.modules):
            grad = module.backward(grad)
        return grad

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray]]:
        for i, module in enumerate(self.modules):
            for name, value in module.params.items():
                yield f"{i}.{name}", value

    @property  # type: ignore[override]
    def params(self) -> dict[str, np.ndarray]:
        return dict(self.named_parameters())

    @property  # type: ignore[override]
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, m in enumerate(self.modules) for k, v in m.grads.items()}

    def ops_forward(self, z, params):
        for i, module in enumerate(self.modules):
            own = {k.split(".", 1)[1]: v for k, v in params.items() if k.split(".", 1)[0] == str(i)}
            z = module.ops_forward(z, own)
        return z

    def __repr__(self) -> str:
        return "Sequential(\n" + "".join(f"  {i}: {m!r}\n" for i, m in enumerate(self.modules)) + ")"


def autodiff_gradients(module: Module, x: np.ndarray, grad_out: np.ndarray | None = None) -> dict[str, np.ndarray]:
    r"""The same gradients a module's ``backward`` computes, but by the Keras backend's autodiff.

    Differentiates :math:`L = \sum z_n \odot g` (so :math:`g(z_n) = g`, default all ones)
    through ``module.ops_forward`` (``keras.ops``) with ``tf.GradientTape`` or ``jax.grad``,
    in float64 (JAX's 64-bit mode is switched on for the call), and returns
    ``{name: gradient}`` for every parameter plus ``"input"`` for :math:`x`: an
    independent check of a hand-written backward pass.
    """
    import keras

    names = ["input", *module.params]
    arrays = [np.asarray(x, np.float64), *(np.asarray(v, np.float64) for v in module.params.values())]
    sizes = [a.size for a in arrays]
    offsets = np.cumsum([0, *sizes])
    flat = np.concatenate([a.ravel() for a in arrays])
    out_shape = np.shape(module.forward(x))
    g = np.ones(out_shape) if grad_out is None else np.asarray(grad_out, np.float64)

    def loss(v):
        parts = {n: keras.ops.reshape(v[offsets[k] : offsets[k + 1]], arrays[k].shape) for k, n in enumerate(names)}
        z = parts.pop("input")
        return keras.ops.sum(module.ops_forward(z, parts) * keras.ops.convert_to_tensor(g, "float64"))

    flat_grad = float64_grad(loss, flat)
    return {n: np.asarray(flat_grad[offsets[k] : offsets[k + 1]]).reshape(arrays[k].shape) for k, n in enumerate(names)}


def float64_grad(fn, x: np.ndarray) -> np.ndarray:
    """``d fn / d x`` by the backend's autodiff (``cnncourse.autodiff.grad``), in float64 on every backend.

    Checking a hand-written gradient to 1e-6 needs 64-bit arithmetic; TensorFlow keeps a
    float64 input in float64, JAX silently drops to float32 unless its 64-bit mode is on,
    so it is switched on for the duration of the call. ``fn`` is written with ``keras.ops``.
    """
    import keras

    from cnncourse.autodiff import grad

    x = np.asarray(x, np.float64)
    if keras.backend.backend() == "jax":
        import jax

        with jax.enable_x64(True):
            return np.asarray(grad(fn, x), np.float64)
    return np.asarray(grad(fn, x), np.float64)


# ============================================================================ figures
def plot_matrix(
    m: np.ndarray, ax=None, *, title: str = "", fmt: str = "{:g}", cmap: str = "gray", vmin: float | None = None, vmax: float | None = None
):
    """Show a small 2-D array as an image with every value written in its cell.

    The worked examples (the 6×6 image, its filters and feature maps, the 4×4 pooling
    input) are read as numbers *and* seen as pictures; this draws both at once. Returns
    the Matplotlib ``Axes``. Give several panels the same ``vmin``/``vmax`` to compare them.
    """
    import matplotlib.pyplot as plt

    m = np.asarray(m)
    if m.ndim != 2:
        raise ValueError(f"plot_matrix needs a 2-D array, got shape {m.shape}")
    ax = plt.gca() if ax is None else ax
    lo = float(np.min(m)) if vmin is None else vmin
    hi = float(np.max(m)) if vmax is None else vmax
    ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi)
    colours = plt.get_cmap(cmap)
    for (i, j), value in np.ndenumerate(m):
        red, green, blue, _ = colours((value - lo) / (hi - lo) if hi > lo else 0.5)
        light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5  # dark text on light cells
        ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=9, color="black" if light else "white")
    ax.set_xticks(range(m.shape[1]))
    ax.set_yticks(range(m.shape[0]))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(title)
    return ax
