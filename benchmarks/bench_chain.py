"""Time every notebook of the chain, first run (cold feature cache) and second run (warm).

Goals (issue 6): the full demo profile in 20 minutes or less, the smoke profile in 5 or less,
on this 2-core machine. Outputs go to a temporary folder (the committed figures are untouched);
the feature cache is a fresh temporary one for the first run and reused by the second.
Run: .venv/bin/python benchmarks/bench_chain.py --profile smoke
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(profile: str, out: Path, cache: Path) -> dict:
    """One chain run into ``out``; returns seconds per notebook (from results/chain_<profile>.json)."""
    import json

    env = {**os.environ, "HELPERS_OUTPUT_DIR": str(out), "HELPERS_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-m", "helpers", "chain", "--profile", profile, "--quiet"],
                   cwd=ROOT, env=env, check=True)
    return json.loads((out / "results" / f"chain_{profile}.json").read_text())["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=["smoke", "full"], default="smoke")
    args = parser.parse_args()
    budget = {"smoke": 5 * 60, "full": 20 * 60}[args.profile]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        first = run(args.profile, Path(tmp) / "run1", cache)
        second = run(args.profile, Path(tmp) / "run2", cache)
        wall = time.perf_counter() - start
    print(f"\n{args.profile} profile, 1-min load average {load_before:.1f} at start, {wall:.0f} s in all")
    print(f"{'notebook':24s} {'first run (s)':>14s} {'second run (s)':>15s}")
    for name in first:
        print(f"{name:24s} {first[name]:14.0f} {second.get(name, float('nan')):15.0f}")
    for label, times in (("first", first), ("second", second)):
        total = sum(times.values())
        verdict = "within" if total <= budget else "OVER"
        print(f"{label} run total {total:.0f} s: {verdict} the {budget // 60}-minute budget")


if __name__ == "__main__":
    main()
