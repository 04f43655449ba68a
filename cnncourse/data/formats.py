"""Parsing verified payloads: IDX files (MNIST, Fashion-MNIST) and CIFAR-10's pickled batches.

Only bytes that matched the manifest reach these functions. CIFAR-10 batches are pickles, so
they are unpickled by :class:`_ArrayUnpickler`, which can build nothing but NumPy arrays,
lists, dicts, strings and numbers: even a file that got past the checksum cannot run code.
"""

from __future__ import annotations

import io
import math
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def parse_idx(payload: bytes, path: Path) -> np.ndarray:
    """Parse an IDX file (big-endian header; only the unsigned-byte type the datasets use)."""
    if len(payload) < 4 or payload[:2] != b"\x00\x00" or payload[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {payload[:4]!r})")
    ndim = payload[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(payload[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(payload) != header + math.prod(shape):
        raise ValueError(f"{path}: IDX header says shape {shape} but the file holds {len(payload) - header} bytes")
    return np.frombuffer(payload, dtype=np.uint8, offset=header).reshape(shape)


def _safe_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError("object arrays are not allowed in dataset pickles")
    return dtype


class _ArrayUnpickler(pickle.Unpickler):
    """Builds only what the CIFAR-10 batches contain: dicts, lists, bytes, ints, uint8 arrays.

    Defence in depth: files are verified before they reach this, but even a file that got
    past the checksum cannot name any other callable (``os.system``, ``eval`` ...).
    ``_codecs.encode`` is how Python 3 writes bytes in protocol-2 pickles; it only encodes text.
    """

    def find_class(self, module: str, name: str) -> Any:
        if name == "_reconstruct" and module in {"numpy.core.multiarray", "numpy._core.multiarray"}:
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own array reconstructor
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return _safe_dtype
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(f"dataset pickles may not reference {module}.{name}")


def unpickle(payload: bytes, path: Path) -> dict[Any, Any]:
    try:
        obj = _ArrayUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not a CIFAR-10 batch: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a CIFAR-10 batch (a {type(obj).__name__}, not a dict)")
    return obj


def cifar_batch(obj: Mapping[Any, Any], path: Path) -> tuple[np.ndarray, np.ndarray]:
    data, labels = obj.get(b"data"), obj.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (N, 3072)")
    labels_arr = np.asarray(labels, dtype=np.int64)
    if labels_arr.shape != (data.shape[0],):
        raise ValueError(f"{path}: {labels_arr.shape} labels for {data.shape[0]} images")
    # each row is 1024 red, then 1024 green, then 1024 blue values, each plane row-major
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels_arr.astype(np.uint8).reshape(-1, 1)
