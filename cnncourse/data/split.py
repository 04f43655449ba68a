"""Subsets ready for a model: class-balanced, seeded, float32 NHWC in [0, 1], with a validation set."""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np

from cnncourse.data import arrays, registry


@dataclasses.dataclass(frozen=True, repr=False)
class Split:
    """A train / (validation) / test split ready for a model: float32 NHWC images in [0, 1], int32 labels.

    ``x_val`` / ``y_val`` are a validation set carved out of the *training* data
    (``load_split(..., validation_size=n)``), or ``None``: choices such as a learning rate, a
    number of epochs or early stopping are made on it, so that the test set is used once, to
    measure the final model.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError("Split needs both x_val and y_val, or neither")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def has_validation(self) -> bool:
        return self.x_val is not None and len(self.x_val) > 0

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the name, shapes, dtypes and bytes of every array.

        Result caches key on it, so numbers computed on one dataset (or subset, or size) are
        never served for another that merely has the same sizes.
        """
        digest = hashlib.sha256(self.name.encode())
        for array in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            if array is None:
                digest.update(b"none")
                continue
            array = np.ascontiguousarray(array)
            digest.update(f"{array.shape}{array.dtype.str}".encode())
            digest.update(memoryview(array).cast("B"))
        return digest.hexdigest()[:16]

    def __repr__(self) -> str:
        val = f"validation {self.x_val.shape[0]:,}, " if self.x_val is not None else ""
        return (
            f"Split({self.name!r}: train {self.x_train.shape[0]:,}, {val}test {self.x_test.shape[0]:,}, "
            f"input_shape={self.input_shape}, {self.num_classes} classes)"
        )


def balanced_indices(labels: np.ndarray, size: int | None, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced random subset of ``size`` items, in dataset order.

    Each class gets ``size // k`` items (the first ``size % k`` classes of a seeded
    permutation one more); a class with too few items gives what it has and the rest is
    drawn from the others. ``None`` or ``size == len(labels)`` selects everything.
    """
    labels = np.asarray(labels).reshape(-1)
    n = labels.shape[0]
    if size is None or size == n:
        return np.arange(n)
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or not 1 <= size <= n:
        raise ValueError(f"subset size must be None or an integer in [1, {n}], got {size!r}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    quota = np.full(len(classes), size // len(classes))
    quota[rng.permutation(len(classes))[: size % len(classes)]] += 1
    chosen, leftovers = [], []
    for c, q in zip(classes, quota):
        members = rng.permutation(np.flatnonzero(labels == c))
        chosen.append(members[:q])
        leftovers.append(members[q:])
    picked = np.concatenate(chosen)
    short = size - picked.size
    if short > 0:
        pool = np.concatenate(leftovers)
        picked = np.concatenate([picked, rng.choice(pool, size=short, replace=False)])
    return np.sort(picked)


def _resize_or_pad(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (centred) to a larger square size; bilinear, antialiased resize to a smaller one."""
    h, w = x.shape[1:3]
    if (h, w) == (size, size):
        return x
    if size > h and size > w:
        top, left = (size - h) // 2, (size - w) // 2
        out = np.zeros((x.shape[0], size, size, x.shape[3]), dtype=x.dtype)
        out[:, top : top + h, left : left + w] = x
        return out
    import keras

    chunks = [
        keras.ops.convert_to_numpy(keras.ops.image.resize(x[i : i + 4096], (size, size), antialias=True))
        for i in range(0, x.shape[0], 4096)
    ]
    return np.clip(np.concatenate(chunks), 0.0, 1.0).astype(np.float32)


def _prepare(x: np.ndarray, image_size: int | None, channels: int | None) -> np.ndarray:
    x = x.astype(np.float32) / np.float32(255.0)
    if x.ndim == 3:
        x = x[..., None]
    if channels is not None and channels != x.shape[-1]:
        if x.shape[-1] == 1:  # grey → RGB: the same value in each channel
            x = np.repeat(x, channels, axis=-1)
        else:  # RGB → grey with ITU-R BT.601 luma weights
            x = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    if image_size is not None:
        x = _resize_or_pad(x, image_size)
    return np.ascontiguousarray(x)


def load_split(
    name: str,
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
    channels: int | None = None,
    download: bool = True,
    validation_size: int = 0,
) -> Split:
    """A (sub)set of ``name`` ready for training: float32 NHWC in [0, 1], int32 labels ``(N,)``.

    ``train_size`` / ``test_size``: ``None`` for the whole split, else a class-balanced subset
    chosen by ``seed`` (the same seed gives the same images). ``image_size``: a larger size
    zero-pads the images centred (28×28 → 32×32 adds 2 black pixels on every side, the
    LeNet-5 convention, which keeps every pixel value); a smaller one resizes them (bilinear,
    antialiased). ``channels``: 3 repeats a grey channel, 1 converts RGB to luma.
    ``validation_size``: that many training images (class-balanced, chosen by ``seed``) are
    set aside first as ``x_val`` / ``y_val``; ``train_size`` is then drawn from the rest, so
    the two never share an image. 0 (the default) keeps no validation set.
    """
    registry.check_name(name)
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"channels must be None, 1 or 3, got {channels!r}")
    if image_size is not None and (not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 8):
        raise ValueError(f"image_size must be None or an integer >= 8, got {image_size!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(validation_size, bool) or not isinstance(validation_size, (int, np.integer)) or validation_size < 0:
        raise ValueError(f"validation_size must be an integer >= 0, got {validation_size!r}")
    (x_tr, y_tr), (x_te, y_te) = arrays._load_readonly(name, download)
    labels = y_tr.reshape(-1)
    pool = np.arange(labels.shape[0])
    i_val = None
    if validation_size:
        if validation_size >= labels.shape[0]:
            raise ValueError(f"validation_size must leave training images: {validation_size} >= {labels.shape[0]:,}")
        i_val = balanced_indices(labels, int(validation_size), seed + 2_000_003)
        pool = np.setdiff1d(pool, i_val, assume_unique=True)
    i_tr = pool[balanced_indices(labels[pool], train_size, seed)]
    i_te = balanced_indices(y_te, test_size, seed + 1_000_003)
    return Split(
        name=name,
        x_train=_prepare(x_tr[i_tr], image_size, channels),
        y_train=y_tr.reshape(-1)[i_tr].astype(np.int32),
        x_test=_prepare(x_te[i_te], image_size, channels),
        y_test=y_te.reshape(-1)[i_te].astype(np.int32),
        class_names=tuple(registry.dataset(name)["class_names"]),
        x_val=None if i_val is None else _prepare(x_tr[i_val], image_size, channels),
        y_val=None if i_val is None else labels[i_val].astype(np.int32),
    )


