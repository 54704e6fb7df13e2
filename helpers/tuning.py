"""Hyperparameter tuning: random search over the CNN, scored on validation clips.

A :class:`SearchSpace` lists the ranges (filters and kernel size per conv layer, units per
dense layer, dropout, learning rate); :func:`config_from_hp` is the one place sampled values
become a :class:`helpers.models.CNNConfig`, so a tuned configuration feeds ``build_cnn`` and
every later notebook. The objective is clip-level validation MAP@3 (windows averaged per
clip); the test split is never looked at. Every trial trains with the same seed, so trials
differ by their hyperparameters only.

KerasTuner 1.4 runs the search. Its default ``run_trial`` only accepts Keras 3 models, so the
tuner here overrides ``run_trial`` and trains the ``tf_keras`` model itself. KerasTuner keeps
going when a trial raises; :func:`tune` reports such trials (``TuningResult.n_failed``, a
:class:`TuningWarning`) instead of silently ranking the rest.

The same tuner runs distributed with KerasTuner's chief/worker mode (environment variables
``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``):
``python -m helpers tune --workers N`` starts a chief and N workers on this machine, and the
same command with those variables set runs one role, e.g. a worker on another machine.
Used in: notebooks/05_tuning.ipynb, ``python -m helpers tune``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.models import CNNConfig
from helpers.paths import results_dir

OBJECTIVE = "val_map_at_3"  # clip-level MAP@3 on the validation split, maximised
METRIC_COLUMNS = ("val_map_at_3", "val_accuracy", "seconds", "best_epoch", "epochs_run",
                  "params")
INFO_COLUMNS = ("trial_id", "tuner_id", "status")
BEST_FILE = "best_hyperparameters.json"
TRIALS_FILE = "trials.csv"
COMPLETED = "COMPLETED"


class TuningError(RuntimeError):
    """A search could not produce a result; ``trials`` holds what it recorded (or None)."""

    def __init__(self, message: str, trials: pd.DataFrame | None = None):
        super().__init__(message)
        self.trials = trials


class TuningWarning(UserWarning):
    """Some trials of a search failed; the result ranks the completed ones only."""


# ----------------------------------------------------------------------------- search space


@dataclass(frozen=True)
class SearchSpace:
    """The ranges random search draws from.

    Every conv layer of the base configuration gets its own filter count (from ``filters``)
    and kernel size (from ``kernel_sizes``); every hidden dense layer its own unit count
    (from ``dense_units``). Dropout is drawn on a grid ``min_dropout, +dropout_step, ...,
    max_dropout``; the learning rate log-uniformly between its bounds (equal bounds fix a value).
    """

    filters: tuple[int, ...] = (16, 32, 64)
    kernel_sizes: tuple[int, ...] = (3, 5)
    dense_units: tuple[int, ...] = (32, 64, 128)
    min_dropout: float = 0.0
    max_dropout: float = 0.5
    dropout_step: float = 0.1
    min_learning_rate: float = 1e-4
    max_learning_rate: float = 3e-3

    def __post_init__(self) -> None:
        for name in ("filters", "kernel_sizes", "dense_units"):
            values = getattr(self, name)
            if not values or any(int(v) != v or v < 1 for v in values):
                raise ValueError(f"SearchSpace.{name} must be a non-empty tuple of positive "
                                 f"integers, got {values!r}")
        if not 0.0 <= self.min_dropout <= self.max_dropout < 1.0 or self.dropout_step <= 0:
            raise ValueError("need 0 <= min_dropout <= max_dropout < 1 and dropout_step > 0, got "
                             f"{self.min_dropout}, {self.max_dropout}, {self.dropout_step}")
        if not 0.0 < self.min_learning_rate <= self.max_learning_rate:
            raise ValueError("need 0 < min_learning_rate <= max_learning_rate, got "
                             f"{self.min_learning_rate}, {self.max_learning_rate}")


def _float(hp, name: str, low: float, high: float, **kwargs) -> float:
    """``hp.Float`` over [low, high], or ``hp.Fixed`` when the bounds are equal."""
    if low == high:
        return float(hp.Fixed(name, low))
    return float(hp.Float(name, low, high, **kwargs))


def config_from_hp(hp, space: SearchSpace, base: CNNConfig) -> CNNConfig:
    """The CNNConfig of one trial: ``base`` with the hyperparameters of ``space`` drawn from ``hp``.

    ``hp`` is a ``keras_tuner.HyperParameters`` (declaring a name returns the trial's value) or
    :class:`FixedValues`. Names follow the layer names of ``build_cnn``: ``conv{i}_filters``,
    ``conv{i}_kernel`` for each conv layer of ``base``, ``dense{j}_units`` for each hidden dense
    layer, then ``dropout`` and ``learning_rate``. Batch norm and pooling stay as in ``base``.
    Used in: notebooks/05_tuning.ipynb.
    """
    n_conv, n_dense = len(base.conv_filters), len(base.dense_units)
    filters = tuple(int(hp.Choice(f"conv{i}_filters", list(space.filters)))
                    for i in range(1, n_conv + 1))
    kernels = tuple(int(hp.Choice(f"conv{i}_kernel", list(space.kernel_sizes)))
                    for i in range(1, n_conv + 1))
    units = tuple(int(hp.Choice(f"dense{j}_units", list(space.dense_units)))
                  for j in range(1, n_dense + 1))
    dropout = _float(hp, "dropout", space.min_dropout, space.max_dropout, step=space.dropout_step)
    rate = _float(hp, "learning_rate", space.min_learning_rate, space.max_learning_rate,
                  sampling="log")
    # a grid step of 0.1 gives 0.30000000000000004; round so configs print and compare cleanly
    return replace(base, conv_filters=filters, kernel_sizes=kernels, dense_units=units,
                   dropout=round(dropout, 6), learning_rate=rate)


class FixedValues:
    """Stand-in for ``HyperParameters`` that returns recorded values (e.g. a row of trials).

    ``config_from_hp(FixedValues(values), space, base)`` rebuilds a trial's configuration
    without KerasTuner; a missing name raises ``KeyError`` naming it.
    """

    def __init__(self, values: Mapping[str, Any]):
        self.values = dict(values)

    def _get(self, name: str, *args, **kwargs):
        if name not in self.values:
            raise KeyError(f"hyperparameter {name!r} missing; have {sorted(self.values)}")
        value = self.values[name]
        return value.item() if isinstance(value, np.generic) else value

    Choice = Float = Int = Fixed = Boolean = _get


def hyperparameters(space: SearchSpace, base: CNNConfig):
    """A ``keras_tuner.HyperParameters`` declaring every hyperparameter of ``space``."""
    import keras_tuner as kt

    hp = kt.HyperParameters()
    config_from_hp(hp, space, base)
    return hp


def hp_values(config: CNNConfig) -> dict[str, Any]:
    """The hyperparameter values of ``config``, named as :func:`config_from_hp` declares them.

    The inverse of ``config_from_hp``: ``config_from_hp(FixedValues(hp_values(c)), space, c)``
    gives ``c`` back, for any space. Used to show where a base configuration sits in a space.
    """
    values: dict[str, Any] = {}
    for i, filters in enumerate(config.conv_filters, 1):
        values[f"conv{i}_filters"] = int(filters)
    for i, kernel in enumerate(config.kernel_sizes, 1):
        values[f"conv{i}_kernel"] = int(kernel)
    for j, units in enumerate(config.dense_units, 1):
        values[f"dense{j}_units"] = int(units)
    values["dropout"] = float(config.dropout)
    values["learning_rate"] = float(config.learning_rate)
    return values


def _describe(name: str) -> str:
    """What a hyperparameter name of :func:`config_from_hp` controls, in words."""
    layer = "".join(ch for ch in name.split("_")[0] if ch.isdigit())
    if name.endswith("_filters"):
        return f"filters of conv layer {layer}"
    if name.endswith("_kernel"):
        return f"kernel size of conv layer {layer} (k x k cells)"
    if name.endswith("_units"):
        return f"units of hidden dense layer {layer}"
    if name == "dropout":
        return "dropout after every conv block and dense layer"
    if name == "learning_rate":
        return "Adam learning rate"
    return name


def space_table(space: SearchSpace, base: CNNConfig) -> pd.DataFrame:
    """The search space as a table: one row per hyperparameter, indexed by its name.

    Columns: ``what`` it controls, the ``values`` random search draws from, the ``sampling``
    rule, ``n_values`` (choices or grid points; NaN for a continuous range) and ``base``, the
    value in ``base`` (``in_space`` says whether random search could draw it).
    Used in: notebooks/05_tuning.ipynb.
    """
    hp = hyperparameters(space, base)
    base_values = hp_values(base)
    rows = {}
    for param in hp.space:
        cfg = param.get_config()
        name, value = cfg["name"], base_values[cfg["name"]]
        if "values" in cfg:
            values, sampling = ", ".join(map(str, cfg["values"])), "uniform over the choices"
            n, inside = len(cfg["values"]), value in cfg["values"]
        elif "value" in cfg:  # hp.Fixed: equal bounds
            values, sampling, n, inside = f"{cfg['value']:g}", "fixed", 1, value == cfg["value"]
        else:
            low, high, step = cfg["min_value"], cfg["max_value"], cfg.get("step")
            inside = low <= value <= high
            if cfg.get("sampling") == "log":
                values, sampling, n = f"{low:g} to {high:g}", "log-uniform", math.nan
            elif step:
                n = int(round((high - low) / step)) + 1
                values, sampling = f"{low:g} to {high:g} in steps of {step:g}", "uniform on the grid"
                inside = inside and math.isclose((value - low) / step, round((value - low) / step),
                                                 abs_tol=1e-6)
            else:
                values, sampling, n = f"{low:g} to {high:g}", "uniform", math.nan
        rows[name] = {"what": _describe(name), "values": values, "sampling": sampling,
                      "n_values": n, "base": value, "in_space": bool(inside)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["n_values"] = table["n_values"].astype("Int64")  # counts; <NA> for a continuous range
    table["base"] = pd.Series({k: r["base"] for k, r in rows.items()}, dtype=object)  # 16, not 16.0
    table.index.name = "hyperparameter"
    return table


# ----------------------------------------------------------------------------- one trial


def evaluate_config(prepared, config: CNNConfig, train_config) -> dict[str, float]:
    """Train ``config`` on the train split (early stopping on val) and score validation clips.

    Returns ``val_map_at_3`` and ``val_accuracy`` (clip level, windows averaged per clip),
    ``best_epoch``, ``epochs_run``, ``params`` and ``seconds`` (build + train + score).
    Raises ``keras_tuner.errors.FailedTrialError`` if the model predicts non-finite values.
    """
    import tf_keras as keras
    from keras_tuner.errors import FailedTrialError

    from helpers.evaluation import clip_metrics
    from helpers.experiment import clip_probabilities, train_cnn
    from helpers.models import count_params

    start = time.perf_counter()
    keras.backend.clear_session()  # drop the previous trial's graph
    model, result = train_cnn(prepared, config, train_config)
    probs = clip_probabilities(model, prepared, "val")
    if not np.isfinite(probs).all():
        raise FailedTrialError(f"non-finite validation predictions (diverged?) for {config}")
    val = clip_metrics(prepared.clip_y("val"), probs)
    return {"val_map_at_3": val["map_at_3"], "val_accuracy": val["accuracy"],
            "best_epoch": float(result.best_epoch), "epochs_run": float(result.epochs_run),
            "params": float(count_params(model)), "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- the tuner


@cache
def _classes():
    """Build the oracle and tuner classes on first use (KerasTuner imports TensorFlow)."""
    import keras_tuner as kt
    from keras_tuner.engine.trial import TrialStatus

    class CNNOracle(kt.oracles.RandomSearchOracle):
        """Random search that records who ran each trial, waits for workers, stops cleanly.

        * ``trial_tuners`` maps trial id -> tuner id (KerasTuner's trials do not record it).
        * With ``expected_workers`` > 0 (distributed) no trial is handed out until that many
          tuners have asked or ``wait_seconds`` have passed since the first one asked, so every
          worker gets a share even when some start slower.
        * After ``give_up_after`` failed trials in a row the search stops: no new trials,
          ``gave_up`` says why. (KerasTuner's own limit raises inside ``end_trial`` instead,
          which in distributed mode crashes the worker and leaves the chief waiting.)
        """

        def __init__(self, *args, expected_workers: int = 0, wait_seconds: float = 300.0,
                     give_up_after: int = 3, **kwargs):
            super().__init__(*args, max_consecutive_failed_trials=None, **kwargs)
            self.expected_workers = expected_workers
            self.wait_seconds = wait_seconds
            self.give_up_after = give_up_after
            self.gave_up: str | None = None
            self.trial_tuners: dict[str, str] = {}
            self._seen: set[str] = set()
            self._first_request: float | None = None

        @kt.synchronized
        def create_trial(self, tuner_id):
            self._seen.add(tuner_id)
            if self._first_request is None:
                self._first_request = time.monotonic()
            trial = super().create_trial(tuner_id)
            if trial.status == TrialStatus.RUNNING:
                self.trial_tuners[trial.trial_id] = tuner_id
            return trial

        def _waiting_for_workers(self) -> bool:
            waited = time.monotonic() - (self._first_request or time.monotonic())
            return len(self._seen) < self.expected_workers and waited < self.wait_seconds

        def _failures_in_a_row(self) -> int:
            count = 0
            for trial_id in reversed(self.end_order):
                if self.trials[trial_id].status != TrialStatus.FAILED:
                    break
                count += 1
            return count

        def populate_space(self, trial_id):
            if self.give_up_after and self._failures_in_a_row() >= self.give_up_after:
                self.gave_up = f"{self._failures_in_a_row()} trials failed in a row"
                return {"status": TrialStatus.STOPPED, "values": None}
            if self._waiting_for_workers():
                time.sleep(0.2)  # the asking worker retries at once; don't let it spin
                return {"status": TrialStatus.IDLE, "values": None}
            return super().populate_space(trial_id)

        def get_state(self):
            return {**super().get_state(), "trial_tuners": self.trial_tuners,
                    "gave_up": self.gave_up}

        def set_state(self, state):
            super().set_state(state)
            self.trial_tuners = dict(state.get("trial_tuners", {}))
            self.gave_up = state.get("gave_up")

    class CNNTuner(kt.RandomSearch):
        """Random search whose ``run_trial`` builds, trains and scores a tf_keras CNN.

        ``run_trial`` returns the metrics of :func:`evaluate_config` (the objective
        ``val_map_at_3`` among them), which KerasTuner records for the trial.
        """

        def __init__(self, space: SearchSpace, base: CNNConfig, max_trials: int, seed: int,
                     directory, project_name: str, overwrite: bool,
                     expected_workers: int = 0, wait_seconds: float = 300.0):
            self.space, self.base, self.seed = space, base, seed
            # KerasTuner reads seed 0 as "no seed" (`seed or random.randint(...)`), hence + 1
            oracle = CNNOracle(objective=kt.Objective(OBJECTIVE, "max"), max_trials=max_trials,
                               seed=seed + 1, hyperparameters=hyperparameters(space, base),
                               expected_workers=expected_workers, wait_seconds=wait_seconds)
            # skip RandomSearch.__init__, which would build its own (plain) oracle
            kt.Tuner.__init__(self, oracle, hypermodel=None, directory=str(directory),
                              project_name=project_name, overwrite=overwrite)

        def run_trial(self, trial, prepared, train_config, verbose: int = 0):
            config = config_from_hp(trial.hyperparameters, self.space, self.base)
            if verbose:
                _log(f"trial {trial.trial_id} on {self.tuner_id}: {config}")
            try:
                return evaluate_config(prepared, config, train_config)
            except Exception:
                if os.environ.get("KERASTUNER_ORACLE_IP"):
                    # the chief only learns the status, so keep the traceback in this log
                    _log(f"trial {trial.trial_id} on {self.tuner_id} failed:\n"
                         + traceback.format_exc())
                raise

    return CNNOracle, CNNTuner


def make_tuner(space: SearchSpace, base: CNNConfig, n_trials: int, directory: Path,
               project_name: str = "tuning", seed: int = 0, overwrite: bool = True,
               expected_workers: int = 0, wait_seconds: float = 300.0):
    """The random-search tuner (a ``keras_tuner.RandomSearch``) over ``space`` around ``base``.

    Trials and the oracle state go to ``directory/project_name`` (``overwrite`` starts afresh,
    otherwise an earlier search there is resumed). ``seed`` fixes the sampled hyperparameters.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    _, tuner_class = _classes()
    return tuner_class(space, base, max_trials=n_trials, seed=seed, directory=directory,
                       project_name=project_name, overwrite=overwrite,
                       expected_workers=expected_workers, wait_seconds=wait_seconds)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TuningResult:
    """What a search found.

    ``trials``: one row per trial (:func:`trials_table`); ``best_*``: the completed trial with
    the highest validation MAP@3 (first trial on ties); ``n_failed``: trials that did not
    complete (their ``error`` column says why).
    """

    trials: pd.DataFrame
    best_config: CNNConfig
    best_hp: dict
    best_trial_id: str
    best_score: float
    n_failed: int


def _error_line(message: str | None) -> str:
    """The last non-empty line of a trial's traceback (``ValueError: ...``)."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def trials_table(tuner) -> pd.DataFrame:
    """One row per trial: trial_id, tuner_id, status, every hyperparameter, the metrics, error.

    Metrics are NaN for trials that did not complete; ``error`` holds the last line of a
    failed trial's traceback. Needs the tuner that holds the oracle (in-process or the chief).
    Used in: notebooks/05_tuning.ipynb.
    """
    oracle = tuner.oracle
    if not hasattr(oracle, "trials"):
        raise TypeError("this tuner is a distributed worker; the trials live on the chief")
    owners = getattr(oracle, "trial_tuners", {})
    names = list(oracle.get_space().values)
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        row = {"trial_id": str(trial_id), "tuner_id": owners.get(trial_id, tuner.tuner_id),
               "status": str(trial.status), **trial.hyperparameters.values}
        for metric in METRIC_COLUMNS:
            exists = trial.metrics.exists(metric)
            row[metric] = float(trial.metrics.get_last_value(metric)) if exists else math.nan
        row["error"] = "" if trial.status == COMPLETED else _error_line(trial.message)
        rows.append(row)
    columns = [*INFO_COLUMNS, *names, *METRIC_COLUMNS, "error"]
    return pd.DataFrame(rows, columns=columns)


def hp_columns(trials: pd.DataFrame) -> list[str]:
    """The hyperparameter columns of a trials table, in declaration order."""
    known = {*INFO_COLUMNS, *METRIC_COLUMNS, "error"}
    return [c for c in trials.columns if c not in known]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def result_from_trials(trials: pd.DataFrame, space: SearchSpace, base: CNNConfig) -> TuningResult:
    """Pick the best completed trial of a trials table; :class:`TuningError` if none completed."""
    failed = trials[trials["status"] != COMPLETED]
    done = trials[(trials["status"] == COMPLETED) & trials[OBJECTIVE].notna()]
    if done.empty:
        reasons = "; ".join(sorted(set(failed["error"].astype(str))))[:500]
        raise TuningError(f"no trial completed ({len(failed)} failed: {reasons or 'unknown'})",
                          trials)
    best = done.loc[done[OBJECTIVE].idxmax()]  # idxmax: first of equal maxima
    values = {name: _plain(best[name]) for name in hp_columns(trials)}
    return TuningResult(trials=trials.reset_index(drop=True),
                        best_config=config_from_hp(FixedValues(values), space, base),
                        best_hp=values, best_trial_id=str(best["trial_id"]),
                        best_score=float(best[OBJECTIVE]), n_failed=len(failed))


def warn_failed(trials: pd.DataFrame) -> int:
    """Warn (:class:`TuningWarning`) naming the trials that did not complete; return the count."""
    failed = trials[trials["status"] != COMPLETED]
    if len(failed):
        listing = "; ".join(f"trial {r.trial_id} {r.status}: {r.error}"
                            for r in failed.itertuples(index=False))
        warnings.warn(f"{len(failed)} of {len(trials)} trials did not complete and are not "
                      f"ranked: {listing}", TuningWarning, stacklevel=3)
    return len(failed)


def tune(prepared, space: SearchSpace, base: CNNConfig, n_trials: int, train_config,
         directory: Path, project_name: str = "tuning", seed: int = 0, overwrite: bool = True,
         verbose: int = 0) -> TuningResult:
    """Random search in this process: ``n_trials`` configurations, each trained and scored.

    ``prepared`` (:class:`helpers.experiment.Prepared`) supplies train (fit) and val
    (early stopping and the objective, clip-level MAP@3); test is never used. Failed trials
    are counted in ``n_failed`` and named in a :class:`TuningWarning`; a search with no
    completed trial, or stopped early after 3 failed trials in a row, raises
    :class:`TuningError` (its ``trials`` attribute holds the table).
    Used in: notebooks/05_tuning.ipynb.
    """
    if os.environ.get("KERASTUNER_ORACLE_IP"):
        raise TuningError("KERASTUNER_ORACLE_IP is set, so KerasTuner would run this search as "
                          "a distributed chief/worker; unset it or use `python -m helpers tune`")
    tuner = make_tuner(space, base, n_trials, directory, project_name, seed, overwrite)
    tuner.search(prepared, train_config, verbose=verbose)
    trials = trials_table(tuner)
    if tuner.oracle.gave_up:
        raise TuningError(f"search stopped early: {tuner.oracle.gave_up} "
                          f"({'; '.join(sorted(set(trials['error'])))})", trials)
    result = result_from_trials(trials, space, base)
    warn_failed(trials)
    return result


def best_path() -> Path:
    """``results/best_hyperparameters.json``, where the tuned configuration is kept."""
    return results_dir() / BEST_FILE


def save_best(config: CNNConfig, path: Path | None = None, extra: dict | None = None) -> Path:
    """Write ``config`` as JSON (``{"cnn_config": {...}, **extra}``) atomically; returns the path.

    Default path: :func:`best_path`. ``extra`` records where it came from (score, trial).
    Used in: notebooks/05_tuning.ipynb, ``python -m helpers tune``.
    """
    path = Path(path) if path is not None else best_path()
    payload = {"cnn_config": asdict(config), **{k: _plain(v) for k, v in (extra or {}).items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, default=_plain)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def load_best(path: Path | None = None) -> CNNConfig:
    """The CNNConfig saved by :func:`save_best` (default :func:`best_path`).

    Used in: notebooks 06-08, which start from the tuned configuration.
    """
    path = Path(path) if path is not None else best_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tuned hyperparameters; run notebooks/05_tuning.ipynb "
                                "or `python -m helpers tune` first")
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or "cnn_config" not in raw:
        raise ValueError(f"{path}: expected a JSON object with a 'cnn_config' entry")
    known = {f.name for f in fields(CNNConfig)}
    unknown = sorted(set(raw["cnn_config"]) - known)
    if unknown:
        raise ValueError(f"{path}: unknown CNNConfig field(s) {unknown}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw["cnn_config"].items()}
    return CNNConfig(**values)


def plot_trials(trials: pd.DataFrame, ax=None, objective: str = OBJECTIVE):
    """Objective against each hyperparameter, one panel per hyperparameter, best trial starred.

    ``trials`` is a :func:`trials_table`; only completed trials are drawn (the title counts the
    others). ``ax``: None (a new grid) or a sequence of at least as many axes as
    hyperparameters. Returns the array of axes used. Used in: notebooks/05_tuning.ipynb.
    """
    import matplotlib.pyplot as plt

    names = hp_columns(trials)
    done = trials[(trials["status"] == COMPLETED) & trials[objective].notna()]
    if ax is None:
        ncols = min(4, len(names))
        nrows = math.ceil(len(names) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), sharey=True,
                                 squeeze=False)
    else:
        axes = np.asarray(ax, dtype=object)
        fig = axes.flat[0].figure
        if axes.size < len(names):
            raise ValueError(f"need {len(names)} axes for {names}, got {axes.size}")
    axes = axes.ravel()
    best = done.loc[done[objective].idxmax()] if len(done) else None
    label = "validation MAP@3 (clips)" if objective == OBJECTIVE else objective
    for axis, name in zip(axes, names, strict=False):
        axis.scatter(done[name], done[objective], alpha=0.7, label="trial")
        if best is not None:
            axis.scatter([best[name]], [best[objective]], marker="*", s=160, color="C3",
                         label=f"best (trial {best['trial_id']})")
        values = sorted(trials[name].dropna().unique())
        if name == "learning_rate":
            _log_ticks(axis, values)
        elif pd.api.types.is_integer_dtype(trials[name]) or name == "dropout":
            axis.set_xticks(values, [f"{v:g}" for v in values])  # the values drawn, on their grid
        axis.set_xlabel(_axis_label(name))
        axis.set_ylabel(label)
        axis.set_title(name)
    if ax is None:  # the y axis is shared along each row: show its label in the first column only
        for k, axis in enumerate(axes[:len(names)]):
            axis.yaxis.label.set_visible(k % ncols == 0)
    for axis in axes[len(names):]:
        axis.set_visible(False)
    if len(names):
        axes[0].legend(fontsize=8, loc="best")
    skipped = len(trials) - len(done)
    note = f"; {skipped} failed trial(s) not shown" if skipped else ""
    fig.suptitle(f"Random search: {label} against each hyperparameter "
                 f"({len(done)} trials{note})")
    return axes[:len(names)]


def _log_ticks(axis, values) -> None:
    """Log x axis labelled at 1, 3, 10, 30, ... x 10^k (plain numbers, no crowded minor labels)."""
    from matplotlib.ticker import NullFormatter

    axis.set_xscale("log")
    axis.xaxis.set_minor_formatter(NullFormatter())
    if len(values) and min(values) > 0:
        low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
        ticks = [m * 10.0**k for k in range(low, high + 1) for m in (1, 3)
                 if min(values) / 2 <= m * 10.0**k <= max(values) * 2]
        if ticks:
            axis.set_xticks(ticks, [f"{t:g}" for t in ticks])


def _axis_label(name: str) -> str:
    """x label of a hyperparameter's panel (the panel's title names it): what and the unit."""
    if name.endswith("_filters"):
        return "filters (count)"
    if name.endswith("_kernel"):
        return "kernel size (k x k cells)"
    if name.endswith("_units"):
        return "units (count)"
    if name == "dropout":
        return "dropout (share of units)"
    if name == "learning_rate":
        return "learning rate (log scale)"
    return name


# ----------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class TuneJob:
    """Everything ``python -m helpers tune`` needs; each process of a search gets the same job.

    ``workers``: 0 runs in this process; N > 0 starts a chief and N workers here (the chief
    waits up to ``wait_seconds`` until N workers have asked for trials). ``host``/``port``: where
    the chief listens (port 0: a free one). ``timeout``: seconds before stragglers are killed.
    Defaults: ``directory`` ``results/tuning``, ``best`` ``results/best_hyperparameters.json``.
    """

    dataset: str = "demo"
    subset: str = "instruments19"  # a subset name or comma-separated class names
    max_clips_per_class: int | None = None
    trials: int = 10
    epochs: int = 20
    patience: int = 4
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
        if self.workers < 0 or self.trials < 1 or self.epochs < 1 or self.timeout <= 0:
            raise ValueError(f"need workers >= 0, trials >= 1, epochs >= 1, timeout > 0: {self}")

    @property
    def tuning_dir(self) -> Path:
        return Path(self.directory) if self.directory else results_dir() / "tuning"

    @property
    def project_dir(self) -> Path:
        return self.tuning_dir / self.project_name

    @property
    def best_file(self) -> Path:
        return Path(self.best) if self.best else best_path()

    def argv(self) -> list[str]:
        """Command-line arguments of ``python -m helpers tune`` that recreate this job."""
        args = ["--dataset", self.dataset, "--subset", self.subset, "--trials", str(self.trials),
                "--epochs", str(self.epochs), "--patience", str(self.patience),
                "--seed", str(self.seed), "--workers", str(self.workers), "--host", self.host,
                "--port", str(self.port), "--directory", str(self.tuning_dir.resolve()),
                "--project-name", self.project_name, "--best", str(self.best_file.resolve()),
                "--timeout", str(self.timeout), "--wait-seconds", str(self.wait_seconds),
                "--verbose", str(self.verbose)]
        if self.max_clips_per_class is not None:
            args += ["--max-clips-per-class", str(self.max_clips_per_class)]
        return args


def job_space(job: TuneJob) -> tuple[SearchSpace, CNNConfig]:
    """The search space and base configuration of the command: the log-mel CNN's ranges."""
    from helpers.models import LOGMEL_CNN

    return SearchSpace(), LOGMEL_CNN


def job_train_config(job: TuneJob):
    from helpers.training import TrainConfig

    return TrainConfig(epochs=job.epochs, patience=job.patience, seed=job.seed)


def load_job_data(job: TuneJob):
    """Clips of the job's dataset and subset, split and turned into standardised log-mel windows.

    The feature cache makes this cheap after the first process has extracted them.
    """
    from helpers.data import SUBSETS, dataset_root, load_clips
    from helpers.experiment import prepare
    from helpers.features import FeatureConfig
    from helpers.splits import assign_splits

    subset = job.subset if job.subset in SUBSETS else [s.strip() for s in job.subset.split(",")]
    clips = load_clips(dataset_root(job.dataset), subset=subset,
                       max_clips_per_class=job.max_clips_per_class, seed=job.seed)
    clips = assign_splits(clips, seed=job.seed)
    return prepare(clips, FeatureConfig(), progress=False)


def _record(job: TuneJob, trials: pd.DataFrame) -> TuningResult | None:
    """Write the trials table and, if any trial completed, the best configuration."""
    job.project_dir.mkdir(parents=True, exist_ok=True)
    trials.to_csv(job.project_dir / TRIALS_FILE, index=False)
    space, base = job_space(job)
    try:
        result = result_from_trials(trials, space, base)
    except TuningError:
        return None
    save_best(result.best_config, job.best_file,
              extra={"val_map_at_3": result.best_score, "trial_id": result.best_trial_id,
                     "hyperparameters": result.best_hp, "dataset": job.dataset,
                     "subset": job.subset, "epochs": job.epochs, "seed": job.seed})
    return result


def read_trials(job: TuneJob) -> pd.DataFrame | None:
    """The trials table a search wrote to ``<directory>/<project>/trials.csv`` (None if absent)."""
    path = job.project_dir / TRIALS_FILE
    if not path.is_file():
        return None
    trials = pd.read_csv(path, dtype={"trial_id": str, "tuner_id": str, "status": str})
    return trials.assign(error=trials["error"].fillna(""))


def summary_lines(trials: pd.DataFrame) -> list[str]:
    """Human-readable summary: trials per tuner, failures, the best trial."""
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
    if len(done):
        best = done.loc[done[OBJECTIVE].idxmax()]
        values = ", ".join(f"{n}={best[n]:.3g}" if isinstance(best[n], float) else f"{n}={best[n]}"
                           for n in hp_columns(trials))
        lines.append(f"  best: trial {best['trial_id']} val MAP@3 {best[OBJECTIVE]:.3f} "
                     f"({values})")
    return lines


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
    _record(job, trials)
    print("\n".join(summary_lines(trials)))
    print(f"trials: {job.project_dir / TRIALS_FILE}\nbest configuration: {job.best_file}")
    return 0 if (trials["status"] == COMPLETED).all() else 1


# ----------------------------------------------------------------------------- distributed


def serve_oracle(oracle, timeout: float, poll_seconds: float = 0.2) -> bool:
    """Run the chief's gRPC oracle service until every worker has been told to stop.

    This is KerasTuner's chief loop (``keras_tuner.src.distribute.oracle_chief.start_server``,
    reused for its servicer) with two changes: it checks every ``poll_seconds`` instead of
    every 20 s, and it gives up after ``timeout`` seconds. Listens on
    ``$KERASTUNER_ORACLE_IP:$KERASTUNER_ORACLE_PORT``. Returns True when the search finished.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer, exit_chief

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise TuningError(f"the chief cannot listen on {address}: {exc}") from exc
    if not bound:
        raise TuningError(f"the chief cannot listen on {address} (port in use?)")
    server.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            time.sleep(poll_seconds)
            if servicer.stop_triggered and exit_chief(oracle):
                return True
        return False
    finally:
        server.stop(grace=1)


def _log(message: str) -> None:
    """A time-stamped line in a role's log (the launcher sends it to ``<name>.log``)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_chief(job: TuneJob) -> int:
    """The chief: serve trials to the workers, then write the trials table and best config.

    Needs no data: the workers train. On timeout or SIGTERM the trials so far are still
    written (unfinished ones with status RUNNING) and the exit code is 1.
    """
    space, base = job_space(job)
    tuner = make_tuner(space, base, job.trials, job.tuning_dir, job.project_name, job.seed,
                       overwrite=True, expected_workers=job.workers,
                       wait_seconds=job.wait_seconds)
    tuner.oracle.verbose = job.verbose
    tuner.save()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    _log(f"chief: serving {job.trials} trial(s) on {os.environ['KERASTUNER_ORACLE_IP']}:"
         f"{os.environ['KERASTUNER_ORACLE_PORT']}")
    try:
        finished = serve_oracle(tuner.oracle, job.timeout)
    except KeyboardInterrupt:
        finished = False
    _log("chief: search " + ("finished" if finished else "stopped before it finished"))
    if tuner.oracle.gave_up:
        _log(f"chief: no more trials handed out: {tuner.oracle.gave_up}")
    trials = trials_table(tuner)
    _record(job, trials)
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
    _log(f"{tuner_id}: data ready; asking the chief at {os.environ['KERASTUNER_ORACLE_IP']}:"
         f"{os.environ['KERASTUNER_ORACLE_PORT']} for trials")
    tuner.search(prepared, job_train_config(job), verbose=job.verbose)
    _log(f"{tuner_id}: the chief has no more trials; done")
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
    get ``grace`` s to exit; when all workers are done and they were all ``local`` (no remote
    worker can still report), the chief gets ``grace`` s, e.g. after a worker crashed mid-trial.
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
    _log(f"tune: starting a chief on {job.host}:{job.port} and {job.workers} worker(s); "
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
