"""The course's datasets: find, verify, download, parse, subset and batch them.

Why not ``keras.datasets``? It downloads on every fresh machine (CI here has no network),
caches in ``~/.keras`` without telling the user where, and unpickles CIFAR-10 without
checking what it unpickles. This module looks for the files in the places a user or a
distribution puts them, checks every file against a manifest of digests *before* parsing
it, downloads only when nothing is found, and says exactly what to do when it cannot.

Where files are looked for, in order (a dataset may sit in a sub-folder named like
``fashion-mnist/`` or ``fashion_mnist/``, or directly in the directory):

1. each directory of ``$CNNCOURSE_DATA`` (``os.pathsep``-separated);
2. the cache: ``<checkout>/data/`` when the package runs from a source checkout, else
   ``$XDG_CACHE_HOME/cnncourse`` (``~/.cache/cnncourse``);
3. system locations: ``/usr/share/datasets`` (Debian's ``dataset-fashion-mnist``) and
   Keras' own cache ``~/.keras/datasets``.

The manifest (``datasets.json`` beside this file, or ``$CNNCOURSE_MANIFEST``) records the
digest of each file's *decompressed payload*, so a recompressed copy of the same data is
accepted and anything else is refused. CIFAR-10 batches are pickles: they are unpickled only
after their digest matched, and then with an unpickler that can build nothing but NumPy
arrays, lists, dicts, strings and numbers.

Public API: :func:`load`, :func:`load_split` (→ :class:`Split`), :func:`available`,
:func:`pipeline`, :func:`where`, :func:`verify`, :func:`fetch`, :func:`info`,
:data:`CLASS_NAMES`, and :func:`cli` behind ``python -m cnncourse data``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import math
import os
import pickle
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

NAMES: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10")
DATA_ENV_VAR = "CNNCOURSE_DATA"
MANIFEST_ENV_VAR = "CNNCOURSE_MANIFEST"
MANIFEST_FILE = Path(__file__).with_name("datasets.json")
# System-wide places where a distribution or another library leaves the same files.
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"), Path("~/.keras/datasets").expanduser())
DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20
_TEMP_PREFIX = ".cnncourse-download-"


# ----------------------------------------------------------------------------- errors
class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is in none of the searched directories and could not be downloaded."""


class ChecksumError(ValueError):
    """A file's bytes do not match the manifest (or the manifest has no digest to check them)."""


class DownloadError(OSError):
    """The network request for a dataset file failed (no network, HTTP error, dropped stream)."""


def _fix_text(name: str) -> str:
    lines = [
        f"  - with a network: python -m cnncourse data fetch {name}",
        f"  - or copy the files into one of the searched directories (a sub-folder named like "
        f"{', '.join(repr(f + '/') for f in _dataset(name)['folders'][:2])} works too)",
        f"  - or point ${DATA_ENV_VAR} at a directory that holds them "
        f"(several directories separated by {os.pathsep!r})",
    ]
    if name == "fashion_mnist":
        lines.insert(1, "  - on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist")
    return "\n".join(lines)


# --------------------------------------------------------------------------- manifest
_manifest_memo: dict[str, dict[str, Any]] = {}


def manifest() -> dict[str, Any]:
    """The checksum manifest as a dict (``$CNNCOURSE_MANIFEST`` when set, else the shipped one).

    Every other function reads the registry through this one, so tests (and a user with a
    private mirror) can substitute a manifest of their own.
    """
    path = Path(os.environ.get(MANIFEST_ENV_VAR) or MANIFEST_FILE)
    key = str(path.resolve())
    if key not in _manifest_memo:
        with open(path, encoding="utf-8") as fh:
            _manifest_memo[key] = json.load(fh)
    return _manifest_memo[key]


def _check_name(name: str) -> str:
    known = tuple(manifest()["datasets"])
    if not isinstance(name, str) or name not in known:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(known)}")
    return name


def _dataset(name: str) -> dict[str, Any]:
    return manifest()["datasets"][_check_name(name)]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the course states about a dataset: shapes, sizes, classes, origin."""

    name: str
    title: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    train_size: int
    test_size: int
    homepage: str
    citation: str
    files: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def info(name: str) -> DatasetInfo:
    """The registry entry of ``name`` (``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``)."""
    d = _dataset(name)
    return DatasetInfo(
        name=name,
        title=d["title"],
        class_names=tuple(d["class_names"]),
        image_shape=tuple(d["image_shape"]),  # type: ignore[arg-type]
        train_size=int(d["train_size"]),
        test_size=int(d["test_size"]),
        homepage=d["homepage"],
        citation=d["citation"],
        files=tuple(d["files"]),
    )


def _shipped_class_names() -> dict[str, tuple[str, ...]]:
    with open(MANIFEST_FILE, encoding="utf-8") as fh:
        shipped = json.load(fh)["datasets"]
    return {n: tuple(shipped[n]["class_names"]) for n in NAMES}


# The class names of each dataset, in label order (from the shipped manifest).
CLASS_NAMES: Mapping[str, tuple[str, ...]] = MappingProxyType(_shipped_class_names())


# ---------------------------------------------------------------------------- lookup
def cache_dir() -> Path:
    """Where downloads go: ``<checkout>/data`` in a source checkout, else the user cache."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout / "data"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cnncourse"


def search_dirs() -> list[Path]:
    """The root directories searched, in order: ``$CNNCOURSE_DATA``, the cache, system dirs."""
    roots = [Path(p).expanduser() for p in os.environ.get(DATA_ENV_VAR, "").split(os.pathsep) if p.strip()]
    roots.append(cache_dir())
    roots.extend(SYSTEM_DIRS)
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def _candidate_dirs(name: str) -> list[Path]:
    folders = _dataset(name)["folders"]
    out: list[Path] = []
    for root in search_dirs():
        out.extend(root / f for f in folders)
        out.append(root)
    return out


def _find(name: str, filename: str) -> Path | None:
    for directory in _candidate_dirs(name):
        for candidate in (directory / filename, directory / (filename + ".gz")):
            if candidate.is_file():
                return candidate
    return None


def where(name: str) -> dict[str, Path | None]:
    """For each file of ``name``: the path it would be read from, or ``None`` if absent."""
    return {f: _find(name, f) for f in _dataset(name)["files"]}


def available(name: str) -> bool:
    """Whether every file of ``name`` is present somewhere (nothing is downloaded or hashed)."""
    return all(p is not None for p in where(name).values())


# ---------------------------------------------------------------------- verification
def _digests(data: bytes, algorithms: Iterable[str]) -> dict[str, str]:
    out = {}
    for algo in algorithms:
        h = hashlib.new(algo, usedforsecurity=False) if algo == "md5" else hashlib.new(algo)
        h.update(data)
        out[algo] = h.hexdigest()
    return out


def _matches(data: bytes, expected: Mapping[str, str]) -> tuple[bool, dict[str, str]]:
    actual = _digests(data, expected)
    return all(actual[a] == expected[a].lower() for a in expected), actual


def _read_verified(path: Path, entry: Mapping[str, Any], manifest_path: str) -> bytes:
    """Return the decompressed payload of ``path``, only if its bytes match the manifest.

    The bytes that are checked are the bytes that are returned (no second read a file could
    change in between). Accepted: the payload digest (any compression), or, when the manifest
    has no payload digest for this file, the digest of the compressed file as published.
    """
    raw = path.read_bytes()
    compressed = raw[:2] == b"\x1f\x8b"
    try:
        payload = gzip.decompress(raw) if compressed else raw
    except (OSError, EOFError) as exc:  # truncated or corrupt gzip stream
        raise ChecksumError(
            f"{path}: not a readable gzip file ({exc}); the file is truncated or corrupt.\n"
            f"Fix: delete it and fetch it again (python -m cnncourse data fetch), or copy a good copy."
        ) from None
    payload_digests = entry.get("payload") or {}
    archive_digests = entry.get("archive") or {}
    if payload_digests:
        ok, actual = _matches(payload, payload_digests)
        expected, what = payload_digests, "decompressed payload" if compressed else "file"
    elif compressed and archive_digests:
        ok, actual = _matches(raw, archive_digests)
        expected, what = archive_digests, "compressed file as published"
    else:
        sha = _digests(payload, ["sha256"])["sha256"]
        kinds = "the published .gz (archive digest)" if archive_digests else "nothing"
        raise ChecksumError(
            f"{path}: cannot be verified: the manifest records no digest of its decompressed payload "
            f"(only of {kinds}), so this copy is not parsed.\n"
            f"Fix: use the file exactly as published ({entry.get('url', 'see the manifest')}), or, if you trust "
            f"this copy, add \"payload\": {{\"sha256\": \"{sha}\"}} to its entry in {manifest_path}."
        )
    if not ok:
        exp = ", ".join(f"{a} {v}" for a, v in expected.items())
        act = ", ".join(f"{a} {v}" for a, v in actual.items())
        raise ChecksumError(
            f"{path}: checksum mismatch of the {what}: expected {exp}, got {act}. The file is corrupt, "
            f"truncated or a different version; it was not parsed.\n"
            f"Fix: delete or move it away and run `python -m cnncourse data fetch` with a network, or copy a "
            f"good copy in its place. If you know this copy is good, add its digest to {manifest_path}."
        )
    return payload


@dataclasses.dataclass(frozen=True)
class FileCheck:
    """The outcome of checking one file: ``status`` is verified | missing | mismatch | unverifiable."""

    dataset: str
    file: str
    path: Path | None
    status: str
    detail: str = ""
    sha256: str | None = None  # of the decompressed payload, when it was read

    @property
    def ok(self) -> bool:
        return self.status == "verified"


def _manifest_path() -> str:
    return os.environ.get(MANIFEST_ENV_VAR) or str(MANIFEST_FILE)


def verify(name: str) -> list[FileCheck]:
    """Check every file of ``name`` that is present against the manifest; never raises for data.

    Returns one :class:`FileCheck` per file (missing files included), so a report can list
    all problems at once. The payload's sha256 is reported for files that were read, which is
    how a maintainer adds a digest the manifest lacks.
    """
    checks = []
    for filename, path in where(name).items():
        entry = _dataset(name)["files"][filename]
        if path is None:
            checks.append(FileCheck(name, filename, None, "missing", "not found in any searched directory"))
            continue
        try:
            payload = _read_verified(path, entry, _manifest_path())
        except ChecksumError as exc:
            status = "unverifiable" if "cannot be verified" in str(exc) else "mismatch"
            checks.append(FileCheck(name, filename, path, status, str(exc)))
            continue
        sha = _digests(payload, ["sha256"])["sha256"]
        checks.append(FileCheck(name, filename, path, "verified", "", sha))
    return checks


# -------------------------------------------------------------------------- download
def _urlopen(url: str, timeout: float):  # a seam for tests; urllib handles http(s) and file://
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - URLs come from the manifest


def _download_to_temp(url: str, directory: Path) -> Path:
    """Stream ``url`` into a temp file in ``directory``; on any failure remove it and raise."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            with _urlopen(url, DOWNLOAD_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
                written = 0
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    written += len(chunk)
        if length is not None and length.isdigit() and int(length) != written:
            raise DownloadError(f"{url}: download truncated ({written} of {length} bytes)")
        return tmp
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (urllib.error.URLError, OSError)) and not isinstance(exc, DownloadError):
            raise DownloadError(f"{url}: download failed: {exc}") from exc
        raise


def _install(tmp: Path, final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)  # atomic on one file system: readers see the old state or the new
    return final


def _write_atomic(data: bytes, final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".part", dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return _install(Path(tmp_name), final)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _fetch_idx_file(name: str, filename: str, entry: Mapping[str, Any]) -> Path:
    target_dir = cache_dir() / _dataset(name)["folders"][0]
    url = entry["url"]
    tmp = _download_to_temp(url, cache_dir())  # same file system as target_dir: the rename is atomic
    try:
        _read_verified(tmp, entry, _manifest_path())
    except ChecksumError as exc:
        tmp.unlink(missing_ok=True)
        raise ChecksumError(
            f"downloaded {url} for {filename} does not match the manifest and was discarded "
            f"(nothing was written to {target_dir}).\n{exc}\n"
            f"Fix: try again later; if it persists the mirror serves different data: report it."
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    suffix = ".gz" if url.endswith(".gz") else ""
    return _install(tmp, target_dir / (filename + suffix))


def _fetch_tar_members(name: str, missing: Sequence[str]) -> None:
    d = _dataset(name)
    archive = d["archive"]
    target_dir = cache_dir() / d["folders"][0]
    tmp = _download_to_temp(archive["url"], cache_dir())
    try:
        ok, actual = _matches(tmp.read_bytes(), archive["digests"])
        if not ok:
            raise ChecksumError(
                f"downloaded {archive['url']} does not match the manifest (expected "
                f"{archive['digests']}, got {actual}) and was discarded; nothing was written to {target_dir}.\n"
                f"Fix: try again later; if it persists the mirror serves different data: report it."
            )
        payloads: dict[str, bytes] = {}
        with tarfile.open(tmp, "r:*") as tar:
            for filename in missing:
                member = tar.getmember(f"{archive['member_dir']}/{filename}")
                handle = tar.extractfile(member)
                if handle is None:
                    raise ChecksumError(f"{archive['url']}: member {member.name} is not a regular file")
                data = handle.read()
                ok, actual = _matches(data, d["files"][filename]["payload"])
                if not ok:
                    raise ChecksumError(
                        f"{archive['url']}: member {filename} does not match the manifest "
                        f"(got {actual}); nothing was written to {target_dir}."
                    )
                payloads[filename] = data
        for filename, data in payloads.items():  # all verified: only now write anything
            _write_atomic(data, target_dir / filename)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(name: str, *, force: bool = False) -> dict[str, Path]:
    """Download the files of ``name`` that are found nowhere into the cache; return all paths.

    Each download goes to a temp file in the cache, is verified, and only then renamed into
    place, so an interrupted, truncated or tampered download never lands in the cache.
    ``force=True`` downloads even files found elsewhere (the cache copy then wins only if no
    ``$CNNCOURSE_DATA`` copy exists).
    """
    d = _dataset(name)
    found = where(name)
    missing = [f for f, p in found.items() if p is None or force]
    if missing:
        if d["format"] == "cifar_pickle":
            _fetch_tar_members(name, missing)
        else:
            for filename in missing:
                _fetch_idx_file(name, filename, d["files"][filename])
    paths = where(name)
    return {f: p for f, p in paths.items() if p is not None}


def _not_found(name: str, missing: Sequence[str], reason: BaseException | None) -> DatasetNotFoundError:
    dirs = "\n".join(f"  {p}" for p in _candidate_dirs(name))
    why = f"\nThe download failed: {reason}" if reason is not None else ""
    return DatasetNotFoundError(
        f"{name}: file(s) {', '.join(missing)} (plain or .gz) not found. Searched, in order:\n{dirs}{why}\n"
        f"Fix:\n{_fix_text(name)}"
    )


# --------------------------------------------------------------------------- parsing
def _parse_idx(payload: bytes, path: Path) -> np.ndarray:
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


def _unpickle(payload: bytes, path: Path) -> dict[Any, Any]:
    try:
        obj = _ArrayUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not a CIFAR-10 batch: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a CIFAR-10 batch (a {type(obj).__name__}, not a dict)")
    return obj


def _cifar_batch(obj: Mapping[Any, Any], path: Path) -> tuple[np.ndarray, np.ndarray]:
    data, labels = obj.get(b"data"), obj.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (N, 3072)")
    labels_arr = np.asarray(labels, dtype=np.int64)
    if labels_arr.shape != (data.shape[0],):
        raise ValueError(f"{path}: {labels_arr.shape} labels for {data.shape[0]} images")
    # each row is 1024 red, then 1024 green, then 1024 blue values, each plane row-major
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels_arr.astype(np.uint8).reshape(-1, 1)


_Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
_memo: dict[tuple[str, str], _Arrays] = {}


def clear_cache() -> None:
    """Forget the arrays parsed in this process (the next :func:`load` reads the files again)."""
    _memo.clear()
    _manifest_memo.clear()


def _load_readonly(name: str, download: bool) -> _Arrays:
    _check_name(name)
    key = (name, _manifest_path())
    if key in _memo:
        return _memo[key]
    d = _dataset(name)
    paths = where(name)
    missing = [f for f, p in paths.items() if p is None]
    if missing:
        reason: BaseException | None = None
        if download:
            try:
                fetch(name)
            except DownloadError as exc:
                reason = exc
        paths = where(name)
        missing = [f for f, p in paths.items() if p is None]
        if missing:
            raise _not_found(name, missing, reason) from reason

    manifest_path = _manifest_path()
    payloads = {}
    for f, p in paths.items():
        assert p is not None
        try:
            payloads[f] = _read_verified(p, d["files"][f], manifest_path)
        except ChecksumError as exc:
            if p.is_relative_to(cache_dir()) and "mismatch" in str(exc):
                p.unlink(missing_ok=True)  # ours to remove; a user's own file is left alone
                raise ChecksumError(f"{exc}\n(The bad copy was in the cache and has been removed.)") from None
            raise
    by_role = {d["files"][f]["role"]: (f, paths[f]) for f in paths}
    num_classes = len(d["class_names"])
    if d["format"] == "idx":
        arrays = {role: _parse_idx(payloads[f], p) for role, (f, p) in by_role.items()}
        result = ((arrays["train_images"], arrays["train_labels"]), (arrays["test_images"], arrays["test_labels"]))
        for x, y in result:
            if x.ndim != 3 or x.shape[0] != y.shape[0] or y.ndim != 1:
                raise ValueError(f"{name}: images {x.shape} and labels {y.shape} do not pair up")
    elif d["format"] == "cifar_pickle":
        train, test = [], []
        for f, p in paths.items():
            role = d["files"][f]["role"]
            obj = _unpickle(payloads[f], p)  # type: ignore[arg-type]
            if role == "meta":
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in obj.get(b"label_names", [])]
                if names != list(d["class_names"]):
                    raise ValueError(f"{p}: label names {names} differ from the manifest's {d['class_names']}")
            else:
                (train if role == "train" else test).append(_cifar_batch(obj, p))
        result = (
            (np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])),
            (np.concatenate([b[0] for b in test]), np.concatenate([b[1] for b in test])),
        )
    else:  # pragma: no cover - a manifest error
        raise ValueError(f"{name}: unknown format {d['format']!r} in the manifest")
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
    ``download=False`` never touches the network.
    """
    (x_tr, y_tr), (x_te, y_te) = _load_readonly(name, download)
    return (x_tr.copy(), y_tr.copy()), (x_te.copy(), y_te.copy())


# ----------------------------------------------------------------------------- split
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
    _check_name(name)
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"channels must be None, 1 or 3, got {channels!r}")
    if image_size is not None and (not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 8):
        raise ValueError(f"image_size must be None or an integer >= 8, got {image_size!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(validation_size, bool) or not isinstance(validation_size, (int, np.integer)) or validation_size < 0:
        raise ValueError(f"validation_size must be an integer >= 0, got {validation_size!r}")
    (x_tr, y_tr), (x_te, y_te) = _load_readonly(name, download)
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
        class_names=tuple(_dataset(name)["class_names"]),
        x_val=None if i_val is None else _prepare(x_tr[i_val], image_size, channels),
        y_val=None if i_val is None else labels[i_val].astype(np.int32),
    )


# -------------------------------------------------------------------------- pipeline
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


# ------------------------------------------------------------------------------- cli
def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m cnncourse data fetch|verify|where [NAMES...]``; non-zero exit on failure."""
    parser = argparse.ArgumentParser(prog="python -m cnncourse data", description="Manage the dataset cache.")
    parser.add_argument("action", choices=("fetch", "verify", "where"))
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"datasets (default: all of {', '.join(NAMES)})")
    args = parser.parse_args(list(argv) if argv is not None else None)
    known = tuple(manifest()["datasets"])
    bad = [n for n in args.names if n not in known]
    if bad:
        print(f"unknown dataset(s) {', '.join(bad)}; valid names: {', '.join(known)}", file=sys.stderr)
        return 2
    names = args.names or list(known)
    failed = False
    for name in names:
        if args.action == "where":
            for f, p in where(name).items():
                print(f"{name:<14} {f:<24} {p if p is not None else 'MISSING'}")
            failed |= not available(name)
        elif args.action == "fetch":
            try:
                paths = fetch(name)
                print(f"{name}: {len(paths)} file(s) present")
            except DownloadError as exc:
                missing = [f for f, p in where(name).items() if p is None]
                print(_not_found(name, missing, exc), file=sys.stderr)
                failed = True
            except (ChecksumError, KeyError, tarfile.TarError) as exc:
                print(f"{name}: fetch failed: {exc}", file=sys.stderr)
                failed = True
        else:
            for c in verify(name):
                where_ = c.path if c.path is not None else "-"
                line = f"{name:<14} {c.file:<24} {c.status:<12} {where_}"
                print(line + (f"  sha256 {c.sha256}" if c.sha256 else ""))
                if not c.ok:
                    print(f"    {c.detail}" if c.status != "missing" else f"    fix:\n{_fix_text(name)}", file=sys.stderr)
                    failed = True
    return 1 if failed else 0
