"""The results summary: every notebook records its numbers in ``results/summary.json``.

Numbers are written by the code that measured them, never retyped; the README's results table
is generated from this file (``python -m helpers report``). Writes are atomic.

Keys are stable names (``"03/logmel-cnn"``, ``"10/shipped"``), never values of a run, and a
notebook starts with :func:`begin`, which drops everything it recorded before: rerunning a
notebook replaces its own entries instead of piling new keys beside stale ones.
Used in: notebooks 03-10 (begin, record), README generation (read).
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers.files import write_json
from helpers.paths import results_dir


def summary_path() -> Path:
    return results_dir() / "summary.json"


def load_summary() -> dict:
    """The summary so far (empty when nothing has been recorded)."""
    path = summary_path()
    return json.loads(path.read_text()) if path.is_file() else {}


def _write(summary: dict) -> Path:
    return write_json(summary_path(), summary, sort_keys=True)


def begin(notebook: str) -> int:
    """Drop every entry whose ``notebook`` is ``notebook`` (call it at a notebook's start), and
    every entry that names no notebook: :func:`record` never writes one, so it is left over from
    an older version of the project and no rerun would ever replace it.

    Returns how many entries were dropped. Used in: notebooks 03-10.
    """
    summary = load_summary()
    dropped = 0
    for entries in summary.values():
        if isinstance(entries, dict):
            stale = [k for k, v in entries.items()
                     if not isinstance(v, dict) or v.get("notebook", notebook) == notebook]
            for key in stale:
                del entries[key]
            dropped += len(stale)
    if dropped:
        _write(summary)
    return dropped


def model_entry(name: str, summary_row, notebook: str, dataset: str, **extra) -> dict:
    """A ``models`` entry from a row of :func:`helpers.protocol.summarise`: in-library and
    cross-library test scores (pooled over the folds, mean over seeds; std over the fold x seed
    runs), inner validation (``cross_val``), size, and the number of folds and seeds."""
    def block(split: str) -> dict:
        return {f"{m}{suffix}": summary_row.get(f"{split}_{m}{suffix}")
                for m in ("accuracy", "macro_f1", "map_at_3") for suffix in ("", "_std")}

    return {"name": name, "notebook": notebook, "dataset": dataset,
            "seeds": int(summary_row.get("seeds", 1)),
            "folds": int(summary_row.get("directions", 1)),
            "in_library": block("test"), "cross_library": block("cross_test"),
            "cross_val": block("cross_val"), "params": summary_row.get("params"),
            "converged": summary_row.get("converged"), **extra}


def record(section: str, key: str, values: dict) -> None:
    """Store ``values`` under ``summary[section][key]`` (replacing an older entry) atomically.

    Sections used: ``models`` (one entry per model variant on the test split, with accuracy,
    macro_f1, map_at_3 and more), ``pruning``, ``tuning``, ``timings``, ...
    """
    if "notebook" not in values:
        raise ValueError(f"results entry {section}/{key} must name its notebook (begin() relies on it)")
    summary = load_summary()
    summary.setdefault(section, {})[key] = values
    _write(summary)
