"""cnncourse: the helper package behind the CNN course notebooks.

Public entry points: :func:`setup` (seed everything, print one environment line),
:func:`profile` (the active run profile) and ``__version__``. Everything else lives in
submodules with names that say what they hold (``cnncourse.data``, ``cnncourse.models``,
``cnncourse.experiments.train`` ...). Importing the package does not import Keras, so command-line tools
that only look at files stay fast.
"""

from __future__ import annotations

import os
import platform
import random

from cnncourse import checks
from cnncourse.backend import choose_backend, deterministic_xla, gpu_hint, gpu_names, jax_compilation_cache, quiet_start
from cnncourse.profiles import ENV_VAR, Experiment, Profile, profile

choose_backend()  # before Keras is imported: an installed backend where TensorFlow is absent
quiet_start()  # before anything imports TensorFlow: its start-up log lines are noise in a notebook
if os.environ.get("CNNCOURSE_DETERMINISTIC", "1") != "0":
    deterministic_xla()  # JAX reads XLA_FLAGS once, at start-up; benchmarks set CNNCOURSE_DETERMINISTIC=0
jax_compilation_cache()  # JAX compiles each XLA program once, not once per model and run

__version__ = "0.1.0"
__all__ = ["Experiment", "Profile", "__version__", "device_description", "environment_line", "profile", "setup"]


def device_description() -> str:
    """A short name for the device Keras will compute on (``GPU: NVIDIA H100 ...`` or ``CPU ×2``)."""
    names = gpu_names()
    if names:
        return "GPU: " + ", ".join(names)
    return f"CPU ×{os.cpu_count()}"


def environment_line(seed: int | None = None) -> str:
    """One line naming versions, device and profile, for the top of every notebook and log."""
    import keras

    backend = keras.backend.backend()
    backend_module = __import__(backend)
    parts = [
        f"cnncourse {__version__}",
        f"Python {platform.python_version()}",
        f"Keras {keras.__version__} ({backend} {getattr(backend_module, '__version__', '?')})",
        f"device: {device_description()}",
        f"profile: {profile().name}",
    ]
    if seed is not None:
        parts.append(f"seed: {seed}")
    return " · ".join(parts)


def setup(
    seed: int = 0, profile_name: str | None = None, *, deterministic: bool = True, quiet: bool = False
) -> Profile:
    """Seed Python, NumPy and the Keras backend, make ops deterministic, report the environment.

    Every notebook calls this once, at the top, so that a re-run gives the same numbers (the
    notebook tests compare them). ``profile_name`` (a notebook's ``PROFILE`` parameter)
    overrides ``$CNNCOURSE_PROFILE`` for this process, so later ``cnncourse.profile()`` calls
    agree with it; ``None`` keeps the environment's choice. Returns the active :class:`Profile`.

    Determinism costs a little speed on GPUs; pass ``deterministic=False`` for benchmarks.
    On JAX, CPU execution is deterministic already; on a GPU, ``import cnncourse`` has already
    asked XLA for deterministic kernels (``XLA_FLAGS``, read once when JAX starts; set
    ``CNNCOURSE_DETERMINISTIC=0`` before the import to skip it). When the machine has a GPU
    that the backend cannot see (a CPU-only build), one more line says how to get the GPU build.
    """
    seed = checks.integer("seed", seed, minimum=0)
    if profile_name is not None:
        os.environ[ENV_VAR] = profile(profile_name).name  # validates the name first
    import keras

    random.seed(seed)
    keras.utils.set_random_seed(seed)  # Python, NumPy and the backend's global generator
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    active = profile()
    if not quiet:
        print(environment_line(seed))
        from cnncourse.profiles import gpu_available

        hint = gpu_hint(keras.backend.backend(), gpu_available())
        if hint:
            print(hint)
    return active
