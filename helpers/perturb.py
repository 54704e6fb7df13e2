"""Test-time perturbations: added noise, room reverberation and gain, applied to waveforms.

A robustness check asks how a model trained on clean-ish clips copes with a changed recording
chain. Each function takes a mono float waveform ``(n_samples,)`` and returns a new one of the
same length; randomness comes from an explicit seed, so a perturbed test set is reproducible.
:func:`perturbed_split` builds a perturbed copy of one split of a
:class:`helpers.experiment.Prepared`: every clip is re-read, perturbed, cut into windows and
standardised with the *training* statistics, exactly as the clean features were. Nothing is
cached on disk (a perturbed test split takes seconds to build: about 10 ms per clip).
Used in: notebooks/04_cutmix.ipynb.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # type hints only
    from helpers.experiment import Prepared

PERTURBATIONS: tuple[str, ...] = ("none", "noise", "reverb", "gain")
_UNITS = {"none": "", "noise": "dB SNR", "reverb": "s RT60", "gain": "dB"}


def _one_blas_thread():
    """Limit BLAS to one thread while clips are processed one by one.

    The per-clip matrix products (the mel filter bank) are small; on a busy machine a
    multi-threaded BLAS spends most of its time waiting for its threads (we measured
    0.07 s instead of 0.009 s per clip at a load of 8 on 2 cores). threadpoolctl comes with
    scikit-learn; without it this does nothing.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _rng(seed: int | Sequence[int]) -> np.random.Generator:
    return np.random.default_rng(seed)


def signal_power(y: np.ndarray) -> float:
    """Mean power of a waveform (mean of the squared samples over the whole clip)."""
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean(y**2)) if y.size else 0.0


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """Signal-to-noise ratio in dB of ``noisy`` against ``clean`` (noise = noisy - clean)."""
    noise = np.asarray(noisy, dtype=np.float64) - np.asarray(clean, dtype=np.float64)
    return 10.0 * np.log10(signal_power(clean) / signal_power(noise))


def add_noise(y: np.ndarray, snr: float, seed: int | Sequence[int] = 0) -> np.ndarray:
    """Add white Gaussian noise at ``snr`` dB below the clip's mean power.

    The drawn noise is rescaled so the SNR (whole-clip signal power over noise power) is
    exactly ``snr``. ``y`` (n,) float; returns float32 (n,). A silent clip raises ValueError.
    """
    y = np.asarray(y, dtype=np.float64)
    power = signal_power(y)
    if power <= 0:
        raise ValueError("cannot set an SNR on a silent clip (signal power is 0)")
    noise = _rng(seed).standard_normal(len(y))
    noise *= np.sqrt(power / 10 ** (snr / 10) / signal_power(noise))
    return (y + noise).astype(np.float32)


def change_gain(y: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale a waveform by ``gain_db`` decibels (no clipping: samples are floats)."""
    return (np.asarray(y, dtype=np.float64) * 10 ** (gain_db / 20)).astype(np.float32)


def room_impulse_response(sample_rate: int, rt60: float, seed: int | Sequence[int] = 0,
                          drr_db: float = 0.0, predelay_s: float = 0.01) -> np.ndarray:
    """A synthetic room: a direct impulse, then exponentially decaying Gaussian noise.

    The tail's envelope falls 60 dB in ``rt60`` seconds (it lasts ``rt60``); it starts after
    ``predelay_s`` and its energy is ``drr_db`` below the direct sound (direct-to-reverberant
    ratio; 0 dB: as much reverberant energy as direct). Returns float64 ``(n,)``.
    """
    if rt60 <= 0:
        raise ValueError(f"rt60 must be positive, got {rt60}")
    n = max(2, int(round(rt60 * sample_rate)))
    t = np.arange(n) / sample_rate
    ir = _rng(seed).standard_normal(n) * np.exp(-np.log(1000.0) * t / rt60)  # -60 dB at rt60
    ir[: max(1, int(round(predelay_s * sample_rate)))] = 0.0
    ir *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(ir**2))
    ir[0] = 1.0
    return ir


def add_reverb(y: np.ndarray, sample_rate: int, rt60: float, seed: int | Sequence[int] = 0,
               drr_db: float = 0.0) -> np.ndarray:
    """Convolve with :func:`room_impulse_response`; same length and peak as ``y``, float32.

    The reverberant tail beyond the clip's end is cut, and the result is scaled back to the
    input's peak, so only the room changes, not the level.
    """
    from scipy import signal

    y = np.asarray(y, dtype=np.float64)
    wet = signal.fftconvolve(y, room_impulse_response(sample_rate, rt60, seed, drr_db))[: len(y)]
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


def perturbed_split(prepared: Prepared, perturbation: Perturbation, split: str = "test",
                    progress: bool = False) -> Prepared:
    """A copy of ``prepared`` whose ``split`` windows come from perturbed audio.

    Each clip of the split is loaded as the features were (``feature_config`` rate and
    ``max_seconds``), perturbed, cut into windows (:func:`helpers.features.clip_windows`) and
    standardised with the training ``mean``/``std``. Clip order and labels are unchanged; the
    number of windows per clip can change (silent-window dropping sees the added noise).
    Score it with :func:`helpers.experiment.score`. Used in: notebooks/04_cutmix.ipynb.
    """
    from helpers.audio import load_audio
    from helpers.features import clip_windows, standardize
    from helpers.progress import progress as progress_bar

    config = prepared.feature_config
    fs = prepared.splits[split]
    windows, ids = [], []
    rows = fs.clips[["fname", "path"]].itertuples(index=False)
    with _one_blas_thread():
        for fname, path in progress_bar(rows, total=len(fs.clips), disable=not progress, unit="clip",
                                        desc=perturbation.label):
            y = load_audio(path, sample_rate=config.sample_rate, max_seconds=config.max_seconds)
            w = clip_windows(perturbation.apply(y, config.sample_rate, str(fname)), config)
            windows.append(w)
            ids += [fname] * len(w)
    X = standardize(np.concatenate(windows), prepared.mean, prepared.std)
    new = replace(fs, X=X, clip_ids=np.array(ids, dtype=str))
    return replace(prepared, splits={**prepared.splits, split: new})
