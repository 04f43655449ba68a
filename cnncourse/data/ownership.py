"""Which files in the cache the course wrote itself, and may therefore replace.

The rule: the course never deletes or overwrites a file it did not write. A copy found through
``$CNNCOURSE_DATA``, in a system folder, in Keras' cache, reached through a symbolic link, or
put into the course's own cache by hand is the user's: when it fails its checksum it is
refused, named, and left exactly as it is.

How the course knows what it wrote: every file it installs in its cache (a verified download
renamed into place) is appended, as one JSON line, to ``<cache>/.cnncourse-written.jsonl``:
its path relative to the cache and its identity right after the rename (device, inode, size
and modification time in nanoseconds). A file counts as the course's own only while

* it lies inside :func:`~cnncourse.data.lookup.cache_dir`, and neither the cache folder nor
  any folder below it on the way to the file, nor the file itself, is a symbolic link, and
* the record's last line for that path has exactly the identity the file has now.

Anything else (no record; a file replaced, rewritten or copied over since, which changes the
inode or the modification time) is treated as someone else's. A file of the course's whose
bytes went bad while its size and time stayed (bit rot, or a manifest that moved on to a new
release) is still the course's own, so ``data fetch`` replaces it with a verified download.
Symbolic links *above* the cache folder (``/home`` on another disk) are the system's layout,
not a route into someone else's folder, and are not held against it.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from cnncourse.data import lookup

RECORD_NAME = ".cnncourse-written.jsonl"


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _inside(path: Path, root: Path) -> Path | None:
    """``path`` relative to ``root`` (both made absolute, not resolved), or ``None`` if outside."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return None


def record(path: Path) -> None:
    """Note that the course has just installed ``path`` (inside the cache) itself."""
    root = lookup.cache_dir()
    rel = _inside(path, root)
    if rel is None:  # pragma: no cover - the course installs only into its cache
        raise ValueError(f"{path} is not inside the cache {root}")
    line = json.dumps({"path": rel.as_posix(), "identity": _identity(os.lstat(path)), "at": time.time()}) + "\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(Path(root) / RECORD_NAME, flags, 0o666)  # the umask decides, as for any file the user makes
    try:
        os.write(fd, line.encode())  # one short append: whole lines even with two writers at once
    finally:
        os.close(fd)


def _recorded(root: Path) -> dict[str, list[int]]:
    path = Path(root) / RECORD_NAME
    try:
        if path.is_symlink():
            return {}
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            out[str(entry["path"])] = [int(v) for v in entry["identity"]]
        except (ValueError, KeyError, TypeError):
            continue  # a torn or foreign line: it vouches for nothing
    return out


def problem(path: Path) -> str | None:
    """``None`` if the course wrote ``path`` and it is unchanged since (or it does not exist);
    otherwise why the course must leave it alone, as a phrase for a message."""
    root = lookup.cache_dir()
    rel = _inside(path, root)
    if rel is None:
        return f"it is not in the course's download cache ({root}), so it is not the course's to replace"
    walk = Path(os.path.abspath(root))
    for part in ("", *rel.parts):
        walk = walk / part if part else walk
        if os.path.islink(walk):
            return f"it is reached through a symbolic link ({walk} -> {os.readlink(walk)})"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"it cannot be examined ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    recorded = _recorded(root).get(rel.as_posix())
    if recorded is None:
        return f"the course did not write it (no entry in {Path(root) / RECORD_NAME}): someone put it there"
    if recorded != _identity(st):
        return "it was replaced or rewritten after the course wrote it, so it may be someone's own"
    return None
