"""The one room, noise and microphone model: filters, rooms, noise colours, the one SNR
definition (active power of the signal over mean power of the noise), the random chain."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from helpers import acoustics
from helpers.acoustics import (
    active_power,
    coloured_noise,
    mix_at_snr,
    room_impulse_response,
    simulate_recording,
    snr_db,
)

SR = 22050


def tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)


def padded_note(before: int = 20, frames: int = 10, after: int = 30) -> np.ndarray:
    """Silence, a sine, silence, each a whole number of active_power's frames long."""
    frame = acoustics.ACTIVE_FRAME
    return np.concatenate([np.zeros(before * frame), tone(frames * frame / SR),
                           np.zeros(after * frame)])


@pytest.mark.parametrize("kind,gain", [("lowshelf", 9.0), ("highshelf", -6.0), ("peak", 6.0)])
def test_biquad_gains(kind, gain):
    f0 = 1000.0
    b, a = acoustics.biquad(kind, f0, SR, gain)
    _, h = signal.freqz(b, a, worN=[1.0, f0, SR / 2 - 1], fs=SR)
    low, mid, high = 20 * np.log10(np.abs(h))
    if kind == "lowshelf":
        assert low == pytest.approx(gain, abs=0.1) and high == pytest.approx(0, abs=0.1)
    elif kind == "highshelf":
        assert low == pytest.approx(0, abs=0.1) and high == pytest.approx(gain, abs=0.1)
    else:
        assert mid == pytest.approx(gain, abs=0.1) and abs(low) < 0.1


@pytest.mark.parametrize("rt60,drr", [(0.8, 6.0), (0.3, 0.0), (2.0, -6.0)])
def test_room_decays_60_db_in_rt60_and_keeps_the_drr(rt60, drr):
    ir = room_impulse_response(np.random.default_rng(0), rt60, drr, SR)
    assert ir[0] == 1.0
    assert len(ir) == int(SR * min(1.2 * rt60, acoustics.MAX_TAIL_SECONDS))
    assert 10 * np.log10(1.0 / np.sum(ir[1:] ** 2)) == pytest.approx(drr, abs=0.01)
    predelay = np.flatnonzero(ir[1:])[0] + 1
    low, high = acoustics.PREDELAY_SECONDS
    assert low * SR - 1 <= predelay <= high * SR + 1

    def level(t0: float, t1: float) -> float:
        return 10 * np.log10(np.mean(ir[int(t0 * SR): int(t1 * SR)] ** 2))

    # 50 ms windows from 50 ms in to the RT60: the envelope falls 60 dB per RT60
    width = min(0.05, rt60 / 4)
    drop = level(0.05, 0.05 + 2 * width) - level(rt60 - width, rt60 + width)
    assert drop == pytest.approx(60 * (rt60 - 0.05 - width) / rt60, abs=4)


def test_a_room_replays_for_a_seed_and_rejects_no_reverberation():
    a, b = (room_impulse_response(np.random.default_rng(3), 0.5, 0.0, SR) for _ in range(2))
    assert np.array_equal(a, b)
    assert not np.allclose(a, room_impulse_response(np.random.default_rng(4), 0.5, 0.0, SR))
    with pytest.raises(ValueError, match="rt60"):
        room_impulse_response(np.random.default_rng(0), 0.0, 0.0, SR)


def test_noise_colours():
    rng, n = np.random.default_rng(0), SR * 4
    tilt = {}
    for colour in acoustics.NOISE_COLOURS:
        noise = coloured_noise(rng, n, colour, SR)
        assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=1e-6)
        f, p = signal.welch(noise, SR, nperseg=4096)
        tilt[colour] = 10 * np.log10(p[(f > 200) & (f < 400)].mean() / p[(f > 3200) & (f < 6400)]
                                     .mean())
    # per octave: white ~0 dB, pink ~3 dB, brown ~6 dB (4 octaves between the bands)
    assert tilt["white"] == pytest.approx(0, abs=1.5)
    assert tilt["pink"] == pytest.approx(12, abs=2)
    assert tilt["brown"] == pytest.approx(24, abs=2)
    assert tilt["hum"] > 20  # mains hum lives in the low band
    with pytest.raises(ValueError, match="colour"):
        coloured_noise(rng, n, "purple", SR)


def test_active_power_ignores_silence_around_the_sound():
    note, padded = tone(1.0), padded_note(20, 10, 30)
    assert active_power(padded) == pytest.approx(0.5, rel=0.01)  # a sine's mean power
    assert np.mean(padded**2) == pytest.approx(0.5 / 6, rel=0.01)  # what whole-clip power says
    assert active_power(note[:100]) == pytest.approx(np.mean(note[:100] ** 2))  # < one frame
    assert active_power(np.zeros(0)) == 0.0


@pytest.mark.parametrize("snr", [-5.0, 0.0, 20.0, 45.0])
def test_mix_at_snr_sets_the_snr_that_snr_db_measures(snr):
    rng = np.random.default_rng(1)
    for x in (tone(2.0), padded_note()):
        noise = coloured_noise(rng, len(x), "pink", SR)
        noisy = mix_at_snr(x, noise, snr)
        assert snr_db(x, noisy - x) == pytest.approx(snr, abs=1e-6)
        # the noise sits snr dB below the sounding part, silence or not
        sounding = np.abs(x) > 0
        level = 10 * np.log10(np.mean(x[sounding] ** 2) / np.mean((noisy - x) ** 2))
        assert level == pytest.approx(snr, abs=0.2)


def test_mix_at_snr_refuses_silence_and_noise_of_another_level():
    with pytest.raises(ValueError, match="silent"):
        mix_at_snr(np.zeros(100), np.ones(100), 10.0)
    with pytest.raises(ValueError, match="unit RMS"):
        mix_at_snr(np.ones(100), 2 * np.ones(100), 10.0)


def test_simulate_recording_normalises_peak_and_keeps_length():
    rng = np.random.default_rng(1)
    dry = tone(1.0, 220.0) * np.exp(-np.arange(SR) / 5000)
    for _ in range(20):
        wet, info = simulate_recording(dry, rng, SR)
        assert len(wet) == len(dry) and np.isfinite(wet).all()
        assert 20 * np.log10(np.max(np.abs(wet))) == pytest.approx(info["peak_dbfs"], abs=0.006)  # rounded
        assert -18 <= info["peak_dbfs"] <= -1
        assert info["rt60_s"] == 0.0 or 0.15 <= info["rt60_s"] <= 2.5
        assert info["noise"] in acoustics.NOISE_COLOURS and 10 <= info["snr_db"] <= 60
