"""Landscapes for watching optimizers: 2-D test functions with known minima, paths, sweeps, contours.

An optimizer's behaviour is easiest to see on a function whose shape is known: a ravine (one
steep and one shallow direction: where plain gradient descent zig-zags and momentum helps), a
saddle, Rosenbrock's banana valley, Beale's plateaus. Each :class:`TestFunction` carries its
gradient, its minimum, a start point and a window to draw it in; :func:`trajectory` runs any
optimizer of :mod:`cnncourse.reference.optim` (or a ``keras.optimizers`` object) on it,
:func:`lr_sweep` runs one per learning rate, and :func:`plot_function` draws the contours with
the paths on top (notebook 03).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from cnncourse import checks

__all__ = [
    "TEST_FUNCTIONS",
    "TestFunction",
    "beale",
    "lr_sweep",
    "plot_function",
    "quadratic_1d",
    "ravine",
    "rosenbrock",
    "saddle",
    "trajectory",
]


# --------------------------------------------------------------------------------------------
# Test functions
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TestFunction:
    """A differentiable test function with a known minimum and a good window to draw it in.

    ``f(p)`` and ``grad(p)`` take the coordinates stacked on the first axis (``p[0]`` is x,
    ``p[1]`` is y), so the same code evaluates one point of shape ``(2,)`` or a whole grid of
    shape ``(2, H, W)`` for a contour plot.
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    f: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]
    minimum: tuple[float, ...]
    start: tuple[float, ...]
    xlim: tuple[float, float]
    ylim: tuple[float, float] = (0.0, 0.0)
    levels: Sequence[float] | None = None
    note: str = ""

    def __call__(self, p) -> np.ndarray:
        return self.f(np.asarray(p, dtype=np.float64))

    @property
    def dims(self) -> int:
        return len(self.start)


def _quadratic_1d_f(p):
    return p[0] ** 2


def _quadratic_1d_grad(p):
    return np.stack([2 * p[0]])


quadratic_1d = TestFunction(
    "quadratic 1-D",
    _quadratic_1d_f,
    _quadratic_1d_grad,
    minimum=(0.0,),
    start=(4.0,),
    xlim=(-5.0, 5.0),
    note="f(w) = w²; gradient descent gives w_k = (1 − 2η)^k w_0: monotone for η < 0.5, "
    "one step for η = 0.5, oscillating for 0.5 < η < 1, divergent for η > 1",
)

RAVINE_A, RAVINE_B = 0.1, 2.0


def _ravine_f(p):
    return RAVINE_A * p[0] ** 2 + RAVINE_B * p[1] ** 2


def _ravine_grad(p):
    return np.stack([2 * RAVINE_A * p[0], 2 * RAVINE_B * p[1]])


ravine = TestFunction(
    "ravine",
    _ravine_f,
    _ravine_grad,
    minimum=(0.0, 0.0),
    start=(-5.0, -2.0),
    xlim=(-5.5, 1.5),
    ylim=(-3.0, 3.0),
    levels=[0.1, 0.3, 0.7, 1.5, 3, 5, 8, 12, 17],
    note="f = 0.1x² + 2y²: curvatures 0.2 and 4, condition number 20 (a long, narrow valley)",
)


def _saddle_f(p):
    return 0.5 * p[0] ** 2 + 0.25 * p[1] ** 4 - 0.5 * p[1] ** 2


def _saddle_grad(p):
    return np.stack([p[0], p[1] ** 3 - p[1]])


saddle = TestFunction(
    "saddle",
    _saddle_f,
    _saddle_grad,
    minimum=(0.0, 1.0),
    start=(-2.0, 1e-3),
    xlim=(-2.5, 2.5),
    ylim=(-1.6, 1.6),
    levels=[-0.24, -0.2, -0.1, 0.0, 0.2, 0.5, 1.0, 1.5, 2.0, 3.0],
    note="f = x²/2 + y⁴/4 − y²/2: a saddle at (0, 0), minima at (0, ±1) with f = −0.25; "
    "starting almost on the ridge y = 0, the gradient along y is ~1e-3",
)


def _rosenbrock_f(p):
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def _rosenbrock_grad(p):
    return np.stack([-2 * (1 - p[0]) - 400 * p[0] * (p[1] - p[0] ** 2), 200 * (p[1] - p[0] ** 2)])


rosenbrock = TestFunction(
    "Rosenbrock",
    _rosenbrock_f,
    _rosenbrock_grad,
    minimum=(1.0, 1.0),
    start=(-1.5, 2.0),
    xlim=(-2.0, 2.0),
    ylim=(-1.0, 3.0),
    levels=list(np.logspace(-1, 3.5, 12)),
    note="f = (1 − x)² + 100(y − x²)²: a curved, flat-bottomed valley, minimum (1, 1)",
)


def _beale_terms(p):
    x, y = p[0], p[1]
    return 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3


def _beale_f(p):
    a, b, c = _beale_terms(p)
    return a**2 + b**2 + c**2


def _beale_grad(p):
    x, y = p[0], p[1]
    a, b, c = _beale_terms(p)
    dx = 2 * a * (y - 1) + 2 * b * (y**2 - 1) + 2 * c * (y**3 - 1)
    dy = 2 * a * x + 2 * b * 2 * x * y + 2 * c * 3 * x * y**2
    return np.stack([dx, dy])


beale = TestFunction(
    "Beale",
    _beale_f,
    _beale_grad,
    minimum=(3.0, 0.5),
    start=(1.0, 1.5),
    xlim=(-4.5, 4.5),
    ylim=(-4.5, 4.5),
    levels=list(np.logspace(-1, 5, 15)),
    note="Beale's function: plateaus and steep walls, minimum (3, 0.5)",
)

#: name → 2-D test function (the 1-D quadratic is separate: it has no y axis).
TEST_FUNCTIONS: Mapping[str, TestFunction] = {f.name: f for f in (ravine, saddle, rosenbrock, beale)}


def _as_keras_optimizer(optimizer) -> bool:
    return isinstance(optimizer, keras.optimizers.Optimizer)


def trajectory(optimizer, f: TestFunction, start: Sequence[float] | None = None, steps: int = 100) -> np.ndarray:
    """Run ``steps`` updates of ``optimizer`` on ``f`` from ``start``; return the path, ``(steps + 1, d)``.

    ``optimizer`` is one of this module's classes (reset first, float64 maths) or a
    ``keras.optimizers`` object (a fresh one: it builds its state on a float32 variable), so
    the same function draws the paths of optimizers Keras has and this module lacks (Lion,
    Muon, schedule-free AdamW). A path that overflows is cut off with ``inf`` rows, so a
    divergent run still plots.
    """
    steps = checks.integer("steps", steps, minimum=0)
    p = np.asarray(f.start if start is None else start, dtype=np.float64)
    if p.shape != (f.dims,):
        raise ValueError(f"start must have {f.dims} coordinates for {f.name!r}, got shape {p.shape}")
    path = np.full((steps + 1, f.dims), np.inf)
    path[0] = p
    if _as_keras_optimizer(optimizer):
        variable = keras.Variable(p.astype(np.float32), name="w")
        for k in range(1, steps + 1):
            g = f.grad(np.asarray(keras.ops.convert_to_numpy(variable), np.float64)).astype(np.float32)
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
            path[k] = keras.ops.convert_to_numpy(variable)
            if not np.all(np.isfinite(path[k])) or np.abs(path[k]).max() > 1e150:
                path[k:] = np.inf
                break
        return path
    optimizer.reset()
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            p = optimizer.step(p, f.grad(p))
            if not np.all(np.isfinite(p)) or np.abs(p).max() > 1e150:
                break
            path[k] = p
    return path


def lr_sweep(
    make_optimizer: Callable[[float], Any],
    f: TestFunction,
    learning_rates: Sequence[float],
    *,
    steps: int = 100,
    start: Sequence[float] | None = None,
) -> np.ndarray:
    """Final loss ``f(w_steps) − f(w*)`` for each learning rate (``inf`` where the run diverged).

    The lecture's advice: "try a bunch of values on a log scale and use the best one"; this is
    that experiment on a function whose minimum is known, so the gap to it is the error.
    """
    f_min = float(f(np.asarray(f.minimum)))
    out = np.empty(len(learning_rates))
    for i, lr in enumerate(learning_rates):
        end = trajectory(make_optimizer(float(lr)), f, start, steps)[-1]
        out[i] = float(f(end)) - f_min if np.all(np.isfinite(end)) else np.inf
    return out


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


def plot_function(
    f: TestFunction,
    paths: Mapping[str, np.ndarray] | None = None,
    *,
    ax=None,
    title: str | None = None,
    resolution: int = 200,
):
    """Contours of a 2-D test function with optimizer paths on top (start ○, end ×, minimum ★)."""
    import matplotlib.pyplot as plt

    if f.dims != 2:
        raise ValueError(f"plot_function draws 2-D functions; {f.name!r} has {f.dims} dimension(s)")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    xs = np.linspace(*f.xlim, resolution)
    ys = np.linspace(*f.ylim, resolution)
    X, Y = np.meshgrid(xs, ys)
    Z = f(np.stack([X, Y]))
    ax.contour(X, Y, Z, levels=f.levels or 15, colors="0.75", linewidths=0.8)
    ax.plot(*f.minimum, marker="*", color="k", markersize=12, linestyle="none", label="minimum")
    for label, path in (paths or {}).items():
        path = np.asarray(path)
        finite = path[np.all(np.isfinite(path), axis=1)]
        (line,) = ax.plot(finite[:, 0], finite[:, 1], marker=".", markersize=3, linewidth=1.2, label=label)
        ax.plot(*finite[0], marker="o", color=line.get_color(), markerfacecolor="none")
        ax.plot(*finite[-1], marker="x", color=line.get_color())
    ax.set_xlim(*f.xlim)
    ax.set_ylim(*f.ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title or f.name)
    return ax
