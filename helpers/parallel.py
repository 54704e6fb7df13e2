"""Where independent work runs: one process pool (or a Dask cluster) behind ``concurrent.futures``.

The series trains many networks that do not depend on each other: every recipe with every
seed in both cross-library directions, every augmentation, every cell of the ablation grid.
Each such training is a job (:class:`helpers.experiment.TrainJob`, run by
:func:`helpers.experiment.run_train_job` in a worker process); the parent process keeps the run
cache (:func:`helpers.experiment.train_many`). This module knows nothing of what a job does: it
holds the executors, the thread settings every job runs with, and the pool per-clip work uses.

**Same numbers whatever runs them.** TensorFlow's results depend (slightly) on how many threads
an op uses, so every job runs with ONE intra-op and one inter-op thread
(:func:`configure_threads`), in a fresh process: one worker or two, a local pool or a Dask
cluster, the weights and scores are the same.

Executors, chosen by :func:`get_executor`:

- ``HELPERS_DASK_SCHEDULER=tcp://host:8786``: the workers of a running Dask cluster
  (``distributed.Client(address).get_executor()``), so a grid runs on many machines. Each
  worker process runs one job at a time (start workers with ``--nthreads 1``).
- otherwise a local pool of :func:`local_workers` processes (``HELPERS_WORKERS`` overrides;
  ``benchmarks/bench_parallel.py`` measures the throughput of 1 and 2 workers on this machine).

Per-clip audio work (features, waveform augmentation, perturbed test audio) goes to the same
local pool through :func:`map_clips`.

Used in: helpers/experiment.py (:func:`helpers.experiment.train_many`), helpers/protocol.py,
helpers/pruning.py (:func:`helpers.pruning.sweep`), and through :func:`map_clips`
helpers/features.py, perturb.py and augment_audio.py; the notebooks reach it through these.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor

JOB_THREADS = 1  # TensorFlow threads per job: fixed, so every executor gives the same numbers
DEFAULT_WORKERS = 2  # local processes when HELPERS_WORKERS is not set (see local_workers)

_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0
_DASK_CLIENT = None


def one_blas_thread():
    """A context in which BLAS (numpy, scipy, librosa's mel filter bank) uses one thread.

    Clips are processed one by one and their matrix products are small, so a multi-threaded
    BLAS mostly waits for its own threads, and on a busy machine (other processes on the
    cores) it waits for them to be scheduled: per-clip work then runs several times slower
    than on one thread (``benchmarks/bench_features.py`` times both). threadpoolctl comes with
    scikit-learn. Used in: :func:`map_clips` (short clip lists, run here), helpers.protocol
    (clip-level models).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def configure_threads(threads: int = JOB_THREADS) -> None:
    """Fix TensorFlow's thread pools (before any TensorFlow op runs in this process).

    Raises RuntimeError when TensorFlow already runs with another setting, because the job's
    numbers would then differ from the same job elsewhere.
    """
    import tensorflow as tf

    threading = tf.config.threading
    current = (threading.get_intra_op_parallelism_threads(),
               threading.get_inter_op_parallelism_threads())
    if current == (threads, threads):
        return
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as exc:
        raise RuntimeError(
            f"TensorFlow already runs with {current} threads in this process; a training job "
            f"must run with {threads} (a fresh worker process)") from exc


def _init_worker() -> None:
    """Runs once in every local worker process: one thread for BLAS too, and TensorFlow imported
    (its C++ start-up notices kept out of the notebook that started the pool by the hook
    :mod:`helpers` installs)."""
    import signal

    os.environ["OMP_NUM_THREADS"] = str(JOB_THREADS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C / a stopped kernel: the parent shuts us down
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=JOB_THREADS)  # BLAS too (numpy was loaded before OMP_NUM_THREADS was set)

    import tensorflow

    tensorflow.get_logger().setLevel("ERROR")  # e.g. retracing notices of predict() on new shapes


CLIP_CHUNK = 24  # clips per worker job in :func:`map_clips`
MIN_POOLED_CLIPS = 96  # fewer clips than this are processed here: starting workers costs more


def _run_chunk(fn, items: list) -> list:
    return [fn(item) for item in items]


def map_clips(fn, items, desc: str = "clips", progress: bool = True) -> list:
    """``[fn(item) for item in items]`` in order: per-clip audio work (reading, features,
    augmentation) spread over the local pool in chunks of :data:`CLIP_CHUNK` clips.

    The audio files are on this machine, so this always uses the local pool, never a Dask
    cluster. Short lists (under :data:`MIN_POOLED_CLIPS`) run in this process. ``fn`` must be
    picklable (a module-level function, or a ``functools.partial`` of one) and deal with a bad
    clip itself (return a marker rather than raise). Workers use one BLAS thread, as
    :func:`one_blas_thread` does here, so the results are the same wherever a clip ran.
    Used in: helpers.features, helpers.perturb, helpers.augment_audio.
    """
    from concurrent.futures import as_completed

    from helpers.progress import progress as progress_bar

    items = list(items)
    results: list = [None] * len(items)
    with progress_bar(total=len(items), desc=desc, unit="clip", disable=not progress) as bar:
        if len(items) < MIN_POOLED_CLIPS:
            with one_blas_thread():
                for i, item in enumerate(items):
                    results[i] = fn(item)
                    bar.update(1)
            return results
        pool = local_pool()
        futures = {pool.submit(_run_chunk, fn, items[start:start + CLIP_CHUNK]): start
                   for start in range(0, len(items), CLIP_CHUNK)}
        for future in as_completed(futures):
            part = future.result()
            start = futures[future]
            results[start:start + len(part)] = part
            bar.update(len(part))
    return results


def local_workers() -> int:
    """Processes of the local pool: ``HELPERS_WORKERS`` if set, else :data:`DEFAULT_WORKERS`
    (at most the number of CPU cores)."""
    value = os.environ.get("HELPERS_WORKERS", "").strip()
    if value:
        try:
            workers = int(value)
        except ValueError:
            raise ValueError(f"HELPERS_WORKERS must be a whole number, got {value!r}") from None
        if workers < 1:
            raise ValueError(f"HELPERS_WORKERS must be at least 1, got {workers}")
        return workers
    return max(1, min(DEFAULT_WORKERS, os.cpu_count() or 1))


def local_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """The local process pool (started once per process and reused; shut down at exit)."""
    global _POOL, _POOL_SIZE
    workers = workers or local_workers()
    if _POOL is None or _POOL_SIZE != workers:
        shutdown()
        context = multiprocessing.get_context("spawn")  # never fork a process running TensorFlow
        _POOL = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                    initializer=_init_worker)
        _POOL_SIZE = workers
    return _POOL


def dask_executor(address: str) -> Executor:
    """An executor on the Dask cluster whose scheduler listens at ``address``."""
    global _DASK_CLIENT
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise RuntimeError("HELPERS_DASK_SCHEDULER is set but dask.distributed is not "
                           "installed (pip install distributed)") from exc
    if _DASK_CLIENT is None or _DASK_CLIENT.scheduler.address != address:
        if _DASK_CLIENT is not None:
            _DASK_CLIENT.close()
        _DASK_CLIENT = Client(address, timeout="30s")
    return _DASK_CLIENT.get_executor()


def get_executor() -> Executor:
    """The executor for training jobs: a Dask cluster when ``HELPERS_DASK_SCHEDULER`` names
    one, otherwise the local process pool."""
    address = os.environ.get("HELPERS_DASK_SCHEDULER", "").strip()
    return dask_executor(address) if address else local_pool()


def describe(executor: Executor) -> str:
    """A short description for progress messages: 'local pool of 2 processes', 'Dask ...'."""
    if isinstance(executor, ProcessPoolExecutor):
        return f"local pool of {executor._max_workers} process(es), 1 thread each"
    return f"{type(executor).__name__} (Dask cluster at {os.environ.get('HELPERS_DASK_SCHEDULER')})"


def shutdown() -> None:
    """Stop the local pool and close the Dask client, if any."""
    global _POOL, _POOL_SIZE, _DASK_CLIENT
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
        _POOL, _POOL_SIZE = None, 0
    if _DASK_CLIENT is not None:
        _DASK_CLIENT.close()
        _DASK_CLIENT = None


atexit.register(shutdown)
