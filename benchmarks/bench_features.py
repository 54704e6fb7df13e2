"""How fast is log-mel (and MFCC) extraction? Prints seconds of audio processed per second.

Goal (issue 2): log-mel at 500x real time or more on one core, after warm-up.
Run: .venv/bin/python benchmarks/bench_features.py [--seconds 600]
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"  # one core

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from helpers.features import FeatureConfig, clip_windows, log_mel, mfcc  # noqa: E402


def clips(total_seconds: float, sr: int, seed: int = 0) -> list[np.ndarray]:
    """Noisy harmonic clips of 0.5 to 10 s adding up to ``total_seconds``."""
    rng = np.random.default_rng(seed)
    out, done = [], 0.0
    while done < total_seconds:
        sec = float(rng.uniform(0.5, 10))
        t = np.arange(int(sec * sr)) / sr
        y = np.sin(2 * np.pi * rng.uniform(80, 2000) * t) + 0.1 * rng.standard_normal(len(t))
        out.append(y.astype(np.float32))
        done += sec
    return out


def rate(fn, signals, sr) -> float:
    """Seconds of audio per wall-clock second for ``fn`` over ``signals``."""
    start = time.perf_counter()
    for y in signals:
        fn(y)
    elapsed = time.perf_counter() - start
    return sum(len(y) for y in signals) / sr / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600, help="audio to process (s)")
    args = parser.parse_args()
    cfg = FeatureConfig()
    signals = clips(args.seconds, cfg.sample_rate)
    for y in signals[:3]:  # warm-up (librosa filterbank caches, numba JIT)
        log_mel(y, cfg), mfcc(y, cfg), clip_windows(y, cfg)
    print(f"audio: {len(signals)} clips, {args.seconds:.0f} s at {cfg.sample_rate} Hz; one core")
    for name, fn in [("log-mel", lambda y: log_mel(y, cfg)),
                     ("MFCC", lambda y: mfcc(y, cfg)),
                     ("log-mel windows (incl. loudness gate)", lambda y: clip_windows(y, cfg))]:
        print(f"{name:40s} {rate(fn, signals, cfg.sample_rate):8.0f} x real time")


if __name__ == "__main__":
    main()
