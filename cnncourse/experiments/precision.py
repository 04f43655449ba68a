"""Mixed precision and XLA, measured: what 16-bit numbers and compiled steps do on this device.

Notebook 10 teaches the two switches every fast recipe flips on a GPU — a 16-bit dtype policy
(``keras.mixed_precision``) and XLA compilation (``Model.compile(jit_compile=...)``) — and
measures them on the machine it runs on, where the answer may well be "slower" (a CPU
without 16-bit arithmetic units converts every 16-bit number back to float32 to compute with
it). :func:`number_formats` derives each format's range and spacing from its bit layout and
checks them against what the backend actually rounds to; :func:`round_trip` shows a value as a
format stores it; :func:`step_timing` and :func:`grid` time training steps of a model under
each combination; :func:`grid_table` renders them. ``benchmarks/precision.py`` runs the same
grid as a benchmark and records it per device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from cnncourse import checks

__all__ = ["FORMATS", "NumberFormat", "StepTiming", "cpu_16bit_instructions", "grid", "grid_table",
           "number_formats", "round_trip", "step_timing"]

# (exponent bits, stored mantissa bits): IEEE 754 binary32 and binary16, and Google Brain's bfloat16
# (float32 with the low 16 mantissa bits dropped)
FORMATS = {"float32": (8, 23), "float16": (5, 10), "bfloat16": (8, 7)}
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass(frozen=True)
class NumberFormat:
    """A floating-point format from its bits: 1 sign bit, ``exponent`` bits, ``mantissa`` stored bits."""

    name: str
    exponent: int
    mantissa: int

    @property
    def bits(self) -> int:
        return 1 + self.exponent + self.mantissa

    @property
    def max(self) -> float:
        """The largest finite value, (2 − 2⁻ᵐ)·2^bias with bias = 2^(e−1) − 1."""
        return (2 - 2.0 ** -self.mantissa) * 2.0 ** (2 ** (self.exponent - 1) - 1)

    @property
    def smallest_normal(self) -> float:
        """The smallest positive normal value, 2^(1 − bias); below it precision fades, then zero."""
        return 2.0 ** (2 - 2 ** (self.exponent - 1))

    @property
    def smallest_subnormal(self) -> float:
        return self.smallest_normal * 2.0 ** -self.mantissa

    @property
    def epsilon(self) -> float:
        """The gap between 1 and the next value, 2⁻ᵐ: the relative precision (about 10^-(m·0.3) digits)."""
        return 2.0 ** -self.mantissa

    @property
    def decimal_digits(self) -> float:
        return (self.mantissa + 1) * math.log10(2)


def number_formats() -> list[NumberFormat]:
    """float32, float16 and bfloat16 as :class:`NumberFormat` (range and spacing from their bits)."""
    return [NumberFormat(name, e, m) for name, (e, m) in FORMATS.items()]


SIXTEEN_BIT_FLAGS = ("avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16", "f16c")


def cpu_16bit_instructions(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The x86 instruction-set extensions for 16-bit floats this CPU reports (``[]`` where unknown).

    ``avx512_bf16`` / ``amx_bf16`` compute bfloat16 dot products (what a convolution is made
    of) in hardware; ``avx512_fp16`` / ``amx_fp16`` do the same for float16; ``f16c`` only
    converts float16 to float32 and back. Without the first kind, a 16-bit convolution is
    float32 arithmetic plus conversions.
    """
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return [flag for flag in SIXTEEN_BIT_FLAGS if flag in flags]


def round_trip(values: Iterable[float], dtype: str) -> np.ndarray:
    """``values`` stored in ``dtype`` by the Keras backend and read back (float64 for printing)."""
    import keras

    checks.choice("dtype", dtype, tuple(FORMATS))
    x = keras.ops.convert_to_tensor(np.asarray(list(values), dtype=np.float32))
    stored = keras.ops.cast(x, dtype)
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(stored, "float32")), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class StepTiming:
    """Training steps of one model under one dtype policy and one compile setting."""

    dtype_policy: str
    jit_compile: bool
    batch_size: int
    first_step_seconds: float  # tracing + compiling + one step
    seconds_per_step: float  # median of the timed steps
    steps: int
    loss_first: float
    loss_last: float
    compute_dtype: str  # what the model's inner layers computed in
    optimizer: str  # the optimizer Keras trained with (a LossScaleOptimizer under mixed_float16)

    @property
    def images_per_second(self) -> float:
        return self.batch_size / self.seconds_per_step

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "images_per_second": self.images_per_second}


@contextlib.contextmanager
def _xla_allowed():
    """Pause TensorFlow's op determinism while timing: Keras refuses XLA on TensorFlow while it is on.

    ``cnncourse.setup`` turns op determinism on so that runs repeat exactly, and Keras'
    ``Model.compile`` then quietly sets ``jit_compile=False`` on TensorFlow (not every op has a
    deterministic XLA kernel). Timing needs the XLA setting it asked for, not reproducible
    bits, so the grid runs with determinism off and turns it back on afterwards. A no-op on
    other backends.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        yield
        return
    from tensorflow.python.framework import config as tf_config

    was_on = tf_config.is_op_determinism_enabled()
    if was_on:
        tf_config.disable_op_determinism()
    try:
        yield
    finally:
        if was_on:
            tf_config.enable_op_determinism()


def _prepared(build, x, y, dtype_policy, jit_compile, loss, optimizer, seed):
    """A compiled model that has taken its first (tracing, compiling) step: ``(model, seconds, loss)``."""
    import keras

    checks.choice("dtype_policy", dtype_policy, POLICIES)
    checks.boolean("jit_compile", jit_compile)
    keras.utils.set_random_seed(seed)
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy)  # the model itself takes the global policy when built
    try:
        model = build(dtype=dtype_policy)
    finally:
        keras.config.set_dtype_policy(before)
    model.compile(optimizer=(optimizer or (lambda: keras.optimizers.SGD(0.05, momentum=0.9)))(), loss=loss,
                  jit_compile=jit_compile)
    if bool(model.jit_compile) != jit_compile:  # Keras turns XLA off for layers or settings that do not support it
        raise ValueError(f"asked for jit_compile={jit_compile} but Keras compiled with {model.jit_compile} "
                         "(a layer without XLA support, or TensorFlow's op determinism on)")
    start = time.perf_counter()
    first = float(model.train_on_batch(x, y))
    return model, time.perf_counter() - start, first


def _timing(model, x, first_seconds, first_loss, times, last) -> StepTiming:
    inner = next((layer for layer in model.layers if getattr(layer, "weights", None)), model.layers[0])
    return StepTiming(model.dtype_policy.name, bool(model.jit_compile), len(x), first_seconds,
                      statistics.median(times), len(times), first_loss, last, str(inner.compute_dtype),
                      type(model.optimizer).__name__)


def _check_batch(x, y) -> None:
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be one non-empty batch of equal length, got {len(x)} and {len(y)}")


def step_timing(
    build: Callable[..., Any],
    x: np.ndarray,
    y: np.ndarray,
    *,
    dtype_policy: str = "float32",
    jit_compile: bool = False,
    steps: int = 10,
    loss: Any = "sparse_categorical_crossentropy",
    optimizer: Callable[[], Any] | None = None,
    seed: int = 0,
) -> StepTiming:
    """Time ``steps`` training steps of ``build(dtype=dtype_policy)`` on the batch ``(x, y)``.

    ``build`` returns an uncompiled ``keras.Model`` for a dtype policy (its last layer should
    stay float32, as Keras' mixed-precision guide asks). The model is built with the policy as
    Keras' global one (restored after), so that the model's own policy is ``dtype_policy`` too:
    then, under ``mixed_float16``, ``compile`` wraps the optimizer in a ``LossScaleOptimizer``
    (reported in ``optimizer``). It is compiled with ``optimizer()`` (default SGD with momentum)
    and ``jit_compile``; one step is timed on its own (it traces and compiles), then ``steps``
    more. Every step ends when its loss is on the host, so asynchronous dispatch hides no work.
    """
    _check_batch(x, y)
    steps = checks.positive_int("steps", steps)
    with _xla_allowed():
        model, first_seconds, first = _prepared(build, x, y, dtype_policy, jit_compile, loss, optimizer, seed)
        times, last = [], first
        for _ in range(steps):
            t0 = time.perf_counter()
            last = float(model.train_on_batch(x, y))
            times.append(time.perf_counter() - t0)
    return _timing(model, x, first_seconds, first, times, last)


def grid(
    build: Callable[..., Any],
    x: np.ndarray,
    y: np.ndarray,
    *,
    policies: Sequence[str] = ("float32", "mixed_bfloat16"),
    jit: Sequence[bool] = (False, True),
    steps: int = 10,
    eager_steps: int | None = None,
    loss: Any = "sparse_categorical_crossentropy",
    optimizer: Callable[[], Any] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[StepTiming]:
    """:func:`step_timing` for every policy × compile setting, interleaved so that load hits all alike.

    Every model is built, compiled and takes its first step; then ``steps`` rounds each time one
    step of every model in turn, so a machine that gets busier or quieter halfway (a shared
    one) slows every setting alike instead of the ones timed last. ``eager_steps`` (default
    ``steps``) caps the timed steps without XLA on JAX, where Keras then runs every operation of
    the step on its own, often ten times slower. On TensorFlow the grid runs with op determinism
    paused (see :func:`_xla_allowed`): with it on, Keras would quietly drop XLA.
    """
    import keras

    _check_batch(x, y)
    steps = checks.positive_int("steps", steps)
    eager_steps = steps if eager_steps is None else checks.positive_int("eager_steps", eager_steps)
    keras.backend.clear_session()
    settings = [(p, j) for p in policies for j in jit]
    with _xla_allowed():
        prepared = _interleaved(build, x, y, settings, steps, eager_steps, loss, optimizer, seed, progress)
    rows = [_timing(model, x, first_seconds, first, times, last)
            for model, first_seconds, first, times, last, _ in prepared]
    if progress:
        for r in rows:
            print(f"{r.dtype_policy:<15} XLA {'on ' if r.jit_compile else 'off'}: {1000 * r.seconds_per_step:7.1f} "
                  f"ms/step ({r.images_per_second:,.0f} images/s) over {r.steps} steps", flush=True)
    return rows


def _interleaved(build, x, y, settings, steps, eager_steps, loss, optimizer, seed, progress) -> list[list]:
    import keras

    prepared = []
    for policy, compiled in settings:
        model, first_seconds, first = _prepared(build, x, y, policy, compiled, loss, optimizer, seed)
        if progress:
            print(f"{policy:<15} XLA {'on ' if compiled else 'off'}: first step (trace + compile) {first_seconds:.1f} s",
                  flush=True)
        slow = not compiled and keras.backend.backend() == "jax"
        prepared.append([model, first_seconds, first, [], first, eager_steps if slow else steps])
    for round_ in range(steps):
        for entry in prepared:
            model, *_, times, _, wanted = entry
            if round_ < wanted:
                t0 = time.perf_counter()
                entry[4] = float(model.train_on_batch(x, y))
                times.append(time.perf_counter() - t0)
    return prepared


def grid_table(rows: Sequence[StepTiming]) -> str:
    """Markdown: one row per setting, with time per step relative to float32 without XLA."""
    base = next((r for r in rows if r.dtype_policy == "float32" and not r.jit_compile), rows[0])
    lines = ["| dtype policy | computes in | XLA | optimizer | first step (s) | ms / step | images/s | "
             "× time of float32 without XLA | loss: first → last |",
             "|:---|:---|:---|:---|---:|---:|---:|---:|:---|"]
    for r in rows:
        lines.append(f"| {r.dtype_policy} | {r.compute_dtype} | {'yes' if r.jit_compile else 'no'} | {r.optimizer} | "
                     f"{r.first_step_seconds:.1f} | {1000 * r.seconds_per_step:.1f} | {r.images_per_second:,.0f} | "
                     f"{r.seconds_per_step / base.seconds_per_step:.2f} | {r.loss_first:.3f} → {r.loss_last:.3f} |")
    return "\n".join(lines)
