"""Tests for helpers.perturb: exact SNR (helpers.acoustics' definition) and gain, reverb keeps
length and replays for a seed, and a perturbed test split that keeps clip order (a clean
'perturbation' reproduces the features)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import tone

from helpers.acoustics import snr_db
from helpers.perturb import (
    Perturbation,
    add_noise,
    add_reverb,
    change_gain,
    perturbed_split,
    perturbed_splits,
)

SR = 22050


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 30.0])
@pytest.mark.parametrize("seed", [0, 7])
def test_noise_reaches_the_requested_snr(snr, seed):
    y = tone(2.0, SR)
    noisy = add_noise(y, snr, seed)
    assert noisy.shape == y.shape and noisy.dtype == np.float32
    assert snr_db(y, noisy - y) == pytest.approx(snr, abs=1e-4)  # float32 rounding only
    assert np.array_equal(noisy, add_noise(y, snr, seed))
    assert not np.array_equal(noisy, add_noise(y, snr, seed + 1))


def test_noise_on_silence_raises():
    with pytest.raises(ValueError, match="silent"):
        add_noise(np.zeros(100), 10.0)


def test_noise_level_follows_the_sound_not_the_silence_around_it():
    """The demo set's definition: leading silence does not make the added noise quieter."""
    y = np.concatenate([np.zeros(SR, np.float32), tone(0.5, SR)])
    noise = add_noise(y, 10.0, seed=1) - y
    sound = y[SR:]
    assert 10 * np.log10(np.mean(sound**2) / np.mean(noise**2)) == pytest.approx(10.0, abs=0.5)


@pytest.mark.parametrize("gain_db", [-20.0, 0.0, 6.0])
def test_gain_is_exact(gain_db):
    y = tone(0.5, SR)
    out = change_gain(y, gain_db)
    np.testing.assert_allclose(out, y * 10 ** (gain_db / 20), rtol=1e-6)
    peak_change = 20 * np.log10(np.max(np.abs(out)) / np.max(np.abs(y)))
    assert peak_change == pytest.approx(gain_db, abs=1e-4)


def test_reverb_keeps_length_and_peak_and_replays_for_a_seed():
    y = tone(1.0, SR)
    wet = add_reverb(y, SR, rt60=0.8, seed=3)
    assert wet.shape == y.shape and wet.dtype == np.float32
    assert np.max(np.abs(wet)) == pytest.approx(np.max(np.abs(y)), rel=1e-5)
    assert np.array_equal(wet, add_reverb(y, SR, rt60=0.8, seed=3))
    assert not np.allclose(wet, add_reverb(y, SR, rt60=0.8, seed=4))
    assert not np.allclose(wet, y)
    # a click followed by silence: the room rings on after it
    click = np.zeros(SR, np.float32)
    click[100] = 0.5
    ringing = add_reverb(click, SR, rt60=0.8, seed=3)
    assert np.count_nonzero(click[200:]) == 0 and np.mean(ringing[SR // 10:] ** 2) > 1e-6


def test_perturbation_config_and_labels():
    assert Perturbation().label == "clean"
    assert Perturbation("noise", 10).label == "noise 10 dB SNR"
    assert Perturbation("reverb", 0.8).label == "reverb 0.8 s RT60"
    assert Perturbation("gain", -20).label == "gain -20 dB"
    with pytest.raises(ValueError, match="unknown perturbation"):
        Perturbation("pitch", 2)
    with pytest.raises(ValueError, match="RT60"):
        Perturbation("reverb", 0)
    y = tone(0.5, SR)
    p = Perturbation("noise", 10, seed=0)
    assert np.array_equal(p.apply(y, SR, "a.wav"), p.apply(y, SR, "a.wav"))
    assert not np.array_equal(p.apply(y, SR, "a.wav"), p.apply(y, SR, "b.wav"))


@pytest.fixture
def small_prepared(tmp_path):
    """Four generated clips (two per class) in train/val/test, prepared with the real pipeline."""
    from helpers.experiment import prepare
    from helpers.features import FeatureConfig

    rows = []
    for i, (label, freq, split) in enumerate([
        ("a", 330.0, "train"), ("b", 880.0, "train"), ("a", 350.0, "val"), ("b", 900.0, "val"),
        ("a", 340.0, "test"), ("b", 870.0, "test"), ("b", 860.0, "test"),
    ]):
        path = tmp_path / f"clip{i}.wav"
        y = np.concatenate([np.zeros(SR // 2, np.float32), tone(1.5 + 0.5 * i, SR, freq=freq)])
        sf.write(path, y, SR)
        rows.append({"fname": path.name, "path": str(path), "label": label, "split": split})
    return prepare(pd.DataFrame(rows), FeatureConfig(kind="logmel"), progress=False)


def test_perturbed_split_clean_reproduces_features(small_prepared):
    clean = perturbed_split(small_prepared, Perturbation("none"))
    before, after = small_prepared.splits["test"], clean.splits["test"]
    np.testing.assert_allclose(after.X, before.X, atol=1e-4)
    assert list(after.clip_ids) == list(before.clip_ids)
    assert clean.splits["train"] is small_prepared.splits["train"]  # other splits untouched
    assert np.array_equal(clean.mean, small_prepared.mean)


def test_perturbed_split_noise_changes_windows_and_keeps_clip_order(small_prepared):
    noisy = perturbed_split(small_prepared, Perturbation("noise", 0.0))
    before, after = small_prepared.splits["test"], noisy.splits["test"]
    assert list(pd.unique(after.clip_ids)) == list(before.clips["fname"])
    assert after.X.shape[1:] == before.X.shape[1:]
    assert list(noisy.clip_y("test")) == list(small_prepared.clip_y("test"))
    same_count = len(after.X) == len(before.X)
    assert not same_count or not np.allclose(after.X, before.X, atol=1e-2)
    # gain: log-mel is in dB re the clip's peak, so a gain change leaves the features unchanged
    quiet = perturbed_split(small_prepared, Perturbation("gain", -20.0)).splits["test"]
    np.testing.assert_allclose(quiet.X, before.X, atol=1e-3)


def test_perturbed_splits_perturb_a_shared_clip_once_and_standardise_per_fold(small_prepared, monkeypatch):
    """Folds whose test splits overlap: each clip is perturbed once, and each fold gets exactly
    what perturbed_split gives it alone (its own training statistics)."""
    import helpers.perturb as perturb

    other = replace(small_prepared, mean=small_prepared.mean + 1.0, std=small_prepared.std * 2.0)
    noise = Perturbation("noise", 5.0, seed=3)
    calls = []
    real = perturb._perturbed_windows
    monkeypatch.setattr(perturb, "_perturbed_windows", lambda row, **kw: calls.append(row[0]) or real(row, **kw))
    both = perturbed_splits([small_prepared, other], noise)
    assert sorted(calls) == sorted(small_prepared.splits["test"].clips["fname"])  # once per clip
    monkeypatch.setattr(perturb, "_perturbed_windows", real)
    for alone, together in zip((small_prepared, other), both, strict=True):
        expected = perturbed_split(alone, noise).splits["test"]
        np.testing.assert_allclose(together.splits["test"].X, expected.X, atol=1e-6)
        assert list(together.splits["test"].clip_ids) == list(expected.clip_ids)
        assert np.array_equal(together.mean, alone.mean)
    assert perturbed_splits([], noise) == []
    with pytest.raises(ValueError, match="feature_config"):
        perturbed_splits([small_prepared, replace(small_prepared, feature_config=replace(
            small_prepared.feature_config, n_mels=32))], noise)
