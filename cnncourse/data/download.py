"""Downloads into the course's cache: verified, atomic, bounded in time and size, and cleaned up.

A download streams into a *part file* beside its destination, named
``.cnncourse-download.<file>.<host>-<pid>-<n>.part`` (``<host>``: 8 hex digits of a hash of the
host name), created with mode ``0666`` so that the umask decides its permissions exactly as
for any file the user creates (``0644`` under the usual ``022``). It is verified against the
manifest and only then renamed over the destination, and only when that destination is free
or is the course's own earlier download (:mod:`cnncourse.data.ownership`); every installed
file is recorded there. So an interrupted, truncated or tampered download never lands, and a
user's file is never overwritten.

* Time: the socket timeout bounds each read (:data:`DOWNLOAD_TIMEOUT_S`), and an overall
  deadline per file (:data:`DOWNLOAD_DEADLINE_S`, ``deadline_s=``, ``data fetch --deadline``)
  stops a server that trickles a byte at a time. Reads use ``read1`` so that they return as
  soon as bytes arrive and the deadline is checked between them.
* Size: the manifest's ``size``/``max_size`` caps what is accepted from the server.
* Progress: a few lines per file on standard error (start, each quarter, done).
* Interruption: Ctrl-C, and SIGTERM/SIGHUP while their default action is in place, remove the
  part file before the process ends (it still ends by the signal, with the usual status).
  SIGKILL cannot be caught: the next :func:`fetch` removes part files whose process, on this
  host, no longer exists, and nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import itertools
import math
import os
import re
import signal
import socket
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from cnncourse.data import checksums, lookup, ownership, registry
from cnncourse.data.errors import ChecksumError, DownloadError, UnreadableFileError

DOWNLOAD_TIMEOUT_S = 60  # per read: the socket gives up after this long without a byte
DOWNLOAD_DEADLINE_S = 1800  # per file: 170 MB (CIFAR-10) needs about 100 kB/s to make it
_CHUNK = 1 << 20
PART_PREFIX = ".cnncourse-download."
_PART_NAME = re.compile(r"^\.cnncourse-download\.(?P<file>.+)\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<seq>\d+)\.part$")
_sequence = itertools.count()


def _clock() -> float:  # a seam for tests: the deadline is measured on it
    return time.monotonic()


def _urlopen(url: str, timeout: float):  # a seam for tests; urllib handles http(s) and file://
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - URLs come from the manifest


# ------------------------------------------------------------------------- part files
def host_tag() -> str:
    """8 hex digits naming this host in part-file names (a pid means nothing on another host)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def part_path(final: Path) -> Path:
    return final.with_name(f"{PART_PREFIX}{final.name}.{host_tag()}-{os.getpid()}-{next(_sequence)}.part")


def _unwritable(folder: Path, exc: OSError) -> DownloadError:
    return DownloadError(
        f"cannot write into the dataset cache folder {folder}: {exc.strerror or exc}.\n"
        f"Fix: make it writable for this user, or put the files in a folder of your own and point "
        f"${registry.DATA_ENV_VAR} at it (outside a source checkout, $XDG_CACHE_HOME moves the cache)."
    )


def _create_part(final: Path) -> tuple[int, Path, bool]:
    """A new part file beside ``final``, and whether its folder was created for it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        created = not os.path.lexists(final.parent)
        final.parent.mkdir(parents=True, exist_ok=True)
        part = part_path(final)
        return os.open(part, flags, 0o666), part, created  # mode 0666 & ~umask, like any file the user creates
    except OSError as exc:
        raise _unwritable(final.parent, exc) from None


def _write_part(data: bytes, final: Path) -> Path:
    fd, part, _ = _create_part(final)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return part


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # EPERM: it exists and is someone else's; or not a pid at all: keep it
        return True
    return True


def remove_stale_parts(folders: Iterable[Path], report: Callable[[str], None]) -> list[Path]:
    """Remove part files in ``folders`` left by killed downloads on this host; touch nothing else."""
    me, removed = host_tag(), []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = _PART_NAME.match(entry.name)
            if not match or match["host"] != me or _alive(int(match["pid"])):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                os.unlink(entry.path)
            except OSError as exc:
                report(f"could not remove the stale partial download {entry.path}: {exc.strerror or exc}")
                continue
            removed.append(Path(entry.path))
            report(f"removed {entry.path}: a partial download left by process {match['pid']}, which is gone")
    return removed


# ------------------------------------------------------------------------ termination
class _Terminated(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated(signum)


@contextlib.contextmanager
def cleanup_on_termination() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into an exception for the block, so ``finally``/``except`` clean up,
    then end the process by the same signal. Only where the default action is in place (a
    program with its own handler keeps it) and only in the main thread (where Python runs
    handlers)."""
    installed: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
                installed[signum] = signal.signal(signum, _raise_terminated)
    try:
        yield
    except _Terminated as stop:
        for signum, previous in installed.items():
            signal.signal(signum, previous)
        installed.clear()
        os.kill(os.getpid(), stop.signum)  # the default action: the process ends as if never caught
        raise SystemExit(128 + stop.signum) from None  # pragma: no cover - only if the signal did not end it
    finally:
        for signum, previous in installed.items():
            signal.signal(signum, previous)


# --------------------------------------------------------------------------- streaming
class _Progress:
    """At most five lines per file on standard error: start, each quarter reached, done."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.start = _clock()
        self.next_quarter, self.next_bytes = 1, 1 << 20
        self._say(f"{label}: downloading {total:,} bytes" if total else f"{label}: downloading (size not announced)")

    def _say(self, line: str) -> None:
        if self.enabled:
            print(line, file=sys.stderr, flush=True)

    def update(self, done: int) -> None:
        if self.total:
            if self.next_quarter <= 3 and self.next_quarter * self.total <= done * 4 < 4 * self.total:
                self._say(f"{self.label}: {done:,} / {self.total:,} bytes ({100 * done // self.total}%)")
                self.next_quarter = 4 * done // self.total + 1
        elif done >= self.next_bytes:  # unknown size: at 1, 4, 16, 64 ... MiB
            self._say(f"{self.label}: {done:,} bytes so far")
            while self.next_bytes <= done:
                self.next_bytes *= 4

    def finish(self, done: int) -> None:
        took = f"in {_clock() - self.start:.0f} s"
        self._say(f"{self.label}: {done:,} / {done:,} bytes (100%) {took}" if self.total else f"{self.label}: {done:,} bytes {took}")


def _stream(url: str, out: BinaryIO, label: str, *, limit: int, deadline_s: float, progress: bool) -> int:
    start = _clock()
    written, total = 0, None
    with _urlopen(url, min(DOWNLOAD_TIMEOUT_S, deadline_s)) as response:
        length = (getattr(response, "headers", None) or {}).get("Content-Length")
        if length is not None and str(length).strip().isdigit():
            total = int(length)
        if total is not None and total > limit:
            raise DownloadError(
                f"{url}: the server announces {total:,} bytes, larger than the manifest allows for this file "
                f"({limit:,}); nothing was downloaded."
            )
        read = getattr(response, "read1", None) or response.read
        bar = _Progress(label, total, progress)
        while True:
            if _clock() - start > deadline_s:
                got = f"{written:,} of {total:,}" if total is not None else f"{written:,}"
                raise DownloadError(
                    f"{url}: the download did not finish within its deadline of {deadline_s:.0f} s ({got} bytes "
                    f"arrived): the connection is too slow or has stalled; nothing was kept.\n"
                    f"Fix: try again on a better connection, or allow more time: "
                    f"python -m cnncourse data fetch --deadline SECONDS (fetch(..., deadline_s=...) in Python)."
                )
            chunk = read(_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > limit:
                raise DownloadError(
                    f"{url}: more than {limit:,} bytes, larger than the manifest allows for this file; the "
                    f"download was stopped and nothing was kept."
                )
            out.write(chunk)
            bar.update(written)
    if total is not None and written != total:
        raise DownloadError(f"{url}: download truncated ({written:,} of {total:,} bytes)")
    bar.finish(written)
    return written


def _download(url: str, final: Path, *, limit: int, deadline_s: float, progress: bool) -> Path:
    """Stream ``url`` into a part file beside ``final``; on any failure remove it (and the folder
    made for it, if still empty) and raise."""
    fd, part, created = _create_part(final)
    try:
        with os.fdopen(fd, "wb") as out:
            _stream(url, out, f"{final.parent.name}/{final.name}", limit=limit, deadline_s=deadline_s, progress=progress)
        return part
    except BaseException as exc:
        part.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                final.parent.rmdir()  # made in this call; fails harmlessly if anything is in it
        if isinstance(exc, (urllib.error.URLError, OSError, http.client.HTTPException)) and not isinstance(
            exc, DownloadError
        ):
            raise DownloadError(f"{url}: download failed: {exc}") from exc
        raise


def _install(part: Path, final: Path) -> None:
    """Rename a verified part file over ``final``, unless ``final`` is someone else's file."""
    why = ownership.problem(final) if os.path.lexists(final) else None
    if why is not None:  # it appeared while we downloaded
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{final}: not replaced by the verified download: {why}.")
    try:
        os.replace(part, final)  # atomic on one file system: readers see the old state or the new
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise _unwritable(final.parent, exc) from None
    try:
        ownership.record(final)
    except OSError as exc:  # the file is in place and verified; it just will not count as the course's
        warnings.warn(f"{final}: installed, but the record of it could not be written ({exc.strerror or exc})",
                      stacklevel=3)


# ------------------------------------------------------------------------------ fetch
def _target(name: str, filename: str) -> Path:
    d = registry.dataset(name)
    url = d["files"][filename].get("url", "")
    suffix = ".gz" if d["format"] == "idx" and url.endswith(".gz") else ""
    return lookup.cache_dir() / d["folders"][0] / (filename + suffix)


def _fetch_idx_file(name: str, filename: str, target: Path, deadline_s: float, progress: bool) -> None:
    entry = registry.dataset(name)["files"][filename]
    url = entry["url"]
    part = _download(url, target, limit=checksums.raw_limit(entry), deadline_s=deadline_s, progress=progress)
    try:
        checksums.read_verified(part, entry)
    except (ChecksumError, UnreadableFileError) as exc:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"downloaded {url} for {filename} does not match the manifest and was discarded "
            f"(nothing was written to {target.parent}).\n{exc}\n"
            f"Fix: try again later; if it persists the mirror serves different data: report it."
        ) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _install(part, target)


def _file_digests(path: Path, algorithms: Iterable[str]) -> dict[str, str]:
    hashes = {a: hashlib.new(a, usedforsecurity=False) if a == "md5" else hashlib.new(a) for a in algorithms}
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            for h in hashes.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashes.items()}


def _fetch_tar_members(name: str, targets: Mapping[str, Path], deadline_s: float, progress: bool) -> None:
    d = registry.dataset(name)
    archive, files = d["archive"], d["files"]
    url = archive["url"]
    tar_final = lookup.cache_dir() / (PurePosixPath(url).name or f"{name}-archive")
    limit = int(archive.get("size") or archive.get("max_size") or registry.DEFAULT_MAX_PAYLOAD)
    tar_part = _download(url, tar_final, limit=limit, deadline_s=deadline_s, progress=progress)
    parts: dict[str, Path] = {}
    installed: set[str] = set()
    where_to = sorted({str(t.parent) for t in targets.values()})
    try:
        actual = _file_digests(tar_part, archive["digests"])
        if any(actual[a] != v.lower() for a, v in archive["digests"].items()):
            raise ChecksumError(
                f"downloaded {url} does not match the manifest (expected {archive['digests']}, got {actual}) and was "
                f"discarded; nothing was written to {', '.join(where_to)}.\n"
                f"Fix: try again later; if it persists the mirror serves different data: report it."
            )
        try:
            with tarfile.open(tar_part, "r:*") as tar:
                for filename, target in targets.items():
                    cap = registry.payload_limit(files[filename])
                    try:
                        member = tar.getmember(f"{archive['member_dir']}/{filename}")
                    except KeyError:
                        raise ChecksumError(f"{url}: has no member {archive['member_dir']}/{filename}") from None
                    handle = tar.extractfile(member) if member.isfile() else None
                    if handle is None or member.size > cap:
                        raise ChecksumError(f"{url}: member {member.name} is not a regular file of at most {cap:,} bytes")
                    parts[filename] = _write_part(handle.read(cap + 1), target)
        except tarfile.TarError as exc:
            raise ChecksumError(f"{url}: not a readable tar archive ({exc}); nothing was written") from None
        for filename, part in parts.items():
            try:
                checksums.read_verified(part, files[filename])
            except (ChecksumError, UnreadableFileError) as exc:
                raise ChecksumError(
                    f"{url}: member {filename} does not match the manifest; nothing was written to "
                    f"{', '.join(where_to)}.\n{exc}"
                ) from None
        for filename, part in parts.items():  # all verified: only now does anything land
            _install(part, targets[filename])
            installed.add(filename)
    finally:
        tar_part.unlink(missing_ok=True)
        for filename, part in parts.items():
            if filename not in installed:
                part.unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class Fetched:
    """What :func:`fetch_files` did with one file.

    ``action``: ``verified`` (a copy verified, nothing downloaded), ``downloaded`` (into a free
    place in the cache), ``replaced`` (the course's own copy, re-downloaded), ``kept`` (with
    ``force``: the cache holds a verified copy the course did not write, so it stays),
    ``refused`` (no copy verifies and the cache place holds a file that is not the course's;
    ``detail`` says what to do).
    """

    file: str
    path: Path
    action: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.action != "refused"


def _check_deadline(deadline_s: Any) -> float:
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, (int, float)) or not 0 < deadline_s < math.inf:
        raise ValueError(f"deadline_s must be a positive, finite number of seconds, got {deadline_s!r}")
    return float(deadline_s)


def fetch_files(
    name: str, *, force: bool = False, deadline_s: float = DOWNLOAD_DEADLINE_S, progress: bool = True
) -> list[Fetched]:
    """Verify every file of ``name`` and download what fails or is missing; one :class:`Fetched` each.

    Errors of the network or of a download raise (:class:`DownloadError`, :class:`ChecksumError`);
    a file the course may not replace is reported as ``refused`` and the others still proceed.
    """
    registry.check_name(name)
    deadline_s = _check_deadline(deadline_s)
    d = registry.dataset(name)

    def report(line: str) -> None:
        if progress:
            print(line, file=sys.stderr, flush=True)

    with cleanup_on_termination():
        root = lookup.cache_dir()
        remove_stale_parts([root, *(root / ds["folders"][0] for ds in registry.manifest()["datasets"].values())], report)
        results: dict[str, Fetched] = {}
        todo: dict[str, tuple[Path, str, str]] = {}
        for filename in d["files"]:
            path, _, failures = checksums.resolve(name, filename)
            target = _target(name, filename)
            skipped = "; ".join(f"{p} was skipped ({e.status}) and left alone" for p, e in failures
                                if e.status != "unverifiable" and p != target)
            if path is not None and not force:
                results[filename] = Fetched(filename, path, "verified", skipped)
                continue
            exists = os.path.lexists(target)
            why = ownership.problem(target) if exists else None
            if why is not None and path is not None:
                results[filename] = Fetched(filename, path, "kept", f"{target} was not downloaded again: {why}")
            elif why is not None:
                bad = [(p, e) for p, e in failures if p == target]
                detail = (str(checksums.failure(name, bad)) if bad else
                          f"{target}: no copy of {filename} verifies, and this file in the way was left alone: {why}.")
                results[filename] = Fetched(filename, target, "refused", detail)
            else:
                todo[filename] = (target, "replaced" if exists else "downloaded", skipped)
        if todo:
            if d["format"] == "cifar_pickle":
                _fetch_tar_members(name, {f: t for f, (t, _, _) in todo.items()}, deadline_s, progress)
            else:
                for filename, (target, _, _) in todo.items():
                    _fetch_idx_file(name, filename, target, deadline_s, progress)
            for filename, (target, action, skipped) in todo.items():
                results[filename] = Fetched(filename, target, action, skipped)
    return [results[f] for f in d["files"]]


def fetch(
    name: str, *, force: bool = False, deadline_s: float = DOWNLOAD_DEADLINE_S, progress: bool = True
) -> dict[str, Path]:
    """Make sure every file of ``name`` is present and verified; return the path of each.

    Every copy found is verified first (a corrupt one is not "present"). What has no verified
    copy is downloaded into the cache: to a part file, verified, then renamed into place, so
    an interrupted, truncated or tampered download never lands. The course replaces only files
    it wrote itself (:mod:`cnncourse.data.ownership`); a user's file in the way is never
    overwritten: that file raises :class:`ChecksumError` naming it and saying what to do.
    ``force=True`` downloads again even what verifies (the course's own copies are replaced,
    a user's stay). ``deadline_s`` bounds each file's download; ``progress`` prints a few
    lines per file to standard error.
    """
    results = fetch_files(name, force=force, deadline_s=deadline_s, progress=progress)
    refused = [r.detail for r in results if not r.ok]
    if refused:
        raise ChecksumError("\n\n".join(refused))
    return {r.file: r.path for r in results}
