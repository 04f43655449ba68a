"""Result caches on disk: JSON written atomically.

The long experiments (notebook 06's ablation grid, notebook 07's results table, notebook 10's
ablation) keep their results under ``results/`` so that a re-run can reuse them. A run that is
interrupted while saving must never leave a half-written file for the next run to parse, so
the text is serialised first, written to a temporary file beside the target, and renamed over
it (a rename is atomic on one file system: readers see the old file or the new one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically; returns the path."""
    path = Path(path)
    text = json.dumps(payload, indent=1)  # fails before anything is written if not serialisable
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
