"""Throughput of every image-augmentation layer, run the way a model runs it.

Each layer is wrapped in a tiny ``keras.Model`` whose ``call`` applies it with
``training=True`` and is then run the way Keras' own trainer would run that model's step on
the current backend: ``compile(jit_compile="auto")`` decides whether XLA is used (on JAX it is,
unless some layer declares ``supports_jit = False``, in which case Keras runs the *whole* step
op by op; on a CPU-only TensorFlow it is not), and the step is a ``jax.jit`` /
``tf.function`` accordingly. Input: batches of 128 CIFAR-sized images (32x32x3, float32 in
[0, 1]) already on the device, so the numbers are the augmentation's own cost plus the
per-step dispatch; a row "(no augmentation)" measures that floor.

Why: DESIGN.md records that Keras' ``RandomCrop`` inside a ResNet-9 on JAX/H100 turned a
0.5 s epoch into more than 75 s. This script finds such layers on each backend and device;
a layer more than 10x slower than ``RandomFlip`` is flagged, and the batched
``cnncourse.layers.RandomShift`` (pad 4 + random 32x32 crop) is shown beside
``ZeroPadding2D(4)`` + ``RandomCrop(32, 32)``, the Keras spelling of the same augmentation.

Usage::

    python benchmarks/augmentation.py                     # print the table
    python benchmarks/augmentation.py --write             # also update results/augmentation_<device>.md
    KERAS_BACKEND=jax python benchmarks/augmentation.py --write
    python benchmarks/augmentation.py --only RandomFlip RandomCrop RandomShift

The results file keeps one section per backend; ``--write`` replaces only the section of
the backend it ran on, so the TensorFlow and JAX tables of one device live side by side.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SLOW_FACTOR = 10.0  # flag layers this many times slower than RandomFlip
VALUE_RANGE = (0.0, 1.0)


@dataclass
class Case:
    name: str  # the layer's class name (or a short label)
    args: str  # how it is built, for the table
    make: Callable[[], keras.layers.Layer]
    source: str  # "keras" or "cnncourse"


def _keras(name: str, args: str, make: Callable[[], keras.layers.Layer]) -> Case:
    return Case(name, args, make, "keras")


def _ours(name: str, args: str, make: Callable[[], keras.layers.Layer]) -> Case:
    return Case(name, args, make, "cnncourse")


def cases(images: np.ndarray) -> list[Case]:
    """Every augmentation layer of Keras 3 and of cnncourse.layers, with CIFAR-style settings."""
    from cnncourse import layers as cl

    K = keras.layers
    vr = VALUE_RANGE

    def pad_crop():
        return keras.Sequential([K.ZeroPadding2D(4), K.RandomCrop(32, 32)], name="pad4_randomcrop32")

    values, vectors = cl.fit_pca_lighting(images)
    return [
        Case("(no augmentation)", "identity", lambda: K.Identity(), "keras"),
        _keras("RandomFlip", '"horizontal"', lambda: K.RandomFlip("horizontal")),
        _keras("RandomCrop", "ZeroPadding2D(4) + RandomCrop(32, 32)", pad_crop),
        _keras("RandomCrop", "RandomCrop(24, 24)", lambda: K.RandomCrop(24, 24)),
        _keras("RandomTranslation", "0.125, 0.125", lambda: K.RandomTranslation(0.125, 0.125)),
        _keras("RandomRotation", "0.05", lambda: K.RandomRotation(0.05)),
        _keras("RandomZoom", "0.1", lambda: K.RandomZoom(0.1)),
        _keras("RandomShear", "x=0.1, y=0.1", lambda: K.RandomShear(0.1, 0.1)),
        _keras("RandomPerspective", "factor=0.5, scale=0.3", lambda: K.RandomPerspective(0.5, 0.3)),
        _keras(
            "RandomElasticTransform", "factor=1, scale=0.5", lambda: K.RandomElasticTransform(1.0, 0.5, value_range=vr)
        ),
        _keras("RandomContrast", "0.2", lambda: K.RandomContrast(0.2, value_range=vr)),
        _keras("RandomBrightness", "0.2", lambda: K.RandomBrightness(0.2, value_range=vr)),
        _keras(
            "RandomColorJitter",
            "b=0.2, c=0.2, s=(0.3, 0.7), h=0.1",
            lambda: K.RandomColorJitter(vr, 0.2, 0.2, (0.3, 0.7), 0.1),
        ),
        _keras("RandomHue", "0.1", lambda: K.RandomHue(0.1, value_range=vr)),
        _keras("RandomSaturation", "(0.3, 0.7)", lambda: K.RandomSaturation((0.3, 0.7), value_range=vr)),
        _keras("RandomGrayscale", "0.2", lambda: K.RandomGrayscale(0.2)),
        _keras("RandomColorDegeneration", "0.2", lambda: K.RandomColorDegeneration(0.2, value_range=vr)),
        _keras("RandomSharpness", "0.2", lambda: K.RandomSharpness(0.2, value_range=vr)),
        _keras("RandomInvert", "0.5", lambda: K.RandomInvert(0.5, value_range=vr)),
        _keras("RandomPosterization", "(4, 6) bits", lambda: K.RandomPosterization((4, 6), value_range=vr)),
        _keras("Solarization", "addition 0.2, threshold 0.5", lambda: K.Solarization(0.2, 0.5, value_range=vr)),
        _keras("AutoContrast", "", lambda: K.AutoContrast(value_range=vr)),
        _keras("Equalization", "", lambda: K.Equalization(value_range=vr)),
        _keras("RandomErasing", "defaults", lambda: K.RandomErasing(value_range=vr)),
        _keras("RandomGaussianBlur", "defaults", lambda: K.RandomGaussianBlur(value_range=vr)),
        _keras("GaussianNoise", "0.1", lambda: K.GaussianNoise(0.1)),
        _keras("MixUp", "alpha=0.2", lambda: K.MixUp(0.2)),
        _keras("CutMix", "defaults", lambda: K.CutMix()),
        _keras("RandAugment", "2 ops, factor 0.5", lambda: K.RandAugment(value_range=vr)),
        _keras("AugMix", "defaults", lambda: K.AugMix(value_range=vr)),
        _ours("RandomShift", "pad=4 (= pad 4 + random 32x32 crop)", lambda: cl.RandomShift(4)),
        _ours("Cutout", "size=16", lambda: cl.Cutout(16)),
        _ours("RandomLighting", "stddev=0.1, PCA of the batch", lambda: cl.RandomLighting(values, vectors)),
        _ours("SobelEdges", "reflect padding", lambda: cl.SobelEdges()),
    ]


class Augment(keras.Model):
    """Applies one augmentation layer in training mode, as the first layer of a model would."""

    def __init__(self, layer: keras.layers.Layer, **kwargs) -> None:
        super().__init__(**kwargs)
        self.layer = layer

    def call(self, inputs):
        return self.layer(inputs, training=True)


@dataclass
class Row:
    case: Case
    images_per_second: float | None
    ms_per_batch: float | None
    repeats: int
    jit: str
    error: str = ""
    forced_jit: str = ""  # for layers Keras runs without XLA: what happens when XLA is forced


def _step_function(model: Augment, jit: bool):
    """``step(batch)`` the way Keras' trainer of this backend runs a model's step.

    TensorFlow: a ``tf.function`` (XLA only if ``jit``). JAX: ``jax.jit`` of the stateless
    call (the random-seed state threaded through, as the JAX trainer does) if ``jit``, else the
    same function op by op, which is what Keras falls back to when a layer has
    ``supports_jit = False``. Other backends: eager calls.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda x: model(x), jit_compile=bool(jit))
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        state = {"nt": [v.value for v in model.non_trainable_variables]}

        def stateless(nt, x):
            return model.stateless_call(trainable, nt, x)

        fn = jax.jit(stateless) if jit else stateless

        def step(x):
            y, state["nt"] = fn(state["nt"], x)
            return y

        return step
    return lambda x: model(x)


def _block(y) -> None:
    if hasattr(y, "block_until_ready"):
        y.block_until_ready()
    else:
        keras.ops.convert_to_numpy(y)


def _measure(case: Case, batches: list, jit: bool | None, repeats: int, budget_s: float):
    """Median seconds for one pass over ``batches``; ``jit=None`` = Keras' own choice."""
    model = Augment(case.make())
    model(batches[0])  # build
    model.compile(jit_compile="auto")
    keras_choice = bool(model.jit_compile)
    use_jit = keras_choice if jit is None else jit
    step = _step_function(model, use_jit)
    for _ in range(2):  # trace, compile, warm up
        _block(step(batches[0]))
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        for batch in batches:
            y = step(batch)
        _block(y)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    if tuple(y.shape)[0] != tuple(batches[-1].shape)[0]:
        raise RuntimeError(f"{case.name} returned {tuple(y.shape)} for a batch of {tuple(batches[-1].shape)}")
    return statistics.median(times), len(times), use_jit


def _time_case(case: Case, batches: list, repeats: int, budget_s: float) -> Row:
    seconds, used, jit = _measure(case, batches, None, repeats, budget_s)
    images = sum(int(b.shape[0]) for b in batches)
    row = Row(case, images / seconds, 1000 * seconds / len(batches), used, str(jit))
    if not jit and keras.backend.backend() == "jax":
        try:
            forced, _, _ = _measure(case, batches, True, repeats, budget_s)
            row.forced_jit = f"forced jax.jit: {images / forced:,.0f} images/s"
        except Exception as error:
            row.forced_jit = f"forced jax.jit fails ({type(error).__name__})"
    return row


def device_name() -> str:
    """``cpu`` or ``gpu`` (the file suffix) and a description of the device."""
    import cnncourse

    description = cnncourse.device_description()
    if description.startswith("CPU"):
        model = ""
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return "cpu", f"{description} ({model})" if model else description
    return "gpu", description


def table(rows: list[Row], backend: str, device: str, batch_size: int, batches: int) -> str:
    flip = next((r.images_per_second for r in rows if r.case.name == "RandomFlip" and r.images_per_second), None)
    versions = f"Keras {keras.__version__}, {backend} {getattr(__import__(backend), '__version__', '?')}"
    lines = [
        f"### Backend `{backend}` on {device}",
        "",
        f"{versions}; batches of {batch_size} images of 32x32x3 (float32, already on the device), {batches} batches per timed "
        "pass, median over the repeats; layer applied with `training=True` in a `keras.Model`, run "
        "the way Keras' trainer would run it: XLA (`jax.jit` / `tf.function(jit_compile=True)`) when "
        "`compile(jit_compile=\"auto\")` resolves to it, otherwise op by op on JAX and a plain "
        "`tf.function` on TensorFlow. Measured on "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}.",
        "",
        "| layer | from | arguments | images/s | ms / batch | × RandomFlip time | XLA | repeats | note |",
        "|---|---|---|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        if r.images_per_second is None:
            lines.append(f"| {r.case.name} | {r.case.source} | {r.case.args} | – | – | – | – | 0 | error: {r.error} |")
            continue
        ratio = flip / r.images_per_second if flip else float("nan")
        notes = [f"**> {SLOW_FACTOR:.0f}× slower than RandomFlip**"] if ratio > SLOW_FACTOR else []
        if r.forced_jit:
            notes.append(r.forced_jit)
        note = "; ".join(notes)
        lines.append(
            f"| {r.case.name} | {r.case.source} | {r.case.args} | {r.images_per_second:,.0f} | "
            f"{r.ms_per_batch:.2f} | {ratio:.1f} | {r.jit} | {r.repeats} | {note} |"
        )
    crop = next((r for r in rows if r.case.name == "RandomCrop" and "ZeroPadding" in r.case.args), None)
    shift = next((r for r in rows if r.case.name == "RandomShift"), None)
    if crop and shift and crop.images_per_second and shift.images_per_second:
        lines += [
            "",
            f"Pad 4 + random 32x32 crop: Keras `ZeroPadding2D` + `RandomCrop` {crop.images_per_second:,.0f} "
            f"images/s, `cnncourse.layers.RandomShift(4)` {shift.images_per_second:,.0f} images/s "
            f"({shift.images_per_second / crop.images_per_second:.1f}× the throughput).",
        ]
    slow = [
        r.case.name + (f" ({r.case.args})" if r.case.args else "")
        for r in rows
        if r.images_per_second and flip and flip / r.images_per_second > SLOW_FACTOR
    ]
    lines += ["", f"More than {SLOW_FACTOR:.0f}× slower than RandomFlip: " + (", ".join(slow) if slow else "none") + "."]
    return "\n".join(lines) + "\n"


def write_section(path: Path, backend: str, section: str) -> None:
    """Replace (or add) this backend's section in the results file, keeping the others."""
    header = (
        "# Augmentation layer throughput\n\n"
        "Written by `benchmarks/augmentation.py --write` (one section per Keras backend; rerun it with\n"
        "`KERAS_BACKEND=...` to refresh a section). Higher images/s is better.\n"
        "Rows of one section come from one run; on a shared machine absolute numbers vary between runs\n"
        "(on the 2-core CPU box used here, by 2-4x, including RandomFlip, the reference for the flag),\n"
        "so compare rows within a section, not across runs or sections.\n"
        "\n"
    )
    begin, end = f"<!-- begin {backend} -->", f"<!-- end {backend} -->"
    block = f"{begin}\n{section}{end}\n"
    text = path.read_text() if path.exists() else header
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=10, help="batches per timed pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per layer (median)")
    parser.add_argument("--budget", type=float, default=30.0, help="stop repeating a layer after this many seconds")
    parser.add_argument("--only", nargs="*", default=None, help="layer names to run (default: all)")
    parser.add_argument("--write", action="store_true", help="update benchmarks/results/augmentation_<device>.md")
    parser.add_argument("--output", type=Path, default=None, help="results file (default: by device)")
    args = parser.parse_args(argv)
    if args.batch_size <= 0 or args.batches <= 0 or args.repeats <= 0:
        parser.error("--batch-size, --batches and --repeats must be positive")

    backend = keras.backend.backend()
    kind, device = device_name()
    rng = np.random.default_rng(0)
    data = rng.uniform(size=(args.batch_size * args.batches, 32, 32, 3)).astype("float32")
    batches = [keras.ops.convert_to_tensor(b) for b in np.split(data, args.batches)]
    selected = cases(data[:1024])
    if args.only:
        unknown = set(args.only) - {c.name for c in selected}
        if unknown:
            parser.error(f"unknown layer(s) {sorted(unknown)}; known: {sorted({c.name for c in selected})}")
        keep = set(args.only) | {"RandomFlip"}  # the reference row
        selected = [c for c in selected if c.name in keep]

    print(f"# {backend} on {device}", flush=True)
    rows = []
    for case in selected:
        keras.utils.set_random_seed(0)
        try:
            row = _time_case(case, batches, args.repeats, args.budget)
        except Exception as error:  # a layer that fails on this backend is reported, not fatal
            traceback.print_exc(limit=2)
            message = f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
            row = Row(case, None, None, 0, "", message.replace("|", "/"))
        rows.append(row)
        shown = f"{row.images_per_second:,.0f} images/s" if row.images_per_second else row.error
        print(f"{case.name:24s} {case.args:40s} {shown}", flush=True)
        keras.backend.clear_session()

    section = table(rows, backend, device, args.batch_size, args.batches)
    print()
    print(section)
    if args.write:
        path = args.output or RESULTS / f"augmentation_{kind}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_section(path, backend, section)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
