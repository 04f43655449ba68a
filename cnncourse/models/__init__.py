"""Every architecture of the course, by name: ``build("vgg16")``, ``available()``.

One module per family (``lenet``, ``alexnet`` with ZFNet, ``vgg``, ``nin``, ``googlenet``,
``resnet`` with its plain twins and CIFAR forms, ``zhang``, ``fast_resnet``, ``probe``,
``lecture``), all made of the units in ``blocks``; each builder is a plain function
returning a functional ``keras.Model`` and takes the same keywords (``input_shape``,
``num_classes``, ``classifier_activation`` plus family options such as ``batch_norm``,
``dropout``, ``width``). The registry below names each builder together with the keywords
that make a published form, so a notebook says ``build("resnet50")`` or
``build("googlenet_small", input_shape=(28, 28, 1))`` and the table printed by
``python -m cnncourse models`` can be checked against the papers.

Four groups of names, which together hold every network the course trains:

* ``paper``   — the published ImageNet-sized forms (224/227 input, 1000 classes), the He et
  al. CIFAR ResNets and their plain twins (32×32×3, 10 classes), and the three networks of
  Zhang et al.'s generalization study (28×28×3, 10 classes);
* ``small``   — small-input forms of every family that train on Fashion-MNIST / CIFAR-10 on
  a CPU (each docstring says how it differs from the paper);
* ``course``  — networks designed for one of the course's experiments: notebook 10's fast
  ResNet (logits) and the tiny probe of its distribution check;
* ``lecture`` — the lecture's two Keras MNIST models.

Modules import Keras only when a model is built, so ``available()`` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["GROUPS", "Entry", "available", "build", "builder", "cli", "describe", "entry"]

GROUPS = ("paper", "small", "course", "lecture")


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered model: which builder, with which keywords, in which group."""

    name: str
    module: str
    function: str
    group: str
    kwargs: Mapping[str, Any]
    summary: str

    def builder(self) -> Callable[..., Any]:
        return getattr(importlib.import_module(f"{__name__}.{self.module}"), self.function)


def _e(name: str, module: str, function: str, group: str, summary: str, **kwargs: Any) -> Entry:
    return Entry(name, module, function, group, MappingProxyType(kwargs), summary)


_ENTRIES = [
    # lecture
    _e("mnist_mlp", "lecture", "mnist_mlp", "lecture", "Flatten-Dense(128)-Dense(10), logits"),
    _e("keras_io_convnet", "lecture", "keras_io_convnet", "lecture", "keras.io MNIST convnet"),
    # paper forms
    _e("lenet5_classic", "lenet", "lenet5", "paper", "LeNet-5 (LeCun 1998), 32x32x1", input_shape=(32, 32, 1)),
    _e("alexnet", "alexnet", "alexnet", "paper", "AlexNet (2012), single tower"),
    _e("zfnet", "alexnet", "zfnet", "paper", "ZFNet (2013)"),
    _e("vgg11", "vgg", "vgg", "paper", "VGG A", config="A"),
    _e("vgg11_lrn", "vgg", "vgg", "paper", "VGG A-LRN", config="A-LRN"),
    _e("vgg13", "vgg", "vgg", "paper", "VGG B", config="B"),
    _e("vgg16_c", "vgg", "vgg", "paper", "VGG C (1x1 convs)", config="C"),
    _e("vgg16", "vgg", "vgg", "paper", "VGG D", config="D"),
    _e("vgg19", "vgg", "vgg", "paper", "VGG E", config="E"),
    _e("nin", "nin", "nin", "paper", "Network in Network (ImageNet model)"),
    _e("googlenet", "googlenet", "googlenet", "paper", "GoogLeNet / Inception v1"),
    *[
        _e(f"resnet{d}", "resnet", "resnet", "paper", f"ResNet-{d} (He et al. 2015)", depth=d)
        for d in (18, 34, 50, 101, 152)
    ],
    *[
        _e(f"resnet{d}_cifar", "resnet", "cifar_resnet", "paper", f"CIFAR ResNet-{d}, option A", depth=d)
        for d in (20, 32, 44, 56, 110)
    ],
    *[
        _e(f"plain{d}_cifar", "resnet", "cifar_resnet", "paper", f"CIFAR plain-{d} (no shortcuts)", depth=d, shortcut=None)
        for d in (20, 32, 44, 56, 110)
    ],
    _e("zhang_inception", "zhang", "zhang_inception", "paper", "Zhang et al. (2017) small Inception, 28x28x3",
       input_shape=(28, 28, 3)),
    _e("zhang_alexnet", "zhang", "zhang_alexnet", "paper", "Zhang et al. (2017) small AlexNet, 28x28x3",
       input_shape=(28, 28, 3)),
    _e("zhang_mlp", "zhang", "zhang_mlp", "paper", "Zhang et al. (2017) MLP 3x512, 28x28x3", input_shape=(28, 28, 3)),
    # small forms
    _e("lenet5", "lenet", "lenet5", "small", "LeNet-5, 28x28 first conv padding='same'", input_shape=(28, 28, 1), padding="same"),
    _e("alexnet_small", "alexnet", "alexnet_small", "small", "AlexNet-style, 3x3 stem, narrow"),
    _e("zfnet_small", "alexnet", "zfnet_small", "small", "ZFNet-style, wide conv3-5, narrow"),
    _e("vgg11_small", "vgg", "vgg_small", "small", "VGG A at 1/4 width, BN", config="A"),
    _e("vgg16_small", "vgg", "vgg_small", "small", "VGG D at 1/8 width, BN", config="D", width=0.125),
    _e("nin_small", "nin", "nin_small", "small", "CIFAR NiN at 1/4 width"),
    _e("googlenet_small", "googlenet", "googlenet_small", "small", "Inception v1 at 1/4 width, BN"),
    _e("resnet18_small", "resnet", "resnet_small", "small", "ResNet-18 at 1/4 width, 3x3 stem", depth=18),
    # the course's own designs
    _e("fast_resnet", "fast_resnet", "fast_resnet", "course", "notebook 10's fast ResNet (w=16), logits"),
    _e("probe_convnet", "probe", "probe_convnet", "course", "8x8 Conv(4)-Dense(3) probe for the distribution check"),
]
REGISTRY: Mapping[str, Entry] = MappingProxyType({e.name: e for e in _ENTRIES})


def available(group: str | None = None) -> list[str]:
    """Registered names, in registry order; ``group`` in ``paper`` / ``small`` / ``lecture``."""
    if group is not None and group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)} or None, got {group!r}")
    return [e.name for e in _ENTRIES if group is None or e.group == group]


def entry(name: str) -> Entry:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}") from None


def builder(name: str) -> Callable[..., Any]:
    """The builder function behind a registered name (to call with other keywords)."""
    return entry(name).builder()


def build(name: str, /, **kw: Any) -> Any:
    """Build a registered model; ``kw`` overrides the registered keywords (e.g. ``num_classes``, or the
    model's own ``name``: the registered name is positional-only so that it never collides with it)."""
    e = entry(name)
    kwargs = {**e.kwargs, **kw}
    if set(kw) <= {"input_shape", "num_classes", "classifier_activation"}:
        kwargs.setdefault("name", name)  # else the builder names it (build("resnet20_cifar", depth=8) → resnet8_cifar)
    return e.builder()(**kwargs)


def describe(group: str | None = None, *, names: list[str] | None = None) -> Any:
    """A :class:`cnncourse.inspection.analysis.Table` of models: input, outputs, parameters, multiply-adds."""
    import keras

    from cnncourse.inspection.analysis import Table, count_macs, count_params

    rows = []
    for name in names if names is not None else available(group):
        e = entry(name)
        model = build(name)
        rows.append(
            {
                "name": name,
                "group": e.group,
                "input": tuple(int(v) for v in model.inputs[0].shape[1:]),
                "classes": int(model.outputs[0].shape[-1]),
                "layers": len(model.layers),
                "params": count_params(model),
                "macs": count_macs(model),
                "summary": e.summary,
            }
        )
        del model
        keras.backend.clear_session()
    columns = ("name", "group", "input", "classes", "layers", "params", "macs", "summary")
    return Table(columns=columns, rows=rows, totals={}, title="")


def cli(argv: list[str] | None = None) -> int:
    """``python -m cnncourse models [--group G] [NAME ...]``: print the table of models."""
    parser = argparse.ArgumentParser(
        prog="python -m cnncourse models",
        description="Every registered architecture with its parameters and multiply-adds (one image).",
    )
    parser.add_argument("names", nargs="*", help=f"models to describe (default: all of a group); one of {', '.join(available())}")
    parser.add_argument("--group", choices=GROUPS, default=None, help="only this group (default: every group)")
    parser.add_argument("--list", action="store_true", help="print the names only (no building)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown instead of aligned text")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        for name in args.names:
            entry(name)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if args.list:
        for group in [args.group] if args.group else GROUPS:
            print(f"{group}: {', '.join(available(group))}")
        return 0
    groups = [None] if args.names else ([args.group] if args.group else list(GROUPS))
    for group in groups:
        table = describe(group, names=args.names or None)
        if group:
            print(f"== {group} ({len(table)} models)")
        print(table.to_markdown() if args.markdown else table, flush=True)
        print()
    print("macs = multiply-adds per image (one multiply + one add; see cnncourse.inspection.analysis)")
    return 0
