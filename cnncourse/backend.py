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

__all__ = ["device_kind", "gpu_names", "quiet_start", "silenced_stderr"]

LOG_LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"


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
