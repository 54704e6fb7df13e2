"""Test-time perturbations: added noise, room reverberation and gain, applied to waveforms.

A robustness check asks how a model trained on clean-ish clips copes with a changed recording
chain. Each function takes a mono float waveform ``(n_samples,)`` and returns a new one of the
same length; randomness comes from an explicit seed, so a perturbed test set is reproducible.
Noise and rooms come from :mod:`helpers.acoustics`, the same model (and the same definition of
SNR) that made the demo set's recordings. :func:`perturbed_split` builds a perturbed copy of
one split of a :class:`helpers.experiment.Prepared`: every clip is re-read, perturbed, cut into
windows and standardised with the *training* statistics, exactly as the clean features were.
:func:`perturbed_splits` does it for several folds at once, perturbing a clip that several folds
test only once (each fold then standardises it with its own statistics). Nothing is cached on
disk. Used in: notebooks/04_cutmix.ipynb.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from helpers.acoustics import mix_at_snr, reverberate, room_impulse_response, white_noise

if TYPE_CHECKING:  # type hints only
    from helpers.experiment import Prepared

PERTURBATIONS: tuple[str, ...] = ("none", "noise", "reverb", "gain")
_UNITS = {"none": "", "noise": "dB SNR", "reverb": "s RT60", "gain": "dB"}


def add_noise(y: np.ndarray, snr: float, seed: int | Sequence[int] = 0) -> np.ndarray:
    """Add white Gaussian noise at exactly ``snr`` dB SNR (:mod:`helpers.acoustics`' definition).

    The SNR is the clip's active power (its sounding part) over the noise's mean power.
    ``y`` (n,) float; returns float32 (n,). A silent clip raises ValueError.
    """
    noise = white_noise(np.random.default_rng(seed), len(y))
    return mix_at_snr(y, noise, snr).astype(np.float32)


def change_gain(y: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale a waveform by ``gain_db`` decibels (no clipping: samples are floats)."""
    return (np.asarray(y, dtype=np.float64) * 10 ** (gain_db / 20)).astype(np.float32)


def add_reverb(y: np.ndarray, sample_rate: int, rt60: float, seed: int | Sequence[int] = 0,
               drr_db: float = 0.0) -> np.ndarray:
    """Put ``y`` in a room of reverberation time ``rt60`` s; same length and peak, float32.

    The room is :func:`helpers.acoustics.room_impulse_response` (direct-to-reverberant ratio
    ``drr_db``; its brightness and predelay drawn from ``seed``). The reverberant tail beyond
    the clip's end is cut, and the result is scaled back to the input's peak, so only the room
    changes, not the level.
    """
    y = np.asarray(y, dtype=np.float64)
    ir = room_impulse_response(np.random.default_rng(seed), rt60, drr_db, sample_rate)
    wet = reverberate(y, ir)
    peak_in, peak_out = np.max(np.abs(y), initial=0.0), np.max(np.abs(wet), initial=0.0)
    if peak_out > 0:
        wet *= peak_in / peak_out
    return wet.astype(np.float32)


@dataclass(frozen=True)
class Perturbation:
    """One test-time perturbation: ``kind`` and its ``amount``.

    ``amount`` is the SNR in dB for ``"noise"``, the RT60 in seconds for ``"reverb"`` and the
    gain in dB for ``"gain"`` (ignored for ``"none"``). ``seed`` fixes the noise and the room;
    each clip gets its own stream derived from ``seed`` and its file name.
    """

    kind: str = "none"
    amount: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {self.kind!r}; choose one of {PERTURBATIONS}")
        if self.kind == "reverb" and not self.amount > 0:
            raise ValueError(f"reverb needs an RT60 > 0 s, got {self.amount}")

    @property
    def label(self) -> str:
        """A short name for tables and plots, e.g. ``"noise 10 dB SNR"``."""
        if self.kind == "none":
            return "clean"
        return f"{self.kind} {self.amount:g} {_UNITS[self.kind]}"

    def apply(self, y: np.ndarray, sample_rate: int, clip_id: str = "") -> np.ndarray:
        """Perturb one waveform (n,); ``clip_id`` varies the random stream between clips."""
        seed = [self.seed, zlib.crc32(clip_id.encode())]
        if self.kind == "noise":
            return add_noise(y, self.amount, seed)
        if self.kind == "reverb":
            return add_reverb(y, sample_rate, self.amount, seed)
        if self.kind == "gain":
            return change_gain(y, self.amount)
        return np.asarray(y, dtype=np.float32)


def _perturbed_windows(row: tuple[str, str], config, perturbation: Perturbation) -> np.ndarray:
    """Windows of one clip ``(fname, path)`` after ``perturbation``."""
    from helpers.audio import load_audio
    from helpers.features import clip_windows

    fname, path = row
    y = load_audio(path, sample_rate=config.sample_rate, max_seconds=config.max_seconds)
    return clip_windows(perturbation.apply(y, config.sample_rate, fname), config)


def perturbed_split(prepared: Prepared, perturbation: Perturbation, split: str = "test",
                    progress: bool = False) -> Prepared:
    """A copy of ``prepared`` whose ``split`` windows come from perturbed audio.

    Each clip of the split is loaded as the features were (``feature_config`` rate and
    ``max_seconds``), perturbed, cut into windows (:func:`helpers.features.clip_windows`) and
    standardised with the training ``mean``/``std``. Clip order and labels are unchanged; the
    number of windows per clip can change (silent-window dropping sees the added noise).
    Score it with :func:`helpers.experiment.score`. Used in: notebooks/04_cutmix.ipynb.
    """
    return perturbed_splits([prepared], perturbation, split, progress)[0]


def perturbed_splits(prepared: Sequence[Prepared], perturbation: Perturbation, split: str = "test",
                     progress: bool = False) -> list[Prepared]:
    """:func:`perturbed_split` of every item of ``prepared`` (e.g. the folds of
    :func:`helpers.splits.library_folds`, whose in-library ``test`` splits overlap): a clip in
    several of them is read and perturbed once, and each item standardises its windows with its
    own training statistics. All items must share one ``feature_config``.
    """
    from functools import partial

    from helpers.features import standardize
    from helpers.parallel import map_clips

    prepared = list(prepared)
    if not prepared:
        return []
    config = prepared[0].feature_config
    if any(p.feature_config != config for p in prepared):
        raise ValueError("perturbed_splits: every Prepared must have the same feature_config")
    rows = {}  # (fname, path) of every clip of every item's split, each once, in order
    for p in prepared:
        for f, path in p.splits[split].clips[["fname", "path"]].itertuples(index=False):
            rows.setdefault((str(f), str(path)), None)
    order = list(rows)
    windows = dict(zip(order, map_clips(partial(_perturbed_windows, config=config,
                                                perturbation=perturbation), order,
                                        desc=perturbation.label, progress=progress)))
    out = []
    for p in prepared:
        fs = p.splits[split]
        parts = [windows[(str(f), str(path))]
                 for f, path in fs.clips[["fname", "path"]].itertuples(index=False)]
        ids = [str(f) for f, w in zip(fs.clips["fname"], parts) for _ in range(len(w))]
        X = standardize(np.concatenate(parts), p.mean, p.std)
        new = replace(fs, X=X, clip_ids=np.array(ids, dtype=str))
        out.append(replace(p, splits={**p.splits, split: new}))
    return out
