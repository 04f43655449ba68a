"""Where dataset files are looked for, and what a user is told when they are not there.

Roots, in order: each directory of ``$CNNCOURSE_DATA`` (``os.pathsep``-separated), the cache
(:func:`cache_dir`), then :data:`SYSTEM_DIRS`. In each root a dataset may sit in one of its
manifest ``folders`` (``fashion-mnist/``, ``MNIST/raw/`` ...) or directly in the root, and an
IDX file may be plain or gzipped. Nothing here hashes or reads a file: :func:`candidates` lists
every copy that is present, in that order, and the reader takes the first that verifies.

Tests and tools that redirect the cache patch :func:`cache_dir` and :data:`SYSTEM_DIRS` *in
this module*; everything else in :mod:`cnncourse.data` looks them up here at call time.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from cnncourse.data import registry
from cnncourse.data.errors import DatasetNotFoundError

# System-wide places where a distribution or another library leaves the same files.
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"), Path("~/.keras/datasets").expanduser())


def cache_dir() -> Path:
    """Where downloads go: ``<checkout>/data`` in a source checkout, else the user cache.

    Outside a checkout: ``$XDG_CACHE_HOME/cnncourse`` (an absolute ``XDG_CACHE_HOME`` only, as
    the XDG specification says), else ``~/.cache/cnncourse``.
    """
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout / "data"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "cnncourse"


def data_env_dirs() -> list[Path]:
    """The directories of ``$CNNCOURSE_DATA``, absolute (a relative entry is taken from the working directory)."""
    raw = os.environ.get(registry.DATA_ENV_VAR, "")
    return [Path(p).expanduser().absolute() for p in raw.split(os.pathsep) if p.strip()]


def search_dirs() -> list[Path]:
    """The root directories searched, in order: ``$CNNCOURSE_DATA``, the cache, system dirs."""
    roots = [*data_env_dirs(), cache_dir(), *SYSTEM_DIRS]
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def candidate_dirs(name: str) -> list[Path]:
    folders = registry.dataset(name)["folders"]
    out: list[Path] = []
    for root in search_dirs():
        out.extend(root / f for f in folders)
        out.append(root)
    return out


def _present(path: Path) -> bool:
    """A regular file (or a link to one) is there. A folder this user may not search counts as
    absent here; :func:`dir_note` names it in the not-found message."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def candidates(name: str, filename: str) -> list[Path]:
    """Every present copy of ``filename`` (plain or ``.gz``), in search order; nothing is read."""
    out = []
    for directory in candidate_dirs(name):
        for path in (directory / filename, directory / (filename + ".gz")):
            if _present(path):
                out.append(path)
    return out


def where(name: str) -> dict[str, Path | None]:
    """For each file of ``name``: the first copy present, or ``None`` (nothing is hashed).

    The copy :func:`~cnncourse.data.load` reads is the first one that *verifies*, which is
    this one unless it fails; :func:`~cnncourse.data.verify` reports which it is.
    """
    out: dict[str, Path | None] = {}
    for filename in registry.dataset(name)["files"]:
        found = candidates(name, filename)
        out[filename] = found[0] if found else None
    return out


def available(name: str) -> bool:
    """Whether every file of ``name`` is present somewhere (nothing is downloaded or hashed)."""
    return all(p is not None for p in where(name).values())


def dir_note(path: Path) -> str:
    """``""`` for a usable directory, else why it cannot be searched, e.g. ``" (does not exist)"``."""
    try:
        if not path.exists():
            return " (does not exist)"
        if not path.is_dir():
            return " (not a directory)"
    except OSError as exc:
        return f" ({exc.strerror or exc})"
    if not os.access(path, os.R_OK | os.X_OK):
        return " (permission denied: this user cannot look inside)"
    return ""


def fix_text(name: str) -> str:
    lines = [
        f"  - with a network: python -m cnncourse data fetch {name}",
        f"  - or copy the files into one of the searched directories (a sub-folder named like "
        f"{', '.join(repr(f + '/') for f in registry.dataset(name)['folders'][:2])} works too)",
        f"  - or point ${registry.DATA_ENV_VAR} at a directory that holds them "
        f"(several directories separated by {os.pathsep!r})",
    ]
    if name == "fashion_mnist":
        lines.insert(1, "  - on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist")
    return "\n".join(lines)


def not_found(name: str, missing: Sequence[str], reason: BaseException | None) -> DatasetNotFoundError:
    roots = {Path(r) for r in search_dirs()}
    dirs = "\n".join(f"  {p}{dir_note(p) if p in roots else ''}" for p in candidate_dirs(name))
    why = f"\nThe download failed: {reason}" if reason is not None else ""
    return DatasetNotFoundError(
        f"{name}: file(s) {', '.join(missing)} (plain or .gz) not found. Searched, in order:\n{dirs}{why}\n"
        f"Fix:\n{fix_text(name)}"
    )
