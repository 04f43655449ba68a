"""Backups that make a run resumable and never lose, mix up or delete anyone's data.

``fit(..., backup_dir=d)`` lets a long run survive an interruption: Keras'
``BackupAndRestore`` saves the weights, the optimizer state and the epoch counter after every
epoch, and a second call with the same arguments resumes where the first stopped. Used
naively it is dangerous, so the course wraps it with these rules:

* **one folder per run**: each run backs up into ``d/<label>-seed<seed>/``, so runs of
  several seeds or contenders never resume from each other's checkpoints;
* **only folders the course made**: a run folder is created by the course and marked with a
  ``.cnncourse-run`` file naming its run; an existing folder without that mark, with the mark
  of another run, or holding files the course did not write, is refused (``BackupError``);
* **never delete what the course did not write**: when a run finishes, the course removes the
  files it wrote (by name) and the folders that are then empty and were its own; ``d`` itself
  is removed only if the course created it (marked ``.cnncourse-backups``) and nothing else is
  in it. Keras' ``delete_checkpoint=True`` would delete the whole of ``d``;
* **the whole history**: the per-epoch history and clocks are kept beside the checkpoint
  (``history.json``), so a resumed run reports every epoch, and says that it resumed;
* **damage is named**: a checkpoint without its ``training_metadata.json``, a truncated or
  unreadable weights file, or a history shorter than the checkpoint stops the run with one
  message naming the folder and what to do, instead of an h5py traceback or a silent restart
  at epoch 0 from trained weights.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import keras

from cnncourse.experiments.cache import write_json

__all__ = ["BackupError", "RunBackup", "run_folder_name"]

RUN_MARKER = ".cnncourse-run"
ROOT_MARKER = ".cnncourse-backups"
HISTORY = "history.json"
WEIGHTS = "latest.weights.h5"  # the names keras.callbacks.BackupAndRestore writes
METADATA = "training_metadata.json"
_OWN_FILES = (RUN_MARKER, HISTORY, WEIGHTS, METADATA, f"{WEIGHTS}.bkp", f"{METADATA}.bkp")
_OWN_TEMP = re.compile(r"^\.(" + "|".join(re.escape(n) for n in (RUN_MARKER, HISTORY)) + r")\.\d+\.[0-9a-f]+\.tmp$")


class BackupError(ValueError):
    """A backup folder the course must not use, or cannot resume from; the message says what to do."""


def run_folder_name(label: str, seed: int) -> str:
    """``<label>-seed<seed>`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``_``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(label)).strip("._-")[:60] or "run"
    return f"{slug}-seed{int(seed)}"


def _is_own(name: str) -> bool:
    return name in _OWN_FILES or bool(_OWN_TEMP.match(name))


def _weights_readable(path: Path) -> str | None:
    """``None`` if the weights file opens as HDF5, else the reason it does not."""
    import h5py

    try:
        with h5py.File(path, "r"):
            return None
    except OSError as error:
        return str(error)


class RunBackup:
    """The backup folder of one run: opened (created or checked) before training, finished after.

    :meth:`open` validates everything first, so a refused or damaged folder raises
    :class:`BackupError` before a single step is trained. ``resumed_epoch`` is the number of
    epochs the checkpoint holds (0 for a fresh run), ``history`` / ``seconds`` /
    ``cpu_seconds`` what those epochs recorded.
    """

    def __init__(self, root: Path, folder: Path, label: str, seed: int) -> None:
        self.root, self.folder, self.label, self.seed = root, folder, label, seed
        self.resumed_epoch = 0
        self.history: dict[str, list[float]] = {}
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, root: Any, label: str, seed: int) -> RunBackup:
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise BackupError(f"backup_dir {root} is a file, not a folder: pass a folder (it may not exist yet)")
        if not root.exists():
            root.mkdir(parents=True)
            write_json(root / ROOT_MARKER, {"created_by": "cnncourse", "holds": "one folder per training run"})
        backup = cls(root, root / run_folder_name(label, seed), label, int(seed))
        backup._claim()
        backup._read_state()
        return backup

    def _claim(self) -> None:
        folder = self.folder
        if not folder.exists():
            folder.mkdir()
            write_json(folder / RUN_MARKER, {"created_by": "cnncourse", "label": self.label, "seed": self.seed})
            return
        if not folder.is_dir():
            raise BackupError(f"{folder} exists and is not a folder; move it away or choose another backup_dir")
        marker = folder / RUN_MARKER
        if not marker.exists():
            raise BackupError(
                f"{folder} exists but was not made by cnncourse (it has no {RUN_MARKER} file): the course does not "
                "write into, resume from or delete a folder it did not create. Move that folder away or choose "
                "another backup_dir."
            )
        try:
            owner = json.loads(marker.read_text())
            same = owner.get("label") == self.label and owner.get("seed") == self.seed
        except (OSError, ValueError, AttributeError):
            same, owner = False, "an unreadable marker"
        if not same:
            raise BackupError(
                f"{folder} belongs to another run ({owner}), not to {self.label!r} seed {self.seed}: "
                "choose another backup_dir or label"
            )
        foreign = sorted(p.name for p in folder.iterdir() if not _is_own(p.name))
        if foreign:
            raise BackupError(
                f"{folder} holds files cnncourse did not write ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}): move them away; the course never deletes them"
            )

    def _damaged(self, what: str) -> BackupError:
        return BackupError(
            f"the backup in {self.folder} cannot be resumed: {what}. Delete the folder {self.folder} to train "
            f"{self.label!r} seed {self.seed} again from epoch 0 (nothing else uses it)."
        )

    def _read_state(self) -> None:
        weights, metadata = self.folder / WEIGHTS, self.folder / METADATA
        if not weights.exists() and not metadata.exists():
            return  # a fresh run (a history without a checkpoint is from an epoch that never finished saving)
        if not metadata.exists():
            raise self._damaged(f"it holds weights ({WEIGHTS}) but no {METADATA}, so the epoch to resume from is "
                                "unknown (the run was interrupted while saving)")
        if not weights.exists():
            raise self._damaged(f"it holds {METADATA} but no weights ({WEIGHTS})")
        try:
            epoch = json.loads(metadata.read_text())["epoch"]
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ValueError(epoch)
        except (OSError, ValueError, KeyError, TypeError):
            raise self._damaged(f"{METADATA} is damaged") from None
        reason = _weights_readable(weights)
        if reason is not None:
            raise self._damaged(f"the weights file {WEIGHTS} is damaged or truncated ({reason})")
        try:
            saved = json.loads((self.folder / HISTORY).read_text())
            history = {str(k): [float(v) for v in values][:epoch] for k, values in saved["history"].items()}
            seconds = [float(v) for v in saved["seconds"]][:epoch]
            cpu_seconds = [float(v) for v in saved["cpu_seconds"]][:epoch]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise self._damaged(f"its {HISTORY} is missing or damaged, so epochs 1-{epoch} would be lost") from None
        if epoch and (len(seconds) < epoch or any(len(v) < epoch for v in history.values()) or not history):
            raise self._damaged(f"its {HISTORY} records fewer epochs than the checkpoint's {epoch}")
        self.resumed_epoch, self.history, self.seconds, self.cpu_seconds = epoch, history, seconds, cpu_seconds

    # ------------------------------------------------------------------ during training
    def callbacks(self, timer: Any) -> list[keras.callbacks.Callback]:
        """The history writer, then Keras' backup (in this order: the history is never behind the checkpoint)."""
        return [_HistoryWriter(self, timer), _Restore(self)]

    def write_history(self, history: dict[str, list[float]], seconds: list[float], cpu_seconds: list[float]) -> None:
        write_json(self.folder / HISTORY, {"label": self.label, "seed": self.seed, "history": history,
                                          "seconds": seconds, "cpu_seconds": cpu_seconds})

    # ------------------------------------------------------------------ after training
    def finish(self) -> None:
        """Remove what the course wrote for this run, by name, and the folders that are then empty and its own."""
        for name in _OWN_FILES:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()
        for leftover in self.folder.iterdir() if self.folder.is_dir() else ():
            if _OWN_TEMP.match(leftover.name):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only if empty: anything someone else put there stays
        marker = self.root / ROOT_MARKER
        if marker.exists() and {p.name for p in self.root.iterdir()} == {ROOT_MARKER}:
            marker.unlink()
            with contextlib.suppress(OSError):
                self.root.rmdir()


class _HistoryWriter(keras.callbacks.Callback):
    """Writes the whole history so far (restored epochs included) beside the checkpoint, every epoch."""

    def __init__(self, backup: RunBackup, timer: Any) -> None:
        super().__init__()
        self.backup, self.timer = backup, timer
        self.history = {k: list(v) for k, v in backup.history.items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.backup.write_history(self.history, self.backup.seconds + self.timer.seconds,
                                  self.backup.cpu_seconds + self.timer.cpu_seconds)


class _Restore(keras.callbacks.BackupAndRestore):
    """Keras' backup into the run's own folder, never deleting it, with load errors named."""

    def __init__(self, backup: RunBackup) -> None:
        super().__init__(str(backup.folder), delete_checkpoint=False)
        self.backup = backup

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except Exception as error:  # h5py, a shape mismatch, another model's weights ...
            raise self.backup._damaged(f"Keras could not restore it ({type(error).__name__}: {error})") from error
