"""Verification before parsing: read a copy once, within the manifest's size, and check its digest.

Every copy of a file that is present is a candidate (:func:`cnncourse.data.lookup.candidates`);
:func:`resolve` reads them in search order and takes the first that verifies, so torchvision's
``MNIST/raw`` layout (a plain file the manifest cannot verify beside the published ``.gz`` it
can) loads, and a corrupt copy early in the search path cannot hide a good one later. When no
copy verifies, the error is the first copy's, with the fix that fits whose file it is
(:mod:`cnncourse.data.ownership`): the course's own download can be replaced by ``data fetch``,
a user's file is left alone.
"""

from __future__ import annotations

import dataclasses
import errno as errno_codes
import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cnncourse.data import lookup, ownership, registry
from cnncourse.data.errors import ChecksumError, UnreadableFileError

# A gzip stream is never much larger than what it decompresses to (stored blocks add 5 bytes
# per 64 KiB, plus a header): a compressed file larger than this bound is not the file.
_GZIP_SLACK = 64 << 10


def digests(data: bytes, algorithms: Iterable[str]) -> dict[str, str]:
    out = {}
    for algo in algorithms:
        h = hashlib.new(algo, usedforsecurity=False) if algo == "md5" else hashlib.new(algo)
        h.update(data)
        out[algo] = h.hexdigest()
    return out


def matches(data: bytes, expected: Mapping[str, str]) -> tuple[bool, dict[str, str]]:
    actual = digests(data, expected)
    return all(actual[a] == expected[a].lower() for a in expected), actual


def _owner(st: os.stat_result | None) -> str:
    if st is None:
        return "its owner"
    try:
        import pwd

        return pwd.getpwuid(st.st_uid).pw_name
    except (ImportError, KeyError):
        return f"user id {st.st_uid}"


def _current_user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # noqa: BLE001 - only decorates a message
        return f"user id {os.getuid()}" if hasattr(os, "getuid") else "this user"


def unreadable(path: Path, exc: OSError) -> UnreadableFileError:
    """The error for a copy that is there but cannot be read, with whose it is and what to do."""
    if isinstance(exc, PermissionError):
        try:
            st: os.stat_result | None = os.stat(path)
        except OSError:
            st = None
        owner = _owner(st)
        message = (
            f"{path}: cannot be read: permission denied (the file belongs to {owner}; this is {_current_user()}).\n"
            f"Fix: ask {owner} to make it readable (chmod a+r {path}, and a+x on the folders above it), or copy "
            f"the dataset into a folder of your own and point ${registry.DATA_ENV_VAR} at it."
        )
    else:
        message = (
            f"{path}: cannot be read: {exc.strerror or exc}.\n"
            f"Fix: check the disk or network file system it is on, or copy a good copy into a folder of your own "
            f"and point ${registry.DATA_ENV_VAR} at it."
        )
    return UnreadableFileError(message, path=path, errno=exc.errno or errno_codes.EIO)


def _too_large(path: Path, detail: str) -> ChecksumError:
    return ChecksumError(
        f"{path}: {detail}; nothing was parsed. It is not this dataset file (another file, a different "
        f"version, or a compressed bomb)."
    )


def raw_limit(entry: Mapping[str, Any]) -> int:
    """The most bytes a copy of this file may have on disk (compressed or not)."""
    limit = registry.payload_limit(entry)
    return limit + limit // 1000 + _GZIP_SLACK


def read_payload(path: Path, entry: Mapping[str, Any]) -> tuple[bytes, bytes, bool]:
    """``(raw, payload, compressed)``: the file's bytes and their decompressed form, within the size cap.

    One read of the file, bounded before it starts (``fstat``) and while decompressing
    (never more than the manifest's size plus one byte), so a huge or bomb-like file costs
    no more memory than the real one.
    """
    limit = registry.payload_limit(entry)
    most = raw_limit(entry)
    try:
        with io.open(path, "rb") as fh:
            on_disk = os.fstat(fh.fileno()).st_size
            if on_disk > most:
                raise _too_large(path, f"{on_disk:,} bytes on disk, larger than the manifest allows for this file "
                                       f"({limit:,} bytes decompressed), so it was not read")
            raw = fh.read(most + 1)
    except OSError as exc:
        raise unreadable(path, exc) from None
    if len(raw) > most:
        raise _too_large(path, f"it grew while being read, larger than the manifest allows ({limit:,} bytes)")
    if raw[:2] != b"\x1f\x8b":
        if len(raw) > limit:
            raise _too_large(path, f"{len(raw):,} bytes, larger than the manifest allows for this file ({limit:,})")
        return raw, raw, False
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            payload = stream.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:  # truncated or corrupt gzip stream
        raise ChecksumError(f"{path}: not a readable gzip file ({exc}); the file is truncated or corrupt.") from None
    if len(payload) > limit:
        raise _too_large(path, f"it decompresses to more than {limit:,} bytes, larger than the manifest allows for "
                               f"this file; decompression stopped there")
    return raw, payload, True


def read_verified(path: Path, entry: Mapping[str, Any]) -> bytes:
    """Return the decompressed payload of ``path``, only if its bytes match the manifest.

    The bytes that are checked are the bytes that are returned (no second read a file could
    change in between). Accepted: the payload digest (any compression), or, when the manifest
    has no payload digest for this file, the digest of the compressed file as published.
    """
    raw, payload, compressed = read_payload(path, entry)
    size = entry.get("size")
    if size is not None and len(payload) != size:
        what = "decompressed payload" if compressed else "file"
        raise ChecksumError(
            f"{path}: the {what} has {len(payload):,} bytes, the manifest says {int(size):,}: the file is truncated "
            f"or a different version; it was not parsed."
        )
    payload_digests = entry.get("payload") or {}
    archive_digests = entry.get("archive") or {}
    if payload_digests:
        ok, actual = matches(payload, payload_digests)
        expected, what = payload_digests, "decompressed payload" if compressed else "file"
    elif compressed and archive_digests:
        ok, actual = matches(raw, archive_digests)
        expected, what = archive_digests, "compressed file as published"
    else:
        sha = digests(payload, ["sha256"])["sha256"]
        kinds = "the published .gz (archive digest)" if archive_digests else "nothing"
        raise ChecksumError(
            f"{path}: cannot be verified: the manifest records no digest of its decompressed payload "
            f"(only of {kinds}), so this copy is not parsed.\n"
            f"Fix: use the file exactly as published ({entry.get('url', 'see the manifest')}), or, if you trust "
            f"this copy, add \"payload\": {{\"sha256\": \"{sha}\"}} to its entry in {registry.manifest_path()}.",
            status="unverifiable",
        )
    if not ok:
        exp = ", ".join(f"{a} {v}" for a, v in expected.items())
        act = ", ".join(f"{a} {v}" for a, v in actual.items())
        raise ChecksumError(
            f"{path}: checksum mismatch of the {what}: expected {exp}, got {act}. The file is corrupt, "
            f"truncated or a different version; it was not parsed."
        )
    return payload


Failure = tuple[Path, "ChecksumError | UnreadableFileError"]


def resolve(name: str, filename: str) -> tuple[Path | None, bytes | None, list[Failure]]:
    """The first copy of ``filename`` that verifies and its payload, and the copies refused before it."""
    entry = registry.dataset(name)["files"][filename]
    failures: list[Failure] = []
    for path in lookup.candidates(name, filename):
        try:
            return path, read_verified(path, entry), failures
        except (ChecksumError, UnreadableFileError) as exc:
            failures.append((path, exc))
    return None, None, failures


def fix_for(name: str, path: Path, exc: BaseException) -> str:
    """What to do about a copy that failed, which depends on whose file it is."""
    if not isinstance(exc, ChecksumError) or exc.status != "mismatch":
        return ""  # unreadable / unverifiable messages carry their own fix
    why = ownership.problem(path)
    if why is None:
        return (
            f"It is the course's own download, unchanged since it was written: `python -m cnncourse data fetch {name}` "
            f"replaces it with a fresh verified copy. Nothing was deleted."
        )
    return (
        f"It was left alone: {why}; the course never deletes or overwrites a file it did not write.\n"
        f"Fix: delete or move it away yourself, then run `python -m cnncourse data fetch {name}` with a network, "
        f"or copy a good copy in its place. If you know this copy is good, add its digest to {registry.manifest_path()}."
    )


def failure(name: str, failures: list[Failure]) -> ChecksumError | UnreadableFileError:
    """One error for a file no copy of which verifies: the first copy's, fixed, the others listed."""
    path, first = failures[0]
    message = str(first)
    fix = fix_for(name, path, first)
    if fix:
        message += "\n" + fix
    if len(failures) > 1:
        message += "\nOther copies were refused too:\n" + "\n".join(
            f"  {p}: {e.status}: {str(e).splitlines()[0]}" for p, e in failures[1:]
        )
    if isinstance(first, UnreadableFileError):
        return UnreadableFileError(message, path=first.path, errno=first.errno)
    return ChecksumError(message, status=first.status)


@dataclasses.dataclass(frozen=True)
class FileCheck:
    """The outcome of checking one file.

    ``status`` is verified | missing | mismatch | unverifiable | unreadable; ``path`` the copy
    that verified (or the first copy found, when none did); ``skipped`` the copies refused
    before it, as ``(path, status, detail)``.
    """

    dataset: str
    file: str
    path: Path | None
    status: str
    detail: str = ""
    sha256: str | None = None  # of the decompressed payload, when it was read
    skipped: tuple[tuple[Path, str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "verified"


def verify(name: str) -> list[FileCheck]:
    """Check every file of ``name`` that is present against the manifest; never raises for data.

    Returns one :class:`FileCheck` per file (missing files included), so a report can list
    all problems at once: a copy that cannot be read is a line like a copy that does not
    match. The payload's sha256 is reported for files that were read, which is how a
    maintainer adds a digest the manifest lacks.
    """
    checks = []
    for filename in registry.dataset(name)["files"]:
        path, payload, failures = resolve(name, filename)
        refused = tuple((p, e.status, str(e)) for p, e in failures)
        if path is not None:
            sha = digests(payload or b"", ["sha256"])["sha256"]
            checks.append(FileCheck(name, filename, path, "verified", "", sha, refused))
        elif failures:
            err = failure(name, failures)
            checks.append(FileCheck(name, filename, failures[0][0], err.status, str(err), None, refused[1:]))
        else:
            checks.append(FileCheck(name, filename, None, "missing", "not found in any searched directory"))
    return checks
