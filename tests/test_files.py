"""Tests of helpers.files: atomic file and folder writes keep the old version on any error and
leave no temporary behind; the one JSON sanitiser."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from helpers.files import (
    atomic_file,
    atomic_folder,
    atomic_write_bytes,
    atomic_write_text,
    json_safe,
    remove_leftovers,
    write_json,
)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_creates_folders_and_replaces_a_file(tmp_path):
    path = tmp_path / "a" / "b" / "note.txt"
    assert atomic_write_text(path, "first") == path
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert listing(path.parent) == ["note.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_error_mid_write_keeps_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "summary.json"
    path.write_text("old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half of the new")
        raise error("interrupted")

    with pytest.raises(error):
        atomic_file(path, half_then_fail)
    assert path.read_text() == "old"
    assert listing(tmp_path) == ["summary.json"]
    with pytest.raises(error):  # no old file: nothing appears at all
        atomic_file(tmp_path / "new.json", half_then_fail)
    assert listing(tmp_path) == ["summary.json"]


def test_the_temporary_keeps_the_suffix_and_the_umask(tmp_path):
    """np.savez appends .npz to a name without it; the result must land at the target."""
    path = atomic_file(tmp_path / "x.npz", lambda tmp: np.savez(tmp, a=np.arange(3)))
    with np.load(path) as npz:
        assert list(npz["a"]) == [0, 1, 2]
    assert listing(tmp_path) == ["x.npz"]
    old = os.umask(0o022)
    try:
        mode = stat.S_IMODE(atomic_write_text(tmp_path / "y.txt", "y").stat().st_mode)
    finally:
        os.umask(old)
    assert mode == 0o644  # not mkstemp's 0o600


def test_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "bundle"
    atomic_folder(target, lambda tmp: (tmp / "a.txt").write_text("1"))
    atomic_folder(target, lambda tmp: (tmp / "b.txt").write_text("2"))
    assert listing(target) == ["b.txt"]  # nothing of the old version survives
    assert listing(tmp_path) == ["bundle"]


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_an_error_mid_fill_keeps_the_old_folder_and_no_temporary(tmp_path, error):
    target = tmp_path / "bundle"
    atomic_folder(target, lambda tmp: (tmp / "model.keras").write_text("old"))

    def half_then_fail(tmp: Path) -> None:
        (tmp / "model.keras").write_text("new")
        raise error("interrupted")

    with pytest.raises(error):
        atomic_folder(target, half_then_fail)
    assert listing(target) == ["model.keras"] and (target / "model.keras").read_text() == "old"
    assert listing(tmp_path) == ["bundle"]


def test_a_symlinked_folder_is_replaced_and_its_target_left_alone(tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "keep.txt").write_text("precious")
    (tmp_path / "data").symlink_to(real)
    atomic_folder(tmp_path / "data", lambda tmp: (tmp / "new.txt").write_text("n"))
    assert not (tmp_path / "data").is_symlink() and listing(tmp_path / "data") == ["new.txt"]
    assert listing(real) == ["keep.txt"]


def test_remove_leftovers_finds_only_this_targets_temporaries(tmp_path):
    (tmp_path / ".demo.tmp-1234abcd").mkdir()
    (tmp_path / ".demo.tmp-1234abcd" / "clip.wav").write_bytes(b"x")
    (tmp_path / ".x.npz.tmp-00ff00ff.npz").write_bytes(b"x")
    (tmp_path / ".demo2.tmp-00000000").mkdir()
    assert [p.name for p in remove_leftovers(tmp_path / "demo")] == [".demo.tmp-1234abcd"]
    assert listing(tmp_path) == [".demo2.tmp-00000000", ".x.npz.tmp-00ff00ff.npz"]


def test_json_safe_converts_numpy_nan_paths_and_tuples():
    value = {"a": np.float32(0.5), "b": np.int64(3), "c": np.array([[1, 2]]), 4: (1, np.nan),
             "d": [math.inf, -math.inf], "e": np.bool_(True), "f": Path("x/y"), "g": np.array(2.0),
             "h": {"nested": np.float64(np.nan)}, "i": None, "j": "text"}
    safe = json_safe(value)
    assert safe == {"a": 0.5, "b": 3, "c": [[1, 2]], "4": [1, None], "d": [None, None],
                    "e": True, "f": "x/y", "g": 2.0, "h": {"nested": None}, "i": None, "j": "text"}
    assert type(safe["b"]) is int and type(safe["e"]) is bool
    json.dumps(safe, allow_nan=False)


def test_write_json_round_trips_and_refuses_unknown_objects(tmp_path):
    path = write_json(tmp_path / "r.json", {"b": np.float64(1.5), "a": [np.nan]}, sort_keys=True)
    assert path.read_text() == '{\n  "a": [\n    null\n  ],\n  "b": 1.5\n}\n'
    with pytest.raises(TypeError, match="object"):
        write_json(tmp_path / "bad.json", {"x": object()})
    assert listing(tmp_path) == ["r.json"]
