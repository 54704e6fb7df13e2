"""One experiment's data, ready to train, and the train-then-score loop every chapter repeats.

``prepare`` turns a clip table (with its splits) into standardised feature windows; the
standardiser is fit on the training windows only. A :class:`TrainJob` is one training: a worker
process builds the network, trains it (:func:`helpers.training.fit`), scores the clips of every
split and sends back a :class:`TrainOutcome` (weights, history, clip probabilities:
:func:`run_train_job`). :func:`train_many` runs a list of jobs (in worker processes, see
:mod:`helpers.parallel`) and keeps the rules of honest evaluation in one place: checkpoints are
chosen on validation, the other splits are only scored, and scores are clip-level (windows
averaged per clip).

Trained runs are cached beside the features (``<cache>/runs/``): a run is identified by a hash
of every split's windows, the network, the training settings, the augmentation and the source
of the code that trains (:data:`RUN_CODE`: the training and augmentation modules, the network builder, the job), so a later
chapter that repeats an identical training (notebook 04's "none" is notebook 03's log-mel CNN)
loads its weights and clip probabilities instead of training again, and a second run of the
chain skips every training it already did. Training is deterministic (and runs with the same
thread count everywhere), so a cached run equals a fresh one; ``HELPERS_RUN_CACHE=0`` switches
the cache off. Used in: notebooks 04, 05, 06, 07 and 10; helpers/protocol.py, pruning.py,
perturb.py, tuning.py and tune_command.py; benchmarks/bench_parallel.py (:class:`TrainJob`,
:func:`run_train_job`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from helpers.features import FeatureConfig, FeatureSet
from helpers.parallel import configure_threads, describe, get_executor
from helpers.paths import cache_dir

if TYPE_CHECKING:  # type hints only
    from helpers.training import TrainResult

# The code a cached run depends on: whole modules, and the functions of modules that also hold
# unrelated code (a change to a bundle's file format must not discard every trained network).
RUN_CODE = ("helpers.training", "helpers.augment", "helpers.models:CNNConfig",
            "helpers.models:build_cnn", "helpers.models:_pool_size", "helpers.models:count_params",
            "helpers.experiment:run_train_job", "helpers.parallel:configure_threads",
            "helpers.parallel:JOB_THREADS", "helpers.experiment:split_probabilities",
            "helpers.evaluation:aggregate_clips")


def run_code_digest() -> str:
    """A hash of the source of everything in :data:`RUN_CODE` (part of every run's key)."""
    import importlib
    import inspect

    digest = hashlib.sha256()
    for name in RUN_CODE:
        module_name, _, attribute = name.partition(":")
        module = importlib.import_module(module_name)
        if not attribute:
            digest.update(inspect.getsource(module).encode())
        elif attribute.isupper():  # a constant
            digest.update(repr(getattr(module, attribute)).encode())
        else:
            digest.update(inspect.getsource(getattr(module, attribute)).encode())
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class Prepared:
    """Standardised windows per split, the class list and the standardiser."""

    classes: list[str]
    feature_config: FeatureConfig
    splits: dict[str, FeatureSet]
    mean: np.ndarray
    std: np.ndarray

    def xy(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Windows ``(n, bins, frames, 1)`` and their class indices ``(n,)`` of one split."""
        fs = self.splits[split]
        return fs.X, fs.window_labels(self.classes)

    def clip_y(self, split: str) -> np.ndarray:
        """Class index of each clip of a split ``(n_clips,)``, in window first-appearance order."""
        return self.splits[split].clip_labels(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.feature_config.input_shape

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the classes and of every split's windows and labels (what a run sees)."""
        digest = hashlib.sha256(json.dumps(self.classes).encode())
        for split in self.splits:
            digest.update(split.encode())
            X, y = self.xy(split)
            for array in (np.ascontiguousarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)):
                digest.update(str(array.shape).encode())
                digest.update(array.tobytes())
        return digest.hexdigest()[:20]


def prepare(clips: pd.DataFrame, feature_config: FeatureConfig, progress: bool = True) -> Prepared:
    """Extract (or load cached) windows for ``clips`` and standardise them with train statistics.

    ``clips`` needs ``fname, path, label, split``, with split in train/val/test (in-library,
    :func:`helpers.splits.assign_splits`) and optionally cross_val/cross_test (one direction of
    :func:`helpers.splits.library_directions`). Every split present gets its windows.
    """
    from helpers.data import classes_of
    from helpers.features import extract_features, fit_standardizer, standardize
    from helpers.splits import CROSS_SPLITS

    fs = extract_features(clips, feature_config, progress=progress)
    names = [s for s in CROSS_SPLITS if s in set(fs.clips["split"])]
    parts = {s: fs.select(s) for s in names}
    empty = [s for s in ("train", "val") if s not in parts] + [s for s, p in parts.items()
                                                                 if len(p.X) == 0]
    if empty:
        raise ValueError(f"no usable windows in split(s) {empty}: too few clips?")
    mean, std = fit_standardizer(parts["train"].X)
    parts = {s: replace(p, X=standardize(p.X, mean, std)) for s, p in parts.items()}
    return Prepared(classes=classes_of(fs.clips), feature_config=feature_config, splits=parts,
                    mean=mean, std=std)


@dataclass(frozen=True)
class TrainJob:
    """One training: data, network, settings, augmentation, and the splits to score.

    ``variants`` (optional, :class:`helpers.augment.Versions`) holds extra renderings of the
    training windows, one drawn per window each epoch (see :func:`helpers.training.fit`).
    Used in: helpers/protocol.py, helpers/tuning.py, :func:`train_cnn`.
    """

    prepared: Prepared
    cnn: Any
    train: Any
    augment: Any = None
    splits: tuple[str, ...] = ()
    variants: Any = None


@dataclass(frozen=True)
class TrainOutcome:
    """What a job sends back: weights, the training record, clip probabilities per split."""

    weights: list[np.ndarray]
    result: TrainResult
    probs: dict[str, np.ndarray]
    params: int


def run_train_job(job: TrainJob) -> TrainOutcome:
    """Build, train and score one network (runs in a worker process).

    The checkpoint is chosen on ``val`` (early stopping, best weights restored); then every split
    of ``job.splits`` is scored: window probabilities averaged per clip, in the order of
    ``job.prepared.splits[split].clips``.
    """
    configure_threads()
    import tf_keras as keras

    from helpers.models import build_cnn, count_params
    from helpers.training import fit, set_seed

    prepared = job.prepared
    set_seed(job.train.seed)
    model = build_cnn(prepared.input_shape, len(prepared.classes), job.cnn)
    X_train, y_train = prepared.xy("train")
    X_val, y_val = prepared.xy("val")
    result = fit(model, X_train, y_train, X_val, y_val, len(prepared.classes), job.train,
                 augment=job.augment, variants=job.variants)
    probs = {split: p.astype(np.float32)
             for split, p in split_probabilities(model, prepared, job.splits).items()}
    outcome = TrainOutcome(weights=model.get_weights(), result=result, probs=probs,
                           params=count_params(model))
    keras.backend.clear_session()
    return outcome


def run_cache_enabled() -> bool:
    """False when ``HELPERS_RUN_CACHE`` is ``0``/``false``/``no`` (every run then trains)."""
    return os.environ.get("HELPERS_RUN_CACHE", "1").strip().lower() not in ("0", "false", "no")


def run_key(job) -> str:
    """The cache key of one training job: data, network, settings, augmentation, code."""
    import tensorflow as tf

    augment = job.augment
    if augment is not None and getattr(augment, "kind", "none") == "none":
        augment = None  # "none" and no augmentation train identically
    parts = {
        "data": job.prepared.fingerprint,
        "cnn": dataclasses.asdict(job.cnn),
        "train": dataclasses.asdict(job.train),
        "augment": None if augment is None else dataclasses.asdict(augment),
        "versions": None if job.variants is None else job.variants.fingerprint,
        "splits": sorted(job.splits),
        "code": run_code_digest(),
        "tensorflow": tf.__version__,
    }
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def run_dir(job) -> Path:
    """Where the run cache keeps ``job``'s outcome."""
    return cache_dir() / "runs" / run_key(job)


def load_run(job):
    """The cached :class:`TrainOutcome` of ``job``, or None (absent, damaged)."""
    from helpers.training import TrainResult

    directory = run_dir(job)
    try:
        meta = json.loads((directory / "run.json").read_text())
        with np.load(directory / "weights.npz") as npz:
            weights = [npz[f"w{i}"] for i in range(len(npz.files))]
        with np.load(directory / "probs.npz") as npz:
            probs = {split: npz[split] for split in npz.files}
        if set(probs) != set(job.splits):
            return None
        return TrainOutcome(weights=weights, result=TrainResult(**meta["result"], cached=True),
                            probs=probs, params=int(meta["params"]))
    except Exception:  # a damaged entry is treated as missing and trained again
        return None


def save_run(job, outcome) -> None:
    """Store ``outcome`` under ``job``'s key, atomically."""
    from helpers.files import atomic_folder

    def fill(tmp: Path) -> None:
        np.savez(tmp / "weights.npz", **{f"w{i}": w for i, w in enumerate(outcome.weights)})
        np.savez(tmp / "probs.npz", **outcome.probs)
        result = {k: v for k, v in dataclasses.asdict(outcome.result).items() if k != "cached"}
        (tmp / "run.json").write_text(json.dumps({"result": result, "params": outcome.params}) + "\n")

    atomic_folder(run_dir(job), fill)


def train_many(jobs, executor=None, progress: bool = True, desc: str = "training") -> list:
    """Train every :class:`TrainJob` of ``jobs``; outcomes in the same order.

    Runs found in the run cache are loaded; the others go to ``executor`` (default
    :func:`helpers.parallel.get_executor`: a local process pool, or a Dask cluster) and are
    cached as they finish. Equal jobs in the list are trained once.
    """
    from concurrent.futures import as_completed

    from helpers.progress import progress as progress_bar

    jobs = list(jobs)
    keys = [run_key(job) for job in jobs]
    outcomes: dict[str, object] = {}
    if run_cache_enabled():
        for key, job in zip(keys, jobs):
            if key not in outcomes:
                cached = load_run(job)
                if cached is not None:
                    outcomes[key] = cached
    todo = {key: job for key, job in zip(keys, jobs) if key not in outcomes}
    if todo:
        executor = executor or get_executor()
        if progress:
            print(f"{desc}: {len(todo)} training(s) on a {describe(executor)}"
                  + (f"; {len(set(keys)) - len(todo)} loaded from the run cache"
                     if len(set(keys)) > len(todo) else ""), flush=True)
        futures = {executor.submit(run_train_job, job): key for key, job in todo.items()}
        with progress_bar(total=len(futures), desc=desc, unit="run", disable=not progress) as bar:
            for future in as_completed(futures):
                key = futures[future]
                outcome = future.result()
                if run_cache_enabled():
                    save_run(todo[key], outcome)
                outcomes[key] = outcome
                bar.update()
    return [outcomes[key] for key in keys]


def model_from(outcome, prepared: Prepared, cnn_config):
    """Rebuild the trained network of a :class:`TrainOutcome`."""
    from helpers.models import build_cnn

    model = build_cnn(prepared.input_shape, len(prepared.classes), cnn_config)
    model.set_weights(outcome.weights)
    return model


def train_cnn(prepared: Prepared, cnn_config, train_config, augment=None, variants=None,
              executor=None, progress: bool = False):
    """Build and fit one CNN on the train split, choosing the checkpoint on val.

    Returns ``(model, TrainResult)``; the training runs as one job of :func:`train_many` (so an
    identical earlier training is loaded from the run cache, ``TrainResult.cached`` then True).
    """
    from helpers.splits import SCORED_SPLITS

    splits = tuple(s for s in SCORED_SPLITS if s in prepared.splits)
    job = TrainJob(prepared, cnn_config, train_config, augment, splits, variants)
    outcome = train_many([job], executor=executor, progress=progress)[0]
    return model_from(outcome, prepared, cnn_config), outcome.result


def split_probabilities(model, prepared: Prepared, splits) -> dict[str, np.ndarray]:
    """Clip probabilities ``{split: (n_clips, n_classes)}`` of several splits, windows averaged
    per clip.

    The windows of all ``splits`` go through the network in ONE ``predict`` call: each call
    sets up its own input pipeline, which costs more than scoring a split of the demo
    (``benchmarks/bench_job_overhead.py`` times both). A window's probabilities do not
    depend on the other windows of its batch, so the result is the same as one call per split.
    """
    from helpers.evaluation import aggregate_clips
    from helpers.training import predict_windows

    sets = [prepared.splits[split] for split in splits]
    if not sets:
        return {}
    window_probs = predict_windows(model, np.concatenate([fs.X for fs in sets]))
    out, start = {}, 0
    for split, fs in zip(splits, sets):
        stop = start + len(fs.X)
        clip_ids, out[split] = aggregate_clips(window_probs[start:stop], fs.clip_ids)
        assert list(clip_ids) == list(fs.clips["fname"]), "clip order differs from the clip table"
        start = stop
    return out


def clip_probabilities(model, prepared: Prepared, split: str = "test") -> np.ndarray:
    """Clip probabilities ``(n_clips, n_classes)`` of a split, windows averaged per clip."""
    return split_probabilities(model, prepared, (split,))[split]


def score(model, prepared: Prepared, split: str = "test") -> dict:
    """Clip-level accuracy, macro precision/recall/F1 and MAP@3 on a split."""
    from helpers.evaluation import clip_metrics

    return clip_metrics(prepared.clip_y(split), clip_probabilities(model, prepared, split))
