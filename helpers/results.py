"""The results summary: every notebook records its numbers in ``results/summary.json``.

Numbers are written by the code that measured them, never retyped; the README's results table
is generated from this file (``python -m helpers report``). Writes are atomic.
Used in: notebooks 03-08 (record), README generation (read).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from helpers.paths import results_dir


def summary_path() -> Path:
    return results_dir() / "summary.json"


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def load_summary() -> dict:
    """The summary so far (empty when nothing has been recorded)."""
    path = summary_path()
    return json.loads(path.read_text()) if path.is_file() else {}


def record(section: str, key: str, values: dict) -> Path:
    """Store ``values`` under ``summary[section][key]`` (replacing an older entry) atomically.

    Sections used: ``models`` (one entry per model variant on the test split, with accuracy,
    macro_f1, map_at_3 and more), ``pruning``, ``tuning``, ``timings``, ...
    """
    summary = load_summary()
    summary.setdefault(section, {})[key] = _plain(values)
    path = summary_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".summary.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return path
