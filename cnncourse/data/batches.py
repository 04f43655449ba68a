"""Batches for ``model.fit``: a ``tf.data`` pipeline on TensorFlow, a ``keras.utils.PyDataset`` elsewhere.

On TensorFlow, ``tf.data`` shuffles, batches, augments (in its own threads, in graph mode) and
prefetches. Other backends get :class:`ArrayDataset` (built by :func:`pipeline`), which does
the same with Keras' own tools:

* **prefetch**: ``workers`` threads prepare the next batches (``max_queue_size`` of them) while
  the model trains on this one — Keras' ``PyDataset`` runs them through its ordered enqueuer;
* **compiled augmentation**: on JAX the augmentation layers run as *one* ``jax.jit``-compiled
  call per batch (:class:`CompiledAugment`), not operation by operation: one compile per batch
  shape, then a single XLA program, as fast as the same layers inside a compiled model;
* **determinism**: every batch's random draws come from the seed, the epoch and the batch's
  index alone (the augmentation's seed-generator states are *set* for each batch, not carried
  from the previous one), so the worker threads may prepare batches in any order and a run is
  still the same every time.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

SEED_STATE = "seed_generator_state"  # the name Keras gives a SeedGenerator's state variable


def default_workers() -> int:
    """Threads that prepare batches: 2 (enough to hide gathering and augmenting on a CPU), 1 on one core."""
    return max(1, min(2, os.cpu_count() or 1))


class CompiledAugment:
    """A Keras augmentation layer (or ``Sequential``) as one compiled, seeded function of a batch.

    ``augment(x, seed, counter)`` returns the layer's ``training=True`` output for the batch
    ``x``, with every ``SeedGenerator`` of the layer started from ``(seed + k, counter)`` (``k``
    numbers the generators), so equal arguments give equal output in any thread and order. On
    JAX the call is ``jax.jit`` of the layer's ``stateless_call``: the whole augmentation is one
    XLA program (Keras' preprocessing layers that cannot be compiled, such as ``RandomCrop``,
    raise here instead of slowing down silently). Elsewhere the layer is called eagerly with the
    same seeding. Other non-trainable variables of the layer (statistics of a ``Normalization``,
    say) are passed through unchanged.
    """

    def __init__(self, layer: Any, sample: np.ndarray) -> None:
        import keras

        if not callable(layer):
            raise ValueError(f"augment must be a Keras layer or model, got {type(layer).__name__}")
        self.layer = layer
        if not getattr(layer, "built", True):
            layer.build((None, *np.shape(sample)[1:]))
        self._variables = list(getattr(layer, "non_trainable_variables", []))
        self._seeded = [i for i, v in enumerate(self._variables) if v.path.split("/")[-1] == SEED_STATE]
        self._trainable = [v.value for v in getattr(layer, "trainable_variables", [])]
        self.compiled = keras.backend.backend() == "jax" and isinstance(layer, keras.layers.Layer)
        self._lock = threading.Lock()  # the eager path sets shared seed states, then calls: one thread at a time
        if self.compiled:
            import inspect

            import jax

            # Layer.__call__ drops ``training`` for a layer whose call() has no such argument
            # (Rescaling, say); stateless_call passes it on, so ask only where it is understood.
            kwargs = {"training": True} if "training" in inspect.signature(layer.call).parameters else {}

            def call(states, x):
                out, _ = layer.stateless_call(self._trainable, states, x, **kwargs)
                return out

            self._call = jax.jit(call)

    def _states(self, seed: int, counter: int) -> list:
        states = [v.value for v in self._variables]
        for k, i in enumerate(self._seeded):
            states[i] = np.array([(seed + k) % 2**32, counter % 2**32], dtype=np.uint32)
        return states

    def __call__(self, x, seed: int, counter: int):
        if self.compiled:
            return self._call(self._states(seed, counter), x)
        with self._lock:
            for k, i in enumerate(self._seeded):
                self._variables[i].assign(np.array([(seed + k) % 2**32, counter % 2**32], dtype=np.uint32))
            return self.layer(x, training=True)


def _array_dataset_class() -> type:
    import keras

    class ArrayDataset(keras.utils.PyDataset):
        """Batches of NumPy arrays, reshuffled every epoch by a seeded generator, prefetched by threads.

        The backend-neutral counterpart of the ``tf.data`` pipeline: Keras feeds it to ``fit``
        on JAX and PyTorch. ``augment`` (a Keras layer or model) runs on each batch with
        ``training=True``, compiled on JAX (:class:`CompiledAugment`). ``workers`` threads (default
        :func:`default_workers`) prepare up to ``max_queue_size`` batches ahead.
        """

        def __init__(self, x, y, batch_size, *, shuffle=True, augment=None, seed=0, workers=None,
                     max_queue_size=8, **kwargs):
            workers = default_workers() if workers is None else workers
            super().__init__(workers=workers, max_queue_size=max_queue_size, **kwargs)
            self.x, self.y = x, y
            self.batch_size = batch_size
            self.shuffle = shuffle
            self.seed = seed
            self.augment = None if augment is None else CompiledAugment(augment, x[:1])
            self._rng = np.random.default_rng(seed)
            self._order = self._rng.permutation(len(x)) if shuffle else np.arange(len(x))
            self.epoch = 0

        def __len__(self) -> int:
            return math.ceil(len(self.x) / self.batch_size)

        def __getitem__(self, index: int):
            if not 0 <= index < len(self):
                raise IndexError(f"batch {index} out of range for {len(self)} batches")
            idx = np.sort(self._order[index * self.batch_size : (index + 1) * self.batch_size])
            xb, yb = self.x[idx], self.y[idx]
            if self.augment is not None:
                xb = self.augment(xb, self.seed, self.epoch * len(self) + index)
            return xb, yb

        def on_epoch_end(self) -> None:
            self.epoch += 1
            if self.shuffle:
                self._order = self._rng.permutation(len(self.x))

    return ArrayDataset


def pipeline(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = True,
    augment: Callable[..., Any] | None = None,
    seed: int = 0,
    workers: int | None = None,
):
    """Batches for ``model.fit``: a ``tf.data.Dataset`` on TensorFlow, a ``PyDataset`` elsewhere.

    On TensorFlow: slices → cache → shuffle (whole set, seeded, a new order every epoch) →
    batch → ``augment(batch, training=True)`` → prefetch, so the input side overlaps with the
    training step. Shuffling happens before batching, so batches differ between epochs.
    Elsewhere: :class:`ArrayDataset` with the same order of steps, ``workers`` prefetching
    threads and, on JAX, the augmentation compiled (see the module docstring).
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if augment is not None and not callable(augment):
        raise ValueError(f"augment must be None or a Keras layer/model (callable), got {type(augment).__name__}")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers must be None or a positive integer, got {workers!r}")
    import keras

    if keras.backend.backend() != "tensorflow":
        return _array_dataset_class()(x, y, batch_size, shuffle=shuffle, augment=augment, seed=seed, workers=workers)
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(lambda xb, yb: (augment(xb, training=True), yb), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
