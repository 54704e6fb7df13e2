"""Waveform augmentation with ``audiomentations``: other renderings of each training clip.

A model trained on one sample library learns that library's pitch grid, tuning, EQ and room.
Changing those in the *waveform* (before the features) shows it the same instrument through
other recording chains. :class:`WaveformAugment` draws, per copy of a clip, a random chain of

- a speed change of up to ± ``pitch_semitones`` (pitch and tempo together, by resampling: what a
  sampler does when it plays a sample above or below its root key, and far cheaper than a
  phase-vocoder pitch shift), as if another sample had been played;
- a seven-band parametric EQ of up to ± ``eq_db`` per band, and (with ``bandlimit_p``) a low-,
  high- or band-pass filter: another microphone or another sample's colour;
- (with ``room_p``) a room: audiomentations' ``ApplyImpulseResponse`` with one of ``rooms``
  impulse responses of shoebox rooms with RT60 in ``rt60``, computed once by the image-source
  method of ``pyroomacoustics`` (:func:`room_impulse_responses`);
- background noise of a random spectral slope (brown to violet) at an SNR in ``noise_snr_db``
  (audiomentations' ``AddColorNoise``), and a level drift of up to ``level_drift_db`` (a gain
  change alone would do nothing: the log-mel features are relative to each clip's peak).

None of it is :mod:`helpers.acoustics`, the simulator that rendered the demo set's recordings
(rooms of exponentially decaying filtered noise, its own noise colours and SNR definition): a
model trained on that simulator's output would partly learn the test clips' generating process.
Here the rooms are geometric (direct sound, specular reflections) and the noise and its SNR are
audiomentations'.

Copies are rendered ONCE per clip and cached (keyed by the clip, the features and these
settings), not re-rendered every epoch; each copy is cut into windows at exactly the frames the
original kept (:func:`helpers.features.kept_starts`), so every training window has
``copies + 1`` aligned versions and an epoch draws one of them per window
(:class:`helpers.augment.Versions`). An epoch costs what it cost without augmentation.
Only training clips are ever augmented. With nested folds a clip trains in several folds; its
copies do not depend on the fold, so :meth:`WaveformAugment.render_training_clips` renders every
fold's training clips in one pass and each fold's :meth:`WaveformAugment.build` only
standardises them. Used in: notebooks/04_cutmix.ipynb; helpers/protocol.py
(:func:`helpers.protocol.load_recipe` rebuilds a saved recipe's waveform augmentation for
notebook 10).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import asdict, dataclass
from functools import cache
from typing import ClassVar

import numpy as np
import pandas as pd

from helpers.features import FeatureConfig

# bump when the rendering changes what it writes (3: rooms and noise from audiomentations and
# pyroomacoustics, none from helpers.acoustics)
AUGMENT_VERSION = 3
ROOM_ORDER = 80  # highest image-source reflection order (deterministic; no ray tracing)


@dataclass(frozen=True)
class WaveformAugment:
    """How many augmented copies of each training clip, and the ranges of each transform."""

    copies: int = 2
    pitch_semitones: float = 1.0
    eq_db: float = 9.0
    bandlimit_p: float = 0.3
    room_p: float = 0.5
    rt60: tuple[float, float] = (0.2, 1.5)
    rooms: int = 16  # impulse responses in the bank the room transform draws from
    noise_snr_db: tuple[float, float] = (15.0, 45.0)
    level_drift_db: float = 6.0
    seed: int = 0

    name: ClassVar[str] = "waveform"

    def __post_init__(self) -> None:
        if self.copies < 1:
            raise ValueError(f"copies must be >= 1, got {self.copies}")
        if not 0 <= self.bandlimit_p <= 1 or not 0 <= self.room_p <= 1:
            raise ValueError("bandlimit_p and room_p are probabilities in [0, 1]")
        if self.rooms < 1:
            raise ValueError(f"rooms must be >= 1, got {self.rooms}")

    def describe(self) -> str:
        """In words: what the training windows look like (for a notebook's table of recipes)."""
        low, high = self.noise_snr_db
        return (f"{self.copies} rendering(s) of each training clip (speed ± {self.pitch_semitones:g} "
                f"semitones, EQ ± {self.eq_db:g} dB, a band limit in {self.bandlimit_p:.0%}, a room in "
                f"{self.room_p:.0%}, noise at {low:g}-{high:g} dB SNR); each epoch draws one of the "
                f"{self.copies + 1} versions of a window")

    def pipeline(self, sample_rate: int):
        """The ``audiomentations.Compose`` chain (randomness from ``random`` and ``np.random``)."""
        import audiomentations as am
        import soxr

        def varispeed(samples, sample_rate):
            # pitch and tempo together, as a sampler plays a sample above or below its root key
            factor = 2 ** (np.random.uniform(-self.pitch_semitones, self.pitch_semitones) / 12)
            return soxr.resample(samples, sample_rate * factor, sample_rate, quality="HQ")

        low, high = self.noise_snr_db
        return am.Compose([
            am.Lambda(varispeed, p=1.0),
            am.SevenBandParametricEQ(-self.eq_db, self.eq_db, p=1.0),
            am.OneOf([am.LowPassFilter(2000, 8000), am.HighPassFilter(80, 600),
                      am.BandPassFilter(500, 3000)], p=self.bandlimit_p),
            am.ApplyImpulseResponse(sorted(room_impulse_responses(self, sample_rate).glob("*.wav")),
                                    p=self.room_p, leave_length_unchanged=True),
            am.AddColorNoise(min_snr_db=low, max_snr_db=high, min_f_decay=-6.0, max_f_decay=6.0,
                             p=1.0),
            am.GainTransition(-self.level_drift_db, self.level_drift_db, p=0.5),
        ])

    def render(self, y: np.ndarray, sample_rate: int, clip_id: str, copy: int) -> np.ndarray:
        """Copy number ``copy`` of one waveform: same length, reproducible for (seed, clip, copy)."""
        import random

        draw = hashlib.blake2b(f"{self.seed}:{clip_id}:{copy}".encode(), digest_size=8).digest()
        state = int.from_bytes(draw, "little") % 2**32
        random.seed(state)
        np.random.seed(state)
        out = _pipeline(self, sample_rate)(samples=np.asarray(y, np.float32),
                                           sample_rate=sample_rate)
        out = np.nan_to_num(np.asarray(out, np.float32)[: len(y)])
        return np.pad(out, (0, len(y) - len(out))) if len(out) < len(y) else out

    def render_training_clips(self, prepared, progress: bool = True) -> int:
        """Render (or find in the cache) the copies of every training clip of the items of
        ``prepared`` (e.g. the folds of :func:`helpers.splits.library_folds`, one
        :class:`helpers.experiment.Prepared` each, all with the same features), in one pass.

        A clip trains in several folds but is rendered once: its copies do not depend on the
        fold (each fold's :meth:`build` only standardises them with its own statistics). One
        pass over all folds keeps the worker pool busy and rewrites the cache entry once,
        instead of once per fold. Returns the number of distinct training clips.
        """
        prepared = list(prepared)
        if not prepared:
            return 0
        config = prepared[0].feature_config
        if any(p.feature_config != config for p in prepared):
            raise ValueError("render_training_clips: every Prepared must have the same feature_config")
        clips = pd.concat([p.splits["train"].clips[["fname", "path"]] for p in prepared])
        clips = clips.drop_duplicates().reset_index(drop=True)
        augmented_windows(clips, config, self, progress=progress)
        return len(clips)

    def build(self, prepared, seed: int = 0, progress: bool = True):
        """The training windows of ``prepared`` with their augmented copies, standardised with
        ``prepared``'s statistics: :class:`helpers.augment.Versions` (version 0 = original).
        ``progress``: show a bar while clips are rendered."""
        from helpers.augment import Versions
        from helpers.features import standardize

        fs = prepared.splits["train"]
        copies = augmented_windows(fs.clips, prepared.feature_config, self, progress=progress)
        X = np.concatenate([copies[f] for f in fs.clips["fname"]], axis=1)
        if X.shape[1] != len(fs.X):
            raise RuntimeError(f"augmented copies hold {X.shape[1]} windows, the training split "
                               f"{len(fs.X)}: the features changed since they were cached?")
        X = np.stack([standardize(x, prepared.mean, prepared.std) for x in X])
        y = np.eye(len(prepared.classes), dtype=np.float32)[fs.window_labels(prepared.classes)]
        X_all = np.concatenate([fs.X[np.newaxis], X])
        return Versions(X=X_all, y=np.repeat(y[np.newaxis], len(X_all), axis=0),
                        name=f"{self.name}:{sorted(asdict(self).items())}")


@cache
def _pipeline(augment: WaveformAugment, sample_rate: int):
    """One transform chain per settings and process (building it imports audiomentations)."""
    return augment.pipeline(sample_rate)


def room_impulse_response(rng: np.random.Generator, rt60: float, sample_rate: int) -> np.ndarray:
    """One shoebox room's impulse response (peak 1), by ``pyroomacoustics``' image-source method.

    Room 3-12 x 3-9 x 2.4-4.5 m; wall absorption from the wanted RT60 (Sabine's formula,
    ``pyroomacoustics.inverse_sabine``); source and microphone anywhere at least 0.5 m from the
    walls. Reflections up to order :data:`ROOM_ORDER`, on one thread and without ray tracing
    (its threads and its random rays make the response differ from run to run), so the longest
    reverberation tails are cut short.
    """
    import pyroomacoustics as pra  # heavy optional dependency: only for the room bank

    pra.constants.set("num_threads", 1)  # its threads make the response differ from run to run
    dims = rng.uniform([3.0, 3.0, 2.4], [12.0, 9.0, 4.5])
    absorption, order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption),
                       max_order=int(min(order, ROOM_ORDER)))
    room.add_source(rng.uniform(0.5, dims - 0.5))
    room.add_microphone(rng.uniform(0.5, dims - 0.5))
    room.compute_rir()
    ir = np.asarray(room.rir[0][0], dtype=np.float64)
    return (ir / np.max(np.abs(ir))).astype(np.float32)


def room_impulse_responses(augment: WaveformAugment, sample_rate: int):
    """The folder of ``augment.rooms`` impulse responses (WAV) the room transform draws from.

    Made once per (settings, rate) from ``augment.seed`` and kept in the cache folder, written
    atomically (a half-written bank never looks complete). Returns the folder.
    """
    import soundfile as sf

    from helpers.cache import key_for
    from helpers.files import atomic_folder
    from helpers.paths import cache_dir

    key = key_for(rooms=augment.rooms, rt60=list(augment.rt60), seed=augment.seed,
                  sample_rate=sample_rate, order=ROOM_ORDER, version=AUGMENT_VERSION)
    folder = cache_dir() / "rooms" / key
    if len(list(folder.glob("*.wav"))) == augment.rooms:
        return folder

    def fill(tmp):
        rng = np.random.default_rng([augment.seed, 7])
        for i in range(augment.rooms):
            rt60 = float(rng.uniform(*augment.rt60))
            sf.write(tmp / f"room{i:02d}_rt60_{rt60:.2f}s.wav",
                     room_impulse_response(rng, rt60, sample_rate), sample_rate, subtype="FLOAT")

    return atomic_folder(folder, fill)


def _render_clip(path, fname: str, config: FeatureConfig, augment: WaveformAugment) -> np.ndarray:
    """``(copies, n_windows, bins, frames, 1)`` raw (unstandardised) windows of one clip."""
    from helpers.audio import load_audio
    from helpers.features import clip_features, kept_starts, windows_at

    y = load_audio(path, sample_rate=config.sample_rate, max_seconds=config.max_seconds)
    starts = kept_starts(y, config)
    copies = []
    for k in range(augment.copies):
        z = augment.render(y, config.sample_rate, fname, k)
        if not np.any(z):
            z = y  # a degenerate rendering (should not happen): keep the original
        copies.append(windows_at(clip_features(z, config), starts, config))
    return np.stack(copies)


def _render_or_none(row: tuple[str, str], config: FeatureConfig,
                    augment: WaveformAugment) -> np.ndarray | None:
    """:func:`_render_clip` of one clip ``(fname, path)``, or None when it cannot be read."""
    from helpers.audio import AudioError

    try:
        return _render_clip(row[1], row[0], config, augment)
    except AudioError:
        return None


def _entry_key(config: FeatureConfig, augment: WaveformAugment) -> str:
    from helpers.cache import key_for

    return key_for(features=asdict(config), augment=asdict(augment), version=AUGMENT_VERSION)


def _clip_key(fname: str, path) -> str:
    try:
        st = os.stat(path)
        return f"{fname}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        return f"{fname}|missing"


def augmented_windows(clips: pd.DataFrame, config: FeatureConfig,
                      augment: WaveformAugment, progress: bool = True) -> dict[str, np.ndarray]:
    """Raw windows of every augmented copy of every clip: ``fname -> (copies, n, bins, frames, 1)``.

    One cache entry per (features, augmentation settings) holds every clip rendered so far, each
    under its name, size and modification time; missing clips are rendered (in worker processes,
    :func:`helpers.parallel.map_clips`) and the entry is rewritten atomically. Clips that cannot
    be read are skipped with one warning.
    """
    from functools import partial

    from helpers import cache as feature_cache
    from helpers.parallel import map_clips

    key = _entry_key(config, augment)
    stored = feature_cache.load(key, prefix="waveaug") or {}
    wanted = {_clip_key(f, p): (f, p) for f, p in clips[["fname", "path"]].itertuples(index=False)}
    todo = [(str(f), str(p)) for k, (f, p) in wanted.items() if k not in stored]
    if todo:
        rendered = map_clips(partial(_render_or_none, config=config, augment=augment), todo,
                             desc=f"waveform augmentation ({augment.copies} copies)",
                             progress=progress)
        stored.update({_clip_key(f, p): w for (f, p), w in zip(todo, rendered) if w is not None})
        failed = [f for (f, _), w in zip(todo, rendered) if w is None]
        if failed:
            warnings.warn(f"waveform augmentation skipped {len(failed)} clip(s) that could not be "
                          f"read, e.g. {failed[:3]}", stacklevel=2)
        feature_cache.save(key, stored, prefix="waveaug")
    return {f: stored[k] for k, (f, _) in wanted.items() if k in stored}
