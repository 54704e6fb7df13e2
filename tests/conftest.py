"""Shared fixtures: small generated audio, outputs kept out of the repository, and the smoke
runs of the notebook chain (once per session: tests/test_notebooks.py and tests/test_book.py
both read them)."""

from __future__ import annotations

import helpers  # noqa: F401  (first: pins the numeric kernels before numpy and OpenBLAS load)

# isort: split
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
CHAIN_TIMEOUT = 1500  # seconds; the smoke chain takes a few minutes


def _run_chain(out: Path) -> None:
    # Each run gets its own empty cache, so the second run trains everything again rather than
    # loading the first run's cached trainings: the reproducibility check compares two trainings.
    env = {**os.environ, "HELPERS_OUTPUT_DIR": str(out), "HELPERS_CACHE_DIR": str(out / "cache")}
    done = subprocess.run([sys.executable, "-m", "helpers", "chain", "--profile", "smoke", "--quiet"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=CHAIN_TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    """Two independent smoke runs of the whole chain, each from an empty cache (output roots)."""
    if not (ROOT / "data" / "demo" / ".complete").exists() and "HELPERS_DATA_DIR" not in os.environ:
        pytest.fail("the demo dataset is missing: run `make test` (it builds data/demo first)")
    keep = os.environ.get("SMOKE_OUTPUT_DIR")  # CI keeps the outputs as artifacts
    runs = [Path(keep) / f"smoke{i}" if keep else tmp_path_factory.mktemp(f"smoke{i}") for i in (1, 2)]
    for out in runs:
        _run_chain(out)
    return runs


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


TINY_CLASSES = ["Bass", "Cello", "Flute"]


def _tiny_prepared(kind: str = "logmel", seed: int | None = None):
    """A ``helpers.experiment.Prepared`` of random windows: 3 classes, windows (8, 8, 1),
    2 windows per clip; 6 train clips, 3 val, 3 test. ``seed`` defaults to one per kind."""
    import pandas as pd

    from helpers.experiment import Prepared
    from helpers.features import FeatureConfig, FeatureSet

    # 8 bins x 8 frames: 1 + round(0.1625 s * 22050 Hz / 512) = 8
    config = FeatureConfig(kind=kind, n_mels=8, n_mfcc=8, window_seconds=0.1625)
    rng = np.random.default_rng(seed if seed is not None else (0 if kind == "logmel" else 1))
    splits = {}
    for split, n in (("train", 6), ("val", 3), ("test", 3)):
        fnames = [f"{split}{i}.wav" for i in range(n)]
        clips = pd.DataFrame({"fname": fnames, "label": [TINY_CLASSES[i % 3] for i in range(n)],
                              "split": split})
        X = rng.normal(size=(2 * n, *config.input_shape)).astype(np.float32)
        splits[split] = FeatureSet(X=X, clip_ids=np.repeat(fnames, 2), clips=clips,
                                   skipped=pd.DataFrame(), config=config)
    return Prepared(classes=TINY_CLASSES, feature_config=config, splits=splits,
                    mean=np.zeros(8, np.float32), std=np.ones(8, np.float32))


@pytest.fixture
def tiny_prepared():
    """Factory of small random ``Prepared`` data: ``tiny_prepared(kind="logmel", seed=None)``."""
    return _tiny_prepared
