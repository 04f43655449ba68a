"""Look inside a network at initialisation: per-layer activation statistics and gradient norms.

Whether a deep network can be trained at all is decided, to a large degree, before the first
step: if the activations shrink layer after layer, so do the gradients that flow back through
them (vanishing), and if they grow, the gradients explode. Both show up as a *trend over
depth* in two numbers per layer, which this module measures:

* :func:`activation_stats` — mean, standard deviation, fraction of exact zeros (dead ReLUs)
  and a histogram of each layer's output for a batch of inputs. It takes a functional (or
  built Sequential) ``keras.Model``, or a plain list of callables applied one after the
  other, so the lecture's NumPy experiment and a Keras model are measured by the same code.
* :func:`gradient_norms` — the L2 norm of the loss gradient with respect to each layer's
  kernel (or every trainable variable), by the backend's autodiff: ``GradientTape`` on
  TensorFlow, ``jax.grad`` over ``model.stateless_call`` on JAX. Notebook 04 compares
  initialisations with it, notebook 08 plain and residual networks.

:func:`random_mlp_activations` is the lecture's experiment (a deep tanh/ReLU MLP on Gaussian
input, no training) in NumPy with a seeded generator, :func:`random_mlp_gradients` its
backward pass (the same weights), and the plotting helpers draw per-layer curves and
histogram rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from cnncourse import checks

__all__ = [
    "INITS",
    "LayerStats",
    "MLPGradients",
    "activation_stats",
    "dead_fraction",
    "gradient_norms",
    "gradients",
    "init_std",
    "plot_histograms",
    "plot_layer_curves",
    "random_mlp_activations",
    "random_mlp_gradients",
    "stats_table",
    "summarize",
]


@dataclasses.dataclass(frozen=True)
class LayerStats:
    """Summary of one layer's output over a batch (all elements pooled)."""

    name: str
    mean: float
    std: float
    second_moment: float  # E[h²]: what variance-preserving (He/Glorot) initialisation keeps constant
    fraction_zero: float  # exact zeros, e.g. ReLU units that are off for this input
    counts: np.ndarray  # histogram counts
    edges: np.ndarray  # histogram bin edges (len(counts) + 1)


def summarize(name: str, values, *, bins: int = 50, range: tuple[float, float] | None = None) -> LayerStats:
    """Statistics and histogram of one array of activations (computed in float64)."""
    bins = checks.positive_int("bins", bins)
    v = np.asarray(keras.ops.convert_to_numpy(values), dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError(f"layer {name!r} produced an empty output")
    counts, edges = np.histogram(v, bins=bins, range=range)
    return LayerStats(
        name=name,
        mean=float(v.mean()),
        std=float(v.std()),
        second_moment=float(np.mean(v * v)),
        fraction_zero=float(np.mean(v == 0.0)),
        counts=counts,
        edges=edges,
    )


def _pick_layers(model: keras.Model, layers: Sequence[str | keras.layers.Layer] | None) -> list:
    if layers is None:
        return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    chosen = []
    for item in layers:
        if isinstance(item, str):
            try:
                chosen.append(model.get_layer(item))
            except ValueError:
                names = ", ".join(layer.name for layer in model.layers)
                raise ValueError(f"no layer named {item!r}; layers: {names}") from None
        else:
            chosen.append(item)
    return chosen


def activation_stats(
    model_or_layers: keras.Model | Sequence[Callable],
    x,
    *,
    layers: Sequence[str | keras.layers.Layer] | None = None,
    bins: int = 50,
    range: tuple[float, float] | None = None,
    training: bool = False,
) -> list[LayerStats]:
    """Per-layer output statistics for the batch ``x``.

    ``model_or_layers`` is a functional or built Sequential ``keras.Model`` (every layer but the
    input, or only ``layers`` given by name or object), or a sequence of callables applied in
    turn (``h = f(h)``; NumPy functions work, so a NumPy experiment needs no Keras model).
    ``range`` fixes the histogram range, so layers can be compared bin for bin.
    """
    if isinstance(model_or_layers, keras.Model):
        model = model_or_layers
        chosen = _pick_layers(model, layers)
        if not chosen:
            raise ValueError("the model has no layers to measure")
        try:
            inputs = model.inputs  # defined for functional models and Sequential models built from an Input
            probe = keras.Model(inputs[0] if len(inputs) == 1 else inputs, [layer.output for layer in chosen])
        except (AttributeError, ValueError, TypeError) as err:
            raise ValueError(
                "activation_stats needs a functional or built Sequential model whose layers have "
                f"a single symbolic output ({err})"
            ) from None
        outputs = probe(x, training=training)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return [summarize(layer.name, out, bins=bins, range=range) for layer, out in zip(chosen, outputs)]
    if layers is not None:
        raise ValueError("layers= selects layers of a keras.Model; pass only the callables otherwise")
    fns = list(model_or_layers)
    if not fns or not all(callable(f) for f in fns):
        raise ValueError("model_or_layers must be a keras.Model or a non-empty sequence of callables")
    stats, h = [], x
    for i, fn in enumerate(fns, 1):
        h = fn(h)
        stats.append(summarize(getattr(fn, "name", f"layer {i}"), h, bins=bins, range=range))
    return stats


def dead_fraction(activations) -> float:
    """Fraction of units (last axis) that output exactly 0 for every example and position.

    A ReLU unit that is off for every input also gets zero gradient for every input, so
    gradient descent can never switch it back on: it is *dead*, not just quiet. Measure it on a
    representative batch (a unit that no example of the batch activates counts as dead).
    """
    h = np.asarray(keras.ops.convert_to_numpy(activations))
    if h.ndim < 2:
        raise ValueError(f"activations must have a batch axis and a unit axis, got shape {h.shape}")
    per_unit = h.reshape(-1, h.shape[-1])
    return float(np.mean(np.all(per_unit == 0, axis=0)))


def stats_table(stats: Sequence[LayerStats], digits: int = 4) -> str:
    """A fixed-width text table (layer, mean, std, E[h²], % zeros) that prints the same every run."""
    width = max(len("layer"), *(len(s.name) for s in stats))
    lines = [f"{'layer':<{width}}  {'mean':>10}  {'std':>10}  {'E[h^2]':>10}  {'zeros':>6}"]
    for s in stats:
        lines.append(
            f"{s.name:<{width}}  {s.mean:>10.{digits}f}  {_fmt(s.std, digits):>10}  "
            f"{_fmt(s.second_moment, digits):>10}  {100 * s.fraction_zero:>5.1f}%"
        )
    return "\n".join(lines)


def _fmt(value: float, digits: int) -> str:
    """Fixed point for ordinary values, scientific for tiny ones (so 3e-7 does not print as 0)."""
    if value != 0 and abs(value) < 10 ** (-digits + 1):
        return f"{value:.{max(digits - 2, 1)}e}"
    return f"{value:.{digits}f}"


# ------------------------------------------------------------------------------------------
# The lecture's experiment: a deep MLP at initialisation, in NumPy
# ------------------------------------------------------------------------------------------

INITS = ("small", "glorot", "he", "large")


def init_std(init: str | float, fan_in: int, fan_out: int) -> float:
    """Standard deviation of a Gaussian weight initialisation.

    ``"small"`` 0.01 (the lecture's first idea), ``"glorot"`` ``sqrt(2/(fan_in+fan_out))``
    (Glorot & Bengio, 2010), ``"he"`` ``sqrt(2/fan_in)`` (He et al., 2015), ``"large"`` 1.0,
    or a number, used as is.
    """
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        if not (init >= 0 and math.isfinite(init)):
            raise ValueError(f"a numeric init must be a finite non-negative std, got {init!r}")
        return float(init)
    table = {
        "small": 0.01,
        "glorot": math.sqrt(2.0 / (fan_in + fan_out)),
        "he": math.sqrt(2.0 / fan_in),
        "large": 1.0,
    }
    if init not in table:
        raise ValueError(f"init must be one of {', '.join(INITS)} or a number, got {init!r}")
    return table[init]


_NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "linear": lambda z: z,
}


def random_mlp_activations(
    x: np.ndarray,
    *,
    depth: int = 10,
    width: int = 500,
    init: str | float = "small",
    activation: str = "tanh",
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Hidden activations of a bias-free ``depth``-layer MLP with random Gaussian weights.

    The lecture's experiment (CS231n): ``h_l = act(h_{l-1} @ W_l)``, ``W_l ~ N(0, std²)`` with
    ``std = init_std(init, fan_in, width)``. No training: it shows what the *initial* forward
    pass does to the signal. ``rng`` is required so every run gives the same numbers.
    """
    return _random_mlp_forward(x, depth, width, init, activation, rng)[3]


def _random_mlp_forward(
    x: np.ndarray, depth: int, width: int, init: str | float, activation: str, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The shared forward pass: each layer's input, weights, pre-activation and output."""
    if activation not in _NUMPY_ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_NUMPY_ACTIVATIONS)}, got {activation!r}")
    depth, width = checks.positive_int("depth", depth), checks.positive_int("width", width)
    act = _NUMPY_ACTIVATIONS[activation]
    h = np.asarray(x, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"x must be a 2-D (batch, features) array, got shape {h.shape}")
    inputs, weights, pre, hidden = [], [], [], []
    for _ in range(depth):
        fan_in = h.shape[1]
        w = rng.standard_normal((fan_in, width)) * init_std(init, fan_in, width)
        z = h @ w
        inputs.append(h)
        weights.append(w)
        pre.append(z)
        h = act(z)
        hidden.append(h)
    return inputs, weights, pre, hidden


_NUMPY_DERIVATIVES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {  # f'(z), given z and h = f(z)
    "tanh": lambda z, h: 1.0 - h * h,
    "relu": lambda z, h: (z > 0.0).astype(z.dtype),
    "linear": lambda z, h: np.ones_like(z),
}


@dataclasses.dataclass(frozen=True)
class MLPGradients:
    r"""One forward and backward pass of :func:`random_mlp_gradients`, per hidden layer (input side first).

    ``activations[l]`` is :math:`h_l`; ``error_norms[l]`` is :math:`\lVert\partial L/\partial h_l\rVert`
    (the gradient that reaches layer ``l``'s output); ``weight_norms[l]`` is
    :math:`\lVert\partial L/\partial W_l\rVert = \lVert h_{l-1}^\top\,\delta_l\rVert`, all Frobenius norms.
    """

    activations: list[np.ndarray]
    error_norms: list[float]
    weight_norms: list[float]


def random_mlp_gradients(
    x: np.ndarray,
    *,
    depth: int = 10,
    width: int = 500,
    init: str | float = "small",
    activation: str = "tanh",
    rng: np.random.Generator,
    upstream: np.ndarray | None = None,
) -> MLPGradients:
    r"""The lecture's network of :func:`random_mlp_activations`, forward **and** backward.

    The weights are drawn exactly as :func:`random_mlp_activations` draws them (same ``rng``
    state → same network, same activations). The loss is :math:`L = \sum h_L \odot G` for an
    upstream gradient :math:`G` (``upstream``; default: a unit-Gaussian draw from ``rng``
    after the weights), so :math:`\partial L/\partial h_L = G` and backpropagation gives, layer
    by layer from the output, :math:`\delta_l = \partial L/\partial h_l \odot f'(z_l)`,
    :math:`\partial L/\partial W_l = h_{l-1}^\top \delta_l` and
    :math:`\partial L/\partial h_{l-1} = \delta_l W_l^\top`.

    Why it is here: the forward pass alone shows the *activations* shrinking layer by layer;
    whether the *weight* gradients shrink too is a different question (they are the product
    of an activation, which shrinks going forward, and an error, which shrinks going
    backward), and notebook 04 answers it from these numbers.
    """
    inputs, weights, pre, hidden = _random_mlp_forward(x, depth, width, init, activation, rng)
    depth, dact, h = len(hidden), _NUMPY_DERIVATIVES[activation], hidden[-1]
    g = rng.standard_normal(h.shape) if upstream is None else np.asarray(upstream, dtype=np.float64)
    if g.shape != h.shape:
        raise ValueError(f"upstream must have the output's shape {h.shape}, got {g.shape}")
    error_norms, weight_norms = [0.0] * depth, [0.0] * depth
    for layer in reversed(range(depth)):
        error_norms[layer] = float(np.linalg.norm(g))
        delta = g * dact(pre[layer], hidden[layer])
        weight_norms[layer] = float(np.linalg.norm(inputs[layer].T @ delta))
        g = delta @ weights[layer].T
    return MLPGradients(activations=hidden, error_norms=error_norms, weight_norms=weight_norms)


# ------------------------------------------------------------------------------------------
# Gradients
# ------------------------------------------------------------------------------------------


def _loss_fn(loss) -> Callable:
    if isinstance(loss, str):
        return keras.losses.get(loss)
    if callable(loss):
        return loss
    raise ValueError(f"loss must be a Keras loss name, a keras.losses.Loss or a callable, got {loss!r}")


def _select(variables, which: str) -> list[int]:
    if which not in ("kernel", "all"):
        raise ValueError(f"which must be 'kernel' or 'all', got {which!r}")
    if which == "all":
        return list(range(len(variables)))
    return [i for i, v in enumerate(variables) if v.path.split("/")[-1].endswith("kernel")]


def gradients(model: keras.Model, x, y, loss, *, training: bool = True) -> dict[str, np.ndarray]:
    """``∂ mean-loss / ∂ v`` for every trainable variable ``v``, keyed by ``v.path``, as NumPy.

    The loss is the data loss only (no regularisation terms), averaged over the batch as Keras'
    losses do. ``training=True`` runs dropout and batch norm in training mode, as a real step
    would; the model's variables (moving averages included) are the same afterwards.
    Supported backends: TensorFlow (``GradientTape``; non-trainable state is restored) and JAX
    (``jax.grad`` over ``model.stateless_call``, which never writes state).
    """
    fn = _loss_fn(loss)
    variables = list(model.trainable_variables)
    if not variables:
        raise ValueError("the model has no trainable variables (build it by calling it once first)")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        # a training-mode call updates state (batch-norm moving averages): put it back afterwards,
        # so a measurement never changes the model (as stateless_call guarantees on JAX)
        saved = [np.array(v.numpy()) for v in model.non_trainable_variables]
        try:
            with tf.GradientTape() as tape:
                value = fn(y, model(x, training=training))
                value = tf.reduce_mean(value)
            grads = tape.gradient(value, variables)
        finally:
            for v, s in zip(model.non_trainable_variables, saved):
                v.assign(s)
        grads = [np.zeros(v.shape, dtype=np.float32) if g is None else np.asarray(g) for v, g in zip(variables, grads)]
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        non_trainable = [v.value for v in model.non_trainable_variables]

        def objective(trainable_values):
            out, _ = model.stateless_call(trainable_values, non_trainable, x, training=training)
            return jnp.mean(fn(y, out))

        grads = [np.asarray(g) for g in jax.grad(objective)([v.value for v in variables])]
    else:
        raise NotImplementedError(
            f"gradients() supports the 'tensorflow' and 'jax' Keras backends; the active one is {backend!r}"
        )
    return {v.path: g for v, g in zip(variables, grads)}


def gradient_norms(
    model: keras.Model, x, y, loss, *, which: str = "kernel", training: bool = True
) -> dict[str, float]:
    """L2 norm of the loss gradient per variable, in the model's order (input side first).

    ``which="kernel"`` keeps only kernels (Dense/Conv weights: one number per layer, the usual
    picture of vanishing or exploding gradients); ``"all"`` also keeps biases, BN scales...
    Keys are variable paths such as ``"dense_3/kernel"``.
    """
    variables = list(model.trainable_variables)
    keep = _select(variables, which)
    if not keep:
        raise ValueError("the model has no trainable variable whose name ends in 'kernel'; use which='all'")
    grads = gradients(model, x, y, loss, training=training)
    paths = [variables[i].path for i in keep]
    return {p: float(np.sqrt(np.sum(np.square(grads[p].astype(np.float64))))) for p in paths}


# ------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------


def plot_layer_curves(
    curves: Mapping[str, Sequence[float] | Mapping[str, float]],
    *,
    ax=None,
    logy: bool = False,
    title: str = "per-layer statistic",
    ylabel: str = "value",
    xlabel: str = "layer (input side → output side)",
):
    """One line per label over layer index 1..L; a mapping's values are taken in order.

    Takes e.g. ``{"Glorot": gradient_norms(...), "0.01·randn": [...]}``; returns the Axes.
    """
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("curves must hold at least one label → values")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for label, values in curves.items():
        ys = np.asarray(list(values.values()) if isinstance(values, Mapping) else list(values), dtype=float)
        ax.plot(np.arange(1, len(ys) + 1), ys, marker="o", markersize=3, label=str(label))
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_histograms(stats: Sequence[LayerStats], *, title: str = "activations per layer", axes=None, **kw: Any):
    """A row of histograms, one per layer (bars from the stored counts); returns the figure."""
    import matplotlib.pyplot as plt

    if not stats:
        raise ValueError("stats must hold at least one LayerStats")
    if axes is None:
        fig, axes = plt.subplots(1, len(stats), figsize=(1.6 * len(stats) + 1, 2.2), sharey=kw.get("sharey", False))
    else:
        fig = axes[0].figure
    axes = np.atleast_1d(axes)
    if len(axes) != len(stats):
        raise ValueError(f"got {len(axes)} axes for {len(stats)} layers")
    for ax, s in zip(axes, stats):
        ax.stairs(s.counts, s.edges, fill=True)
        ax.set_title(f"{s.name}\nstd {_fmt(s.std, 3)}", fontsize="small")
        ax.set_xlabel("activation", fontsize="x-small")
        ax.tick_params(labelsize="x-small")
    axes[0].set_ylabel("count", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
