"""helpers.cache: keys that follow their contents, and damaged entries rebuilt, never trusted."""

import numpy as np
import pandas as pd

from helpers import cache


def test_a_key_depends_on_the_contents_not_on_the_order_of_the_parts():
    assert cache.key_for(a=1, b=[2, 3]) == cache.key_for(b=[2, 3], a=1)
    assert cache.key_for(a=1, b=[2, 3]) != cache.key_for(a=1, b=[3, 2])


def test_a_damaged_entry_reads_as_missing_and_the_next_save_replaces_it():
    key = cache.key_for(test="damaged")
    path = cache.entry_path(key, "features")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04 cut short by a crash")  # what a non-atomic writer could leave
    assert cache.load(key, "features") is None
    cache.save(key, {"X": np.arange(3.0)}, "features")
    np.testing.assert_array_equal(cache.load(key, "features")["X"], np.arange(3.0))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_a_clip_fingerprint_changes_with_the_file_and_marks_a_missing_one(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"one")
    clips = pd.DataFrame({"fname": ["a.wav", "gone.wav"], "path": [path, tmp_path / "gone.wav"]})
    before = cache.clip_fingerprint(clips)
    assert before[1] == ["gone.wav", str(tmp_path / "gone.wav"), None, None]
    path.write_bytes(b"longer")
    assert cache.clip_fingerprint(clips)[0] != before[0]
