"""How fast does the offline demo set build? Prints clips, audio duration, wall time, audio s/s.

Goal: the default size (120 clips per class) in under 2 minutes on a 2-core machine.
Run: .venv/bin/python benchmarks/bench_demo.py [--clips-per-class 120] [--workers 1 2]
"""

import argparse
import tempfile
import time
from pathlib import Path

import soundfile as sf

from helpers.data import AUDIO_TEST_DIR, AUDIO_TRAIN_DIR
from helpers.demo import DemoConfig, build_demo


def measure(config: DemoConfig, workers: int) -> None:
    """Build into a temporary folder and print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = build_demo(Path(tmp) / "demo", config, force=True, progress=False,
                          workers=workers)
        wall = time.perf_counter() - start
        files = [*(root / AUDIO_TRAIN_DIR).glob("*.wav"), *(root / AUDIO_TEST_DIR).glob("*.wav")]
        audio = sum(sf.info(f).duration for f in files)
        size = sum(f.stat().st_size for f in files) / 2**20
    print(f"workers={workers}: {len(files)} clips, {audio / 60:.1f} min of audio "
          f"({size:.0f} MiB), wall {wall:.1f} s, {audio / wall:.0f} s of audio per second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips-per-class", type=int, default=DemoConfig().clips_per_class)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    config = DemoConfig(clips_per_class=args.clips_per_class)
    for workers in args.workers:
        measure(config, workers)


if __name__ == "__main__":  # required: workers > 1 spawns processes that re-import this file
    main()
