"""Regularization: reference implementations to check Keras against, and the Zhang et al. grid.

Notebook 06 checks Keras' regularizers, optimizers and dropout against formulas, so this
module holds the formulas as small NumPy functions that nothing else depends on:

* dropout in its two conventions — *vanilla* (drop in training, multiply by the keep
  probability ``p`` at test time) and *inverted* (divide the kept units by ``p`` in training,
  do nothing at test time; what ``keras.layers.Dropout`` does) — plus a tiny NumPy MLP with
  dropout on its hidden layers, to compare the Monte-Carlo average over masks
  :math:`E_z[f(x, z)]` with the single scaled forward pass;
* one step of SGD with an L2 penalty in the loss, SGD with decoupled weight decay, Adam and
  AdamW, written exactly as Keras 3 computes them, so that "L2 = weight decay for SGD, not
  for Adam" can be checked on a real Keras model;
* :func:`random_labels`, the label randomisation of Zhang et al. (ICLR 2017);
* :func:`render_digit`, a synthetic digit for the "rotating a 6 makes a 9" example when MNIST
  is not on disk;
* the ablation grid of Zhang et al., *Understanding deep learning requires rethinking
  generalization*, ICLR 2017, Table 1 (CIFAR-10): the paper's numbers (:data:`ZHANG_TABLE1`,
  the only place they are written), the cells (:class:`Cell`), the paper's two small networks
  (:func:`zhang_inception`, :func:`zhang_alexnet`), the training recipe of each architecture
  (:class:`Recipe`, :data:`RECIPES`), a model builder for every cell (:func:`ablation_model`),
  a runner that caches each cell under the key of what it was trained with
  (:func:`run_ablation`, :func:`cell_key`) and the table beside the paper's
  (:func:`ablation_table`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ARCHITECTURES",
    "GRID_VERSION",
    "RECIPES",
    "ZHANG_TABLE1",
    "Cell",
    "Recipe",
    "ablation_model",
    "ablation_table",
    "adam_step",
    "adamw_step",
    "cell_key",
    "dropout_mask",
    "inverted_dropout",
    "mask_count_digits",
    "mlp_forward",
    "monte_carlo_forward",
    "random_labels",
    "render_digit",
    "run_ablation",
    "sgd_l2_step",
    "sgd_weight_decay_step",
    "steps_per_epoch",
    "vanilla_dropout",
    "zhang_alexnet",
    "zhang_cells",
    "zhang_inception",
]

_MODES = ("vanilla", "inverted")


# ----------------------------------------------------------------------------- dropout
def _keep_prob(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
        raise ValueError(f"keep probability p must be a number in (0, 1], got {p!r}")
    return float(p)


def dropout_mask(shape: Sequence[int], p: float, rng: np.random.Generator) -> np.ndarray:
    """A 0/1 mask that keeps each unit independently with probability ``p`` (the lecture's ``U``)."""
    p = _keep_prob(p)
    return (rng.random(tuple(shape)) < p).astype(np.float64)


def vanilla_dropout(h, p: float, *, training: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    """Original dropout (Srivastava et al. 2014): drop in training, scale by ``p`` at test time.

    The expected training output of a unit is ``p·h``, so the test pass multiplies by ``p`` to
    match it. The cost: every deployed model has to remember to scale.
    """
    h = np.asarray(h, dtype=np.float64)
    p = _keep_prob(p)
    if not training:
        return h * p
    if rng is None:
        raise ValueError("training=True needs a NumPy Generator rng to draw the mask")
    return h * dropout_mask(h.shape, p, rng)


def inverted_dropout(h, p: float, *, training: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    """Inverted dropout: divide the kept units by ``p`` in training, leave the test pass alone.

    The expected training output is ``h`` itself, so inference is the plain network; this is
    the convention of ``keras.layers.Dropout`` (whose ``rate`` is ``1 − p``).
    """
    h = np.asarray(h, dtype=np.float64)
    p = _keep_prob(p)
    if not training:
        return h
    if rng is None:
        raise ValueError("training=True needs a NumPy Generator rng to draw the mask")
    return h * dropout_mask(h.shape, p, rng) / p


def _activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name == "relu":
        return lambda z: np.maximum(z, 0.0)
    if name == "linear":
        return lambda z: z
    if name == "tanh":
        return np.tanh
    raise ValueError(f"activation must be one of 'relu', 'linear', 'tanh', got {name!r}")


def mlp_forward(
    x,
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    p: float = 1.0,
    *,
    mode: str = "inverted",
    training: bool = False,
    activation: str = "relu",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Forward pass of a NumPy MLP ``x @ W + b`` with dropout on every hidden layer's output.

    As in the lecture's three-layer example: the input and the output scores are never
    dropped. ``mode`` picks the convention (``"vanilla"`` or ``"inverted"``); ``training=False``
    is the deterministic "scaled" pass of that convention.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if not layers:
        raise ValueError("layers must hold at least one (W, b) pair")
    act = _activation(activation)
    drop = vanilla_dropout if mode == "vanilla" else inverted_dropout
    h = np.asarray(x, dtype=np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ np.asarray(w, dtype=np.float64) + np.asarray(b, dtype=np.float64)
        if i < len(layers) - 1:
            h = drop(act(h), p, training=training, rng=rng)
    return h


def monte_carlo_forward(
    x,
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    p: float,
    samples: int,
    *,
    mode: str = "inverted",
    activation: str = "relu",
    seed: int = 0,
) -> np.ndarray:
    """Average of ``samples`` training-mode passes: a Monte-Carlo estimate of :math:`E_z[f(x, z)]`.

    Dropout's test-time rule replaces this average (over :math:`2^{units}` masks) by one pass
    with the expected activations. That is exact when everything after the dropout is
    linear and only approximate through a nonlinearity (:math:`E[g(h)] \\ne g(E[h])`).
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(samples):
        total = total + mlp_forward(x, layers, p, mode=mode, training=True, activation=activation, rng=rng)
    return total / samples


def mask_count_digits(units: int) -> int:
    """How many decimal digits ``2**units`` has: the size of dropout's implicit ensemble.

    Exact integer arithmetic (Python integers are unbounded), so ``mask_count_digits(4096)`` is
    the exact length of the number of masks of a 4096-unit layer.
    """
    if isinstance(units, bool) or not isinstance(units, int) or units < 0:
        raise ValueError(f"units must be a non-negative integer, got {units!r}")
    return len(str(2**units))


# ----------------------------------------------------------------------------- optimizer steps
def _check_lr(lr: float, name: str = "lr") -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"{name} must be a positive number, got {lr!r}")
    return float(lr)


def _check_decay(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def sgd_l2_step(w, grad, lr: float, l2: float) -> np.ndarray:
    """Plain SGD on ``E + l2·Σw²`` (``keras.regularizers.L2(l2)``): ``w − η(∇E + 2·l2·w)``.

    Keras' ``L2(l2)`` adds ``l2·Σw²`` (no ½), so it equals the lecture's ``(λ/2)·Σw²`` with
    ``λ = 2·l2``: use ``L2(λ / 2)`` to match a weight decay of ``λ``.
    """
    lr, l2 = _check_lr(lr), _check_decay(l2, "l2")
    w = np.asarray(w, dtype=np.float64)
    return w - lr * (np.asarray(grad, dtype=np.float64) + 2.0 * l2 * w)


def sgd_weight_decay_step(w, grad, lr: float, weight_decay: float) -> np.ndarray:
    """Plain SGD with decoupled weight decay: ``(1 − ηλ)·w − η·∇E`` (``SGD(weight_decay=λ)``)."""
    lr, wd = _check_lr(lr), _check_decay(weight_decay, "weight_decay")
    w = np.asarray(w, dtype=np.float64)
    return (1.0 - lr * wd) * w - lr * np.asarray(grad, dtype=np.float64)


def adam_step(
    w, grad, m, v, t: int, lr: float, *, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Adam step as ``keras.optimizers.Adam`` computes it; returns ``(w, m, v)``.

    ``t`` counts steps from 1. Keras folds the bias corrections into the step size,
    ``α_t = η·√(1−β₂ᵗ)/(1−β₁ᵗ)``, and adds ``epsilon`` to ``√v`` (not to ``√v̂``).
    An L2 penalty enters Adam only through ``grad``, so it gets divided by ``√v`` like the
    data gradient: weights with large gradients are decayed *less* — the reason for AdamW.
    """
    lr = _check_lr(lr)
    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
        raise ValueError(f"t (the step number) must be an integer >= 1, got {t!r}")
    g = np.asarray(grad, dtype=np.float64)
    m = beta_1 * np.asarray(m, dtype=np.float64) + (1 - beta_1) * g
    v = beta_2 * np.asarray(v, dtype=np.float64) + (1 - beta_2) * g * g
    alpha = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    return np.asarray(w, dtype=np.float64) - alpha * m / (np.sqrt(v) + epsilon), m, v


def adamw_step(
    w, grad, m, v, t: int, lr: float, weight_decay: float, **adam_kwargs: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One AdamW step (Loshchilov & Hutter 2019) as Keras does it: decay, then the Adam step.

    ``w ← w − η·λ·w`` first (decoupled from the gradient statistics), then :func:`adam_step`.
    """
    wd = _check_decay(weight_decay, "weight_decay")
    w = np.asarray(w, dtype=np.float64)
    return adam_step(w - _check_lr(lr) * wd * w, grad, m, v, t, lr, **adam_kwargs)


# ----------------------------------------------------------------------------- labels and digits
def random_labels(y, num_classes: int, *, fraction: float = 1.0, seed: int = 0) -> np.ndarray:
    """Replace a ``fraction`` of the labels by labels drawn uniformly at random (Zhang et al.).

    ``fraction=1`` gives the fully random labels of the memorization experiment: nothing
    about the image predicts its label, so test accuracy can only be chance (``1/num_classes``),
    yet a large enough network still fits the training set. The chosen examples and their new
    labels are deterministic for a ``seed``; a replaced label may equal the old one by chance.
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be a 1-D integer label array, got shape {y.shape} dtype {y.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    rng = np.random.default_rng(seed)
    out = y.astype(np.int32).copy()
    chosen = rng.permutation(len(y))[: int(round(fraction * len(y)))]
    out[chosen] = rng.integers(0, num_classes, size=len(chosen), dtype=np.int32)
    return out


def render_digit(digit: int | str, size: int = 28) -> np.ndarray:
    """A white-on-black digit ``(size, size)`` in [0, 1], drawn with matplotlib's bundled font.

    For the "rotate a 6 by 180° and it is a 9" example when MNIST is not on disk: a synthetic
    stand-in, not a handwritten digit, and the notebook says so.
    """
    text = str(digit)
    if len(text) != 1 or not text.isdigit():
        raise ValueError(f"digit must be one of 0..9, got {digit!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(size / dpi, size / dpi), dpi=dpi, facecolor="black")
    canvas = FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, text, color="white", fontsize=0.75 * size * 72 / dpi, ha="center", va="center",
             family="DejaVu Sans", weight="bold")
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba(), dtype=np.float32)[..., 0] / 255.0
    # centre the glyph's bounding box (MNIST centres its digits too), so a 180° rotation
    # lands on the same pixels instead of being offset by the font's baseline
    rows, cols = np.nonzero(img > 0.1)
    shift_r = (size - 1) / 2 - (rows.min() + rows.max()) / 2
    shift_c = (size - 1) / 2 - (cols.min() + cols.max()) / 2
    return np.roll(img, (int(round(shift_r)), int(round(shift_c))), axis=(0, 1))


# ----------------------------------------------------------------------------- the Zhang et al. grid
ARCHITECTURES = ("inception", "inception_no_bn", "alexnet", "mlp")
_PRETTY_ARCH = {
    "inception": "Inception (small)",
    "inception_no_bn": "Inception w/o BatchNorm",
    "alexnet": "AlexNet (small)",
    "mlp": "MLP 3×512",
}

# Zhang, Bengio, Hardt, Recht & Vinyals, "Understanding deep learning requires rethinking
# generalization", ICLR 2017, Table 1 (CIFAR-10): (architecture, random crop, weight decay)
# → (parameters, train accuracy %, test accuracy %). The only place these numbers are written.
ZHANG_TABLE1: dict[tuple[str, bool, bool], tuple[int, float, float]] = {
    ("inception", True, True): (1_649_402, 100.0, 89.05),
    ("inception", True, False): (1_649_402, 100.0, 89.31),
    ("inception", False, True): (1_649_402, 100.0, 86.03),
    ("inception", False, False): (1_649_402, 100.0, 85.75),
    ("inception_no_bn", False, True): (1_649_402, 100.0, 83.00),
    ("inception_no_bn", False, False): (1_649_402, 100.0, 82.00),
    ("alexnet", True, True): (1_387_786, 99.90, 81.22),
    ("alexnet", True, False): (1_387_786, 99.82, 79.66),
    ("alexnet", False, True): (1_387_786, 100.0, 77.36),
    ("alexnet", False, False): (1_387_786, 100.0, 76.07),
    ("mlp", False, True): (1_735_178, 100.0, 53.35),
    ("mlp", False, False): (1_735_178, 100.0, 52.39),
}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One row of the grid: an architecture with random crop (shift) on/off and weight decay on/off."""

    arch: str
    crop: bool
    weight_decay: bool

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if not isinstance(self.crop, bool) or not isinstance(self.weight_decay, bool):
            raise ValueError("crop and weight_decay must be booleans")

    @property
    def label(self) -> str:
        yes = {True: "yes", False: "no"}
        return f"{self.arch} · crop {yes[self.crop]} · wd {yes[self.weight_decay]}"

    @property
    def paper(self) -> tuple[int, float, float] | None:
        """(parameters, train %, test %) in Zhang et al.'s Table 1, or None if the paper has no such row."""
        return ZHANG_TABLE1.get((self.arch, self.crop, self.weight_decay))


def zhang_cells(archs: Sequence[str] = ARCHITECTURES) -> list[Cell]:
    """The cells of Table 1 for the chosen architectures, in the paper's row order."""
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if unknown or not archs:
        raise ValueError(f"archs must be a non-empty selection of {ARCHITECTURES}, got {list(archs)!r}")
    return [Cell(a, crop, wd) for (a, crop, wd) in ZHANG_TABLE1 if a in archs]


# Recipes per architecture: Zhang et al. trained with SGD, momentum 0.9, lr 0.1 (0.01 for some
# architectures) decayed by 0.95 per epoch, for many epochs. A CPU budget is a few hundred steps,
# so every architecture gets a linear warm-up over its first epoch (a deep net without batch norm
# diverges or stalls at a full step on its first updates) and a cosine decay to zero (a short run
# that ends at a high learning rate ends wherever the last noisy steps left it: the spread between
# seeds is mostly that), He-normal initialization for the ReLU layers, and its own peak rate.
@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one architecture of the grid is trained: SGD + momentum, warm-up, cosine decay.

    ``learning_rate`` is the peak, reached after ``warmup_epochs`` of linear warm-up from 1% of
    it, then cosine-decayed to 0 at the end of the run (``keras.optimizers.schedules.CosineDecay``
    with ``warmup_target``). ``weight_decay`` is used only in the cells with weight decay on.
    ``clipnorm`` (Keras' per-variable gradient-norm clipping) caps the rare huge step that
    sends a deep net without batch norm to chance for good.
    """

    learning_rate: float
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    weight_decay: float = 5e-4
    kernel_initializer: str = "he_normal"
    clipnorm: float | None = None

    def __post_init__(self) -> None:
        _check_lr(self.learning_rate, "learning_rate")
        if isinstance(self.momentum, bool) or not isinstance(self.momentum, (int, float)) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be a number in [0, 1), got {self.momentum!r}")
        _check_decay(self.warmup_epochs, "warmup_epochs")
        _check_decay(self.weight_decay, "weight_decay")
        if not isinstance(self.kernel_initializer, str):
            raise ValueError(f"kernel_initializer must be a Keras initializer name, got {self.kernel_initializer!r}")
        if self.clipnorm is not None:
            _check_lr(self.clipnorm, "clipnorm")

    def schedule(self, steps_per_epoch: int, epochs: int) -> Any:
        """The learning-rate schedule for a run of ``epochs`` × ``steps_per_epoch`` steps."""
        import keras

        for value, name in ((steps_per_epoch, "steps_per_epoch"), (epochs, "epochs")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        total = steps_per_epoch * epochs
        warmup = min(int(round(self.warmup_epochs * steps_per_epoch)), total - 1)
        if warmup == 0:
            return keras.optimizers.schedules.CosineDecay(self.learning_rate, total)
        return keras.optimizers.schedules.CosineDecay(
            0.01 * self.learning_rate, total - warmup, warmup_target=self.learning_rate, warmup_steps=warmup)

    def optimizer(self, steps_per_epoch: int, epochs: int, *, weight_decay: bool) -> Any:
        """``keras.optimizers.SGD`` with this recipe; decay (if on) spares biases and BN's γ/β."""
        import keras

        optimizer = keras.optimizers.SGD(
            learning_rate=self.schedule(steps_per_epoch, epochs), momentum=self.momentum, clipnorm=self.clipnorm,
            weight_decay=self.weight_decay if weight_decay and self.weight_decay > 0 else None)
        if weight_decay and self.weight_decay > 0:
            optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer


# Peak learning rates from short probes on Fashion-MNIST (5,000 images, batch 64): batch norm
# takes the paper's 0.1; without it the same Inception diverged at 0.1 for one seed of two and
# was still at 0.66 test accuracy after four epochs at 0.01; at 0.05 with gradient clipping it
# trained best. AlexNet and the MLP keep the paper's 0.01.
RECIPES: dict[str, Recipe] = {
    "inception": Recipe(0.1),
    "inception_no_bn": Recipe(0.05, clipnorm=1.0),
    "alexnet": Recipe(0.01),
    "mlp": Recipe(0.01),
}

# Bump when a builder below changes what it builds: the cache key includes it.
GRID_VERSION = 2


def _conv_bn(x, filters: int, kernel: int, strides: int, padding: str, batch_norm: bool, name: str,
             kernel_initializer: str = "glorot_uniform"):
    import keras

    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=not batch_norm,
                            kernel_initializer=kernel_initializer, name=f"{name}_conv")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


# (kind, filters...) of Zhang et al.'s small Inception, Appendix A / Figure 3
_ZHANG_INCEPTION = (
    ("conv", 96), ("inception", 32, 32), ("inception", 32, 48), ("down", 80),
    ("inception", 112, 48), ("inception", 96, 64), ("inception", 80, 80), ("inception", 48, 96), ("down", 96),
    ("inception", 176, 160), ("inception", 176, 160),
)


def _check_width(width: float) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or width <= 0:
        raise ValueError(f"width must be a positive number, got {width!r}")
    return float(width)


def zhang_inception(
    input_shape: tuple[int, int, int] = (28, 28, 3),
    num_classes: int = 10,
    *,
    width: float = 1.0,
    batch_norm: bool = True,
    kernel_initializer: str = "glorot_uniform",
    name: str = "zhang_inception",
) -> Any:
    """The "small Inception" of Zhang et al. (ICLR 2017, Appendix A) for 28×28 inputs.

    A 3×3 conv (96), then Inception modules of two branches (a 1×1 and a 3×3 conv,
    concatenated) and "downsample" modules (a 3×3/2 conv beside a 3×3/2 max-pool): Inc(32, 32),
    Inc(32, 48), Down(80), Inc(112, 48), Inc(96, 64), Inc(80, 80), Inc(48, 96), Down(96),
    Inc(176, 160), Inc(176, 160), global average pooling, a dense softmax. Every conv is
    conv → BN → ReLU (no BN with ``batch_norm=False``); BN's moving averages use momentum 0.9
    rather than Keras' 0.99, so that a run of a few hundred steps ends with usable inference
    statistics (with 0.99 and 50 steps, 60% of the initial mean/variance is still in them and
    test accuracy collapses to chance while training accuracy is fine). At ``width=1`` on 28×28×3 it has the
    paper's 1,649,402 parameters; ``width`` scales every filter count for CPU budgets.
    Why here and not in ``cnncourse.models``: it exists for this ablation only, and its graph
    (22 convolutions) traces several times faster than the nine-module ``googlenet_small``.
    """
    import keras

    width = _check_width(width)
    scale = lambda f: max(1, int(round(f * width)))  # noqa: E731
    conv = lambda x, f, k, s, pad, tag: _conv_bn(x, f, k, s, pad, batch_norm, tag, kernel_initializer)  # noqa: E731
    inputs = keras.Input(tuple(input_shape))
    x = inputs
    for i, (kind, *filters) in enumerate(_ZHANG_INCEPTION):
        tag = f"m{i}_{kind}"
        if kind == "conv":
            x = conv(x, scale(filters[0]), 3, 1, "same", tag)
        elif kind == "inception":
            a = conv(x, scale(filters[0]), 1, 1, "same", f"{tag}_1x1")
            b = conv(x, scale(filters[1]), 3, 1, "same", f"{tag}_3x3")
            x = keras.layers.Concatenate(name=f"{tag}_concat")([a, b])
        else:
            a = conv(x, scale(filters[0]), 3, 2, "valid", f"{tag}_conv")
            b = keras.layers.MaxPooling2D(3, strides=2, name=f"{tag}_pool")(x)
            x = keras.layers.Concatenate(name=f"{tag}_concat")([a, b])
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def zhang_alexnet(
    input_shape: tuple[int, int, int] = (28, 28, 3),
    num_classes: int = 10,
    *,
    width: float = 1.0,
    lrn: bool = True,
    kernel_initializer: str = "glorot_uniform",
    name: str = "zhang_alexnet",
) -> Any:
    """The "small AlexNet" of Zhang et al. (ICLR 2017, Appendix A) for 28×28 inputs.

    Two modules of a 5×5 conv (64 filters, ReLU) → 3×3/2 max-pool → local response
    normalization, then fully connected layers of 384 and 192 ReLU units and a softmax: on
    28×28×3 that is exactly the paper's 1,387,786 parameters. ``width`` scales the conv filters
    (not the fc layers); ``lrn=False`` drops the normalization, which has no parameters but
    costs 2–3× the CPU training time of the whole net at this size (its backward pass).
    Why not ``cnncourse.models``' ``alexnet_small``: that one keeps AlexNet's five convolutions;
    the paper's ablation used this shallower variant (the CIFAR-10 model of cuda-convnet).
    """
    import keras

    from cnncourse.layers import LocalResponseNormalization

    width = _check_width(width)
    if not isinstance(lrn, bool):
        raise ValueError(f"lrn must be True or False, got {lrn!r}")
    filters = max(1, int(round(64 * width)))
    inputs = keras.Input(tuple(input_shape))
    x = inputs
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 5, padding="same", activation="relu",
                                kernel_initializer=kernel_initializer, name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}")(x)
        if lrn:
            x = LocalResponseNormalization(name=f"norm{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for units in (384, 192):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer=kernel_initializer, name=f"fc{units}")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def _grid_options(run: Any) -> dict[str, Any]:
    """The architecture knobs of a profile's ``ablation`` row, with their defaults."""
    return {
        "inception_width": float(run.option("inception_width", 0.25)),
        "alexnet_width": float(run.option("alexnet_width", 1.0)),
        "alexnet_lrn": bool(run.option("alexnet_lrn", True)),
        "shift_pad": int(run.option("shift_pad", 2)),
    }


def steps_per_epoch(train_images: int, batch_size: int) -> int:
    """How many optimizer steps one epoch takes (Keras keeps the last, smaller batch)."""
    return -(-int(train_images) // int(batch_size))


def ablation_model(
    cell: Cell,
    run: Any,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    train_images: int,
    seed: int = 0,
    recipe: Recipe | None = None,
) -> Any:
    """A compiled model for one grid cell, trained as :data:`RECIPES` says for its architecture.

    ``run`` is the profile's ``ablation`` row: its ``epochs`` and ``batch_size`` (with
    ``train_images``) set the length of the learning-rate schedule, its options the sizes
    (``inception_width``, ``alexnet_width``, ``alexnet_lrn``, ``shift_pad``).

    * ``inception`` / ``inception_no_bn``: :func:`zhang_inception`, with / without batch norm;
    * ``alexnet``: :func:`zhang_alexnet`, the paper's two-conv small AlexNet;
    * ``mlp``: three hidden ``Dense(512, relu)`` layers, the paper's MLP 3×512 (its 1,735,178
      parameters are those of a 28×28×3 input: the paper trained on 28×28 crops of CIFAR-10).

    Every model starts as the paper's did: "random crop" (only in cells with crop on) is
    :class:`cnncourse.layers.RandomShift` (pad by ``shift_pad``, crop back; identity at
    inference), then per-image whitening (each image scaled to mean 0, variance 1, as
    TensorFlow's ``per_image_standardization`` that the paper used), written as a
    ``LayerNormalization`` over (H, W, C) without γ and β: no parameters. "Weight decay" is
    SGD's decoupled ``weight_decay`` (an L2 penalty for SGD without momentum, see the
    notebook), never applied to biases or batch-norm parameters.
    """
    import keras

    from cnncourse import layers as course_layers

    if not isinstance(cell, Cell):
        raise ValueError(f"cell must be a Cell, got {type(cell).__name__}")
    recipe = RECIPES[cell.arch] if recipe is None else recipe
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a Recipe or None, got {type(recipe).__name__}")
    opts = _grid_options(run)
    keras.utils.set_random_seed(seed)
    shape, init = tuple(input_shape), recipe.kernel_initializer
    inputs = keras.Input(shape)
    x = course_layers.RandomShift(pad=opts["shift_pad"], seed=seed, name="random_shift")(inputs) if cell.crop else inputs
    x = keras.layers.LayerNormalization(axis=[1, 2, 3], center=False, scale=False, epsilon=1e-6, name="whiten")(x)
    if cell.arch in ("inception", "inception_no_bn"):
        body = zhang_inception(shape, num_classes, width=opts["inception_width"],
                               batch_norm=cell.arch == "inception", kernel_initializer=init)
    elif cell.arch == "alexnet":
        body = zhang_alexnet(shape, num_classes, width=opts["alexnet_width"], lrn=opts["alexnet_lrn"],
                             kernel_initializer=init)
    else:
        body = keras.Sequential(
            [keras.Input(shape), keras.layers.Flatten()]
            + [keras.layers.Dense(512, activation="relu", kernel_initializer=init) for _ in range(3)]
            + [keras.layers.Dense(num_classes, activation="softmax")],
            name="mlp_3x512",
        )
    model = keras.Model(inputs, body(x), name=cell.label.replace(" · ", "_").replace(" ", "_"))
    steps = steps_per_epoch(train_images, run.batch_size)
    model.compile(optimizer=recipe.optimizer(steps, run.epochs, weight_decay=cell.weight_decay),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data_fingerprint(data: Any) -> str:
    """A short hash of the labels and a few images: another dataset or subset gives another key."""
    import hashlib

    digest = hashlib.sha256()
    for array in (data.y_train, data.y_test, data.x_train[:32], data.x_test[:32]):
        array = np.ascontiguousarray(array)
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def cell_key(cell: Cell, data: Any, run: Any, *, recipe: Recipe | None = None) -> dict[str, Any]:
    """Everything one cell's result depends on, as JSON: the cache reuses a cell only if it is equal.

    The recipe, the architecture options, the data (sizes and a fingerprint), the epochs and
    batch size, and :data:`GRID_VERSION`. The seeds are checked separately.
    """
    recipe = RECIPES[cell.arch] if recipe is None else recipe
    opts = _grid_options(run)
    relevant = {"inception": ("inception_width",), "inception_no_bn": ("inception_width",),
                "alexnet": ("alexnet_width", "alexnet_lrn"), "mlp": ()}[cell.arch]
    return {
        "version": GRID_VERSION,
        "cell": cell.label,
        "recipe": dataclasses.asdict(recipe),
        "options": {k: opts[k] for k in relevant + (("shift_pad",) if cell.crop else ())},
        "data": {"train": int(len(data.y_train)), "test": int(len(data.y_test)), "fingerprint": _data_fingerprint(data)},
        "epochs": int(run.epochs),
        "batch_size": int(run.batch_size),
    }


def _load_grid(path: Path) -> dict[str, Any]:
    """label → {"key": ..., "runs": [...]} from a cache file; {} for a file in another format."""
    import json

    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    cells = payload.get("cells") if isinstance(payload, dict) and payload.get("format") == GRID_VERSION else None
    return cells if isinstance(cells, dict) else {}


def _save_grid(path: Path, entries: dict[str, Any]) -> None:
    from cnncourse.experiments.cache import write_json

    write_json(path, {"format": GRID_VERSION, "cells": entries})


def run_ablation(
    data: Any,
    run: Any,
    *,
    cells: Sequence[Cell],
    path: str | Path | None = None,
    recompute: bool = False,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    make_model: Callable[[Cell, int], Any] | None = None,
) -> Any:
    """Train every cell over ``run.seeds`` seeds (``cnncourse.experiments.train.compare``), cached as JSON.

    With ``path``, a cell's earlier result there is reused when its :func:`cell_key` (recipe,
    sizes, data, epochs, batch size) and its seeds are the same; only the other cells are
    trained, and the file is rewritten with all of them. ``recompute=True`` trains every cell
    again. ``make_model(cell, seed)`` defaults to :func:`ablation_model` for ``data`` and
    ``run``. Returns a ``cnncourse.experiments.train.Comparison`` keyed by ``Cell.label``, in cell order.
    """
    import dataclasses as dc

    from cnncourse.experiments import train

    if not cells:
        raise ValueError("cells must name at least one Cell")
    chosen = list(range(run.seeds) if seeds is None else seeds)
    if make_model is None:
        shape, classes, n = tuple(data.x_train.shape[1:]), int(np.max(data.y_train)) + 1, len(data.y_train)
        classes = getattr(data, "num_classes", classes)

        def make_model(cell: Cell, seed: int) -> Any:
            return ablation_model(cell, run, input_shape=shape, num_classes=classes, train_images=n, seed=seed)

    path = None if path is None else Path(path)
    cached = _load_grid(path) if path is not None and path.exists() and not recompute else {}
    results: dict[str, list[Any]] = {}
    keys = {cell.label: cell_key(cell, data, run) for cell in cells}
    todo = []
    for cell in cells:
        entry = cached.get(cell.label)
        if entry and entry.get("key") == keys[cell.label] and sorted(r["seed"] for r in entry["runs"]) == sorted(chosen):
            results[cell.label] = [train.RunResult(**r) for r in entry["runs"]]
        else:
            todo.append(cell)
    if progress and path is not None:
        reused = len(cells) - len(todo)
        if reused:
            print(f"reusing {reused} of {len(cells)} cells from {path} (same recipe, data and sizes; "
                  f"recompute=True trains them again)")
        if todo:
            print(f"training {len(todo)} cell(s): " + ", ".join(c.label for c in todo))
    if todo:
        makers = {cell.label: (lambda seed, cell=cell: make_model(cell, seed)) for cell in todo}
        results.update(train.compare(makers, data, run, seeds=chosen, progress=progress).results)
    comparison = train.Comparison({cell.label: results[cell.label] for cell in cells})
    if path is not None and todo:
        entries = {label: entry for label, entry in cached.items() if label not in keys}  # other profiles' cells
        entries.update({label: {"key": keys[label], "runs": [dc.asdict(r) for r in comparison.results[label]]}
                        for label in keys})
        _save_grid(path, entries)
    return comparison


def ablation_table(comparison: Any, cells: Sequence[Cell], *, dataset: str = "fashion_mnist") -> str:
    """Our grid beside Zhang et al.'s Table 1, one Markdown row per cell in the paper's layout.

    Columns: model, parameters (ours / paper), random crop, weight decay, train accuracy
    (ours / paper), test accuracy (ours as mean ± std over seeds / paper). Accuracies in %.
    """
    head = (
        f"| model | params (ours) | params (paper) | random crop | weight decay "
        f"| train acc. % (ours, {dataset}) | train acc. % (paper) "
        f"| test acc. % (ours, {dataset}) | test acc. % (paper, CIFAR-10) |"
    )
    lines = [head, "|" + "---|" * 9]
    previous = None
    for cell in cells:
        if cell.label not in comparison.results:
            raise ValueError(f"no result for {cell.label!r}; results hold: {', '.join(comparison.results)}")
        runs = comparison.results[cell.label]
        paper = cell.paper
        name = _PRETTY_ARCH[cell.arch] if cell.arch != previous else ""
        params = f"{runs[0].params:,}" if cell.arch != previous else ""
        paper_params = f"{paper[0]:,}" if paper and cell.arch != previous else ""
        previous = cell.arch
        train_acc = 100 * comparison.mean(cell.label, "accuracy")
        mean, std = 100 * comparison.mean(cell.label), 100 * comparison.std(cell.label)
        yes = {True: "yes", False: "no"}
        lines.append(
            f"| {name} | {params} | {paper_params} | {yes[cell.crop]} | {yes[cell.weight_decay]} "
            f"| {train_acc:.2f} | {f'{paper[1]:.2f}' if paper else '—'} "
            f"| {mean:.2f} ± {std:.2f} | {f'{paper[2]:.2f}' if paper else '—'} |"
        )
    return "\n".join(lines)
