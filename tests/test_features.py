"""Features: shapes, windows that remember their clip, the cache and its invalidation."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from helpers.features import (
    FeatureConfig,
    clip_features,
    clip_summary,
    clip_windows,
    extract_features,
    features_cached,
    fit_standardizer,
    log_mel,
    mfcc,
    standardize,
    window_starts,
)
from tests.conftest import tone

CFG = FeatureConfig()


def test_log_mel_and_mfcc_shapes_and_ranges():
    y = tone(2.0)
    S = log_mel(y, CFG)
    assert S.shape == (64, 1 + len(y) // CFG.hop_length)
    assert S.max() == pytest.approx(0.0) and S.min() >= -CFG.top_db - 1e-3
    M = mfcc(y, CFG)
    assert M.shape == (20, S.shape[1])


def test_loud_and_quiet_copies_give_the_same_log_mel():
    y = tone(1.0)
    assert np.allclose(log_mel(y, CFG), log_mel(0.01 * y, CFG), atol=1e-3)


def test_window_starts_cover_the_clip():
    assert window_starts(10, 44, 22) == [0]
    assert window_starts(44, 44, 22) == [0]
    assert window_starts(100, 44, 22) == [0, 22, 44, 56]


# 44-frame windows every 43 frames (1 s): a 2-s clip has 87 frames -> starts 0, 43; a 3-s clip
# 130 frames -> 0, 43, 86; shorter clips are padded to one window. The tone decays by about
# 35 dB over 2 s, which the activity gate (10 dB over the clip's own floor) keeps.
@pytest.mark.parametrize("seconds,expected", [(0.3, 1), (1.0, 1), (2.0, 2), (3.0, 3)])
def test_window_count_and_shape(seconds, expected):
    assert (CFG.frames_per_window, CFG.frames_per_hop) == (44, 43)
    W = clip_windows(tone(seconds, amp=0.5), CFG)
    assert W.shape[1:] == CFG.input_shape == (64, 44, 1)
    assert W.dtype == np.float32
    assert len(W) == expected


def test_silent_tail_windows_are_dropped():
    y = np.concatenate([tone(1.0), np.zeros(22050 * 4, np.float32)])
    W = clip_windows(y, CFG)
    full = clip_windows(np.concatenate([tone(1.0), tone(4.0, amp=0.4)]), CFG)
    assert len(W) < len(full)


def test_a_long_noise_only_tail_is_not_trained_on():
    """A short note, then the recording's background noise 30 dB below it for 5.5 s more: the
    note's window stays, the noise-only windows go (the old rule, within 60 dB of the peak, kept
    all six)."""
    rng = np.random.default_rng(0)
    note = tone(0.5)
    noise = rng.normal(size=22050 * 6).astype(np.float32)
    noise *= np.sqrt(np.mean(note**2) / np.mean(noise**2)) * 10 ** (-30 / 20)
    y = np.concatenate([note, np.zeros(22050 * 6 - len(note), np.float32)]) + noise
    one_window_per_second = FeatureConfig(window_hop_seconds=1.0)
    assert len(clip_windows(y, one_window_per_second)) == 1
    old_rule = FeatureConfig(gate_db=100.0)  # the floor never gates: only the 60 dB rule
    assert len(clip_windows(y, old_rule)) == 6


def test_a_steady_sound_keeps_every_window():
    y = np.sin(2 * np.pi * 440 * np.arange(22050 * 4) / 22050).astype(np.float32)
    y *= 1 + 0.2 * np.sin(2 * np.pi * 0.5 * np.arange(len(y)) / 22050)  # slow 3 dB swell
    assert len(clip_windows(y, CFG)) == len(window_starts(1 + len(y) // CFG.hop_length,
                                                          CFG.frames_per_window, CFG.frames_per_hop))


def test_mfcc_config_changes_the_input_shape():
    cfg = FeatureConfig(kind="mfcc", n_mfcc=13)
    assert clip_windows(tone(1.0), cfg).shape[1:] == (13, 44, 1)
    with pytest.raises(ValueError, match="kind"):
        FeatureConfig(kind="cqt")


def _table(tmp_path, n=4, seconds=1.5):
    rows = []
    for i in range(n):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, tone(seconds, freq=200 + 100 * i), 22050)
        rows.append({"fname": path.name, "path": path, "label": "A" if i % 2 else "B",
                     "split": "train"})
    return pd.DataFrame(rows)


def test_extract_features_keeps_clip_ids_and_uses_the_cache(tmp_path):
    clips = _table(tmp_path)
    assert not features_cached(clips, CFG)
    fs = extract_features(clips, CFG, progress=False)
    assert features_cached(clips, CFG) and not features_cached(clips, FeatureConfig(n_mels=32))
    assert len(fs.X) == len(fs.clip_ids) >= 4
    assert set(fs.clip_ids) == set(clips["fname"])
    assert list(fs.clips["fname"]) == list(clips["fname"])
    assert list(fs.window_labels(["A", "B"]))[:1] == [1]
    entries = list((tmp_path / "cache").glob("features-logmel-*.npz"))
    assert len(entries) == 1
    mtime = entries[0].stat().st_mtime_ns
    again = extract_features(clips, CFG, progress=False)
    assert np.array_equal(again.X, fs.X)
    assert entries[0].stat().st_mtime_ns == mtime  # read, not rewritten


def test_cache_is_invalidated_by_parameters_and_by_the_clip_list(tmp_path):
    clips = _table(tmp_path)
    extract_features(clips, CFG, progress=False)
    extract_features(clips, FeatureConfig(n_mels=32), progress=False)
    extract_features(clips.iloc[:3], CFG, progress=False)
    sf.write(clips.loc[0, "path"], tone(2.5), 22050)  # the audio itself changed
    extract_features(clips, CFG, progress=False)
    assert len(list((tmp_path / "cache").glob("features-logmel-*.npz"))) == 4


def test_bad_clips_are_skipped_counted_and_cached_without_poisoning(tmp_path):
    clips = _table(tmp_path)
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    sf.write(tmp_path / "quiet.wav", np.zeros(22050, np.float32), 22050)
    bad = pd.DataFrame([
        {"fname": "broken.wav", "path": tmp_path / "broken.wav", "label": "A", "split": "train"},
        {"fname": "quiet.wav", "path": tmp_path / "quiet.wav", "label": "B", "split": "train"},
        {"fname": "gone.wav", "path": tmp_path / "gone.wav", "label": "B", "split": "train"},
    ])
    table = pd.concat([clips, bad], ignore_index=True)
    with pytest.warns(UserWarning, match="skipped 3 of 7 clips") as caught:
        fs = extract_features(table, CFG, progress=False)
    message = str(caught[0].message)
    assert "broken.wav: cannot decode audio" in message and "quiet.wav: silent" in message
    reasons = dict(zip(fs.skipped["fname"], fs.skipped["reason"]))
    assert set(reasons) == {"broken.wav", "quiet.wav", "gone.wav"}
    assert reasons["gone.wav"] == "file not found"
    assert reasons["broken.wav"].startswith("cannot decode audio")
    assert reasons["quiet.wav"] == f"silent in its first {CFG.max_seconds:g} s (peak below -60 dBFS)"
    assert len(fs.clips) == 4 and not set(fs.clip_ids) & set(bad["fname"])
    with pytest.warns(UserWarning, match="skipped 3 of 7 clips"):  # from the cache: warned again
        again = extract_features(table, CFG, progress=False)
    assert dict(zip(again.skipped["fname"], again.skipped["reason"])) == reasons


def test_clips_extracted_on_the_worker_pool_equal_clips_extracted_here(tmp_path, monkeypatch):
    """Long clip lists go to the local pool in chunks (helpers.parallel.map_clips): same windows,
    same order, same skipped clips as in this process."""
    from helpers import parallel

    clips = _table(tmp_path, n=7)
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    table = pd.concat([clips.iloc[:3], pd.DataFrame([{"fname": "broken.wav", "path": tmp_path / "broken.wav",
                                                      "label": "A", "split": "train"}]), clips.iloc[3:]],
                      ignore_index=True)
    with pytest.warns(UserWarning, match="skipped 1 of 8 clips"):
        here = extract_features(table, CFG, use_cache=False, progress=False)
    monkeypatch.setattr(parallel, "MIN_POOLED_CLIPS", 1)
    monkeypatch.setattr(parallel, "CLIP_CHUNK", 3)  # several chunks, finishing in any order
    with pytest.warns(UserWarning, match="skipped 1 of 8 clips"):
        pooled = extract_features(table, CFG, use_cache=False, progress=False)
    np.testing.assert_array_equal(pooled.X, here.X)
    assert list(pooled.clip_ids) == list(here.clip_ids)
    assert list(pooled.skipped["fname"]) == ["broken.wav"]


def test_interrupted_cache_write_leaves_no_entry(tmp_path, monkeypatch):
    clips = _table(tmp_path)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        extract_features(clips, CFG, progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_select_by_split_keeps_windows_with_their_clips(tmp_path):
    clips = _table(tmp_path)
    clips.loc[[0, 1], "split"] = "test"
    fs = extract_features(clips, CFG, progress=False)
    test = fs.select("test")
    assert set(test.clip_ids) == {"c0.wav", "c1.wav"}
    assert len(test.clips) == 2 and len(fs.select("train").clips) == 2


def test_standardizer_is_fit_per_bin():
    rng = np.random.default_rng(0)
    X = rng.normal(5, 3, size=(50, 8, 10, 1)).astype(np.float32) + np.arange(8)[None, :, None, None]
    mean, std = fit_standardizer(X)
    assert mean.shape == std.shape == (8,)
    Z = standardize(X, mean, std)
    assert np.allclose(Z.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    assert np.allclose(Z.std(axis=(0, 2, 3)), 1, atol=1e-3)


def test_clip_summary_has_one_row_per_clip(tmp_path):
    fs = extract_features(_table(tmp_path), FeatureConfig(kind="mfcc"), progress=False)
    S = clip_summary(fs)
    assert S.shape == (4, 6 * 20) and np.all(np.isfinite(S))


def test_band_normalisation_removes_each_bands_mean_over_the_clip():
    y = tone(2.0)
    S = clip_features(y, replace(CFG, band_norm=True))
    np.testing.assert_allclose(S.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(S, log_mel(y, CFG) - log_mel(y, CFG).mean(axis=1, keepdims=True), atol=1e-4)


def test_pcen_follows_its_time_constant():
    y = tone(2.0)
    fast, slow = (clip_features(y, FeatureConfig(kind="pcen", pcen_time_constant=t)) for t in (0.05, 5.0))
    assert fast.shape == slow.shape == (CFG.n_mels, 1 + len(y) // CFG.hop_length)
    assert np.isfinite(fast).all() and not np.allclose(fast, slow)
