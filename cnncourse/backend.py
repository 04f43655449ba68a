"""The Keras backend and its start-up: which backend runs, and keeping its log lines out of the course.

TensorFlow writes a dozen C++ log lines to the process's standard error when it is imported
(``WARNING: All log messages before absl::InitializeLog()``, oneDNN and CUDA notices,
``cuInit`` failures on machines without a GPU). In a notebook they land in the output of
whichever cell first imports Keras and look like errors to a student; nbval cannot mask them
either (a stderr stream is compared as a field of its own, so one stray warning fails a checked
cell). Setting ``TF_CPP_MIN_LOG_LEVEL`` is not enough: the lines printed before absl's logging
is initialised ignore it. So importing :mod:`cnncourse` installs a one-shot import hook that
runs TensorFlow's own import with file descriptor 2 pointed at ``/dev/null``, then lowers
TensorFlow's Python logger to errors (retracing and AutoGraph notices are advice for library
authors, not for a reader). Errors raised by the import itself still propagate as exceptions.

Only the import is silenced, and only when :mod:`cnncourse` is imported *before* TensorFlow
(the notebooks import it first for that reason); anything TensorFlow prints later that is
an error at ``TF_CPP_MIN_LOG_LEVEL`` < 3 still reaches the user when they lower the level.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator

__all__ = ["Acceleration", "acceleration", "choose_backend", "deterministic_xla", "device_kind", "gpu_hint",
           "gpu_names", "installed_backends", "jax_compilation_cache", "nvidia_gpu_count", "quiet_start",
           "silenced_stderr"]

LOG_LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
BACKEND_VAR = "KERAS_BACKEND"
BACKENDS = ("tensorflow", "jax", "torch")  # the order of preference when the user chose none


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Point file descriptor 2 at ``/dev/null`` for the block (C++ writes there directly)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an embedded interpreter): nothing to do
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _quiet_python_logger() -> None:
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "get_logger"):
        tf.get_logger().setLevel("ERROR")
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with silenced_stderr():
            self._loader.exec_module(module)
        _quiet_python_logger()


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders and wraps its loader; one use, then gone."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_start() -> None:
    """Keep TensorFlow's start-up log lines out of notebooks and terminals (idempotent).

    Respects a ``TF_CPP_MIN_LOG_LEVEL`` the user set; otherwise sets 3 (fatal only), which also
    hides the ``cuInit`` and tf.data graph notices TensorFlow logs after start-up.
    """
    os.environ.setdefault(LOG_LEVEL_VAR, "3")
    if "tensorflow" in sys.modules:
        _quiet_python_logger()
        return
    if not any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


def gpu_names() -> list[str]:
    """The model names of the GPUs the active Keras backend can use (``[]`` on a CPU-only machine).

    Imports the backend lazily: asking is what starts it.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [
            tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")
        ]
    if backend == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def device_kind() -> str:
    """What computes: ``"cpu"``, or the GPU model (``"NVIDIA H100 80GB HBM3"``; several joined by ``+``).

    Result caches key on it: a number measured on one kind of device (a time, or an accuracy
    that depends on its kernels' rounding) is not served as if it came from another.
    """
    names = gpu_names()
    return "+".join(names) if names else "cpu"


def installed_backends() -> list[str]:
    """The Keras backends importable here, in the course's order of preference (no import done)."""
    import importlib.util

    found = []
    for name in BACKENDS:
        try:
            if importlib.util.find_spec(name) is not None:
                found.append(name)
        except (ImportError, ValueError):  # a broken or blocked install counts as absent
            continue
    return found


def _configured_backend() -> str | None:
    """The backend named in Keras' own config file (``$KERAS_HOME/keras.json``), if any."""
    import json
    from pathlib import Path

    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        value = json.loads((home / "keras.json").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def choose_backend() -> str | None:
    """Pick an installed Keras backend when the user's choice (or Keras' default) is not installed.

    Keras defaults to TensorFlow and fails at import where only JAX or PyTorch is installed
    (the lent GPU machines, many labs). Without ``$KERAS_BACKEND``, this sets it to the first
    installed backend of :data:`BACKENDS` unless Keras' config file names one that is installed.
    An explicit ``$KERAS_BACKEND`` is never changed. Returns what it set, or ``None``. Must run
    before Keras is imported (``import cnncourse`` does it first).
    """
    if os.environ.get(BACKEND_VAR) or "keras" in sys.modules:
        return None
    installed = installed_backends()
    configured = _configured_backend() or "tensorflow"
    if configured in installed or not installed:
        return None
    os.environ[BACKEND_VAR] = installed[0]
    return installed[0]


def _nvidia_gpu_present() -> bool:
    """Whether the machine has an NVIDIA GPU with its driver loaded, whatever the backend sees."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


NVIDIA_GPUS_DIR = "/proc/driver/nvidia/gpus"


def nvidia_gpu_count() -> int:
    """How many NVIDIA GPUs a CUDA program started now could use, without importing any backend.

    The driver lists one folder per GPU in ``/proc/driver/nvidia/gpus``; ``$CUDA_VISIBLE_DEVICES``
    (a comma-separated list; empty hides them all) narrows that, as it does for every CUDA
    program. A parent process uses this to plan work for child processes of *other* backends
    (:mod:`cnncourse.experiments.distribute`) before any of them starts.
    """
    try:
        found = len([entry for entry in os.listdir(NVIDIA_GPUS_DIR) if not entry.startswith(".")])
    except OSError:
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return found
    chosen = [v for v in (part.strip() for part in visible.split(",")) if v and v != "-1"]
    return min(found, len(chosen))


PRECISION_VAR = "CNNCOURSE_PRECISION"
JIT_VAR = "CNNCOURSE_JIT_COMPILE"
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass(frozen=True)
class Acceleration:
    """The numeric precision and compilation a training run should use on this device, and why.

    ``dtype_policy`` is a Keras dtype policy name: ``"float32"``, or ``"mixed_bfloat16"`` /
    ``"mixed_float16"`` (layers compute in 16 bits and keep float32 weights; with float16 Keras'
    ``compile`` adds loss scaling). ``jit_compile`` is what to pass to ``Model.compile``.
    """

    dtype_policy: str
    jit_compile: bool
    device: str
    reason: str

    def __str__(self) -> str:
        jit = "XLA-compiled steps" if self.jit_compile else "no XLA"
        return f"{self.dtype_policy} + {jit} on {self.device}: {self.reason}"


def _gpu_compute_capability() -> tuple[int, int] | None:
    """The first GPU's CUDA compute capability as the backend reports it (``None`` if unknown)."""
    import keras

    try:
        if keras.backend.backend() == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            value = getattr(gpus[0], "compute_capability", None) if gpus else None
            if value:
                major, minor = str(value).split(".")[:2]
                return int(major), int(minor)
        elif keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                value = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
                if value:
                    return int(value[0]), int(value[1])
        elif keras.backend.backend() == "torch":
            import torch

            if torch.cuda.is_available():
                return tuple(torch.cuda.get_device_capability(0))
    except (ImportError, IndexError, ValueError, TypeError, RuntimeError):
        return None
    return None


def _flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"${name} must be 1 or 0 (true/false), got {os.environ[name]!r}")


def acceleration() -> Acceleration:
    """Mixed precision and XLA for the device Keras computes on (what the fast recipes use).

    * **A GPU**: ``mixed_bfloat16`` where the GPU has bfloat16 tensor cores (compute capability
      8.0 and up: A100, L4, H100, RTX 30xx/40xx), else ``mixed_float16`` (V100, T4: float16
      tensor cores; float16's narrow range needs loss scaling, which Keras' ``compile`` adds);
      and XLA, which fuses the step's small operations into few kernels.
    * **A CPU**: ``float32``, the precision every result and band of the course was measured
      in. Whether 16 bits pay on a CPU depends on its instructions and the backend's kernels
      (bfloat16 dot products need AVX512_BF16 or AMX; without them each bfloat16 operation is a
      conversion to float32 and back), so it is measured, in notebook 10, not assumed. XLA on
      JAX (Keras compiles every JAX step; op by op it is several times slower) but not on
      TensorFlow, whose XLA CPU path ran the course's small convnets 2-3× slower than its
      default kernels.

    ``$CNNCOURSE_PRECISION`` (one of :data:`POLICIES`) and ``$CNNCOURSE_JIT_COMPILE`` (1/0)
    override the choice; the tests use them to run the GPU settings on a CPU.
    """
    import keras

    names = gpu_names()
    device = "+".join(names) if names else "cpu"
    backend = keras.backend.backend()
    if names:
        capability = _gpu_compute_capability()
        if capability is None or capability >= (8, 0):
            policy, why = "mixed_bfloat16", "bfloat16 tensor cores, float32's range, no loss scaling needed"
        else:
            policy, why = "mixed_float16", (f"compute capability {capability[0]}.{capability[1]} has float16 but no "
                                            "bfloat16 tensor cores; Keras adds loss scaling")
        jit, why_jit = backend != "torch", "XLA fuses each step"
    else:
        policy, why = "float32", "on a CPU the course keeps float32, the precision its results were measured in"
        jit = backend == "jax"
        why_jit = "Keras compiles every JAX step with XLA" if jit else "XLA slowed TensorFlow's CPU kernels here"
    reason = f"{why}; {why_jit}"
    chosen = os.environ.get(PRECISION_VAR, "").strip()
    if chosen:
        if chosen not in POLICIES:
            raise ValueError(f"${PRECISION_VAR} must be one of {', '.join(POLICIES)}, got {chosen!r}")
        policy, reason = chosen, f"set by ${PRECISION_VAR}"
    forced = _flag(JIT_VAR)
    if forced is not None:
        jit = forced
        reason += f"; XLA set by ${JIT_VAR}"
    return Acceleration(policy, jit, device, reason)


def gpu_hint(backend: str, backend_sees_gpu: bool) -> str | None:
    """How to get the backend's GPU build, when the machine has a GPU the backend cannot see."""
    if backend_sees_gpu or not _nvidia_gpu_present():
        return None
    fixes = {
        "jax": "pip install -e '.[jax-cuda]'  (JAX's CUDA wheels)",
        "tensorflow": "pip install 'tensorflow[and-cuda]'  (TensorFlow's CUDA wheels, Linux)",
        "torch": "pip install torch  (the default Linux wheels include CUDA)",
    }
    fix = fixes.get(backend, "install the backend's GPU build")
    return f"this machine has an NVIDIA GPU but {backend} sees none (a CPU-only build?): {fix}"


JAX_CACHE_VAR = "CNNCOURSE_JAX_CACHE"


def jax_compilation_cache() -> str | None:
    """Keep JAX's compiled XLA programs on disk, so a program is compiled once, not once per model.

    On JAX, Keras compiles every training, evaluation and prediction step with XLA, and each
    new model is a new program to compile even when an identical one was compiled a moment
    ago: a notebook that trains the same network with two optimizers or seeds, or with the
    same layer shapes as another notebook, compiles it again (on 2 CPU cores a small convnet's
    train step takes 5-15 s, each weight initializer 1-3 s). JAX's persistent cache finds a
    program by a fingerprint of its XLA code, so every repeat is read back instead; a second
    run of a notebook is several times faster, and within one run identical programs are
    compiled once. Sets JAX's own variables unless the user set them: the folder
    (``$CNNCOURSE_JAX_CACHE``, default ``~/.cache/cnncourse/jax``; ``0`` turns caching off),
    entries from 0.5 s of compile time and, where the ``filelock`` package is installed (JAX needs
    it to evict), at most 2 GB, least recently used entries going first. Returns the folder, or
    ``None`` when off. Must run before JAX is imported.
    """
    chosen = os.environ.get(JAX_CACHE_VAR, "").strip()
    if chosen == "0":
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    from pathlib import Path

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = str(Path(chosen).expanduser() if chosen else base / "cnncourse" / "jax")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    import importlib.util

    if importlib.util.find_spec("filelock") is not None:  # without it JAX warns at every read of a capped cache
        os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 1024**3))
    return folder


def deterministic_xla() -> None:
    """Ask XLA for deterministic GPU kernels (JAX reads ``XLA_FLAGS`` once, when it starts)."""
    flag = "--xla_gpu_deterministic_ops=true"
    flags = os.environ.get("XLA_FLAGS", "")
    if flag not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()
