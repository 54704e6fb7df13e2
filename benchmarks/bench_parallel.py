"""Throughput of independent trainings: one process with TensorFlow's own threads, against
pools of worker processes with one thread each (what helpers.parallel uses).

Trains the same set of jobs (the log-mel CNN on the first cross-library direction of the demo
set, a fixed number of epochs, different seeds) three ways and prints trainings per minute:

- sequential: one after another in this process, TensorFlow using every core (how the series
  trained before helpers.parallel);
- pool of 1: one worker process, one thread (the numbers of every pool size are identical);
- pool of N: N worker processes, one thread each.

``helpers.parallel.DEFAULT_WORKERS`` should be the fastest pool size on the target machine.
Run: .venv/bin/python benchmarks/bench_parallel.py [--jobs 6] [--epochs 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace


def _jobs(n_jobs: int, epochs: int):
    from helpers.data import dataset_root, load_clips
    from helpers.experiment import prepare
    from helpers.features import LOGMEL
    from helpers.models import LOGMEL_CNN
    from helpers.parallel import TrainJob
    from helpers.splits import library_directions
    from helpers.training import TrainConfig

    direction = library_directions(load_clips(dataset_root("demo")))[0]
    prepared = prepare(direction.clips, LOGMEL, progress=False)
    train = TrainConfig(epochs=epochs, patience=epochs, batch_size=64)  # fixed length: no early stop
    return [TrainJob(prepared, LOGMEL_CNN, replace(train, seed=s), splits=("val",))
            for s in range(n_jobs)], len(prepared.splits["train"].X)


def sequential(jobs) -> float:
    """Seconds to train ``jobs`` one after another in this process (TensorFlow's default threads)."""
    from helpers.models import build_cnn
    from helpers.training import fit, set_seed

    start = time.perf_counter()
    for job in jobs:
        p = job.prepared
        set_seed(job.train.seed)
        model = build_cnn(p.input_shape, len(p.classes), job.cnn)
        fit(model, *p.xy("train"), *p.xy("val"), len(p.classes), job.train)
    return time.perf_counter() - start


def pooled(jobs, workers: int) -> float:
    """Seconds to train ``jobs`` on a fresh pool of ``workers`` one-thread processes."""
    from helpers.parallel import local_pool, run_train_job, shutdown

    pool = local_pool(workers)
    list(pool.map(run_train_job, jobs[:workers]))  # start the workers and import TensorFlow first
    start = time.perf_counter()
    list(pool.map(run_train_job, jobs))
    seconds = time.perf_counter() - start
    shutdown()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=6, help="trainings per setting (default 6)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per training (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="largest pool size (default 2)")
    args = parser.parse_args()
    os.environ["HELPERS_RUN_CACHE"] = "0"
    jobs, n_windows = _jobs(args.jobs, args.epochs)
    print(f"{args.jobs} trainings of {args.epochs} epochs on {n_windows} windows; "
          f"{os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.1f}")
    results = {"pool of 1": pooled(jobs, 1)}
    for workers in range(2, args.workers + 1):
        results[f"pool of {workers}"] = pooled(jobs, workers)
    results["sequential, all threads"] = sequential(jobs)  # last: it initialises TensorFlow here
    base = results["sequential, all threads"]
    print(f"{'setting':26s} {'seconds':>8s} {'trainings/min':>14s} {'vs sequential':>14s}")
    for name, seconds in results.items():
        print(f"{name:26s} {seconds:8.1f} {60 * args.jobs / seconds:14.2f} {base / seconds:13.2f}x")


if __name__ == "__main__":
    main()
