"""Writing files and folders so that an interruption never leaves one that looks complete.

Every write goes to a hidden temporary sibling (same folder, so the same file system) that is
renamed over the target only once it is complete; a rename is atomic, so a reader sees the old
version or the new one, never half of either. On any exception (Ctrl-C included) the temporary
is deleted and the old file or folder is left as it was. A process killed outright (SIGKILL,
power loss) can leave a hidden ``.<name>.tmp-*`` sibling behind, which never looks like the
target; :func:`remove_leftovers` clears them.

:func:`json_safe` is the project's one conversion of Python/numpy values to JSON: numpy scalars
and arrays become Python numbers and lists, NaN and infinities become ``null``, paths become
strings, tuples become lists.
Used in: helpers/cache.py, results.py, augment.py, models.py, pruning.py, experiment.py,
protocol.py, transfer.py, tuning.py, tune_command.py, demo.py, download.py, chain.py, book.py,
plots.py; notebooks/09_pretrained.ipynb; benchmarks/bench_chain.py, bench_scale.py.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np


def _temporary_name(path: Path, suffix: str = "") -> Path:
    """A hidden sibling name, ``.<name>.tmp-<random><suffix>``, that :func:`remove_leftovers` finds."""
    return path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}{suffix}")


def atomic_file(path, write: Callable[[Path], object]) -> Path:
    """Create or replace the file ``path`` with whatever ``write(tmp)`` writes to ``tmp``.

    ``tmp`` is a new empty file next to ``path`` with the same suffix; ``write`` may reopen it
    by name (``np.savez(tmp, ...)``, ``fig.savefig(tmp)``). The parent folder is created.
    Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path, path.suffix)  # np.savez and savefig read the suffix
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # umask applies
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Create or replace the file ``path`` with ``data``, atomically."""
    return atomic_file(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path, text: str) -> Path:
    """Create or replace the file ``path`` with ``text`` (UTF-8), atomically."""
    return atomic_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts.

    Mappings (keys become strings), lists, tuples and numpy arrays are converted recursively;
    numpy scalars become Python scalars; NaN and infinities become None; paths become strings.
    Anything else is returned as is (``json.dumps`` then names what it cannot write).
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, PurePath):
        return str(value)
    return value


def write_json(path, value: Any, sort_keys: bool = False) -> Path:
    """Write :func:`json_safe` of ``value`` to ``path`` atomically (indented, final newline)."""
    text = json.dumps(json_safe(value), indent=2, sort_keys=sort_keys, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def atomic_folder(directory, fill: Callable[[Path], object]) -> Path:
    """Create or replace the folder ``directory`` with what ``fill(tmp)`` writes into ``tmp``.

    ``tmp`` is a new empty folder next to ``directory``. An older ``directory`` is moved aside
    and deleted only once the new one is complete and in place. Returns ``directory``.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(directory)
    os.mkdir(tmp, 0o777)  # umask applies
    try:
        fill(tmp)
        old = None
        if directory.exists() or directory.is_symlink():
            old = _temporary_name(directory)
            os.replace(directory, old)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        if old.is_symlink() or not old.is_dir():
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)
    return directory


def remove_leftovers(path) -> list[Path]:
    """Delete the temporaries that killed writers of ``path`` left behind; returns them.

    Only call it when no other process is writing ``path`` (it would delete that write).
    """
    path = Path(path)
    found = sorted(path.parent.glob(f".{path.name}.tmp-*"))
    for leftover in found:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    return found
