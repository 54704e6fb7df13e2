"""How fast is feature extraction? Prints seconds of audio processed per second (x real time).

For the project's two front ends (``LOGMEL``, the seed's ``SEED_MFCC``) and for whole windows
(features plus the activity gate), each with BLAS on one thread (what ``extract_features`` does,
:func:`helpers.parallel.one_blas_thread`) and with BLAS's default threads: on a busy machine the
default threads mostly wait for each other. Run it on a quiet machine and again while something
else loads the cores (e.g. ``--busy``, which starts a spinning process per core).
Goal: log-mel at 500x real time or more on one core, after warm-up.
Run: .venv/bin/python benchmarks/bench_features.py [--seconds 600] [--busy]
"""

import argparse
import multiprocessing
import os
import time

import numpy as np

from helpers.features import LOGMEL, SEED_MFCC, clip_features, clip_windows
from helpers.parallel import one_blas_thread


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


def _spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600, help="audio to process (s)")
    parser.add_argument("--busy", action="store_true", help="load every core with a spinning process")
    args = parser.parse_args()
    signals = clips(args.seconds, LOGMEL.sample_rate)
    for y in signals[:3]:  # warm-up (librosa filterbank caches, numba JIT)
        clip_windows(y, LOGMEL), clip_windows(y, SEED_MFCC)
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)] \
        if args.busy else []
    for p in spinners:
        p.start()
    print(f"audio: {len(signals)} clips, {args.seconds:.0f} s at {LOGMEL.sample_rate} Hz; "
          f"{'every core busy with a spinning process' if spinners else 'no extra load'}")
    print(f"{'':34s} {'BLAS 1 thread':>14s} {'BLAS default':>14s}")
    for name, fn in [("log-mel (LOGMEL)", lambda y: clip_features(y, LOGMEL)),
                     ("MFCC (SEED_MFCC)", lambda y: clip_features(y, SEED_MFCC)),
                     ("log-mel windows incl. the gate", lambda y: clip_windows(y, LOGMEL))]:
        with one_blas_thread():
            one = rate(fn, signals, LOGMEL.sample_rate)
        default = rate(fn, signals, LOGMEL.sample_rate)
        print(f"{name:34s} {one:11.0f} x rt {default:11.0f} x rt")
    for p in spinners:
        p.terminate()


if __name__ == "__main__":
    main()
