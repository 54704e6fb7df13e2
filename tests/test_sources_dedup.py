"""Shared recordings: found across libraries even when a copy is trimmed, dropped or marked, and
never on both sides of a nested leave-one-library-out split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import soundfonts
from helpers.sources.dedup import (
    VoiceRecordings,
    deduplicate,
    fingerprints,
    recording_ids,
    shared_table,
)
from helpers.sources.libraries import Font
from helpers.sources.sf2 import PresetSpec, SampleSpec, write_soundfont
from helpers.splits import SHARES_COLUMN, UNUSED, check_no_shared_recordings, library_folds


def recording(seed: int, n: int = 6000) -> np.ndarray:
    """A noisy decaying tone as int16: every seed a different 'recording'."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 22050
    y = np.sin(2 * np.pi * rng.uniform(200, 800) * t) * np.exp(-3 * t) + 0.05 * rng.normal(size=n)
    return np.round(y / np.max(np.abs(y)) * 20000).astype(np.int16)


def test_a_trimmed_or_padded_copy_is_the_same_recording_and_others_are_not():
    a, b = recording(1), recording(2)
    ids = recording_ids({"a": a, "a_trimmed": a[17:-31].copy(),
                         "a_padded": np.concatenate([np.zeros(40, np.int16), a]),
                         "b": b, "b_exact": b.copy(), "silence": np.zeros(5000, np.int16)})
    assert ids["a"] == ids["a_trimmed"] == ids["a_padded"]
    assert ids["b"] == ids["b_exact"] != ids["a"]
    assert ids["silence"] not in (ids["a"], ids["b"])
    assert fingerprints(np.zeros(5000, np.int16)) == frozenset()  # silence has no fingerprint
    assert len(fingerprints(a)) > 20


def test_rescaled_copies_are_not_claimed_as_the_same_recording():
    a = recording(3)
    assert len(set(recording_ids({"a": a, "half": (a // 2).astype(np.int16)}).values())) == 2


def voice(library, label, name, recs):
    return VoiceRecordings(library, label, name, frozenset(recs))


def test_a_whole_copy_is_dropped_and_a_partial_one_marked_earlier_library_first():
    voices = [voice("B", "Violin", "B violin", {"x", "y"}),  # all of it is A's: a duplicate
              voice("A", "Violin", "A violin", {"x", "y", "z"}),
              voice("B", "Cello", "B cello", {"z", "w"}),  # shares z with A's violin
              voice("C", "Cello", "C cello", {"v"})]
    out = deduplicate(voices, order=["A", "B", "C"])
    assert [(v.name, of) for v, of in out.dropped] == [("B violin", ("A violin",))]
    shares = {v.name: v.shares for v in out.kept}
    assert shares == {"A violin": {"B"}, "B cello": {"A"}, "C cello": frozenset()}
    kept_all = deduplicate(voices, order=["A", "B", "C"], drop=False)
    assert not kept_all.dropped and {v.name: v.shares for v in kept_all.kept}["B violin"] == {"A"}
    table = shared_table(voices)
    assert list(table["shared"]) == [2, 1] and set(table["library_a"]) == {"A"}
    with pytest.raises(ValueError, match="not in the deduplication order"):
        deduplicate(voices, order=["A"])


def tiny_font(path, violin: np.ndarray, kick: np.ndarray) -> None:
    write_soundfont(path, [
        PresetSpec("violin", 0, 40, (SampleSpec("vn", violin, 22050, 69, key_range=(55, 100)),)),
        PresetSpec("kit", 128, 0, (SampleSpec("kick", kick, 22050, 36, key_range=(35, 36)),)),
    ])


def test_two_tiny_soundfonts_sharing_one_sample_never_cross_a_split(tmp_path):
    """Libraries A and B share a violin recording (B's copy trimmed); C shares nothing. The
    catalogue marks the violins as shared, and in every nested fold that validates or tests on
    A (or B), the other's violin clips are unused: never on both sides of the split."""
    shared = recording(10)
    paths = {}
    for lib, violin, kick in (("A", shared, recording(11)), ("B", shared[25:-9].copy(), recording(12)),
                              ("C", recording(13), recording(14))):
        paths[lib] = str(tmp_path / f"{lib}.sf2")
        tiny_font(paths[lib], violin, kick)
    options = []
    for lib in paths:
        options += soundfonts.font_options(Font(lib, lib, drum_kits=(0,)), paths[lib])
    options = soundfonts.identify_recordings(options, paths)
    records = [VoiceRecordings(o.library, soundfonts.label_of(o), o.name, o.recordings)
               for o in options]
    out = deduplicate(records, order=["A", "B", "C"], drop=False)
    shares = {v.name: v.shares for v in out.kept}
    assert shares["A 0:40 violin (Violin_or_fiddle)"] == {"B"}
    assert shares["B 0:40 violin (Violin_or_fiddle)"] == {"A"}
    assert not any(s for name, s in shares.items() if "Bass_drum" in name or name.startswith("C"))
    assert len(shared_table(records)) == 1

    rows = []
    for v in out.kept:
        label = "Violin_or_fiddle" if "Violin" in v.name else "Bass_drum"
        for i in range(12):
            rows.append({"fname": f"{v.library}{label}{i}.wav", "label": label,
                         "library": v.library, "split": "test" if i < 3 else "train",
                         SHARES_COLUMN: ";".join(sorted(v.shares))})
    clips = pd.DataFrame(rows)
    a_violin = (clips["library"] == "A") & (clips["label"] == "Violin_or_fiddle")
    b_violin = (clips["library"] == "B") & (clips["label"] == "Violin_or_fiddle")
    folds = library_folds(clips)
    assert len(folds) == 3
    for fold in folds:
        check_no_shared_recordings(fold.clips)
        held = {fold.held_out, fold.validated_on}
        if held & {"A", "B"} == {"A"}:
            assert set(fold.clips.loc[b_violin, "split"]) == {UNUSED}
        if held & {"A", "B"} == {"B"}:
            assert set(fold.clips.loc[a_violin, "split"]) == {UNUSED}
