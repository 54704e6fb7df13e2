"""From waveform to fixed-length feature windows: log-mel spectrogram and MFCC.

A clip becomes a feature matrix (bins x frames); the matrix is cut into overlapping windows of
``window_seconds`` that remember their clip. Windows of a clip always stay together (see
:mod:`helpers.splits`), and clip predictions average the windows (see :mod:`helpers.evaluation`).
Extraction over a table of clips is cached on disk (:mod:`helpers.cache`).
Used in: notebooks/02_preprocessing.ipynb and every notebook that trains a model.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from helpers.audio import AudioError, load_audio

FEATURES_VERSION = 2  # bump when the extraction code changes what it writes
KINDS: tuple[str, ...] = ("logmel", "mfcc", "pcen")


@dataclass(frozen=True)
class FeatureConfig:
    """Every parameter that shapes a feature window (and so the cache key)."""

    kind: str = "logmel"  # "logmel", "mfcc" or "pcen" (per-channel energy normalised mel)
    sample_rate: int = 22050  # Hz; every clip is resampled to it
    n_fft: int = 1024  # samples per FFT frame (46 ms at 22.05 kHz)
    hop_length: int = 512  # samples between frames (23 ms)
    n_mels: int = 64  # mel bands
    n_mfcc: int = 20  # cepstral coefficients kept (kind="mfcc")
    fmin: float = 20.0  # Hz
    fmax: float | None = None  # Hz; None = Nyquist
    top_db: float = 80.0  # dynamic range kept below the clip's peak
    window_seconds: float = 1.0  # length of one model input
    window_hop_seconds: float = 1.0  # hop between windows of one clip (no overlap: half the training cost)
    max_seconds: float | None = 10.0  # longer clips are cut (FSDKaggle2018 has up to 30 s)
    silent_window_db: float = -60.0  # windows whose peak is below this (re clip peak) are dropped
    gate_db: float = 10.0  # activity gate: see active_windows
    floor_percentile: float = 10.0  # the clip's noise floor: this percentile of its frame levels
    pcen_time_constant: float = 0.4  # s, kind="pcen": how slowly PCEN's gain control follows a band
    band_norm: bool = False  # subtract each band's mean level over the clip (see clip_features)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"FeatureConfig.kind must be one of {KINDS}, not {self.kind!r}")

    @property
    def n_bins(self) -> int:
        """Rows of a feature window: mel bands or MFCC coefficients."""
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    @property
    def frames_per_window(self) -> int:
        return 1 + int(round(self.window_seconds * self.sample_rate / self.hop_length))

    @property
    def frames_per_hop(self) -> int:
        return max(1, int(round(self.window_hop_seconds * self.sample_rate / self.hop_length)))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one model input: (bins, frames, 1)."""
        return (self.n_bins, self.frames_per_window, 1)


# The seed project's input as reproduced here: 20 MFCC of 64 mel bands (from 20 Hz), a
# 1024-sample FFT (46 ms) every 512 samples (23 ms) at 22.05 kHz. Of these, the 22.05 kHz sample
# rate, the 512-sample hop and the 20 coefficients are librosa's defaults; the 1024-sample FFT and
# the 64 mel bands are the seed project's choices, and the 20 Hz lower edge is this project's
# FeatureConfig default (librosa's defaults: n_fft=2048, n_mels=128, fmin=0).
# Used in: notebooks 02 (shown beside LOGMEL), 03 (the seed CNN and the classical baselines' MFCC
# summaries), 07 (the seed CNN's Grad-CAM) and 09 (the classical baselines again).
SEED_MFCC = FeatureConfig(kind="mfcc")

# The project's log-mel front end: 64 mel bands, a 4096-sample FFT (186 ms) every 2048 samples
# (93 ms), so a 1-s window is 64 bands x 12 frames. Coarser in time than the seed's 23 ms hop
# (44 frames per window), so every training step works on far fewer frames: every chapter trains
# many networks in a fixed time budget. Notebook 02 shows what the hop changes.
LOGMEL = FeatureConfig(kind="logmel", n_fft=4096, hop_length=2048)


def log_mel(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Log-mel spectrogram in dB relative to the clip's peak, shape (n_mels, frames).

    Power mel spectrogram -> ``power_to_db(ref=max)``: the loudest bin is 0 dB, so a clip's
    recording level does not matter, and the floor is ``-top_db``.
    """
    import librosa

    mel = librosa.feature.melspectrogram(
        y=y, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax, power=2.0)
    return librosa.power_to_db(mel, ref=np.max, top_db=config.top_db).astype(np.float32)


def mfcc(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """MFCC, shape (n_mfcc, frames): the DCT of the log-mel spectrogram of :func:`log_mel`."""
    import librosa

    return librosa.feature.mfcc(S=log_mel(y, config), n_mfcc=config.n_mfcc).astype(np.float32)


def pcen(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Per-channel energy normalisation of the mel spectrogram, shape (n_mels, frames).

    Instead of a fixed log, each mel band is divided by a smoothed running average of its own
    energy (an automatic gain control with time constant ``config.pcen_time_constant``, then
    root compression): a stationary colour of the recording chain (an EQ, a steady noise) is
    largely divided out, and onsets stand out; so is anything that lasts much longer than the
    time constant, a sustained note included. librosa's other defaults; the input is scaled to
    the integer range librosa's documentation assumes (``2**31``).
    """
    import librosa

    mel = librosa.feature.melspectrogram(
        y=y, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax, power=1.0)
    return librosa.pcen(mel * (2**31), sr=config.sample_rate, hop_length=config.hop_length,
                        time_constant=config.pcen_time_constant).astype(np.float32)


def clip_features(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The feature matrix of a whole clip (bins, frames); short clips are zero-padded to one window.

    With ``config.band_norm`` each row is shifted to a mean of zero over the clip: in a log
    spectrum a fixed EQ of the recording chain adds the same number to a band in every frame,
    so this removes it (and with it the clip's average spectral shape: the question is whether
    that shape was the instrument or the library).
    """
    min_samples = int(round(config.window_seconds * config.sample_rate))
    if len(y) < min_samples:
        y = np.pad(y, (0, min_samples - len(y)))
    features = {"logmel": log_mel, "mfcc": mfcc, "pcen": pcen}[config.kind](y, config)
    if config.band_norm:
        features = features - features.mean(axis=1, keepdims=True)
    return features


def window_starts(n_frames: int, frames_per_window: int, frames_per_hop: int) -> list[int]:
    """First frame of every window; the last window is moved to end at the last frame."""
    if n_frames <= frames_per_window:
        return [0]
    starts = list(range(0, n_frames - frames_per_window + 1, frames_per_hop))
    if starts[-1] + frames_per_window < n_frames:
        starts.append(n_frames - frames_per_window)
    return starts


def active_windows(starts: list[int], loudness: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Which windows hold sound, not just the clip's background: a boolean mask (n_windows,).

    ``loudness`` is the per-frame level in dB re the clip's loudest frame. The clip's noise
    floor is the ``floor_percentile``-th percentile of its frame levels. A window is kept when
    its loudest frame reaches the LOWER of

    - the floor + ``gate_db`` (a clip with quiet background: noise-only stretches are dropped,
      e.g. the tail after a note has ended), and
    - the clip's peak - ``gate_db`` (a steady sound, whose quietest frames are the sound itself:
      nothing of it is dropped),

    and is within ``-silent_window_db`` dB of the peak. The loudest window is always kept.
    """
    fpw = config.frames_per_window
    peaks = np.array([loudness[s:s + fpw].max() if s < len(loudness) else -np.inf
                      for s in starts])
    floor = np.percentile(loudness, config.floor_percentile) if len(loudness) else 0.0
    threshold = max(config.silent_window_db, min(floor + config.gate_db, -config.gate_db))
    keep = peaks >= threshold
    keep[np.argmax(peaks)] = True
    return keep


def frame_loudness(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Per-frame RMS level (frames,) in dB relative to the clip's loudest frame."""
    import librosa

    rms = librosa.feature.rms(y=y, frame_length=config.n_fft, hop_length=config.hop_length)[0]
    return librosa.amplitude_to_db(rms, ref=np.max, top_db=None)


def clip_windows(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """A mono signal at ``config.sample_rate`` -> model inputs (n_windows, bins, frames, 1)."""
    return windows_at(clip_features(_min_length(y, config), config), kept_starts(y, config), config)


def _min_length(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Short clips are zero-padded to one window."""
    min_samples = int(round(config.window_seconds * config.sample_rate))
    return np.pad(y, (0, min_samples - len(y))) if len(y) < min_samples else y


def kept_starts(y: np.ndarray, config: FeatureConfig) -> list[int]:
    """First frames of the windows :func:`clip_windows` keeps for signal ``y`` (see
    :func:`active_windows`). A transformed copy of ``y`` of the same length cut at the same
    starts gives windows aligned with the original's (waveform augmentation)."""
    y = _min_length(y, config)
    loudness = frame_loudness(y, config)
    n_frames = max(len(loudness), config.frames_per_window)
    starts = window_starts(n_frames, config.frames_per_window, config.frames_per_hop)
    keep = active_windows(starts, loudness, config)
    return [s for s, k in zip(starts, keep) if k]


def windows_at(features: np.ndarray, starts: list[int], config: FeatureConfig) -> np.ndarray:
    """Windows of a (bins, frames) matrix at the given first frames: (n, bins, frames, 1)."""
    fpw = config.frames_per_window
    if features.shape[1] < fpw:  # pad with the floor value (silence)
        pad = fpw - features.shape[1]
        features = np.pad(features, ((0, 0), (0, pad)), constant_values=features.min())
    windows = np.stack([features[:, s:s + fpw] for s in starts])
    return windows[..., np.newaxis].astype(np.float32)


def file_windows(path, config: FeatureConfig) -> np.ndarray:
    """Load an audio file and return its windows (n_windows, bins, frames, 1).

    Raises :class:`helpers.audio.AudioError` for unusable files.
    """
    y = load_audio(path, sample_rate=config.sample_rate, max_seconds=config.max_seconds)
    return clip_windows(y, config)


@dataclass(frozen=True)
class FeatureSet:
    """Windows of a table of clips.

    ``X`` (n_windows, bins, frames, 1) float32; ``clip_ids`` (n_windows,) the ``fname`` of each
    window's clip; ``clips`` the rows of the clip table that gave windows (same order as first
    appearance in ``clip_ids``); ``skipped`` the clips that could not be read, with the reason.
    """

    X: np.ndarray
    clip_ids: np.ndarray
    clips: pd.DataFrame
    skipped: pd.DataFrame
    config: FeatureConfig

    def select(self, mask_or_split) -> FeatureSet:
        """The windows of a subset of clips: a split name ('train', 'val', 'test') or a clip mask."""
        from helpers.splits import clip_mask

        mask = clip_mask(self.clips, mask_or_split)
        keep = set(self.clips["fname"][mask])
        windows = np.isin(self.clip_ids, list(keep))
        return replace(self, X=self.X[windows], clip_ids=self.clip_ids[windows],
                       clips=self.clips[mask].reset_index(drop=True))

    def window_labels(self, classes) -> np.ndarray:
        """Class index of every window (n_windows,), from its clip's label."""
        from helpers.data import encode_labels

        label_of = dict(zip(self.clips["fname"], self.clips["label"]))
        return encode_labels([label_of[c] for c in self.clip_ids], classes)

    def clip_labels(self, classes) -> np.ndarray:
        """Class index of every clip (n_clips,), in ``clips`` order."""
        from helpers.data import encode_labels

        return encode_labels(self.clips["label"], classes)


def _cache_key(clips: pd.DataFrame, config: FeatureConfig) -> str:
    from helpers import cache

    return cache.key_for(config=asdict(config), version=FEATURES_VERSION,
                         clips=cache.clip_fingerprint(clips))


def features_cached(clips: pd.DataFrame, config: FeatureConfig) -> bool:
    """Whether :func:`extract_features` would load these windows from the cache (a notebook can
    then say whether its timing measured extraction or loading). Used in:
    notebooks/02_preprocessing.ipynb."""
    from helpers import cache

    return cache.entry_path(_cache_key(clips, config), f"features-{config.kind}").is_file()


def extract_features(clips: pd.DataFrame, config: FeatureConfig, use_cache: bool = True,
                     progress: bool = True) -> FeatureSet:
    """Windows of every clip of ``clips`` (columns ``fname``, ``path``; others are kept).

    Unreadable clips are skipped with one warning that counts them; they are listed in
    ``FeatureSet.skipped``. Results are cached under a key of every parameter and the clip list.
    """
    from helpers import cache

    key = _cache_key(clips, config)
    cached = cache.load(key, prefix=f"features-{config.kind}") if use_cache else None
    if cached is None:
        cached = _extract(clips, config, progress)
        if use_cache:
            cache.save(key, cached, prefix=f"features-{config.kind}")
    skipped = pd.DataFrame({"fname": cached["skipped_fname"], "reason": cached["skipped_reason"]})
    if len(skipped):
        examples = "; ".join(f"{f}: {r}" for f, r in skipped.head(3).itertuples(index=False))
        warnings.warn(f"skipped {len(skipped)} of {len(clips)} clips that could not be used "
                      f"(e.g. {examples})", stacklevel=2)
    done = clips[~clips["fname"].isin(skipped["fname"])].reset_index(drop=True)
    return FeatureSet(X=cached["X"], clip_ids=cached["clip_ids"], clips=done,
                      skipped=skipped, config=config)


def _windows_or_problem(row: tuple[str, str], config: FeatureConfig) -> tuple[np.ndarray | None, str]:
    """Windows of one clip ``(fname, path)``, or ``(None, problem)`` when it cannot be used."""
    try:
        return file_windows(row[1], config), ""
    except AudioError as exc:
        return None, exc.problem


def _extract(clips: pd.DataFrame, config: FeatureConfig, progress: bool) -> dict[str, np.ndarray]:
    """Compute windows for every clip (in worker processes, :func:`helpers.parallel.map_clips`),
    skipping (and recording) the unusable ones."""
    from functools import partial

    from helpers.parallel import map_clips

    rows = [(str(f), str(p)) for f, p in clips[["fname", "path"]].itertuples(index=False)]
    done = map_clips(partial(_windows_or_problem, config=config), rows,
                     desc=f"{config.kind} features", progress=progress)
    windows, ids, bad_f, bad_r = [], [], [], []
    for (fname, _), (w, problem) in zip(rows, done):
        if w is None:
            bad_f.append(fname)
            bad_r.append(problem)
            continue
        windows.append(w)
        ids += [fname] * len(w)
    shape = (0, *config.input_shape)
    return {
        "X": np.concatenate(windows) if windows else np.zeros(shape, np.float32),
        "clip_ids": np.array(ids, dtype=str),
        "skipped_fname": np.array(bad_f, dtype=str),
        "skipped_reason": np.array(bad_r, dtype=str),
    }


def fit_standardizer(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and standard deviation (bins,) over windows and frames.

    Fit on TRAINING windows only; apply to every split with :func:`standardize`.
    """
    mean = X.mean(axis=(0, 2, 3))
    std = X.std(axis=(0, 2, 3))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def standardize(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(X - mean) / std`` per bin; X (n, bins, frames, 1)."""
    return ((X - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)


def clip_summary(fs: FeatureSet) -> np.ndarray:
    """Clip-level summary statistics for classical models, (n_clips, 6 * bins), ``fs.clips`` order.

    Per bin over all frames of the clip's windows: mean, std, 10th and 90th percentile, and the
    mean and std of the frame-to-frame difference (a 'delta' feature).
    """
    where = pd.Series(np.arange(len(fs.clip_ids))).groupby(fs.clip_ids).indices
    rows = []
    for fname in fs.clips["fname"]:
        frames = np.concatenate(list(fs.X[where[fname], :, :, 0]), axis=1)  # (bins, t)
        delta = np.diff(frames, axis=1) if frames.shape[1] > 1 else np.zeros_like(frames)
        rows.append(np.concatenate([
            frames.mean(1), frames.std(1), np.percentile(frames, 10, axis=1),
            np.percentile(frames, 90, axis=1), delta.mean(1), delta.std(1)]))
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
