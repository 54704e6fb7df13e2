"""Time every notebook of the chain, first run (empty cache) and second run (warm cache), in
seconds and in reference units.

Budget: the full profile within 20 minutes of the anchored run, counted in reference units
(below); the smoke profile within 5 minutes of wall-clock time. This machine's speed varies
from day to day and is bimodal (the same work takes T or 2T in spells), so seconds alone do not
compare across days. The benchmark therefore also times the fixed reference workload of
``benchmarks/reference.py`` (a frozen CNN, one thread) in the same run: several repeats before
the chain, one after every notebook (so a slow spell during the run is seen) and several after;
one unit is the median of all of them, and every time is reported in seconds and in units.

**The anchor.** ``--anchor b2f9d46`` checks that commit (the run whose committed benchmark took
19.8 minutes) out into a temporary ``git worktree``, runs its chain cold with the reference
measured the same way, and writes ``results/bench_anchor.json``. The full profile's budget is
then 20/19.8 x the anchor's units (that run re-measured here, in units), the 15-minute goal
15/19.8 x the anchor's units; ``helpers/report.py`` reads both files. The old code runs with
this interpreter (``--python`` to change it) and its own ``helpers`` (``PYTHONPATH`` = the
worktree), on this tree's data (``HELPERS_DATA_DIR``), with a fresh cache and output folder.

The cache (features and trained runs) is a fresh temporary one for the first run and reused by
the second. Outputs go to a temporary folder (the committed figures are untouched) unless
``--keep DIR`` names where the first run writes (``--keep .`` regenerates the repository's
figures and results, and writes ``results/bench_chain_<profile>.json``).
Run: .venv/bin/python benchmarks/bench_chain.py --profile smoke [--keep .]
     .venv/bin/python benchmarks/bench_chain.py --anchor b2f9d46      (once, on a quiet machine)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reference import ReferenceWorker, describe, in_units, summarise

from helpers.files import write_json
from helpers.parallel import local_workers
from helpers.paths import data_dir
from helpers.report import (
    ANCHOR_FILE,
    BUDGET_MINUTES,
    BUDGET_UNITS,
    GOAL_UNITS,
    anchor_applies,
    anchored_budget,
    budget_verdict,
)

ROOT = Path(__file__).resolve().parents[1]

# Run in the tree being measured (its own helpers): the notebook list, then one notebook.
LIST_CODE = ("import json; from helpers.chain import chain_notebooks; "
             "print(json.dumps([str(p) for p in chain_notebooks()]))")
RUN_CODE = ("import sys; from pathlib import Path; from helpers.chain import run_notebook; "
            "print('SECONDS', run_notebook(Path(sys.argv[1]), sys.argv[2], progress=False))")


class Chain:
    """Runs the notebooks of one source tree one at a time, each in a fresh process."""

    def __init__(self, root: Path, python: str, env: dict):
        self.root, self.python, self.env = root, python, env

    def _run(self, code: str, *args: str, env: dict) -> str:
        done = subprocess.run([self.python, "-c", code, *args], cwd=self.root, env=env,
                              stdout=subprocess.PIPE, text=True)
        if done.returncode:
            sys.stdout.write(done.stdout[-3000:])
            raise SystemExit(f"the chain of {self.root} stopped (exit status {done.returncode})")
        return done.stdout

    def notebooks(self) -> list[Path]:
        return [Path(p) for p in json.loads(self._run(LIST_CODE, env=self.env).strip().splitlines()[-1])]

    def run(self, profile: str, out: Path, cache: Path, ref: ReferenceWorker,
            label: str) -> tuple[dict, dict]:
        """Every notebook into ``out`` with ``cache``; one reference repeat after each.
        Returns (seconds per notebook, reference seconds after each notebook) and writes
        ``out/results/chain_<profile>.json`` as ``python -m helpers chain`` does."""
        env = {**self.env, "HELPERS_OUTPUT_DIR": str(out), "HELPERS_CACHE_DIR": str(cache)}
        notebooks = self.notebooks()
        seconds, after = {}, {}
        for i, nb in enumerate(notebooks, 1):
            print(f"[{label} {i}/{len(notebooks)}] {nb.stem} ({profile}) ...", end=" ", flush=True)
            lines = self._run(RUN_CODE, str(nb), profile, env=env).splitlines()
            seconds[nb.stem] = round(float(next(ln for ln in lines if ln.startswith("SECONDS"))
                                           .split()[1]), 1)
            after[nb.stem] = ref.measure(1)[0]
            print(f"{seconds[nb.stem]:.0f} s; reference {after[nb.stem]:.2f} s", flush=True)
        write_json(out / "results" / f"chain_{profile}.json",
                   {"profile": profile, "overrides": {}, "seconds": seconds,
                    "total_seconds": round(sum(seconds.values()), 1)})
        return seconds, after


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


def commit_of(root: Path) -> str:
    """Short commit of ``root``'s HEAD, marked ``-dirty`` when tracked files differ from it."""
    commit = git("rev-parse", "--short", "HEAD", cwd=root)
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no", cwd=root) else "")


def units_of(seconds: dict, unit: float) -> dict:
    return {name: round(in_units(s, unit), 2) for name, s in seconds.items()}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def measure(args, source: Path, env: dict, runs: tuple[str, ...], keep: Path | None) -> dict:
    """The chain of ``source`` (``runs``: 'first' and maybe 'second'), with the reference."""
    chain = Chain(source, args.python, env)
    record: dict = {"profile": args.profile, "commit": commit_of(source),
                    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "cpu_count": os.cpu_count(), "workers": local_workers(), "load_average": {}}
    reference: dict = {"after_notebook": {}}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ReferenceWorker(args.python) as ref:
        cache = Path(tmp) / "cache"
        record["load_average"]["first_start"] = os.getloadavg()[0]
        record["load_averages_start"] = load()
        reference["before"] = ref.measure(args.repeats)
        print(f"reference before: {', '.join(f'{s:.2f}' for s in reference['before'])} s", flush=True)
        for run in runs:
            out = keep if (keep and run == "first") else Path(tmp) / run
            record["load_average"][f"{run}_start"] = os.getloadavg()[0]
            seconds, after = chain.run(args.profile, out, cache, ref, run)
            record[f"{run}_run_seconds"] = seconds
            record[f"{run}_run_total"] = round(sum(seconds.values()), 1)
            reference["after_notebook"][run] = after
        reference["after"] = ref.measure(args.repeats)
        record["load_average"]["end"] = os.getloadavg()[0]
        record["load_averages_end"] = load()
    record["wall_seconds"] = round(time.perf_counter() - start, 1)
    repeats = (reference["before"] + [s for run in runs for s in reference["after_notebook"][run].values()]
               + reference["after"])
    reference.update(summarise(repeats), unit=describe())
    record["reference"] = reference
    for run in runs:
        record[f"{run}_run_units"] = units_of(record[f"{run}_run_seconds"], reference["median"])
        record[f"{run}_run_total_units"] = round(in_units(record[f"{run}_run_total"], reference["median"]), 1)
    return record


def run_anchor(args) -> None:
    """The chain of ``args.anchor`` run cold in a temporary worktree -> results/bench_anchor.json."""
    commit = git("rev-parse", "--verify", f"{args.anchor}^{{commit}}")
    committed = json.loads(git("show", f"{commit}:results/bench_chain_{args.profile}.json"))
    out = args.anchor_out or ROOT / "results" / (
        ANCHOR_FILE if args.profile == "full" else f"bench_anchor_{args.profile}.json")
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        git("worktree", "add", "--detach", str(tree), commit)
        try:
            env = {**os.environ, "PYTHONPATH": str(tree), "HELPERS_DATA_DIR": str(args.data_dir)}
            env.pop("HELPERS_RUN_CACHE", None)
            found = subprocess.run([args.python, "-c", "import helpers; print(helpers.__file__)"],
                                   cwd=tree, env=env, check=True, stdout=subprocess.PIPE,
                                   text=True).stdout.strip()
            if not Path(found).resolve().is_relative_to(tree.resolve()):
                raise SystemExit(f"the anchor's kernels would import {found}, not the worktree's helpers")
            print(f"anchor {commit[:7]}: {args.profile} profile, cold, in {tree}; data from "
                  f"{args.data_dir}", flush=True)
            record = measure(args, tree, env, ("first",), keep=None)
        finally:
            git("worktree", "remove", "--force", str(tree))
    anchor = {"commit": commit[:7], "profile": args.profile, "date": record["date"],
              "seconds": record["first_run_seconds"], "total_seconds": record["first_run_total"],
              "reference": record["reference"], "total_units": record["first_run_total_units"],
              "units": record["first_run_units"],
              "committed_total_seconds": committed["first_run_total"],
              "committed_load_average": committed.get("load_average", {}).get("first_start"),
              "load_averages_start": record["load_averages_start"],
              "load_averages_end": record["load_averages_end"], "cpu_count": record["cpu_count"],
              "python": args.python, "wall_seconds": record["wall_seconds"]}
    path = write_json(out, anchor)
    print(f"\nanchor {anchor['commit']}: {anchor['total_seconds']:.0f} s cold today "
          f"({anchor['committed_total_seconds'] / 60:.1f} min when committed) = "
          f"{anchor['total_units']:.1f} units of {anchor['reference']['median']:.2f} s")
    if args.profile == "full":
        print(f"budget: {BUDGET_UNITS['full']:.0f} units (the anchor's {BUDGET_MINUTES['full']} min: "
              f"{anchored_budget(anchor, BUDGET_MINUTES['full']):.1f} units); goal {GOAL_UNITS['full']:.0f} units")
    print(f"written to {path}")


def show(record: dict, runs: tuple[str, ...], anchor: dict | None) -> None:
    ref = record["reference"]
    print(f"\n{record['profile']} profile at {record['commit']}, 1-min load average "
          f"{record['load_average']['first_start']:.1f} at start, {record['wall_seconds']:.0f} s in all")
    print(f"reference: median {ref['median']:.2f} s of {len(ref['repeats'])} repeats "
          f"(fastest {ref['min']:.2f}, slowest {ref['max']:.2f}, {ref['slow']} in the slow mode)")
    header = "".join(f" {run + ' run (s)':>15s} {'(units)':>8s} {'ref after':>9s}" for run in runs)
    print(f"{'notebook':24s}{header}")
    for name in record[f"{runs[0]}_run_seconds"]:
        cells = "".join(f" {record[f'{run}_run_seconds'].get(name, float('nan')):15.0f} "
                        f"{record[f'{run}_run_units'].get(name, float('nan')):8.1f} "
                        f"{ref['after_notebook'][run].get(name, float('nan')):9.2f}" for run in runs)
        print(f"{name:24s}{cells}")
    anchor = anchor if anchor_applies(anchor, record) else None
    if record["profile"] == "full" and anchor:
        print(f"budget {BUDGET_UNITS['full']:.0f} units, goal "
              f"{GOAL_UNITS['full']:.0f} units (anchor {anchor['commit']}, "
              f"{anchor['total_units']:.1f} units on {anchor['date'][:10]})")
    elif record["profile"] == "full":
        print(f"no anchor in results/{ANCHOR_FILE}: the budget is {BUDGET_MINUTES['full']} min of "
              "wall-clock time (run --anchor COMMIT once)")
    for run in runs:
        seconds, units = record[f"{run}_run_total"], record[f"{run}_run_total_units"]
        verdict = budget_verdict(record["profile"], seconds, units, anchor).replace("**", "")
        print(f"{run} run total {seconds:.0f} s ({seconds / 60:.1f} min) = {units:.1f} units: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["smoke", "full"], default=None,
                        help="default smoke; full with --anchor")
    parser.add_argument("--keep", type=Path, default=None,
                        help="output folder of the first run (default: a temporary one)")
    parser.add_argument("--anchor", metavar="COMMIT", default=None,
                        help="run that commit's chain cold and write results/bench_anchor.json")
    parser.add_argument("--anchor-out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=5,
                        help="reference repeats before and after the chain (default 5)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the measured chain and the reference (default: this one)")
    parser.add_argument("--data-dir", type=Path, default=data_dir(),
                        help="datasets folder for the anchor's run (default: this tree's)")
    args = parser.parse_args()
    args.profile = args.profile or ("full" if args.anchor else "smoke")
    if args.anchor:
        run_anchor(args)
        return
    anchor_path = ROOT / "results" / ANCHOR_FILE
    anchor = json.loads(anchor_path.read_text()) if anchor_path.is_file() else None
    runs = ("first", "second")
    keep = args.keep.resolve() if args.keep else None
    record = measure(args, ROOT, dict(os.environ), runs, keep)
    if keep:
        path = write_json(keep / "results" / f"bench_chain_{args.profile}.json", record)
        print(f"timings written to {path}")
    show(record, runs, anchor)


if __name__ == "__main__":
    main()
