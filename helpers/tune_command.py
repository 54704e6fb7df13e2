"""``python -m helpers tune``: one random search as a command, here or over several processes.

:class:`TuneJob` holds the command's options; every process of a search gets the same job.
With ``--workers 0`` the search runs in this process (:func:`helpers.tuning.tune`). Otherwise
the command follows KerasTuner's documented distributed mode (the keras.io guide "Distributed
hyperparameter tuning"): every process builds the same tuner and calls ``search()``, with
``KERASTUNER_TUNER_ID`` (``chief``, ``tuner0``, ``tuner1``, ...), ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT`` set. The chief's ``search()`` serves the oracle over gRPC until
every worker has been told to stop; a worker's ``search()`` runs the trials it is handed.
Started by hand with those variables set (one machine each), the command runs that one role
(:func:`run_role`); with ``--workers N`` and no variables it starts a chief and N workers on
this machine itself (:func:`launch`) and sums up what they did.

Around KerasTuner's chief, with its public API only, this module adds what the project needs:

* a bounded wait: the chief's ``search()`` runs in a thread of the chief process, which stops
  waiting after ``--timeout`` seconds or on SIGTERM, writes what it has and exits (KerasTuner's
  chief has no timeout); the launcher stops whatever still runs after the timeout, and once
  all its workers have exited tells the chief so (SIGTERM) rather than letting it poll
  (KerasTuner's chief checks every 20 s whether its workers are done);
* the results, written by the chief: the trials table (one row per trial with the worker that
  ran it; failed and unfinished trials included, not dropped; on the demo one score column per
  nested leave-one-library-out fold) and the chosen configuration
  (``build/tuning/best_hyperparameters.json`` by default, beside the tuner's files: notebook 05's
  ``results/best_hyperparameters.json``, which notebooks 06 and 10 read, is only written when
  ``--best`` names it). On the demo the choice is nested as in notebook 05: each fold's own
  (the trial best on that fold's inner validation library, ``per_fold``) and the trial most
  folds chose (``cnn_config``), for a model trained on every library. Notebook 05 also counts
  the untuned network among the candidates (its runs come from notebook 03's cache); the
  command chooses among its trials only.
Used in: helpers/cli.py (``python -m helpers tune``; README, "Tuning on several machines").
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from helpers.files import atomic_file
from helpers.models import CNNConfig
from helpers.paths import output_dir
from helpers.tuning import (
    BEST_FILE,
    COMPLETED,
    LOGMEL_SPACE,
    OBJECTIVE,
    SearchSpace,
    TuningError,
    TuningResult,
    TuningWarning,
    choose_trials_per_fold,
    fold_columns,
    hp_columns,
    log,
    make_tuner,
    result_from_trials,
    save_best,
    trial_name,
    trials_table,
    tune,
)

TRIALS_FILE = "trials.csv"


# ----------------------------------------------------------------------------- the job


@dataclass(frozen=True)
class TuneJob:
    """Everything ``python -m helpers tune`` needs; each process of a search gets the same job.

    ``workers``: 0 runs in this process; N > 0 starts a chief and N workers here (the chief
    waits up to ``wait_seconds`` until N workers have asked for trials). ``host``/``port``: where
    the chief listens (port 0: a free one). ``timeout``: seconds before stragglers are killed.
    Defaults: ``directory`` ``build/tuning``, ``best`` ``build/tuning/best_hyperparameters.json``.
    """

    dataset: str = "demo"
    subset: str = "instruments19"  # a subset name or comma-separated class names
    max_clips_per_class: int | None = None
    trials: int = 10
    epochs: int = 30  # notebook 05's budget per trial, and its batch size below
    patience: int = 4
    batch_size: int = 64
    seed: int = 0
    workers: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    directory: Path | None = None
    project_name: str = "tuning"
    best: Path | None = None
    timeout: float = 3600.0
    wait_seconds: float = 300.0
    verbose: int = 0

    def __post_init__(self) -> None:
        if (self.workers < 0 or self.trials < 1 or self.epochs < 1 or self.batch_size < 1
                or self.timeout <= 0):
            raise ValueError(f"need workers >= 0, trials >= 1, epochs >= 1, batch_size >= 1, "
                             f"timeout > 0: {self}")

    @property
    def tuning_dir(self) -> Path:
        return Path(self.directory) if self.directory else output_dir() / "build" / "tuning"

    @property
    def project_dir(self) -> Path:
        return self.tuning_dir / self.project_name

    @property
    def best_file(self) -> Path:
        return Path(self.best) if self.best else self.tuning_dir / BEST_FILE

    def argv(self) -> list[str]:
        """Command-line arguments of ``python -m helpers tune`` that recreate this job."""
        args = ["--dataset", self.dataset, "--subset", self.subset, "--trials", str(self.trials),
                "--epochs", str(self.epochs), "--patience", str(self.patience),
                "--batch-size", str(self.batch_size),
                "--seed", str(self.seed), "--workers", str(self.workers), "--host", self.host,
                "--port", str(self.port), "--directory", str(self.tuning_dir.resolve()),
                "--project-name", self.project_name, "--best", str(self.best_file.resolve()),
                "--timeout", str(self.timeout), "--wait-seconds", str(self.wait_seconds),
                "--verbose", str(self.verbose)]
        if self.max_clips_per_class is not None:
            args += ["--max-clips-per-class", str(self.max_clips_per_class)]
        return args


def job_space(job: TuneJob) -> tuple[SearchSpace, CNNConfig]:
    """The search space and base configuration of the command: notebook 05's
    (:data:`helpers.tuning.LOGMEL_SPACE` around the log-mel CNN)."""
    from helpers.models import LOGMEL_CNN

    return LOGMEL_SPACE, LOGMEL_CNN


def job_train_config(job: TuneJob):
    from helpers.training import TrainConfig

    return TrainConfig(epochs=job.epochs, patience=job.patience, batch_size=job.batch_size,
                       seed=job.seed)


def load_job_data(job: TuneJob):
    """Clips of the job's dataset and subset, split and turned into standardised log-mel windows.

    Where the dataset records each clip's library (the demo), ``{fold name: prepared}``, one per
    nested leave-one-library-out fold (:func:`helpers.splits.library_folds`), so every trial is
    scored on each fold's inner validation library and the choice is made fold by fold;
    otherwise (FSDKaggle2018) one in-library set, scored on its validation clips. The feature
    cache makes this cheap after the first process has extracted the features.
    """
    from helpers.data import SUBSETS, dataset_root, load_clips
    from helpers.experiment import prepare
    from helpers.features import LOGMEL
    from helpers.splits import LIBRARY_COLUMN, assign_splits, library_folds

    subset = job.subset if job.subset in SUBSETS else [s.strip() for s in job.subset.split(",")]
    clips = load_clips(dataset_root(job.dataset), subset=subset,
                       max_clips_per_class=job.max_clips_per_class, seed=job.seed)
    if LIBRARY_COLUMN in clips:
        return {f.name: prepare(f.clips, LOGMEL, progress=False)
                for f in library_folds(clips, seed=job.seed)}
    return prepare(assign_splits(clips, seed=job.seed), LOGMEL, progress=False)


def write_results(job: TuneJob, trials: pd.DataFrame) -> TuningResult | None:
    """Write the trials table and, if any trial completed, the chosen configuration: over folds,
    each fold's choice (``per_fold``) and the majority's (``cnn_config``); in-library, the best
    trial's."""
    from helpers.protocol import fold_choices

    atomic_file(job.project_dir / TRIALS_FILE, lambda tmp: trials.to_csv(tmp, index=False))
    space, base = job_space(job)
    try:
        result = result_from_trials(trials, space, base)
    except TuningError:
        return None
    nested = {} if result.choices is None else {
        "choices": fold_choices(result.choices),
        "scored_on": "each fold's inner validation library (cross_val); the trial most folds chose"}
    save_best(result.best_config, job.best_file, per_fold=result.per_fold,
              extra={"score": result.best_score, "trial_id": result.best_trial_id,
                     "hyperparameters": result.best_hp, "dataset": job.dataset,
                     "subset": job.subset, "epochs": job.epochs, "patience": job.patience,
                     "batch_size": job.batch_size, "seed": job.seed, **nested})
    return result


def read_trials(job: TuneJob) -> pd.DataFrame | None:
    """The trials table a search wrote to ``<directory>/<project>/trials.csv`` (None if absent)."""
    path = job.project_dir / TRIALS_FILE
    if not path.is_file():
        return None
    trials = pd.read_csv(path, dtype={"trial_id": str, "tuner_id": str, "status": str})
    return trials.assign(error=trials["error"].fillna(""))


def summary_lines(trials: pd.DataFrame) -> list[str]:
    """Human-readable summary: trials per tuner, failures, and the choice: over folds, the trial
    most folds chose and each fold's own; in-library, the best trial."""
    from helpers.protocol import majority

    done = trials[trials["status"] == COMPLETED]
    lines = [f"{len(trials)} trial(s): {len(done)} completed, {len(trials) - len(done)} failed"]
    for tuner_id, group in trials.groupby("tuner_id", sort=True):
        ok = int((group["status"] == COMPLETED).sum())
        seconds = group["seconds"].mean()  # NaN when none completed
        timing = f", {seconds:.1f} s per completed trial" if seconds == seconds else ""
        lines.append(f"  {tuner_id}: {len(group)} trial(s) {list(group['trial_id'])}, "
                     f"{ok} completed{timing}")
    for row in trials[trials["status"] != COMPLETED].itertuples(index=False):
        why = row.error or (f"never finished ({row.tuner_id} stopped mid-trial)"
                            if row.status == "RUNNING" else f"traceback in {row.tuner_id}'s log")
        lines.append(f"  FAILED trial {row.trial_id} on {row.tuner_id} ({row.status}): {why}")
    if len(done) and fold_columns(trials):
        choices = choose_trials_per_fold(trials)
        chosen = majority(choices)
        best = done[done["trial_id"].map(trial_name) == chosen].iloc[0]
        lines.append(f"  chosen by {int((choices['chosen'] == chosen).sum())} of {len(choices)} "
                     f"folds: {chosen} ({_values(best, trials)}); mean inner-validation "
                     f"accuracy {best[OBJECTIVE]:.3f}")
        for direction, pick in zip(choices["direction"], choices["chosen"]):
            lines.append(f"    fold {direction}: {pick}")
    elif len(done):
        best = done.loc[done[OBJECTIVE].idxmax()]
        lines.append(f"  best: trial {best['trial_id']} score {best[OBJECTIVE]:.3f} "
                     f"({_values(best, trials)})")
    return lines


def _values(row, trials: pd.DataFrame) -> str:
    """``name=value, ...`` of a trial's hyperparameters."""
    return ", ".join(f"{n}={row[n]:.3g}" if isinstance(row[n], float) else f"{n}={row[n]}"
                     for n in hp_columns(trials))


def run_in_process(job: TuneJob) -> int:
    """``--workers 0``: load the data, search here, write trials and the best configuration."""
    space, base = job_space(job)
    prepared = load_job_data(job)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TuningWarning)  # the summary lists failures
        try:
            result = tune(prepared, space, base, job.trials, job_train_config(job),
                          job.tuning_dir, job.project_name, job.seed, verbose=job.verbose)
            trials = result.trials
        except TuningError as exc:
            print(f"tuning failed: {exc}", file=sys.stderr)
            if exc.trials is None:
                return 1
            trials = exc.trials
    write_results(job, trials)
    print("\n".join(summary_lines(trials)))
    print(f"trials: {job.project_dir / TRIALS_FILE}\nbest configuration: {job.best_file}")
    return 0 if (trials["status"] == COMPLETED).all() else 1


# ----------------------------------------------------------------------------- the roles


def serve(tuner, timeout: float, verbose: int = 0, stop: threading.Event | None = None) -> bool:
    """Run the chief, KerasTuner's ``tuner.search()`` (``KERASTUNER_TUNER_ID=chief``), for at most
    ``timeout`` seconds or until ``stop`` is set.

    ``search()`` serves the oracle on ``$KERASTUNER_ORACLE_IP:$KERASTUNER_ORACLE_PORT`` until
    every worker has been told to stop. It runs in a daemon thread, so this thread can stop
    waiting. Returns True if the search is complete (no trial left to hand out and every trial
    handed out has ended), False if it was cut short. Raises :class:`TuningError` if the chief
    cannot serve, e.g. when its port is taken.
    """
    failure: list[BaseException] = []

    def search() -> None:
        try:
            tuner.search(verbose=verbose)
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=search, name="KerasTuner chief", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    # short joins, never interrupted by an exception: a KeyboardInterrupt inside join() can
    # leave Python 3.11 believing the thread has ended (bpo-45274)
    while thread.is_alive() and not (stop and stop.is_set()) and time.monotonic() < deadline:
        thread.join(min(0.5, max(0.0, deadline - time.monotonic())))
    if failure:
        raise TuningError(f"the chief cannot serve the search: {failure[0]}") from failure[0]
    return not thread.is_alive() or tuner.oracle.finished()


def run_chief(job: TuneJob) -> int:
    """The chief: serve trials to the workers, then write the trials table and best config.

    Needs no data: the workers train. On timeout or SIGTERM the trials so far are still
    written (unfinished ones with status RUNNING); the exit code is 0 only if the search is
    complete and every trial completed.
    """
    space, base = job_space(job)
    tuner = make_tuner(space, base, job.trials, job.tuning_dir, job.project_name, job.seed,
                       overwrite=True, expected_workers=job.workers,
                       wait_seconds=job.wait_seconds)
    log(f"chief: serving {job.trials} trial(s) on {os.environ['KERASTUNER_ORACLE_IP']}:"
        f"{os.environ['KERASTUNER_ORACLE_PORT']}")
    stop = threading.Event()  # SIGTERM or Ctrl-C: stop serving, write what we have
    main = threading.current_thread() is threading.main_thread()
    if main:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, frame: stop.set())
    try:
        finished = serve(tuner, job.timeout, job.verbose, stop)
    finally:
        if main:  # from here on the chief is wrapping up anyway
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    log("chief: search " + ("finished" if finished else "stopped before it finished"))
    if tuner.oracle.gave_up:
        log(f"chief: no more trials handed out: {tuner.oracle.gave_up}")
    trials = trials_table(tuner)
    write_results(job, trials)
    print("\n".join(summary_lines(trials)), flush=True)
    return 0 if finished and (trials["status"] == COMPLETED).all() else 1


def _limit_threads() -> None:
    """Honour ``HELPERS_TF_THREADS`` (set by the launcher so N workers share the cores)."""
    threads = int(os.environ.get("HELPERS_TF_THREADS", "0"))
    if threads > 0:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def run_worker(job: TuneJob) -> int:
    """A worker: load the data, then run the trials the chief hands out until it says stop.

    Its tuner files go to ``<directory>/<project>-<tuner id>`` so workers sharing a disk with
    the chief never overwrite its search.
    """
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    prepared = load_job_data(job)
    _limit_threads()
    space, base = job_space(job)
    tuner = make_tuner(space, base, job.trials, job.tuning_dir, f"{job.project_name}-{tuner_id}",
                       job.seed, overwrite=True)
    log(f"{tuner_id}: data ready; asking the chief at {os.environ['KERASTUNER_ORACLE_IP']}:"
        f"{os.environ['KERASTUNER_ORACLE_PORT']} for trials")
    tuner.search(prepared, job_train_config(job), space, base, verbose=job.verbose)
    log(f"{tuner_id}: the chief has no more trials; done")
    return 0


def run_role(job: TuneJob) -> int:
    """Run the role named by ``KERASTUNER_TUNER_ID``: ``chief`` or a worker (``tuner0``, ...)."""
    needed = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_PORT")
    missing = [v for v in needed if not os.environ.get(v)]
    if missing:
        raise TuningError(f"KERASTUNER_ORACLE_IP is set but {missing} are not")
    if "chief" in os.environ["KERASTUNER_TUNER_ID"]:  # KerasTuner's own rule
        return run_chief(job)
    return run_worker(job)


# ----------------------------------------------------------------------------- the launcher


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ProcessReport:
    """How one process of a distributed search ended (``returncode`` None: stopped by us)."""

    name: str
    returncode: int | None
    seconds: float  # from the launch until the process ended
    log: Path


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Terminate one process we started, then kill it if it does not exit within ``grace`` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)


def wait_all(procs: Mapping[str, subprocess.Popen], timeout: float, local: bool,
             grace: float = 30.0) -> dict[str, tuple[bool, float]]:
    """Wait for the chief and workers; returns ``{name: (stopped by us, seconds)}``.

    Everything still running after ``timeout`` s is stopped. When the chief is done, workers
    get ``grace`` s to exit. When all workers are done and they were all ``local`` (no remote
    worker can still ask for trials), the chief is told at once (SIGTERM: it writes the trials
    and exits, with code 0 if the search is complete) and stopped if it is still running
    ``grace`` s later.
    """
    start = time.monotonic()
    killed = dict.fromkeys(procs, False)
    ended: dict[str, float] = {}
    workers = [n for n in procs if n != "chief"]
    chief_done_at = workers_done_at = None
    while any(p.poll() is None for p in procs.values()):
        now = time.monotonic()
        ended.update({n: now - start for n, p in procs.items()
                      if n not in ended and p.poll() is not None})
        if chief_done_at is None and procs["chief"].poll() is not None:
            chief_done_at = now
        if workers_done_at is None and all(procs[n].poll() is not None for n in workers):
            workers_done_at = now
            if local and procs["chief"].poll() is None:
                procs["chief"].terminate()  # "no worker is left": see run_chief
        overdue = [n for n, p in procs.items() if p.poll() is None and (
            now - start > timeout
            or (n != "chief" and chief_done_at is not None and now - chief_done_at > grace)
            or (n == "chief" and local and workers_done_at is not None
                and now - workers_done_at > grace))]
        for name in overdue:
            print(f"tune: stopping {name} (still running)", file=sys.stderr)
            _stop(procs[name])
            killed[name] = True
        time.sleep(0.2)
    now = time.monotonic()
    return {n: (killed[n], ended.get(n, now - start)) for n in procs}


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def launch(job: TuneJob) -> int:
    """``--workers N``: a chief and N workers as subprocesses of this one, then a summary.

    The data are prepared here first (errors surface before any process starts, and the
    workers find the features in the cache). Each process logs to
    ``<directory>/<project>_logs/<name>.log``. Returns 1 if a trial or a process failed.
    """
    if job.workers < 1:
        raise ValueError("launch needs workers >= 1; use run_in_process for 0")
    load_job_data(job)  # fail fast, and fill the feature cache once
    job = replace(job, port=job.port or free_port(job.host))
    logs = job.tuning_dir / f"{job.project_name}_logs"
    logs.mkdir(parents=True, exist_ok=True)
    (job.project_dir / TRIALS_FILE).unlink(missing_ok=True)
    env = {**os.environ, "KERASTUNER_ORACLE_IP": job.host,
           "KERASTUNER_ORACLE_PORT": str(job.port),
           "HELPERS_TF_THREADS": str(max(1, (os.cpu_count() or 1) // job.workers))}
    names = ["chief", *(f"tuner{i}" for i in range(job.workers))]
    command = [sys.executable, "-m", "helpers", "tune", *job.argv()]
    log(f"tune: starting a chief on {job.host}:{job.port} and {job.workers} worker(s); "
        f"logs in {logs}")
    procs, handles = {}, []
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)  # so `finally` stops the children
    try:
        for name in names:
            handle = open(logs / f"{name}.log", "w", encoding="utf-8")
            handles.append(handle)
            procs[name] = subprocess.Popen(command, env={**env, "KERASTUNER_TUNER_ID": name},
                                           stdout=handle, stderr=subprocess.STDOUT)
        ends = wait_all(procs, job.timeout, local=job.host in ("127.0.0.1", "localhost"))
    finally:
        for proc in procs.values():
            _stop(proc)
        for handle in handles:
            handle.close()
    reports = [ProcessReport(n, None if ends[n][0] else procs[n].returncode, ends[n][1],
                             logs / f"{n}.log") for n in names]
    return report_launch(job, reports)


def report_launch(job: TuneJob, reports: Sequence[ProcessReport]) -> int:
    """Print trials per worker, failed trials and processes; returns the exit code."""
    trials = read_trials(job)
    bad = [r for r in reports if r.returncode != 0]
    print(f"tune: finished in {max(r.seconds for r in reports):.1f} s ("
          + ", ".join(f"{r.name} {r.seconds:.1f} s" for r in reports) + ")")
    if trials is None:
        print("tune: the chief wrote no trials table", file=sys.stderr)
    else:
        print("\n".join(summary_lines(trials)))
        print(f"trials: {job.project_dir / TRIALS_FILE}\nbest configuration: {job.best_file}")
    for report in bad:
        state = ("stopped by the launcher" if report.returncode is None
                 else f"exit {report.returncode}")
        print(f"tune: {report.name} {state}; see {report.log}", file=sys.stderr)
    failed_trials = trials is None or not (trials["status"] == COMPLETED).all()
    return 1 if bad or failed_trials else 0


def run_tune_command(job: TuneJob) -> int:
    """``python -m helpers tune``: one role if ``KERASTUNER_ORACLE_IP`` is set, else launch
    ``job.workers`` local workers (or search in-process for 0)."""
    if os.environ.get("KERASTUNER_ORACLE_IP"):
        return run_role(job)
    if job.workers == 0:
        return run_in_process(job)
    return launch(job)
