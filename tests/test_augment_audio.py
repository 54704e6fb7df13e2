"""helpers.augment_audio: a rendered copy keeps the clip's length, is reproducible for (seed,
clip, copy), and its room and noise come from helpers.acoustics."""

from __future__ import annotations

import numpy as np
from conftest import tone

from helpers.augment_audio import WaveformAugment

SR = 22050


def test_a_copy_keeps_the_length_and_replays_for_its_seed_clip_and_copy():
    y = tone(1.0, SR)
    augment = WaveformAugment(room_p=1.0)  # every copy goes through a room
    a = augment.render(y, SR, "a.wav", 0)
    assert a.shape == y.shape and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, augment.render(y, SR, "a.wav", 0))
    assert not np.array_equal(a, augment.render(y, SR, "a.wav", 1))
    assert not np.array_equal(a, augment.render(y, SR, "b.wav", 0))


def test_silence_stays_silent_rather_than_failing():
    """mix_at_snr refuses a silent clip (no SNR exists); the augmentation leaves it alone."""
    quiet = WaveformAugment(room_p=0.0, bandlimit_p=0.0, level_drift_db=0.0)
    z = quiet.render(np.zeros(SR, np.float32), SR, "silent.wav", 0)
    assert z.shape == (SR,) and not np.any(z)
