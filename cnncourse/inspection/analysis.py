"""Sizes and costs of convolutional networks: output sizes, receptive fields, parameters, MACs.

The classic-architecture notebooks put every published number (AlexNet's 55×55×96, VGG-16's
138M parameters, GoogLeNet's per-module operations, ResNet's GFLOPs) beside a number computed
here, so the arithmetic lives in one tested place.

**Multiply-add convention.** One MAC is one multiplication followed by one addition (what
the VGG, GoogLeNet and ResNet papers call an "operation" or "FLOP"; twice as many
floating-point operations). Counted per image (batch 1), biases not counted:

* ``Conv1D/2D/3D``: ``prod(output spatial) · C_out · prod(kernel) · C_in / groups``
* ``DepthwiseConv2D``: ``H_out · W_out · C_in · multiplier · k_h · k_w``
  (``SeparableConv2D`` adds its pointwise 1×1 conv)
* ``Conv2DTranspose``: ``H_in · W_in · C_in · k_h · k_w · C_out``
* ``Dense``: ``in · out`` per position it is applied at
* everything else (pooling, batch norm, local response normalisation, activations, dropout,
  add, concatenate, reshape) counts **0**: their cost is small next to the convolutions and
  the papers leave it out too.

The receptive field ``r`` and the jump ``j`` (the distance, in input pixels, between
neighbouring outputs, i.e. the cumulative stride) follow ``j_out = j_in · s`` and
``r_out = r_in + (k − 1) · d · j_in`` for a window of size ``k``, stride ``s`` and dilation
``d``; where branches meet (concatenate, add) the largest field is kept.

Everything here walks Keras' functional graph and uses only shapes and ``count_params``, so
it is backend-neutral and never runs the model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from cnncourse import checks

__all__ = [
    "BottleneckCost",
    "ModuleCost",
    "Table",
    "bottleneck_cost",
    "conv_output_size",
    "conv_params",
    "count_macs",
    "count_params",
    "group_rows",
    "inception_module_cost",
    "layer_table",
    "plot_accuracy_vs_ops",
    "receptive_field",
]


# --------------------------------------------------------------------------- arithmetic
def conv_output_size(w: int, f: int, p: int = 0, s: int = 1, d: int = 1) -> int:
    """Output width ``(W − F + 2P)/S + 1`` of a convolution or pooling window; with dilation ``d``,
    ``(W − d(F − 1) − 1 + 2P)/S + 1``.

    A dilated kernel's taps are ``d`` pixels apart, so it spans ``d(F − 1) + 1`` pixels (its
    effective size) and the formula is the undilated one with ``F`` replaced by that span
    (Keras' ``dilation_rate``; Yu & Koltun, ICLR 2016). A fractional or non-positive result
    means the filter does not tile the input; rather than rounding silently (as frameworks
    do), this raises, naming the values, so the reader sees why e.g. AlexNet's 224×224 input
    only works as 227×227.
    """
    w = checks.integer("w (input size)", w, minimum=1)
    f = checks.integer("f (filter size)", f, minimum=1)
    p = checks.integer("p (padding)", p, minimum=0)
    s = checks.integer("s (stride)", s, minimum=1)
    d = checks.integer("d (dilation)", d, minimum=1)
    span_f = d * (f - 1) + 1
    filter_text = f"f={f}" if d == 1 else f"f={f} dilated by d={d} (spanning d(f - 1) + 1 = {span_f})"
    span = w - span_f + 2 * p
    if span < 0:
        raise ValueError(f"filter {filter_text} is larger than the padded input w + 2p = {w + 2 * p} (w={w}, p={p})")
    if span % s:
        formula = "(w - f + 2p)/s + 1" if d == 1 else "(w - d(f - 1) - 1 + 2p)/s + 1"
        raise ValueError(
            f"{formula} = ({w} - {span_f} + 2·{p})/{s} + 1 = {span / s + 1:g} is not an integer: "
            f"stride s={s} does not tile input w={w} with filter {filter_text} and padding p={p}"
        )
    return span // s + 1


def _kernel(f: Any) -> tuple[int, int]:
    if isinstance(f, (int, np.integer)) and not isinstance(f, bool):
        f = (f, f)
    try:
        kh, kw = f
    except (TypeError, ValueError):
        raise ValueError(f"f must be an int or a (height, width) pair, got {f!r}") from None
    return checks.integer("f (filter height)", kh, minimum=1), checks.integer("f (filter width)", kw, minimum=1)


def conv_params(f: int | tuple[int, int], c_in: int, c_out: int, bias: bool = True) -> int:
    """Weights of a conv layer, ``(F·F·C_in + 1)·C_out`` (the ``+ 1`` is the bias)."""
    kh, kw = _kernel(f)
    c_in = checks.integer("c_in", c_in, minimum=1)
    c_out = checks.integer("c_out", c_out, minimum=1)
    return (kh * kw * c_in + (1 if bias else 0)) * c_out


def receptive_field(layers_spec: Iterable[Any]) -> int:
    """Receptive field (in input pixels) of one unit on top of a stack of windows.

    Each item is a kernel size ``k`` (stride 1), or ``(k, s)`` or ``(k, s, d)`` with stride
    and dilation. ``receptive_field([3, 3, 3]) == 7``: three stacked 3×3 convs see 7×7.
    A dilated window counts with its effective size ``d(k − 1) + 1``, so dilations
    1, 2, 4, … grow the field exponentially with depth (``[(3, 1, 1), (3, 1, 2),
    (3, 1, 4)]`` sees 15 pixels with the weights of three 3×3 convs; Yu & Koltun 2016).
    """
    rf, jump = 1, 1
    for i, item in enumerate(layers_spec):
        spec = (item,) if isinstance(item, (int, np.integer)) and not isinstance(item, bool) else tuple(item)
        if not 1 <= len(spec) <= 3:
            raise ValueError(f"layer {i}: expected k, (k, s) or (k, s, d), got {item!r}")
        k = checks.integer(f"layer {i} kernel", spec[0], minimum=1)
        s = checks.integer(f"layer {i} stride", spec[1], minimum=1) if len(spec) > 1 else 1
        d = checks.integer(f"layer {i} dilation", spec[2], minimum=1) if len(spec) > 2 else 1
        rf += (k - 1) * d * jump
        jump *= s
    return rf


@dataclasses.dataclass(frozen=True)
class ModuleCost:
    """Cost of one inception module: totals and the per-branch MACs (to print the sum)."""

    params: int
    macs: int
    out_channels: int
    branches: Mapping[str, int]


def inception_module_cost(
    h: int, w: int, c_in: int, spec: Sequence[int], naive: bool = False, *, bias: bool = True
) -> ModuleCost:
    """Parameters and MACs of an inception module on an ``h × w × c_in`` input.

    ``spec`` follows the GoogLeNet table: ``(#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5,
    pool proj)``. With ``naive=True`` it is ``(#1×1, #3×3, #5×5)``: the three convolutions
    see all ``c_in`` channels and the pooling branch passes ``c_in`` channels through, which
    is why the naive module's depth can only grow. Pooling costs 0 MACs (module docstring).

    The lecture's example (28×28×256 input, 128/192/96 filters): naive 854,196,224 MACs;
    with 64-filter 1×1 bottlenecks ``(128, 64, 192, 64, 96, 64)`` 271,351,808 MACs. The
    slide prints "358M" for the second total, but its own six listed terms add up to 271M;
    the course shows the sum and says so.
    """
    h, w, c_in = (checks.integer(name, value, minimum=1) for value, name in ((h, "h"), (w, "w"), (c_in, "c_in")))
    spec = tuple(spec)
    expected = 3 if naive else 6
    if len(spec) != expected:
        form = "(#1x1, #3x3, #5x5)" if naive else "(#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)"
        raise ValueError(f"spec must have {expected} entries {form} when naive={naive}, got {spec!r}")
    spec = tuple(checks.integer("every spec entry", value, minimum=1) for value in spec)
    positions = h * w
    if naive:
        n1, n3, n5 = spec
        convs = {"1x1": (1, c_in, n1), "3x3": (3, c_in, n3), "5x5": (5, c_in, n5)}
        out = n1 + n3 + n5 + c_in
    else:
        n1, r3, n3, r5, n5, pp = spec
        convs = {
            "1x1": (1, c_in, n1),
            "3x3 reduce": (1, c_in, r3),
            "3x3": (3, r3, n3),
            "5x5 reduce": (1, c_in, r5),
            "5x5": (5, r5, n5),
            "pool proj": (1, c_in, pp),
        }
        out = n1 + n3 + n5 + pp
    branches = {name: positions * k * k * ci * co for name, (k, ci, co) in convs.items()}
    params = sum(conv_params(k, ci, co, bias) for k, ci, co in convs.values())
    return ModuleCost(params=params, macs=sum(branches.values()), out_channels=out, branches=branches)


@dataclasses.dataclass(frozen=True)
class BottleneckCost:
    """MACs per output position: a bottleneck block vs one plain 3×3 conv, same in/out width."""

    bottleneck: int
    plain: int

    @property
    def ratio(self) -> float:
        return self.plain / self.bottleneck


def bottleneck_cost(c_in: int = 256, c_mid: int = 64, c_out: int | None = None) -> BottleneckCost:
    """MACs per position of 1×1 ``c_in→c_mid``, 3×3 ``c_mid→c_mid``, 1×1 ``c_mid→c_out``.

    ResNet's 256→64→64→256 block: 16,384 + 36,864 + 16,384 = **69,632** MACs per position,
    against **589,824** for a single 3×3 conv 256→256 (8.5× more).
    """
    c_in = checks.integer("c_in", c_in, minimum=1)
    c_mid = checks.integer("c_mid", c_mid, minimum=1)
    c_out = c_in if c_out is None else checks.integer("c_out", c_out, minimum=1)
    return BottleneckCost(bottleneck=c_in * c_mid + 9 * c_mid * c_mid + c_mid * c_out, plain=9 * c_in * c_out)


# --------------------------------------------------------------------------- model walking
def _layers(model: Any) -> list[Any]:
    """Leaf layers in graph order; nested models are expanded."""
    out: list[Any] = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ in {"Functional", "Sequential", "Model"}:
            out.extend(_layers(layer))
        elif layer.__class__.__name__ != "InputLayer":
            out.append(layer)
    return out


def _shape(tensor_or_shape: Any) -> tuple:
    shape = getattr(tensor_or_shape, "shape", tensor_or_shape)
    return tuple(shape)


def _input_shapes(layer: Any) -> list[tuple]:
    node = layer._inbound_nodes[0]
    return [_shape(t) for t in node.input_tensors]


def _output_shapes(layer: Any) -> list[tuple]:
    node = layer._inbound_nodes[0]
    return [_shape(t) for t in node.output_tensors]


def _prod(values: Iterable[Any]) -> int:
    return int(math.prod(int(v) for v in values))


def layer_macs(layer: Any) -> int:
    """Multiply-adds of one built layer for one example (see the module docstring)."""
    kind = layer.__class__.__name__
    if not getattr(layer, "_inbound_nodes", None):
        return 0
    in_shape = _input_shapes(layer)[0]
    out_shape = _output_shapes(layer)[0]
    if kind in {"Conv1D", "Conv2D", "Conv3D"}:
        groups = getattr(layer, "groups", 1) or 1
        c_in = int(in_shape[-1])
        return _prod(out_shape[1:]) * _prod(layer.kernel_size) * c_in // groups
    if kind == "DepthwiseConv2D" or kind == "DepthwiseConv1D":
        return _prod(out_shape[1:]) * _prod(layer.kernel_size)
    if kind in {"SeparableConv2D", "SeparableConv1D"}:
        c_in = int(in_shape[-1])
        depthwise = _prod(out_shape[1:-1]) * c_in * layer.depth_multiplier * _prod(layer.kernel_size)
        pointwise = _prod(out_shape[1:]) * c_in * layer.depth_multiplier
        return depthwise + pointwise
    if kind in {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}:
        return _prod(in_shape[1:]) * _prod(layer.kernel_size) * int(out_shape[-1])
    if kind in {"Dense", "EinsumDense"}:
        if kind == "Dense":
            return _prod(in_shape[1:]) * int(out_shape[-1])
        return max(0, layer.count_params() - sum(_prod(b.shape) for b in layer.weights if "bias" in b.path))
    return 0


def _window(layer: Any) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """(kernel, stride, dilation) per spatial axis for layers that slide a window."""
    kind = layer.__class__.__name__
    if hasattr(layer, "kernel_size") and hasattr(layer, "strides"):
        k, s = layer.kernel_size, layer.strides
        d = getattr(layer, "dilation_rate", (1,) * len(k))
    elif hasattr(layer, "pool_size") and hasattr(layer, "strides"):
        k, s, d = layer.pool_size, layer.strides or layer.pool_size, (1,) * len(layer.pool_size)
    else:
        return None
    if kind.endswith("Transpose"):
        return None
    k, s, d = tuple(k), tuple(s), tuple(d)
    if len(k) == 1:
        k, s, d = k * 2, s * 2, d * 2
    return k[:2], s[:2], d[:2]  # type: ignore[return-value]


@dataclasses.dataclass
class Table:
    """A per-layer table: ``rows`` of dicts with the ``columns`` keys and a ``totals`` dict.

    ``str(table)`` is aligned plain text (what a notebook prints and nbval compares);
    Jupyter renders ``_repr_markdown_``.
    """

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    title: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, name: str) -> dict[str, Any]:
        for row in self.rows:
            if row["name"] == name:
                return row
        raise KeyError(f"no layer named {name!r}; names: {', '.join(r['name'] for r in self.rows)}")

    @staticmethod
    def _fmt(value: Any) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return f"{value:,.4g}"
        if isinstance(value, tuple):
            return "×".join(str(v) for v in value)
        return str(value)

    def _cells(self) -> tuple[list[str], list[list[str]], list[str]]:
        header = list(self.columns)
        body = [[self._fmt(r.get(c)) for c in self.columns] for r in self.rows]
        total = [self._fmt(self.totals.get(c, "")) if c != "name" else "total" for c in self.columns]
        total = [cell if cell != "—" else "" for cell in total]
        return header, body, total

    def __str__(self) -> str:
        header, body, total = self._cells()
        sized = [header, *body] + ([total] if self.totals else [])
        widths = [max(len(x[i]) for x in sized) for i in range(len(header))]
        numeric = [all(_looks_numeric(b[i]) for b in body) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()

        rule = "  ".join("-" * w for w in widths)
        out = ([self.title] if self.title else []) + [line(header), rule] + [line(b) for b in body]
        return "\n".join(out + ([rule, line(total)] if self.totals else []))

    def _repr_markdown_(self) -> str:
        header, body, total = self._cells()
        lines = [f"**{self.title}**", ""] if self.title else []
        lines.append("| " + " | ".join(header) + " |")
        numeric = [all(_looks_numeric(b[i]) for b in body) for i in range(len(header))]
        lines.append("|" + "|".join("---:" if n else ":---" for n in numeric) + "|")
        lines += ["| " + " | ".join(b) + " |" for b in body]
        if self.totals:
            lines.append("| " + " | ".join(f"**{t}**" if t else "" for t in total) + " |")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        return self._repr_markdown_()


def _looks_numeric(text: str) -> bool:
    return text in {"—", ""} or text.replace(",", "").replace(".", "").replace("-", "").isdigit()


def layer_table(model: Any, *, include_zero: bool = True) -> Table:
    """One row per layer: name, type, output shape, parameters, MACs, stride, receptive field, jump.

    ``stride`` is the layer's own stride, ``jump`` the cumulative stride (input pixels between
    neighbouring outputs) and ``rf`` the receptive field in input pixels (``h×w`` when they
    differ). Layers after the network has collapsed the spatial map (Flatten, global pooling,
    Dense) see the whole input, so their ``rf`` is the last map's field plus its extent and
    ``jump`` is blank. ``include_zero=False`` drops rows with neither parameters nor MACs.
    Totals: parameters (``count_params``) and MACs (``count_macs``).
    """
    geometry: dict[int, tuple[tuple[int, int], tuple[int, int]] | None] = {}

    def key(tensor: Any) -> int:
        return id(tensor)

    for tensor in model.inputs:
        geometry[key(tensor)] = ((1, 1), (1, 1))
    rows: list[dict[str, Any]] = []
    for layer in _layers(model):
        if not layer._inbound_nodes:
            continue
        node = layer._inbound_nodes[0]
        inputs = list(node.input_tensors)
        known = [geometry.get(key(t)) for t in inputs]
        known = [g for g in known if g is not None]
        if known:
            rf = (max(g[0][0] for g in known), max(g[0][1] for g in known))
            jump = (max(g[1][0] for g in known), max(g[1][1] for g in known))
            in_shape = _shape(inputs[0])
            out_shape = _shape(node.output_tensors[0])
            window = _window(layer)
            stride: Any = None
            if window is not None and len(in_shape) >= 4:
                (kh, kw), (sh, sw), (dh, dw) = window
                rf = (rf[0] + (kh - 1) * dh * jump[0], rf[1] + (kw - 1) * dw * jump[1])
                jump = (jump[0] * sh, jump[1] * sw)
                stride = sh if sh == sw else (sh, sw)
            elif len(in_shape) >= 4 and len(out_shape) < 4:
                # collapses the map (Flatten, GlobalPooling): sees all of it
                h, w = int(in_shape[1]), int(in_shape[2])
                rf = (rf[0] + (h - 1) * jump[0], rf[1] + (w - 1) * jump[1])
            for t in node.output_tensors:
                geometry[key(t)] = (rf, jump)
            spatial = len(out_shape) >= 4
            row_rf = rf[0] if rf[0] == rf[1] else rf
            row_jump = (jump[0] if jump[0] == jump[1] else jump) if spatial else None
        else:
            stride, row_rf, row_jump = None, None, None
            out_shape = _shape(node.output_tensors[0])
        params = int(layer.count_params())
        macs = layer_macs(layer)
        if not include_zero and not params and not macs:
            continue
        rows.append(
            {
                "name": layer.name,
                "type": layer.__class__.__name__,
                "output": tuple(int(v) for v in out_shape[1:] if v is not None),
                "params": params,
                "macs": macs,
                "stride": stride,
                "rf": row_rf,
                "jump": row_jump,
            }
        )
    totals = {"params": count_params(model), "macs": sum(r["macs"] for r in rows)}
    columns = ("name", "type", "output", "params", "macs", "stride", "rf", "jump")
    return Table(columns=columns, rows=rows, totals=totals, title=model.name)


def count_params(model: Any) -> int:
    """All weights, trainable or not (batch-norm statistics included, as Keras counts)."""
    return int(model.count_params())


def count_macs(model: Any) -> int:
    """Multiply-adds for one example (module docstring for the convention)."""
    return sum(layer_macs(layer) for layer in _layers(model))


def group_rows(table: Table, prefixes: Sequence[str], *, title: str | None = None) -> Table:
    """Sum a layer table's parameters and MACs per block: one row per name prefix.

    A paper's table lists *modules* (GoogLeNet's ``inception_3a``, ResNet's ``conv3_x``), a
    layer table lists every layer; grouping by name prefix turns one into the other. Each row
    goes to the first prefix its name starts with; a row that matches none stays a group of
    its own. Groups keep the order of their first layer; ``output`` is the group's last
    layer's output and ``layers`` how many layers it holds.
    """
    prefixes = list(prefixes)
    if not all(isinstance(p, str) and p for p in prefixes):
        raise ValueError(f"prefixes must be non-empty strings, got {prefixes!r}")
    groups: dict[str, dict[str, Any]] = {}
    for row in table.rows:
        name = next((p for p in prefixes if row["name"].startswith(p)), row["name"])
        group = groups.setdefault(name, {"name": name, "layers": 0, "output": None, "params": 0, "macs": 0})
        group["layers"] += 1
        group["output"] = row["output"]
        group["params"] += row["params"]
        group["macs"] += row["macs"]
    columns = ("name", "layers", "output", "params", "macs")
    return Table(columns=columns, rows=list(groups.values()), totals=dict(table.totals),
                 title=table.title if title is None else title)


# --------------------------------------------------------------------------- plots
def _row_value(row: Any, *names: str) -> Any:
    if isinstance(row, Mapping):
        for name in names:
            if name in row:
                return row[name]
        raise ValueError(f"row {row!r} needs one of the keys {', '.join(names)}")
    return getattr(row, names[0])


def plot_accuracy_vs_ops(rows: Iterable[Any], ax: Any = None, *, title: str | None = None) -> Any:
    """Accuracy against multiply-adds (log x), marker area proportional to parameters.

    ``rows`` are mappings with ``label`` (or ``name``), ``accuracy`` (a fraction or a
    percentage), ``macs`` and ``params``, e.g. one per trained architecture. Returns the axes.
    """
    import matplotlib.pyplot as plt

    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty: give at least one {label, accuracy, macs, params} mapping")
    labels = [str(_row_value(r, "label", "name")) for r in rows]
    acc = [float(_row_value(r, "accuracy")) for r in rows]
    macs = [float(_row_value(r, "macs")) for r in rows]
    params = [float(_row_value(r, "params")) for r in rows]
    if any(m <= 0 for m in macs):
        raise ValueError("every row needs macs > 0 (the x axis is logarithmic)")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    biggest = max(params) or 1.0
    sizes = [30 + 600 * p / biggest for p in params]
    ax.scatter(macs, acc, s=sizes, alpha=0.6, edgecolors="black", linewidths=0.5)
    for x, y, label, p in zip(macs, acc, labels, params):
        ax.annotate(f"{label}\n{p / 1e6:.3g}M params", (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("multiply-adds per image (log scale)")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "Accuracy vs operations (marker area ∝ parameters)")
    ax.grid(True, which="both", alpha=0.3)
    return ax
