"""The one feature cache: arrays on disk, keyed by a hash of everything that shapes them.

Writes are atomic (:func:`helpers.files.atomic_file`), so an interrupted run never leaves an
entry that looks complete. Used in: :func:`helpers.features.extract_features`,
helpers/augment_audio.py (the rendered copies), helpers/pretrained.py (the embeddings).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.files import atomic_file
from helpers.paths import cache_dir


def clip_fingerprint(clips: pd.DataFrame) -> list[list]:
    """What identifies the audio of a clip list: name, path, size and modification time."""
    out = []
    for fname, path in clips[["fname", "path"]].itertuples(index=False):
        try:
            st = os.stat(path)
            out.append([str(fname), str(path), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(fname), str(path), None, None])
    return out


def key_for(**parts) -> str:
    """A stable hex digest of JSON-serialisable ``parts``."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def entry_path(key: str, prefix: str) -> Path:
    return cache_dir() / f"{prefix}-{key}.npz"


def load(key: str, prefix: str) -> dict[str, np.ndarray] | None:
    """The cached arrays for ``key``, or None when absent or unreadable (then it is rebuilt)."""
    path = entry_path(key, prefix)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception:  # a damaged entry is treated as missing
        return None


def save(key: str, arrays: dict[str, np.ndarray], prefix: str) -> Path:
    """Write ``arrays`` atomically under ``key``; returns the entry's path."""
    return atomic_file(entry_path(key, prefix), lambda tmp: np.savez(tmp, **arrays))
