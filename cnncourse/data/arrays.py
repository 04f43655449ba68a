"""Whole datasets as NumPy arrays in Keras' layout, verified before parsing, parsed once per process."""

from __future__ import annotations

import warnings

import numpy as np

from cnncourse.data import checksums, download, formats, lookup, registry
from cnncourse.data.errors import DownloadError

_Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
_memo: dict[tuple[str, str], _Arrays] = {}


def clear_cache() -> None:
    """Forget the arrays parsed in this process (the next :func:`load` reads the files again)."""
    _memo.clear()
    registry.clear_memo()


def _verified_payloads(name: str) -> tuple[dict[str, bytes], dict[str, object]]:
    """The payload and path of each file: the first copy that verifies, or the error of the first copy.

    Copies refused on the way (a corrupt or unreadable one earlier in the search path) are
    left alone and named in a warning, so that nobody trains on a different file than they
    think; a copy merely unverifiable beside a verified ``.gz`` (torchvision's layout) is not.
    """
    payloads, paths = {}, {}
    for filename in registry.dataset(name)["files"]:
        path, payload, failures = checksums.resolve(name, filename)
        if path is None:
            if not failures:  # removed since it was found
                raise lookup.not_found(name, [filename], None)
            raise checksums.failure(name, failures)
        for bad, exc in failures:
            if exc.status != "unverifiable":
                warnings.warn(
                    f"{bad}: skipped ({exc.status}: {str(exc).splitlines()[0]}); using {path} instead. "
                    f"The skipped copy was left alone: move it away or fix it to silence this warning.",
                    stacklevel=4,
                )
        payloads[filename], paths[filename] = payload, path
    return payloads, paths  # type: ignore[return-value]


def _load_readonly(name: str, download_missing: bool) -> _Arrays:
    registry.check_name(name)
    key = (name, str(registry.manifest_path()))
    if key in _memo:
        return _memo[key]
    d = registry.dataset(name)
    missing = [f for f, p in lookup.where(name).items() if p is None]
    if missing:
        reason: BaseException | None = None
        if download_missing:
            try:
                download.fetch(name)
            except DownloadError as exc:
                reason = exc
        missing = [f for f, p in lookup.where(name).items() if p is None]
        if missing:
            raise lookup.not_found(name, missing, reason) from reason

    payloads, paths = _verified_payloads(name)
    num_classes = len(d["class_names"])
    if d["format"] == "idx":
        arrays = {d["files"][f]["role"]: formats.parse_idx(payloads[f], paths[f]) for f in payloads}  # type: ignore[arg-type]
        result = ((arrays["train_images"], arrays["train_labels"]), (arrays["test_images"], arrays["test_labels"]))
        for x, y in result:
            if x.ndim != 3 or x.shape[0] != y.shape[0] or y.ndim != 1:
                raise ValueError(f"{name}: images {x.shape} and labels {y.shape} do not pair up")
    else:  # cifar_pickle (the manifest's formats are checked when it is read)
        train, test = [], []
        for f, payload in payloads.items():
            role, p = d["files"][f]["role"], paths[f]
            obj = formats.unpickle(payload, p)  # type: ignore[arg-type]
            if role == "meta":
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in obj.get(b"label_names", [])]
                if names != list(d["class_names"]):
                    raise ValueError(f"{p}: label names {names} differ from the manifest's {d['class_names']}")
            else:
                (train if role == "train" else test).append(formats.cifar_batch(obj, p))  # type: ignore[arg-type]
        result = (
            (np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])),
            (np.concatenate([b[0] for b in test]), np.concatenate([b[1] for b in test])),
        )
    for x, y in result:
        if tuple(x.shape[1:3]) != tuple(d["image_shape"][:2]):
            raise ValueError(f"{name}: images of shape {x.shape[1:]} but the manifest says {d['image_shape']}")
        if y.size and int(y.max()) >= num_classes:
            raise ValueError(f"{name}: label {int(y.max())} out of range for {num_classes} classes")
        x.flags.writeable = False
        y.flags.writeable = False
    _memo[key] = result
    return result


def load(name: str, *, download: bool = True) -> _Arrays:
    """``((x_train, y_train), (x_test, y_test))`` as NumPy uint8 arrays in Keras' layout.

    mnist / fashion_mnist: x ``(N, 28, 28)``, y ``(N,)``; cifar10: x ``(N, 32, 32, 3)``,
    y ``(N, 1)`` — the same as ``keras.datasets.<name>.load_data()``. Files are verified
    before parsing and parsed once per process; each call returns fresh, writable copies.
    ``download=True`` fetches files found nowhere (:func:`~cnncourse.data.fetch`);
    ``download=False`` never touches the network. A copy that fails its checksum or cannot
    be read is never deleted: the error names it and says how to fix it.
    """
    (x_tr, y_tr), (x_te, y_te) = _load_readonly(name, download)
    return (x_tr.copy(), y_tr.copy()), (x_te.copy(), y_te.copy())
