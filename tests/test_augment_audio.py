"""helpers.augment_audio: a rendered copy keeps the clip's length, is reproducible for (seed,
clip, copy), and its rooms and noise come from audiomentations and pyroomacoustics, never from
helpers.acoustics (the simulator that rendered the demo's test clips)."""

from __future__ import annotations

import numpy as np
import soundfile as sf
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
    """A silent clip has no SNR; the augmentation leaves it silent."""
    quiet = WaveformAugment(room_p=0.0, bandlimit_p=0.0, level_drift_db=0.0)
    z = quiet.render(np.zeros(SR, np.float32), SR, "silent.wav", 0)
    assert z.shape == (SR,) and not np.any(z)


def test_the_room_bank_is_made_once_deterministically_and_not_by_the_demo_simulator(tmp_path, monkeypatch):
    import audiomentations as am

    from helpers.augment_audio import room_impulse_responses

    augment = WaveformAugment(rooms=3, rt60=(0.3, 0.6), seed=5)
    monkeypatch.setenv("HELPERS_CACHE_DIR", str(tmp_path / "a"))
    first = room_impulse_responses(augment, SR)
    monkeypatch.setenv("HELPERS_CACHE_DIR", str(tmp_path / "b"))
    second = room_impulse_responses(augment, SR)
    files = sorted(first.glob("*.wav"))
    assert len(files) == 3
    # the samples, not the file bytes: libsndfile stamps a float WAV's PEAK chunk with the time
    assert all(np.array_equal(sf.read(a)[0], sf.read(b)[0])
               for a, b in zip(files, sorted(second.glob("*.wav")), strict=True))
    assert room_impulse_responses(augment, SR) == second  # reused, not rebuilt
    irs = [sf.read(f)[0] for f in files]
    assert all(np.max(np.abs(ir)) == 1.0 and len(ir) > SR // 10 for ir in irs)
    kinds = [type(t).__name__ for t in augment.pipeline(SR).transforms]
    assert "ApplyImpulseResponse" in kinds and "AddColorNoise" in kinds
    assert all(isinstance(t, am.core.transforms_interface.BaseWaveformTransform) or
               type(t).__name__ in ("OneOf",) for t in augment.pipeline(SR).transforms)


def test_no_helpers_acoustics_in_the_augmentation():
    """Not one import of the demo's simulator (or of the test perturbations built on it)."""
    import ast
    import inspect

    import helpers.augment_audio as module

    imported = {node.module for node in ast.walk(ast.parse(inspect.getsource(module)))
                if isinstance(node, ast.ImportFrom)}
    assert not imported & {"helpers.acoustics", "helpers.perturb"}, imported
