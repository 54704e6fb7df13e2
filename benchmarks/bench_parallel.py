"""Throughput of independent trainings: one process with TensorFlow's own threads, against
pools of worker processes with one thread each (what helpers.parallel uses).

Trains the same set of jobs (the log-mel CNN on the first cross-library direction of the demo
set, a fixed number of epochs, different seeds) three ways and prints trainings per minute:

- sequential: one after another in this process, TensorFlow using every core (how the series
  trained before helpers.parallel);
- pool of 1: one worker process, one thread (the numbers of every pool size are identical);
- pool of N: N worker processes, one thread each;
- the default pool size with tf.data's default input options instead of
  :func:`helpers.training.one_thread_input` (the same weights, see that function).

Beside each pool the share of the machine's CPU time left idle while it trained (from
``/proc/stat``; blank where the system has none).

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
    from helpers.experiment import TrainJob, prepare
    from helpers.features import LOGMEL
    from helpers.models import LOGMEL_CNN
    from helpers.splits import library_folds
    from helpers.training import TrainConfig

    direction = library_folds(load_clips(dataset_root("demo")))[0]
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


def cpu_times() -> list[int] | None:
    """The machine's cumulative CPU times (``/proc/stat``), or None where there is no such file."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def idle_share(before: list[int] | None, after: list[int] | None) -> float | None:
    """Share of CPU time spent idle (idle + iowait) between two :func:`cpu_times`."""
    if before is None or after is None:
        return None
    delta = [b - a for a, b in zip(before, after)]
    return (delta[3] + delta[4]) / max(1, sum(delta))


def run_with_default_input(job):
    """:func:`helpers.experiment.run_train_job` with tf.data's default input options (runs in a
    worker of a pool of its own, which it changes for good)."""
    import tensorflow as tf

    import helpers.training
    from helpers.experiment import run_train_job

    helpers.training.one_thread_input = tf.data.Options
    return run_train_job(job)


def pooled(jobs, workers: int, run=None) -> tuple[float, float | None]:
    """Seconds to train ``jobs`` on a fresh pool of ``workers`` one-thread processes, and the
    share of CPU time left idle meanwhile."""
    from helpers.experiment import run_train_job
    from helpers.parallel import local_pool, shutdown

    run = run or run_train_job
    pool = local_pool(workers)
    list(pool.map(run, jobs[:workers]))  # start the workers and import TensorFlow first
    before, start = cpu_times(), time.perf_counter()
    list(pool.map(run, jobs))
    seconds, idle = time.perf_counter() - start, idle_share(before, cpu_times())
    shutdown()
    return seconds, idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=6, help="trainings per setting (default 6)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per training (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="largest pool size (default 2)")
    args = parser.parse_args()
    from helpers.parallel import DEFAULT_WORKERS

    os.environ["HELPERS_RUN_CACHE"] = "0"
    jobs, n_windows = _jobs(args.jobs, args.epochs)
    print(f"{args.jobs} trainings of {args.epochs} epochs on {n_windows} windows; "
          f"{os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.1f}")
    results = {"pool of 1": pooled(jobs, 1)}
    for workers in range(2, args.workers + 1):
        results[f"pool of {workers}"] = pooled(jobs, workers)
    compared = min(DEFAULT_WORKERS, args.workers)
    results[f"pool of {compared}, tf.data defaults"] = pooled(jobs, compared, run_with_default_input)
    before = cpu_times()
    seconds = sequential(jobs)  # last: it initialises TensorFlow here
    results["sequential, all threads"] = (seconds, idle_share(before, cpu_times()))
    base = results["sequential, all threads"][0]
    print(f"{'setting':34s} {'seconds':>8s} {'trainings/min':>14s} {'vs sequential':>14s} "
          f"{'CPU idle':>9s}")
    for name, (seconds, idle) in results.items():
        idle_text = f"{idle:9.0%}" if idle is not None else " " * 9
        print(f"{name:34s} {seconds:8.1f} {60 * args.jobs / seconds:14.2f} "
              f"{base / seconds:13.2f}x {idle_text}")


if __name__ == "__main__":
    main()
