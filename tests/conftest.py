"""Shared fixtures: small generated audio, and outputs kept out of the repository."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Every test writes figures, results, models and the cache under its own tmp folder."""
    monkeypatch.setenv("HELPERS_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("HELPERS_CACHE_DIR", str(tmp_path / "cache"))


def tone(seconds: float = 1.0, sr: int = 22050, freq: float = 440.0, amp: float = 0.5,
         channels: int = 1) -> np.ndarray:
    """A decaying harmonic tone, (n,) or (n, channels)."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3)) * np.exp(-2 * t)
    y = (amp * y / np.max(np.abs(y))).astype(np.float32)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


@pytest.fixture
def write_tone(tmp_path):
    """Write a tone file: ``write_tone("a.wav", seconds=1, sr=22050, subtype="PCM_16", ...)``."""

    def _write(name: str, seconds: float = 1.0, sr: int = 22050, subtype: str | None = None,
               **kwargs):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(seconds, sr, **kwargs), sr, subtype=subtype)
        return path

    return _write
