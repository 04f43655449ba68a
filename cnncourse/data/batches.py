"""Batches for ``model.fit``: a ``tf.data`` pipeline on TensorFlow, a ``keras.utils.PyDataset`` elsewhere."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


def _array_dataset_class() -> type:
    import keras

    class ArrayDataset(keras.utils.PyDataset):
        """Batches of NumPy arrays, reshuffled every epoch by a seeded generator.

        The backend-neutral counterpart of the ``tf.data`` pipeline: Keras feeds it to
        ``fit`` on JAX and PyTorch. ``augment`` (a Keras layer or model) runs on each batch
        with ``training=True``.
        """

        def __init__(self, x, y, batch_size, *, shuffle=True, augment=None, seed=0, **kwargs):
            super().__init__(**kwargs)
            self.x, self.y = x, y
            self.batch_size = batch_size
            self.shuffle = shuffle
            self.augment = augment
            self._rng = np.random.default_rng(seed)
            self._order = self._rng.permutation(len(x)) if shuffle else np.arange(len(x))

        def __len__(self) -> int:
            return math.ceil(len(self.x) / self.batch_size)

        def __getitem__(self, index: int):
            if not 0 <= index < len(self):
                raise IndexError(f"batch {index} out of range for {len(self)} batches")
            idx = np.sort(self._order[index * self.batch_size : (index + 1) * self.batch_size])
            xb, yb = self.x[idx], self.y[idx]
            if self.augment is not None:
                xb = self.augment(xb, training=True)
            return xb, yb

        def on_epoch_end(self) -> None:
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
):
    """Batches for ``model.fit``: a ``tf.data.Dataset`` on TensorFlow, a ``PyDataset`` elsewhere.

    On TensorFlow: slices → cache → shuffle (whole set, seeded, a new order every epoch) →
    batch → ``augment(batch, training=True)`` → prefetch, so the input side overlaps with the
    training step. Shuffling happens before batching, so batches differ between epochs.
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if augment is not None and not callable(augment):
        raise ValueError(f"augment must be None or a Keras layer/model (callable), got {type(augment).__name__}")
    import keras

    if keras.backend.backend() != "tensorflow":
        return _array_dataset_class()(x, y, batch_size, shuffle=shuffle, augment=augment, seed=seed)
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(lambda xb, yb: (augment(xb, training=True), yb), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)

