"""Run aiSFX's own front end (Essentia) and PyTorch network on fixed inputs: the reference the
port in helpers/pretrained_aisfx.py is tested against (tests/test_aisfx.py).

Usage, in a scratch environment outside the project (never in CI: it needs torch, Essentia and
aiSFX's code, none of which the project installs)::

    python3.11 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 numpy soundfile essentia tqdm  # torch's CPU build
    /tmp/torchenv/bin/pip install --no-deps "aisfx>=0.1.2,<0.2"
    /tmp/torchenv/bin/python tests/aisfx_torch_reference.py tests/data/aisfx_reference.npz [FULL.npz]

The inputs are made by the functions below (numpy only, so the test imports them): four
signals, written as float WAV files and read back by aiSFX's Essentia loader, and two fixed
network inputs that bypass the front end, to tell front-end differences from network ones.
``OUT.npz`` stays small: for each signal, the frame count, a few whole frames and the band and
frame means of the normalised log-mel input, and per patch the first values, the norm and a
fixed random projection of the embedding; for the fixed inputs, the whole embeddings; the
checkpoint's tensor names, shapes and sums. ``FULL.npz`` (optional, not kept) gets the whole
spectrograms and embeddings.
"""

from __future__ import annotations

import json
import sys

import numpy as np

SAMPLE_RATE = 44100
HEAD = 32  # first embedding values stored per patch
PROJECTION_DIMS = 16


def _exp_chirp(seconds: float, sr: int, f0: float, f1: float, amp: float) -> np.ndarray:
    """An exponential sine sweep from f0 to f1 Hz."""
    t = np.arange(int(seconds * sr)) / sr
    k = np.log(f1 / f0)
    return amp * np.sin(2 * np.pi * f0 * seconds / k * (np.exp(k * t / seconds) - 1))


def signals() -> dict[str, tuple[np.ndarray, int]]:
    """The reference clips, ``{name: (mono float32 signal, sample rate)}``:

    * ``tone_noise``: 3 s, a 440 Hz sine (amplitude 0.5) plus seeded Gaussian noise (sd 0.05);
    * ``chirp``: 6 s, an exponential sweep 50 Hz -> 16 kHz (amplitude 0.5): several patches;
    * ``burst``: a 0.5-s decaying noise burst (peak 0.8) then 1.5 s of digital silence: one
      zero-padded patch, and silent frames (where Essentia adds noise of amplitude 1e-10);
    * ``chirp_22k``: 4 s, a sweep 50 Hz -> 10 kHz at 22.05 kHz: the loaders resample it.
    """
    sr = SAMPLE_RATE
    t = np.arange(3 * sr) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))
    burst_t = np.arange(sr // 2) / sr
    burst = np.random.default_rng(1).standard_normal(len(burst_t)) * np.exp(-8 * burst_t)
    burst = np.concatenate([0.8 * burst / np.abs(burst).max(), np.zeros(3 * sr // 2)])
    out = {"tone_noise": (tone, sr), "chirp": (_exp_chirp(6, sr, 50, 16000, 0.5), sr),
           "burst": (burst, sr), "chirp_22k": (_exp_chirp(4, 22050, 50, 10000, 0.5), 22050)}
    return {k: (y.astype(np.float32), rate) for k, (y, rate) in out.items()}


def fixed_inputs() -> np.ndarray:
    """Two network inputs (2, 100, 96) float32 in aiSFX's normalised range: seeded noise over a
    moving ridge, and a decaying harmonic comb."""
    frames, bands = np.meshgrid(np.arange(100), np.arange(96), indexing="ij")
    ridge = 0.6 * np.exp(-((bands - 20 - 0.5 * frames) / 6.0) ** 2)
    first = np.clip(ridge + np.random.default_rng(2).uniform(0, 0.3, (100, 96)), 0, 1)
    comb = 0.8 * (np.cos(2 * np.pi * bands / 12.0) > 0.6) * np.exp(-frames / 40.0)
    second = comb * np.exp(-bands / 60.0) + 0.05
    return np.stack([first, second]).astype(np.float32)


def projection(width: int = 512) -> np.ndarray:
    """A fixed random projection (width, 16) float64 of an embedding: compares every value."""
    return np.random.default_rng(3).standard_normal((width, PROJECTION_DIMS)) / np.sqrt(width)


def frame_indices(n_frames: int) -> list[int]:
    """The frames stored whole: the first two, the middle one and the last."""
    return sorted({0, 1, n_frames // 2, n_frames - 1})


def summarize(name: str, spec: np.ndarray, embeddings: np.ndarray) -> dict[str, np.ndarray]:
    """What the reference file keeps of one clip's normalised log-mel and patch embeddings."""
    idx = frame_indices(len(spec))
    f32 = np.float32
    return {
        f"{name}__n_frames": np.array(len(spec)),
        f"{name}__frame_index": np.array(idx),
        f"{name}__frames": spec[idx].astype(f32),
        f"{name}__band_mean": spec.mean(axis=0).astype(f32),
        f"{name}__frame_mean": spec.mean(axis=1).astype(f32),
        f"{name}__embedding_head": embeddings[:, :HEAD].astype(f32),
        f"{name}__embedding_norm": np.linalg.norm(embeddings.astype(np.float64), axis=1).astype(f32),
        f"{name}__embedding_projection": (embeddings.astype(np.float64) @ projection()).astype(f32),
    }


def main() -> None:
    import os
    import tempfile
    from importlib.metadata import version

    import essentia
    import soundfile as sf
    import torch
    from aisfx import inference, preprocessing
    from aisfx.spectrogram import spectrogram_essentia

    essentia.log.infoActive = False
    target, *full_target = sys.argv[1:]
    # aisfx's own load_weights calls torch.load with torch's default, which refuses the numpy
    # scalars of its dataset table since torch 2.6: the same call, allowing them (the file
    # comes from the aisfx wheel)
    weights, datasets = torch.load(inference.get_path_modelWeights(), map_location="cpu",
                                   weights_only=False)
    model = inference.load_bestModel(weights, datasets, "cpu")
    out: dict[str, np.ndarray] = {}
    full: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (y, sr) in signals().items():
            path = os.path.join(folder, f"{name}.wav")
            sf.write(path, y, sr, subtype="FLOAT")
            spec = spectrogram_essentia.compute_spectrogram(
                filename=path, sr=float(inference.SAMPLE_RATE),
                block_size=inference.SPEC_BLOCK_LENGTH, hop_size=inference.SPEC_HOP_LENGTH,
                n_mels=inference.MEL_BINS, f_min=inference.F_MIN, f_max=inference.F_MAX)
            spec = preprocessing.spectrogram_normalize(spec, spec_norm="original")
            emb = inference.model_get_embedding(spec, 0.5, True, model, "cpu").numpy()
            out |= summarize(name, spec, emb)
            out[f"{name}__signal_sum"] = np.array(np.abs(y.astype(np.float64)).sum())
            full[f"{name}__spec"], full[f"{name}__embedding"] = spec.astype(np.float32), emb
    with torch.no_grad():
        out["fixed__embedding"] = model.get_embedding(torch.from_numpy(fixed_inputs())).numpy()
    names = list(weights)
    out["checkpoint__names"] = np.array(names)
    out["checkpoint__shapes_json"] = np.array(json.dumps([list(weights[n].shape) for n in names]))
    out["checkpoint__sums"] = np.array([weights[n].double().sum().item() for n in names])
    out["checkpoint__datasets_json"] = np.array(json.dumps(
        {k: [int(v[0]), int(v[1])] for k, v in datasets.items()}))
    out["versions_json"] = np.array(json.dumps(
        {p: version(p) for p in ("aisfx", "torch", "essentia", "numpy")}))
    np.savez_compressed(target, **out)
    if full_target:
        np.savez_compressed(full_target[0], **full, fixed__inputs=fixed_inputs())


if __name__ == "__main__":
    main()
