"""The checksum manifest: which datasets exist, their files, digests and sizes.

The manifest (``datasets.json`` in the package, or the file ``$CNNCOURSE_MANIFEST`` names) is
checked when it is read: a broken one is a :class:`~cnncourse.data.errors.ManifestError`
naming the file and the problem, never a ``KeyError`` deep inside a download. Folder and file
names in it must be plain relative names, so that a manifest can never make the course write
outside its cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from cnncourse.data.errors import ManifestError

NAMES: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10")
DATA_ENV_VAR = "CNNCOURSE_DATA"
MANIFEST_ENV_VAR = "CNNCOURSE_MANIFEST"
MANIFEST_FILE = Path(__file__).resolve().parent.parent / "datasets.json"
FORMATS = ("idx", "cifar_pickle")
# The most bytes read from a file whose manifest entry records neither "size" nor "max_size".
DEFAULT_MAX_PAYLOAD = 256 << 20

_memo: dict[str, dict[str, Any]] = {}


def manifest_path() -> Path:
    """The manifest in use: ``$CNNCOURSE_MANIFEST`` when set, else the one shipped with the package."""
    return Path(os.environ.get(MANIFEST_ENV_VAR) or MANIFEST_FILE)


def manifest() -> dict[str, Any]:
    """The checksum manifest as a dict, checked; read once per process and path.

    Every other function reads the registry through this one, so tests (and a user with a
    private mirror) can substitute a manifest of their own.
    """
    path = manifest_path()
    key = str(path.absolute())
    if key not in _memo:
        fix = (f"Fix: restore the shipped manifest ({MANIFEST_FILE})"
               + (f" or correct ${MANIFEST_ENV_VAR} (now {path})" if os.environ.get(MANIFEST_ENV_VAR) else "")
               + ".")
        try:
            with open(path, encoding="utf-8") as fh:
                loaded = json.load(fh)
        except OSError as exc:
            raise ManifestError(f"{path}: cannot read the dataset manifest: {exc.strerror or exc}.\n{fix}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path}: the dataset manifest is not valid JSON: {exc}.\n{fix}") from None
        problem = _problem(loaded)
        if problem:
            raise ManifestError(f"{path}: not a valid dataset manifest: {problem}.\n{fix}")
        _memo[key] = loaded
    return _memo[key]


def clear_memo() -> None:
    _memo.clear()


def _plain_relative(text: Any, *, nested: bool) -> bool:
    if not isinstance(text, str) or not text or "\\" in text:
        return False
    parts = PurePosixPath(text).parts
    return not PurePosixPath(text).is_absolute() and ".." not in parts and (nested or len(parts) == 1)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _problem(m: Any) -> str | None:
    """What is wrong with a loaded manifest, or ``None``."""
    if not isinstance(m, dict) or not isinstance(m.get("datasets"), dict) or not m["datasets"]:
        return 'no "datasets" object'
    for name, d in m["datasets"].items():
        where = f"dataset {name!r}"
        if not isinstance(d, dict):
            return f"{where} is not an object"
        for key in ("title", "format", "folders", "class_names", "image_shape", "train_size", "test_size", "files"):
            if key not in d:
                return f'{where} has no "{key}"'
        if d["format"] not in FORMATS:
            return f'{where}: format {d["format"]!r} is not one of {", ".join(FORMATS)}'
        if not isinstance(d["folders"], list) or not d["folders"] or not all(
            _plain_relative(f, nested=True) for f in d["folders"]
        ):
            return f'{where}: "folders" must be a non-empty list of relative folder names without ".."'
        if not isinstance(d["files"], dict) or not d["files"]:
            return f'{where}: "files" must be a non-empty object'
        for filename, entry in d["files"].items():
            at = f"{where}, file {filename!r}"
            if not _plain_relative(filename, nested=False):
                return f"{at}: a file name must be a plain name (no folders, no '..')"
            if not isinstance(entry, dict) or not isinstance(entry.get("role"), str):
                return f'{at}: needs a "role"'
            if d["format"] == "idx" and not isinstance(entry.get("url"), str):
                return f'{at}: needs a "url"'
            for kind in ("payload", "archive"):
                digests = entry.get(kind, {})
                if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
                    return f'{at}: "{kind}" must map algorithm names to hex digests'
            for key in ("size", "max_size"):
                if key in entry and not _positive_int(entry[key]):
                    return f'{at}: "{key}" must be a positive integer (bytes)'
        if d["format"] == "cifar_pickle":
            archive = d.get("archive")
            if not isinstance(archive, dict) or not all(isinstance(archive.get(k), str) for k in ("url", "member_dir")):
                return f'{where}: needs an "archive" with "url" and "member_dir"'
            if not _plain_relative(archive["member_dir"], nested=True) or not isinstance(archive.get("digests"), dict):
                return f'{where}: the archive needs a relative "member_dir" and "digests"'
            if "max_size" in archive and not _positive_int(archive["max_size"]):
                return f'{where}: the archive\'s "max_size" must be a positive integer (bytes)'
    return None


def check_name(name: str) -> str:
    known = tuple(manifest()["datasets"])
    if not isinstance(name, str) or name not in known:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(known)}")
    return name


def dataset(name: str) -> dict[str, Any]:
    return manifest()["datasets"][check_name(name)]


def payload_limit(entry: Mapping[str, Any]) -> int:
    """The most bytes a file's decompressed payload may have: its exact size, a bound, or a default.

    Reading stops one byte past it, so a file that decompresses to gigabytes (a gzip bomb, or
    simply the wrong file) costs no more memory than the real one.
    """
    return int(entry.get("size") or entry.get("max_size") or DEFAULT_MAX_PAYLOAD)


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
    d = dataset(name)
    return DatasetInfo(
        name=name,
        title=d["title"],
        class_names=tuple(d["class_names"]),
        image_shape=tuple(d["image_shape"]),  # type: ignore[arg-type]
        train_size=int(d["train_size"]),
        test_size=int(d["test_size"]),
        homepage=d.get("homepage", ""),
        citation=d.get("citation", ""),
        files=tuple(d["files"]),
    )


def _shipped_class_names() -> dict[str, tuple[str, ...]]:
    with open(MANIFEST_FILE, encoding="utf-8") as fh:
        shipped = json.load(fh)["datasets"]
    return {n: tuple(shipped[n]["class_names"]) for n in NAMES}


# The class names of each dataset, in label order (from the shipped manifest).
CLASS_NAMES: Mapping[str, tuple[str, ...]] = MappingProxyType(_shipped_class_names())

# Whether a horizontal mirror keeps an image's label: it does for garments and objects, not for
# handwriting (a mirrored 2 is no digit, a mirrored 7 barely one). Random flips and test-time
# flip averaging ask this before they mirror anything.
_FLIPS_KEEP_LABELS: Mapping[str, bool] = MappingProxyType({"mnist": False, "fashion_mnist": True, "cifar10": True})


def flips_keep_labels(name: str) -> bool:
    """True where a horizontally mirrored image has the same label (``fashion_mnist``, ``cifar10``).

    A dataset of a custom manifest is not known to be mirror-safe, so it is never flipped.
    """
    return _FLIPS_KEEP_LABELS.get(check_name(name), False)
