"""What can go wrong with a dataset file, one class per kind of fix.

Each error's message names the file (or folder) and says what to do; the classes exist so
that a caller can tell "get the files" (:class:`DatasetNotFoundError`) from "these bytes are
wrong" (:class:`ChecksumError`), "this account may not read them" (:class:`UnreadableFileError`),
"the network or the cache folder failed" (:class:`DownloadError`) and "the manifest itself is
broken" (:class:`ManifestError`). Each subclasses the built-in a caller would already catch.
"""

from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is in none of the searched directories and could not be downloaded."""


class ChecksumError(ValueError):
    """A file's bytes do not match the manifest (or the manifest has no digest to check them).

    ``status`` says which: ``"mismatch"`` (wrong, corrupt, truncated or oversized bytes) or
    ``"unverifiable"`` (the manifest has no digest this copy could be checked against).
    """

    def __init__(self, message: str, status: str = "mismatch") -> None:
        super().__init__(message)
        self.status = status


class UnreadableFileError(OSError):
    """A dataset file exists but cannot be read (another user's file, an I/O error).

    ``errno`` is the operating system's error number; ``path`` the file. The message says
    whose file it is and how to get a readable copy.
    """

    status = "unreadable"

    def __init__(self, message: str, *, path: object = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno


class DownloadError(OSError):
    """A dataset file could not be downloaded into the cache.

    The network failed (no network, HTTP error, dropped or short stream), the download ran past
    its deadline or past the size the manifest allows, or the cache folder cannot be written.
    """


class ManifestError(ValueError):
    """The checksum manifest cannot be read or does not describe the datasets correctly."""
