"""The course's datasets: find, verify, download, parse, subset and batch them.

Why not ``keras.datasets``? It downloads on every fresh machine (CI here has no network),
caches in ``~/.keras`` without telling the user where, and unpickles CIFAR-10 without
checking what it unpickles. This package looks for the files in the places a user or a
distribution puts them, checks every file against a manifest of digests *before* parsing
it, downloads only what no verified copy exists of, and says exactly what to do when it cannot.

Where files are looked for, in order (a dataset may sit in a sub-folder named like
``fashion-mnist/`` or ``MNIST/raw/``, or directly in the directory), in :mod:`.lookup`:

1. each directory of ``$CNNCOURSE_DATA`` (``os.pathsep``-separated);
2. the cache: ``<checkout>/data/`` when the package runs from a source checkout, else
   ``$XDG_CACHE_HOME/cnncourse`` (``~/.cache/cnncourse``);
3. system locations: ``/usr/share/datasets`` (Debian's ``dataset-fashion-mnist``) and
   Keras' own cache ``~/.keras/datasets``.

Every copy found is a candidate; the first that verifies is read (:mod:`.checksums`). The
manifest (``cnncourse/datasets.json``, or ``$CNNCOURSE_MANIFEST``; :mod:`.registry`) records
the digest and size of each file's *decompressed payload*, so a recompressed copy of the same
data is accepted, anything else is refused, and no file is read or decompressed past its size.
CIFAR-10 batches are pickles: they are unpickled only after their digest matched, and then
with an unpickler that can build nothing but NumPy arrays, lists, dicts, strings and numbers
(:mod:`.formats`).

Nothing is ever deleted or overwritten that the course did not write itself: a copy that
fails is refused and named, with the fix. The course records each file it installs in its
cache, and replaces (never simply deletes) only those, with a fresh verified download
(:mod:`.ownership` says exactly how it knows; :mod:`.download` how downloads are made safe:
part files, umask-respecting permissions, a deadline, a size cap, progress, clean-up on SIGTERM
and of parts left by killed processes).

Public API: :func:`load`, :func:`load_split` (→ :class:`Split`), :func:`available`,
:func:`pipeline`, :func:`where`, :func:`verify` (→ :class:`FileCheck`), :func:`fetch`,
:func:`info` (→ :class:`DatasetInfo`), :func:`manifest`, :func:`cache_dir`, :func:`search_dirs`,
:func:`clear_cache`, :func:`balanced_indices`, :data:`CLASS_NAMES`, :data:`NAMES`,
:data:`DATA_ENV_VAR`, the errors (:class:`DatasetNotFoundError`, :class:`ChecksumError`,
:class:`UnreadableFileError`, :class:`DownloadError`, :class:`ManifestError`), and :func:`cli`
behind ``python -m cnncourse data``.
"""

from __future__ import annotations

from cnncourse.data import batches, checksums, download, formats, lookup, ownership, registry
from cnncourse.data.arrays import clear_cache, load
from cnncourse.data.batches import pipeline
from cnncourse.data.checksums import FileCheck, verify
from cnncourse.data.command import cli
from cnncourse.data.download import DOWNLOAD_DEADLINE_S, DOWNLOAD_TIMEOUT_S, fetch
from cnncourse.data.errors import ChecksumError, DatasetNotFoundError, DownloadError, ManifestError, UnreadableFileError
from cnncourse.data.lookup import available, cache_dir, search_dirs, where
from cnncourse.data.registry import (
    CLASS_NAMES,
    DATA_ENV_VAR,
    MANIFEST_ENV_VAR,
    MANIFEST_FILE,
    NAMES,
    DatasetInfo,
    flips_keep_labels,
    info,
    manifest,
)
from cnncourse.data.split import Split, balanced_indices, load_split

__all__ = [
    "CLASS_NAMES",
    "DATA_ENV_VAR",
    "DOWNLOAD_DEADLINE_S",
    "DOWNLOAD_TIMEOUT_S",
    "MANIFEST_ENV_VAR",
    "MANIFEST_FILE",
    "NAMES",
    "ChecksumError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DownloadError",
    "FileCheck",
    "ManifestError",
    "Split",
    "UnreadableFileError",
    "available",
    "balanced_indices",
    "batches",
    "cache_dir",
    "checksums",
    "clear_cache",
    "cli",
    "download",
    "fetch",
    "flips_keep_labels",
    "formats",
    "info",
    "load",
    "load_split",
    "lookup",
    "manifest",
    "ownership",
    "pipeline",
    "registry",
    "search_dirs",
    "verify",
    "where",
]
