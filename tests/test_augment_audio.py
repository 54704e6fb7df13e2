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


def _prepared_with_train(tmp_path, train: set[int]):
    """Six generated clips (two classes); those in ``train`` are training clips, the rest are
    split between val and test: one 'fold' of the same clips."""
    import pandas as pd

    from helpers.experiment import prepare
    from helpers.features import FeatureConfig

    rows = []
    others = iter(("val", "test", "val", "test"))
    for i in range(6):
        path = tmp_path / f"clip{i}.wav"
        if not path.exists():
            sf.write(path, tone(1.0 + 0.2 * i, SR, freq=300.0 * (1 + i % 2)), SR)
        rows.append({"fname": path.name, "path": str(path), "label": "ab"[i % 2],
                     "split": "train" if i in train else next(others)})
    return prepare(pd.DataFrame(rows), FeatureConfig(kind="logmel"), progress=False)


def test_training_clips_of_all_folds_are_rendered_once_and_reused_by_each_fold(tmp_path, monkeypatch):
    import helpers.augment_audio as module

    folds = [_prepared_with_train(tmp_path, {0, 1, 2, 3}), _prepared_with_train(tmp_path, {2, 3, 4, 5})]
    augment = WaveformAugment(copies=1, rooms=2, rt60=(0.2, 0.3))
    rendered = []
    real = module._render_or_none
    monkeypatch.setattr(module, "_render_or_none", lambda row, **kw: rendered.append(row[0]) or real(row, **kw))
    assert augment.render_training_clips(folds, progress=False) == 6
    assert sorted(rendered) == [f"clip{i}.wav" for i in range(6)]  # each clip once, not per fold
    for fold in folds:
        versions = augment.build(fold, progress=False)
        assert versions.X.shape[:2] == (2, len(fold.splits["train"].X))
    assert len(rendered) == 6  # the folds found every copy in the cache
    assert augment.render_training_clips([], progress=False) == 0


def test_describe_names_the_copies_and_ranges():
    text = WaveformAugment(copies=2, noise_snr_db=(15.0, 45.0)).describe()
    assert text.startswith("2 rendering(s)") and "15-45 dB SNR" in text and "of the 3 versions" in text
