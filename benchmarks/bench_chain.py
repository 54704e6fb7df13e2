"""Time every notebook of the chain, first run (empty cache) and second run (warm: features and trained runs).

Goals (issue 6): the full demo profile in 20 minutes or less, the smoke profile in 5 or less,
on this 2-core machine. The cache (features and trained runs) is a fresh temporary one for the
first run and reused by the second. Outputs go to a temporary folder (the committed figures are
untouched) unless ``--keep DIR`` names where the first run writes (``--keep .`` regenerates the
repository's figures and results, and writes ``results/bench_chain_<profile>.json``).
Run: .venv/bin/python benchmarks/bench_chain.py --profile smoke
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers.files import write_json
from helpers.report import BUDGET_MINUTES, budget_verdict

ROOT = Path(__file__).resolve().parents[1]


def run(profile: str, out: Path, cache: Path) -> dict:
    """One chain run into ``out``; returns seconds per notebook (from results/chain_<profile>.json)."""
    env = {**os.environ, "HELPERS_OUTPUT_DIR": str(out), "HELPERS_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-m", "helpers", "chain", "--profile", profile, "--quiet"],
                   cwd=ROOT, env=env, check=True)
    return json.loads((out / "results" / f"chain_{profile}.json").read_text())["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=["smoke", "full"], default="smoke")
    parser.add_argument("--keep", type=Path, default=None,
                        help="output folder of the first run (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        first_out = args.keep.resolve() if args.keep else Path(tmp) / "run1"
        load = {"first_start": os.getloadavg()[0]}
        start = time.perf_counter()
        first = run(args.profile, first_out, cache)
        load["second_start"] = os.getloadavg()[0]
        second = run(args.profile, Path(tmp) / "run2", cache)
        load["end"] = os.getloadavg()[0]
        wall = time.perf_counter() - start
    if args.keep:
        record = {"profile": args.profile, "first_run_seconds": first, "second_run_seconds": second,
                  "first_run_total": round(sum(first.values()), 1),
                  "second_run_total": round(sum(second.values()), 1), "load_average": load,
                  "cpu_count": os.cpu_count()}
        path = write_json(first_out / "results" / f"bench_chain_{args.profile}.json", record)
        print(f"timings written to {path}")
    print(f"\n{args.profile} profile, 1-min load average {load['first_start']:.1f} at start, "
          f"{load['second_start']:.1f} before the second run, {wall:.0f} s in all")
    print(f"{'notebook':24s} {'first run (s)':>14s} {'second run (s)':>15s}")
    for name in first:
        print(f"{name:24s} {first[name]:14.0f} {second.get(name, float('nan')):15.0f}")
    for label, times in (("first", first), ("second", second)):
        total = sum(times.values())
        print(f"{label} run total {total:.0f} s ({total / 60:.1f} min): "
              f"{budget_verdict(args.profile, total).replace('**', '')} (budget {BUDGET_MINUTES[args.profile]} min)")


if __name__ == "__main__":
    main()
