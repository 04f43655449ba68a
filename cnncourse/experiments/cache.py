"""One result cache for every long experiment: keyed by everything a result depends on, never trusted blindly.

The long experiments (notebook 06's Zhang et al. grid, notebook 07's architectures table,
notebook 10's ablation and distribution runs, any :func:`cnncourse.experiments.train.compare`)
keep their results in JSON files under ``results/`` so that a re-run can reuse them. A cached
number is only as good as the match between what produced it and what is asked for now, so:

* **the key** (:func:`key`) always holds the recipe (or whatever configures the run), the
  sizes (the profile's :class:`~cnncourse.profiles.Experiment`), the dataset's name **and**
  the fingerprint of the exact arrays (:attr:`cnncourse.data.Split.fingerprint`: another
  dataset, subset or preprocessing at the same sizes is another key), the Keras backend, the
  device kind (:func:`cnncourse.backend.device_kind`) and the cache :data:`FORMAT`;
* **anything unusable** — a missing, empty, truncated, non-JSON or unreadable file, another
  format, a damaged record, a key that differs — is reported in **one line** (what and why)
  and the caller trains again: never a traceback, never stale numbers;
* **writes are atomic** (:func:`write_json`): the text goes to a temporary file with a name
  unique to the writing process, beside the target, and is renamed over it. Readers see the
  old file or the new one, and two writers at once never share a temporary file.

A file holds named entries (one per grid cell, or a single one), each stored with its key,
so one file can keep the cells of several profiles side by side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "ResultCache", "key", "write_json"]

FORMAT = 3
"""Bump when what a cached result means changes (a new result type, a changed recipe semantics):
every older file is then reported and retrained."""


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically; returns the path.

    The temporary file ``.<name>.<pid>.<random>.tmp`` is created exclusively (``O_EXCL``) in
    the target's folder, so concurrent writers never touch each other's; it takes the
    process's umask like any other file. A payload that is not JSON fails before anything is
    written; a failed write removes its temporary file and leaves the old file whole.
    """
    path = Path(path)
    text = json.dumps(payload, indent=1, allow_nan=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _normalised(value: Any) -> Any:
    """The value as it reads back from JSON (tuples become lists, keys strings), for comparisons."""
    return json.loads(json.dumps(value))


def _sizes(sizes: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(sizes) and not isinstance(sizes, type):
        fields = {f.name: getattr(sizes, f.name) for f in dataclasses.fields(sizes)}
        fields["options"] = dict(fields.get("options") or {})
        return fields
    if isinstance(sizes, Mapping):
        return dict(sizes)
    raise ValueError(f"sizes must be a cnncourse Experiment or a mapping, got {type(sizes).__name__}")


def key(*, config: Mapping[str, Any], sizes: Any, split: Any, **extra: Any) -> dict[str, Any]:
    """What a cached result must match to be reused.

    ``config``: the recipe and anything else that configures the runs (JSON values);
    ``sizes``: the :class:`~cnncourse.profiles.Experiment` (or a mapping of sizes); ``split``: a
    :class:`cnncourse.data.Split` (its ``name`` and ``fingerprint``); ``extra``: more JSON fields.
    The backend and device kind are added here, so no caller can forget them.
    """
    from cnncourse.backend import device_kind

    name, fingerprint = getattr(split, "name", None), getattr(split, "fingerprint", None)
    if not isinstance(name, str) or not isinstance(fingerprint, str):
        raise ValueError(
            "a result cache needs a cnncourse.data.Split (with name and fingerprint) so that results "
            f"from other data are never reused; got {type(split).__name__}"
        )
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a mapping (the recipe as a dict), got {type(config).__name__}")
    import keras

    try:
        return _normalised({
            "format": FORMAT,
            "config": dict(config),
            "sizes": _sizes(sizes),
            "dataset": name,
            "fingerprint": fingerprint,
            "backend": keras.backend.backend(),
            "device": device_kind(),
            **extra,
        })
    except (TypeError, ValueError) as error:
        raise ValueError(f"the cache key must be JSON values: {error}") from None


def _differences(stored: Any, wanted: Mapping[str, Any]) -> str:
    if not isinstance(stored, Mapping):
        return "its key is damaged"
    fields = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
    shown = ", ".join(fields[:4]) + (", ..." if len(fields) > 4 else "")
    return f"its {shown} differ{'s' if len(fields) == 1 else ''} from this run's"


class ResultCache:
    """A JSON file of named results, each stored with the :func:`key` it was computed under.

    ``cache.get(name, key, decode)`` returns the decoded result, or ``None`` (after printing
    one line saying why) when there is none that can be trusted; ``cache.put(name, key,
    result)`` stores a JSON-ready result and rewrites the file atomically, keeping the other
    entries (also those another process wrote meanwhile). ``recompute=True`` ignores what is on
    disk. ``report`` receives each one-line message (default: ``print``); ``path=None`` is a
    cache that keeps nothing.
    """

    def __init__(
        self, path: str | os.PathLike | None, *, recompute: bool = False, report: Callable[[str], None] | None = None
    ) -> None:
        self.path = None if path is None else Path(path)
        self._report = report if report is not None else (lambda line: print(line, flush=True))
        self._entries: dict[str, Any] = {}
        if self.path is not None and not recompute:
            self._entries = self._read(quiet=False)

    def _say(self, reason: str) -> None:
        self._report(f"cache {self.path}: {reason}; training again")

    def _read(self, *, quiet: bool) -> dict[str, Any]:
        assert self.path is not None
        say = (lambda reason: None) if quiet else self._say
        if not self.path.exists():
            return {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            say(f"cannot be read ({type(error).__name__}: {error})")
            return {}
        try:
            payload = json.loads(text)
        except ValueError:
            say("is empty" if not text.strip() else "is not valid JSON (truncated or damaged)")
            return {}
        if not isinstance(payload, dict):
            say(f"is not a cnncourse result cache (a JSON {type(payload).__name__}, not an object)")
            return {}
        if "format" not in payload:
            say("has no format field (written by an older cnncourse, or not a result cache)")
            return {}
        if payload["format"] != FORMAT:
            say(f"was written in cache format {payload['format']!r}, this version reads format {FORMAT}")
            return {}
        entries = payload.get("entries")
        if not isinstance(entries, dict):
            say("is damaged (its entries are not a mapping)")
            return {}
        return entries

    def get(self, name: str, key: Mapping[str, Any], decode: Callable[[Any], Any] | None = None) -> Any:
        """The result stored under ``name`` if its key equals ``key`` and it decodes; else ``None``."""
        entry = self._entries.get(name)
        if entry is None:
            return None
        if not isinstance(entry, dict) or "key" not in entry or "result" not in entry:
            self._say(f"entry {name!r} is damaged")
            return None
        if entry["key"] != _normalised(key):
            self._say(f"entry {name!r} does not apply: {_differences(entry['key'], _normalised(key))}")
            return None
        try:
            return entry["result"] if decode is None else decode(entry["result"])
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as error:
            self._say(f"entry {name!r} is damaged ({type(error).__name__}: {error})")
            return None

    def put(self, name: str, key: Mapping[str, Any], result: Any) -> None:
        """Store ``result`` (JSON values) under ``name`` and rewrite the file atomically."""
        entry = {"key": _normalised(key), "result": _normalised(result)}
        self._entries[name] = entry
        if self.path is None:
            return
        entries = self._read(quiet=True)  # keep what another process wrote meanwhile
        entries.update(self._entries)
        write_json(self.path, {"format": FORMAT, "entries": entries})
