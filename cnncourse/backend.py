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
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator

__all__ = ["choose_backend", "device_kind", "gpu_hint", "gpu_names", "installed_backends", "quiet_start",
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


def deterministic_xla() -> None:
    """Ask XLA for deterministic GPU kernels (JAX reads ``XLA_FLAGS`` once, when it starts)."""
    flag = "--xla_gpu_deterministic_ops=true"
    flags = os.environ.get("XLA_FLAGS", "")
    if flag not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()
