"""Reading audio: one function that turns any supported file into a clean mono signal.

WAV, FLAC and OGG (any bit depth libsndfile reads: 8/16/24/32-bit, float), any channel count,
any sample rate. The signal comes back mono, float32, at the project rate. Problems raise
:class:`AudioError` with the file name and what is wrong, so a long run can skip and count.
Used in: notebooks/01_eda.ipynb, 02_preprocessing.ipynb, 04_cutmix.ipynb, 09_pretrained.ipynb,
10_shipping.ipynb; helpers/features.py, perturb.py, augment_audio.py, pretrained.py, predict.py,
calibration.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SUPPORTED_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg")
SILENCE_DBFS: float = -60.0  # a clip whose peak is below this is treated as silent


class AudioError(ValueError):
    """A clip that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def read_audio(path: str | Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` as it is: ``(samples (n, channels) float32 in [-1, 1], sample rate)``;
    with ``max_seconds``, only the file's first ``max_seconds`` are decoded (an hour-long
    recording costs no more memory than its first seconds)."""
    import soundfile as sf

    path = Path(path)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise AudioError(path, f"unsupported format {path.suffix or '(no suffix)'!r}; "
                               f"use one of {', '.join(SUPPORTED_SUFFIXES)}")
    if not path.is_file():
        raise AudioError(path, "file not found")
    try:
        with sf.SoundFile(path) as f:
            frames = -1 if max_seconds is None else int(round(max_seconds * f.samplerate))
            data, sr = f.read(frames, dtype="float32", always_2d=True), f.samplerate
    except Exception as exc:  # libsndfile's errors are plain RuntimeError/LibsndfileError
        raise AudioError(path, f"cannot decode audio ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioError(path, "empty file (no samples)")
    if not np.all(np.isfinite(data)):
        raise AudioError(path, "contains NaN or infinite samples")
    return data, int(sr)


def file_sample_rate(path: str | Path) -> int | None:
    """The sample rate ``path`` was stored at, from its header (None when it cannot be read)."""
    import soundfile as sf

    try:
        return int(sf.info(str(path)).samplerate)
    except Exception:  # libsndfile's errors; an unreadable file is reported where it is read
        return None


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels of a ``(n, channels)`` array into ``(n,)``."""
    return data.mean(axis=1) if data.ndim == 2 else data


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample with librosa (soxr, high quality); a no-op when the rates match."""
    if orig_sr == target_sr:
        return y
    import librosa

    return librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")


def peak_dbfs(y: np.ndarray) -> float:
    """Peak level in dB relative to full scale (-inf for digital silence)."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else -np.inf


def load_audio(path: str | Path, sample_rate: int = 22050,
               max_seconds: float | None = None) -> np.ndarray:
    """Load ``path`` as mono float32 at ``sample_rate``, optionally only its first
    ``max_seconds`` (the rest is not read).

    Raises :class:`AudioError` for missing, unsupported, corrupt, empty and silent files.
    """
    data, sr = read_audio(path, max_seconds)
    y = to_mono(data)
    if peak_dbfs(y) < SILENCE_DBFS:
        where = f" in its first {max_seconds:g} s" if max_seconds is not None else ""
        raise AudioError(path, f"silent{where} (peak below {SILENCE_DBFS:.0f} dBFS)")
    return resample(y, sr, sample_rate).astype(np.float32, copy=False)


def fix_length(y: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad ``y`` at the end to exactly ``n_samples``."""
    if len(y) >= n_samples:
        return y[:n_samples]
    return np.pad(y, (0, n_samples - len(y)))


def find_audio_files(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders (searched recursively) into a sorted list of audio files.

    Files named explicitly are kept whatever their suffix, so that an unsupported one gets
    a clear error later instead of being ignored silently. Each file is listed once, at its
    first mention, however many of ``paths`` lead to it.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*")
                            if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES)
        else:
            found.append(p)
    seen: set[Path] = set()  # a file named twice (or also inside a named folder) is listed once
    unique = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


OTHER_AUDIO_SUFFIXES: tuple[str, ...] = (".mp3", ".m4a", ".aac", ".wma", ".opus", ".aif", ".aiff")


def unread_audio_files(folder: str | Path) -> dict[str, int]:
    """Audio files of formats this project does not read under ``folder`` (searched like
    :func:`find_audio_files`), counted by suffix: ``{".mp3": 3}``. A command names them, so
    that they do not vanish without a word."""
    from collections import Counter

    suffixes = (f.suffix.lower() for f in Path(folder).rglob("*") if f.is_file())
    return dict(sorted(Counter(s for s in suffixes if s in OTHER_AUDIO_SUFFIXES).items()))


def duration_seconds(path: str | Path) -> float:
    """Length of an audio file in seconds, read from its header (no decoding)."""
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except Exception as exc:
        raise AudioError(path, f"cannot read header ({exc})") from exc
