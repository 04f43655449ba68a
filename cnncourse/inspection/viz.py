"""Looking at images and inside trained networks: grids, filters, feature maps, saliency, FGSM
(and how large its perturbation is), class models (raw and regularised).

Notebook 09 (and the dataset tours) need these, and they are easy to get subtly wrong (a
saliency map of the softmax instead of the class score, an adversarial image that leaves the
valid pixel range), so they live here with tests rather than in a notebook. Gradients come
from :mod:`cnncourse.autodiff`, so everything works on any Keras backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np

from cnncourse import checks

from cnncourse.autodiff import value_and_grad

__all__ = [
    "PerturbationSize",
    "class_model",
    "feature_maps",
    "fgsm",
    "filter_grid",
    "grey_levels",
    "image_grid",
    "perturbation_size",
    "saliency",
    "top_activating_patches",
]


def _as_display(img: np.ndarray) -> tuple[np.ndarray, str | None]:
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    return img, ("gray" if img.ndim == 2 else None)


def image_grid(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 8,
    title: str = "",
    cmap: str | None = None,
    size: float = 1.4,
):
    """Show images (N, H, W[, C]) in a grid with optional per-image titles; returns the Figure."""
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C), got {images.shape}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images")
    if ncols < 1:
        raise ValueError(f"ncols must be positive, got {ncols}")
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img, default_cmap = _as_display(images[i])
            ax.imshow(img, cmap=cmap or default_cmap)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def filter_grid(kernel: np.ndarray, *, title: str = "first-layer filters", ncols: int = 8):
    """Show a conv kernel (kh, kw, c_in, c_out) as c_out small images, each scaled to [0, 1].

    With 3 input channels the filters are shown in colour, otherwise the input channels are
    averaged: the point is to see edge and colour detectors, not exact values.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(f"kernel must have shape (kh, kw, c_in, c_out), got {kernel.shape}")
    filters = np.moveaxis(kernel, -1, 0)  # (c_out, kh, kw, c_in)
    if filters.shape[-1] != 3:
        filters = filters.mean(axis=-1)
    lo = filters.min(axis=tuple(range(1, filters.ndim)), keepdims=True)
    hi = filters.max(axis=tuple(range(1, filters.ndim)), keepdims=True)
    scaled = (filters - lo) / np.where(hi > lo, hi - lo, 1.0)
    return image_grid(scaled, ncols=ncols, title=title)


def feature_maps(model: keras.Model, layer_names: Sequence[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of the named layers of a functional model for inputs ``x`` (inference mode)."""
    names = [layer.name for layer in model.layers]
    unknown = [n for n in layer_names if n not in names]
    if unknown:
        raise ValueError(f"no layer(s) {', '.join(unknown)} in {model.name}; layers: {', '.join(names)}")
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in layer_names])
    outputs = probe.predict(np.asarray(x), verbose=0)
    if len(layer_names) == 1:
        outputs = [outputs]
    return dict(zip(layer_names, outputs))


def _check_class(model: keras.Model, class_index: int) -> None:
    num_classes = model.output_shape[-1]
    if not 0 <= class_index < num_classes:
        raise ValueError(f"class_index must be in [0, {num_classes - 1}], got {class_index}")


def saliency(model: keras.Model, image: np.ndarray, class_index: int) -> np.ndarray:
    """|∂ score / ∂ pixel| (max over channels) for one image (H, W, C) — Simonyan et al. 2014.

    The score is the model's output for ``class_index`` *before* any softmax would be taken
    when the model outputs logits; if it ends in a softmax the gradient of the probability is
    used instead, which the notebook points out (it mixes in the other classes).
    """
    _check_class(model, class_index)
    x = np.asarray(image, dtype="float32")[None]

    def score(inp):
        return model(inp, training=False)[0, class_index]

    _, g = value_and_grad(score, x)
    return np.abs(g[0]).max(axis=-1)


def fgsm(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    epsilon: float,
    *,
    from_logits: bool = True,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> np.ndarray:
    """Fast gradient sign method (Goodfellow et al. 2015): ``x + ε·sign(∇ₓ loss)``, clipped.

    ``y`` holds integer labels; the loss is sparse categorical cross-entropy summed over the
    batch (summing makes each image's gradient independent of the batch size). ε = 0 returns
    ``x`` unchanged.
    """
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    x = np.asarray(x, dtype="float32")
    if epsilon == 0:
        return x.copy()
    labels = np.asarray(y).reshape(-1).astype("int32")

    def loss(inp):
        out = model(inp, training=False)
        return keras.ops.sum(keras.losses.sparse_categorical_crossentropy(labels, out, from_logits=from_logits))

    _, g = value_and_grad(loss, x)
    adversarial = x + epsilon * np.sign(g)
    if clip is not None:
        adversarial = np.clip(adversarial, *clip)
    return adversarial.astype("float32")


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Keras' Gaussian blur (``keras.ops.image.gaussian_blur``, zeros beyond the border), kernel ±2σ."""
    k = 2 * int(np.ceil(2 * sigma)) + 1
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.image.gaussian_blur(x, (k, k), (sigma, sigma))), x.dtype)


def class_model(
    model: keras.Model,
    class_index: int,
    *,
    shape: Sequence[int] | None = None,
    steps: int = 100,
    learning_rate: float = 0.1,
    l2: float = 1e-3,
    seed: int = 0,
    clip: tuple[float, float] | None = (0.0, 1.0),
    jitter: int = 0,
    decay: float = 0.0,
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    small_norm_percentile: float = 0.0,
) -> tuple[np.ndarray, list[float]]:
    """Synthesise an input maximising ``score_c(x) − λ‖x‖²`` by gradient ascent (Simonyan 2014).

    Starts from a faint random image; returns the image and the score after each step (the
    notebook plots it to show the ascent worked). Each step moves along the gradient
    normalised to unit root-mean-square.

    With the defaults the result is Simonyan et al.'s raw class model: it does raise the
    score, but mostly with high-frequency patterns that look like noise. Yosinski, Clune,
    Nguyen, Fuchs & Lipson ("Understanding Neural Networks Through Deep Visualization", ICML
    Deep Learning Workshop 2015, §3) make it readable with regularizers applied to the
    image after every step, each of which pushes towards natural-looking images:

    * ``decay``: L2 decay, ``x ← (1 − decay)·x`` (θ_decay; pulls unneeded pixels to 0);
    * ``blur_every``, ``blur_sigma``: a Gaussian blur of width ``blur_sigma`` every
      ``blur_every`` steps (θ_b_every, θ_b_width; removes the high frequencies that the
      gradient keeps adding);
    * ``small_norm_percentile``: pixels whose norm (over channels) is below that percentile
      are set to 0 (θ_n_pct; only the pixels that matter stay);
    * ``jitter``: the image is shifted by a random offset of up to ``jitter`` pixels (with
      wrap-around) before each gradient, and the gradient shifted back (from Mordvintsev,
      Olah & Tyka's "Inceptionism", 2015): a pattern that only works at one exact pixel
      position does not survive.

    0 is the neutral value these pull towards: black, the background of Fashion-MNIST and
    MNIST (for mean-subtracted inputs it is the mean image, as in Yosinski et al.).
    """
    _check_class(model, class_index)
    if steps < 1 or learning_rate <= 0 or l2 < 0:
        raise ValueError("need steps >= 1, learning_rate > 0 and l2 >= 0")
    jitter = checks.integer("jitter (pixels)", jitter, minimum=0)
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    blur_every = checks.integer("blur_every (0: never)", blur_every, minimum=0)
    if not blur_sigma > 0:
        raise ValueError(f"blur_sigma must be positive, got {blur_sigma!r}")
    if not 0.0 <= small_norm_percentile < 100.0:
        raise ValueError(f"small_norm_percentile must be in [0, 100), got {small_norm_percentile!r}")
    shape = tuple(shape or model.input_shape[1:])
    rng = np.random.default_rng(seed)
    x = (0.5 + 0.01 * rng.standard_normal((1, *shape))).astype("float32")

    def objective(inp):
        return model(inp, training=False)[0, class_index] - l2 * keras.ops.sum(inp * inp)

    scores = []
    for step in range(1, steps + 1):
        if jitter:
            dy, dx = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2))
            value, g = value_and_grad(objective, np.roll(x, (dy, dx), axis=(1, 2)))
            g = np.roll(g, (-dy, -dx), axis=(1, 2))
        else:
            value, g = value_and_grad(objective, x)
        x = x + learning_rate * g / (np.sqrt(np.mean(g**2)) + 1e-8)  # normalised step
        if decay:
            x = (1.0 - decay) * x
        if blur_every and step % blur_every == 0:
            x = _blur(x, blur_sigma)
        if small_norm_percentile:
            norms = np.sqrt(np.sum(x**2, axis=-1, keepdims=True))
            x = np.where(norms < np.percentile(norms, small_norm_percentile), 0.0, x).astype("float32")
        if clip is not None:
            x = np.clip(x, *clip)
        scores.append(float(value))
    return x[0], scores


@dataclasses.dataclass(frozen=True)
class PerturbationSize:
    """How large an adversarial perturbation is on the scale a screen shows: grey levels of 255.

    ``epsilon_grey_levels``: the largest change of one pixel value; ``mean_grey_levels``: the
    mean change; ``fraction_changed``: the fraction of pixel values that differ once both
    images are stored with 8 bits (a change under half a grey level disappears); ``psnr_db``:
    the peak signal-to-noise ratio ``10·log10(range² / MSE)``.
    """

    epsilon_grey_levels: float
    mean_grey_levels: float
    fraction_changed: float
    psnr_db: float

    def __str__(self) -> str:
        return (
            f"largest change {self.epsilon_grey_levels:.1f} grey levels of 255 (mean {self.mean_grey_levels:.1f}); "
            f"{self.fraction_changed:.0%} of the pixel values change; PSNR {self.psnr_db:.1f} dB"
        )


def grey_levels(epsilon: float, value_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """``epsilon`` in grey levels of an 8-bit image whose values span ``value_range``: ``ε · 255 / (hi − lo)``."""
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range!r}")
    return float(epsilon) * 255.0 / (hi - lo)


def perturbation_size(x: np.ndarray, x_adv: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> PerturbationSize:
    """Measure ``x_adv − x`` in grey levels, so a notebook can say honestly whether it is visible.

    FGSM is often called "imperceptible", which depends on ε: Goodfellow et al.'s ImageNet
    example used ε = 0.007, the size of one step of an 8-bit image after GoogLeNet's
    preprocessing; the ε = 0.1–0.3 usual on MNIST is 25–76 grey levels, plainly visible
    as speckle on a black background. Numbers, not adjectives: this reports the size.
    """
    x, x_adv = np.asarray(x, np.float64), np.asarray(x_adv, np.float64)
    if x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv must have the same shape, got {x.shape} and {x_adv.shape}")
    lo, hi = value_range
    scale = grey_levels(1.0, value_range)
    change = np.abs(x_adv - x) * scale
    to_8bit = lambda v: np.round((np.clip(v, lo, hi) - lo) * scale)  # noqa: E731
    mse = np.mean((x_adv - x) ** 2)
    psnr = float("inf") if mse == 0 else float(10 * np.log10((hi - lo) ** 2 / mse))
    return PerturbationSize(
        epsilon_grey_levels=float(change.max()),
        mean_grey_levels=float(change.mean()),
        fraction_changed=float(np.mean(to_8bit(x) != to_8bit(x_adv))),
        psnr_db=psnr,
    )


def top_activating_patches(
    model: keras.Model, layer_name: str, images: np.ndarray, unit: int, *, k: int = 9, probe_images: int = 15
) -> tuple[np.ndarray, np.ndarray]:
    """The k image patches that most strongly activate one channel of a conv layer.

    For each image, the strongest position of channel ``unit`` is found and the patch is that
    position's receptive field: the input pixels the activation depends on, read off the
    gradient rather than recomputed from kernel sizes, strides and paddings. A dead ReLU can
    zero one gradient, so the field is the union of the gradient supports over the image and
    a few random probe images, where a pixel is missed only if its path is dead in every probe.
    Returns (patches padded to a common size, activation values), strongest first.
    """
    maps = feature_maps(model, [layer_name], images)[layer_name]
    if maps.ndim != 4:
        raise ValueError(f"layer {layer_name!r} has output shape {maps.shape[1:]}; need a conv feature map")
    if not 0 <= unit < maps.shape[-1]:
        raise ValueError(f"unit must be in [0, {maps.shape[-1] - 1}], got {unit}")
    channel = maps[..., unit].reshape(len(maps), -1)
    best_pos = channel.argmax(axis=1)
    best_val = channel.max(axis=1)
    order = np.argsort(-best_val)[:k]
    probe = keras.Model(model.inputs, model.get_layer(layer_name).output)
    width = maps.shape[2]
    rng = np.random.default_rng(0)
    patches = []
    for idx in order:
        r, c = divmod(int(best_pos[idx]), width)
        probes = np.concatenate([images[idx : idx + 1], rng.normal(0.5, 0.5, (probe_images, *images.shape[1:]))])
        probes = probes.astype("float32")
        _, g = value_and_grad(lambda inp, r=r, c=c: keras.ops.sum(probe(inp, training=False)[:, r, c, unit]), probes)
        rows, cols = np.nonzero(np.abs(g).sum(axis=(0, -1)))
        if len(rows) == 0:
            rows, cols = np.array([0]), np.array([0])
        patches.append(images[idx, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
    h = max(p.shape[0] for p in patches)
    w = max(p.shape[1] for p in patches)
    padded = np.zeros((len(patches), h, w, images.shape[-1]), dtype=np.asarray(images).dtype)
    for i, p in enumerate(patches):
        padded[i, : p.shape[0], : p.shape[1]] = p
    return padded, best_val[order]
