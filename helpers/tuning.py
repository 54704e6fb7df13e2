"""Hyperparameter tuning: random search over the CNN, scored on validation clips.

A :class:`SearchSpace` lists the ranges (filters and kernel size per conv layer, units per
dense layer, dropout, learning rate); :func:`config_from_hp` is the one place sampled values
become a :class:`helpers.models.CNNConfig`, so a tuned configuration feeds ``build_cnn`` and
every later notebook. The objective, ``score`` (:func:`evaluate_config`), is clip accuracy
(windows averaged per clip) on validation clips. Given the nested leave-one-library-out folds
(``{fold name: prepared}``, as notebook 05 and ``python -m helpers tune`` on the demo pass them),
every trial trains once in every fold and is scored on each fold's inner validation library
(``cross_val``): one column per fold in the trials table (:func:`fold_columns`), ``score``
their mean, for reading only. The choice is then made **fold by fold**
(:func:`choose_trials_per_fold`: in fold L the trial best on L's inner library, never on L) and
a model trained on every library takes the trial most folds chose
(:func:`helpers.protocol.majority`). Given one prepared set, ``score`` is its own validation
clips (``val``, in-library). The test splits are never looked at. Every trial trains with the
same seed, so trials differ by their hyperparameters only.

KerasTuner 1.4 runs the search, through its public API only: a ``keras_tuner.Tuner`` subclass
overriding ``run_trial`` (KerasTuner's own accepts Keras 3 models only; ours trains the
``tf_keras`` model) and a ``RandomSearchOracle`` subclass overriding the methods KerasTuner
documents for custom oracles, to record which worker ran each trial, to let a distributed
search wait for its workers, and to stop after three failed trials in a row. Random search
draws every trial independently of the scores, so averaging the folds' scores into
``score`` steers nothing. KerasTuner keeps going when a trial raises; :func:`tune` reports
such trials (``TuningResult.n_failed``, a :class:`TuningWarning`) instead of silently ranking
the rest.

The same tuner runs distributed with KerasTuner's chief/worker mode (environment variables
``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``): the chief's
``tuner.search()`` serves the oracle, each worker's runs trials. The processes are started by
``python -m helpers tune`` (:mod:`helpers.tune_command`).
Used in: notebooks/05_tuning.ipynb, notebooks/06_pruning.ipynb and notebooks/10_shipping.ipynb
(:func:`load_best`, :func:`load_best_per_fold`); helpers/tune_command.py
(``python -m helpers tune``), helpers/cli.py (:class:`TuningError`).
"""

from __future__ import annotations

import json
import math
import os
import textwrap
import time
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.files import json_safe, write_json
from helpers.models import CNNConfig
from helpers.paths import results_dir

OBJECTIVE = "score"  # clip accuracy on the clips choices are made on (see evaluate_config), maximised
# Axis label of OBJECTIVE in the plots: what `score` is when the nested folds are searched
# (notebook 05); pass `score_label` when one in-library prepared set was searched instead.
SCORE_LABEL = "score: mean inner-validation accuracy over the folds (clips)"
METRIC_COLUMNS = ("score", "val_accuracy", "val_map_at_3", "seconds", "best_epoch",
                  "epochs_run", "budget_runs", "params")
FOLD_PREFIX = "cross_val: "  # a trials-table column per fold: "cross_val: <fold name>"
INFO_COLUMNS = ("trial_id", "tuner_id", "status")
BEST_FILE = "best_hyperparameters.json"
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


# The log-mel CNN's search space, the same for notebook 05 and `python -m helpers tune`. Kernels
# stay 3 x 3 (a 5 x 5 kernel costs 25/9 of the multiply-adds of its layer) and the learning rate
# starts at 1e-3 (slower learners reach the epoch cap before early stopping ends them, so a
# search would rank them by where the cap cut them off).
LOGMEL_SPACE = SearchSpace(filters=(8, 16, 32, 64), kernel_sizes=(3,), dense_units=(32, 64, 128, 256),
                           min_dropout=0.0, max_dropout=0.5, dropout_step=0.1,
                           min_learning_rate=1e-3, max_learning_rate=6e-3)


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
    Used in: every trial (``run_trial``), :func:`result_from_trials`; notebooks/05_tuning.ipynb
    describes it.
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


def evaluate_config(data, config: CNNConfig, train_config) -> dict[str, float]:
    """Train ``config`` (early stopping on each training split's val) and score it.

    ``data`` is one of:

    * a mapping ``{fold name: Prepared}``, one per nested leave-one-library-out fold
      (:func:`helpers.splits.library_folds`): the config trains once in every fold, and each
      fold's clip accuracy on its inner validation library (``cross_val``) is returned as
      ``"cross_val: <fold name>"`` (:data:`FOLD_PREFIX`), for the choice fold by fold
      (:func:`choose_trials_per_fold`); ``score`` is their mean, for reading only;
    * a sequence of ``Prepared`` (the same without fold names: ``score`` only);
    * one :class:`helpers.experiment.Prepared` (in-library: ``score`` is the clip accuracy on its
      validation clips).

    The folds train side by side as jobs (:func:`helpers.experiment.train_many`). Each job
    scores the splits a final run scores (:data:`helpers.splits.SCORED_SPLITS`), so the run
    cache gives the comparison after the search every trial's trainings instead of repeating
    them; the search itself reads only ``cross_val`` (or ``val``), never ``test`` nor
    ``cross_test``. Also returns the in-library ``val_accuracy`` and ``val_map_at_3`` (means
    over folds), ``best_epoch``/``epochs_run`` (means), ``budget_runs`` (how many of the
    trainings ran all ``train_config.epochs`` epochs, so early stopping did not end them),
    ``params`` and ``seconds`` (wall clock).
    Raises ``keras_tuner.errors.FailedTrialError`` if a model predicts non-finite values.
    """
    from keras_tuner.errors import FailedTrialError

    from helpers.evaluation import clip_metrics
    from helpers.experiment import TrainJob, train_many
    from helpers.splits import SCORED_SPLITS

    start = time.perf_counter()
    names: list[str] | None = None
    if isinstance(data, Mapping):
        names, prepared = [str(n) for n in data], list(data.values())
    else:
        prepared = list(data) if isinstance(data, (list, tuple)) else [data]
    split = "cross_val" if isinstance(data, (Mapping, list, tuple)) else "val"
    jobs = [TrainJob(p, config, train_config, None, tuple(s for s in SCORED_SPLITS if s in p.splits))
            for p in prepared]
    outcomes = train_many(jobs, progress=False)
    scores, val = [], []
    for p, outcome in zip(prepared, outcomes):
        if split not in outcome.probs:
            raise ValueError(f"no {split!r} split to score: pass the folds' data")
        for probs in (outcome.probs[split], outcome.probs["val"]):
            if not np.isfinite(probs).all():
                raise FailedTrialError(f"non-finite predictions (diverged?) for {config}")
        scores.append(clip_metrics(p.clip_y(split), outcome.probs[split])["accuracy"])
        val.append(clip_metrics(p.clip_y("val"), outcome.probs["val"]))
    per_fold = {f"{FOLD_PREFIX}{name}": float(s) for name, s in zip(names or [], scores)}
    return {"score": float(np.mean(scores)),
            "val_accuracy": float(np.mean([v["accuracy"] for v in val])),
            "val_map_at_3": float(np.mean([v["map_at_3"] for v in val])),
            "best_epoch": float(np.mean([o.result.best_epoch for o in outcomes])),
            "epochs_run": float(np.mean([o.result.epochs_run for o in outcomes])),
            "budget_runs": float(sum(o.result.epochs_run >= train_config.epochs for o in outcomes)),
            "params": float(outcomes[0].params), "seconds": time.perf_counter() - start,
            **per_fold}


# ----------------------------------------------------------------------------- the tuner


def log(message: str) -> None:
    """A time-stamped line in a process's log (the distributed launcher sends it to a file)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@cache
def _classes():
    """The oracle and tuner classes, built on first use (importing KerasTuner imports TensorFlow).

    Both are KerasTuner's documented extension points: an ``Oracle`` subclass overriding
    ``create_trial``, ``end_trial``, ``populate_space``, ``get_state`` and ``set_state``, and a
    ``Tuner`` subclass overriding ``run_trial``; both are built with their public constructors.
    """
    import keras_tuner as kt

    class CNNOracle(kt.oracles.RandomSearchOracle):
        """Random search that records who ran each trial, can wait for workers, stops cleanly.

        * ``trial_tuners`` maps trial id -> tuner id: KerasTuner's trials do not record who ran
          them, but ``create_trial`` is told who asks.
        * With ``expected_workers`` > 0 (distributed), ``populate_space`` answers IDLE ("ask
          again") until that many tuners have asked or ``wait_seconds`` have passed since the
          first one asked, so every worker gets a share even when some start slower.
        * After ``give_up_after`` failed trials in a row ``populate_space`` answers STOPPED:
          no new trials, every worker is told to stop, ``gave_up`` says why. KerasTuner's own
          limit (``max_consecutive_failed_trials``) is set out of reach: it raises inside
          ``end_trial``, which in distributed mode crashes the reporting worker and leaves the
          chief waiting for a trial that never ends.
        """

        def __init__(self, *, expected_workers: int = 0, wait_seconds: float = 300.0,
                     give_up_after: int = 3, **kwargs):
            super().__init__(**kwargs)
            self.expected_workers = expected_workers
            self.wait_seconds = wait_seconds
            self.give_up_after = give_up_after
            self.gave_up: str | None = None
            self.stopped = False  # a tuner has been told that no trial is left
            self.trial_tuners: dict[str, str] = {}
            self.end_statuses: list[str] = []  # statuses of the ended trials, in end order
            self._seen: set[str] = set()
            self._first_request: float | None = None

        @kt.synchronized
        def create_trial(self, tuner_id):
            self._seen.add(tuner_id)
            if self._first_request is None:
                self._first_request = time.monotonic()
            trial = super().create_trial(tuner_id)
            if trial.status == "RUNNING":
                self.trial_tuners[trial.trial_id] = tuner_id
            elif trial.status == "STOPPED":
                self.stopped = True
            return trial

        @kt.synchronized
        def end_trial(self, trial):
            super().end_trial(trial)
            self.end_statuses.append(self.get_trial(trial.trial_id).status)

        def _failures_in_a_row(self) -> int:
            count = 0
            for status in reversed(self.end_statuses):
                if status != "FAILED":
                    break
                count += 1
            return count

        def _waiting_for_workers(self) -> bool:
            waited = time.monotonic() - (self._first_request or time.monotonic())
            return len(self._seen) < self.expected_workers and waited < self.wait_seconds

        def populate_space(self, trial_id):
            failed = self._failures_in_a_row()
            if self.give_up_after and failed >= self.give_up_after:
                self.gave_up = f"{failed} trials failed in a row"
                return {"status": "STOPPED", "values": None}
            if self._waiting_for_workers():
                time.sleep(0.2)  # the asking worker retries at once; don't let it spin
                return {"status": "IDLE", "values": None}
            return super().populate_space(trial_id)

        def finished(self) -> bool:
            """True once no trial is left to hand out and every trial handed out has ended."""
            return self.stopped and all(self.get_trial(t).status != "RUNNING"
                                        for t in self.trial_tuners)

        def get_state(self):
            return {**super().get_state(), "trial_tuners": self.trial_tuners,
                    "end_statuses": self.end_statuses, "gave_up": self.gave_up}

        def set_state(self, state):
            super().set_state(state)
            self.trial_tuners = dict(state.get("trial_tuners", {}))
            self.end_statuses = list(state.get("end_statuses", []))
            self.gave_up = state.get("gave_up")

    class CNNTuner(kt.Tuner):
        """A KerasTuner ``Tuner`` whose trial builds, trains and scores a tf_keras CNN.

        KerasTuner 1.4's own ``run_trial`` accepts Keras 3 models only, so this one trains the
        model itself and returns the metrics of :func:`evaluate_config` (the objective
        ``score`` among them), which KerasTuner records for the trial.
        ``tuner.search(prepared, train_config, space, base, verbose=0)`` runs the search.
        """

        def run_trial(self, trial, prepared, train_config, space: SearchSpace, base: CNNConfig,
                      verbose: int = 0):
            config = config_from_hp(trial.hyperparameters, space, base)
            if verbose:
                log(f"trial {trial.trial_id} on {self.tuner_id}: {config}")
            try:
                return evaluate_config(prepared, config, train_config)
            except Exception:
                if os.environ.get("KERASTUNER_ORACLE_IP"):
                    # the chief only learns the status, so keep the traceback in this log
                    log(f"trial {trial.trial_id} on {self.tuner_id} failed:\n"
                        + traceback.format_exc())
                raise

    return CNNOracle, CNNTuner


def make_tuner(space: SearchSpace, base: CNNConfig, n_trials: int, directory: Path,
               project_name: str = "tuning", seed: int = 0, overwrite: bool = True,
               expected_workers: int = 0, wait_seconds: float = 300.0):
    """The random-search tuner (a ``keras_tuner.Tuner``) over ``space`` around ``base``.

    Trials and the oracle state go to ``directory/project_name`` (``overwrite`` starts afresh,
    otherwise an earlier search there is resumed). ``seed`` fixes the sampled hyperparameters.
    Run it with ``tuner.search(prepared, train_config, space, base)``. ``expected_workers``
    and ``wait_seconds``: see the oracle (``_classes``); 0 for a search in one process.
    """
    import keras_tuner as kt

    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    oracle_class, tuner_class = _classes()
    # KerasTuner reads seed 0 as "no seed" (`seed or random.randint(...)`), hence + 1
    oracle = oracle_class(objective=kt.Objective(OBJECTIVE, "max"), max_trials=n_trials,
                          seed=seed + 1, hyperparameters=hyperparameters(space, base),
                          max_consecutive_failed_trials=n_trials + 1,  # out of reach: see oracle
                          expected_workers=expected_workers, wait_seconds=wait_seconds)
    return tuner_class(oracle=oracle, directory=str(directory), project_name=project_name,
                       overwrite=overwrite)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TuningResult:
    """What a search found.

    ``trials``: one row per trial (:func:`trials_table`); ``n_failed``: trials that did not
    complete (their ``error`` column says why).

    A search over the nested folds chooses **fold by fold**: ``choices`` is
    :func:`choose_trials_per_fold`'s table (in each fold, the trial best on that fold's inner
    validation library) and ``per_fold`` maps each fold's name to its chosen configuration;
    ``best_*`` is then the trial most folds chose (:func:`helpers.protocol.majority`, what a
    model trained on every library uses) and ``best_score`` its ``score``, the mean of its
    folds' inner-validation accuracies: a description, which chose nothing.
    A search on one in-library prepared set has no folds (``choices`` None, ``per_fold``
    empty); ``best_*`` is then the completed trial with the highest ``score`` (first on ties).
    """

    trials: pd.DataFrame
    best_config: CNNConfig
    best_hp: dict
    best_trial_id: str
    best_score: float
    n_failed: int
    choices: pd.DataFrame | None = None
    per_fold: dict = field(default_factory=dict)


def _error_line(message: str | None) -> str:
    """The last non-empty line of a trial's traceback (``ValueError: ...``)."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def trials_table(tuner) -> pd.DataFrame:
    """One row per trial: trial_id, tuner_id, status, every hyperparameter, the metrics, error.

    Metrics are NaN for trials that did not complete; a search over folds adds one column per
    fold (``"cross_val: <fold name>"``, :func:`fold_columns`) after the metrics. ``error`` holds
    the last line of a failed trial's traceback (a distributed worker's traceback stays in its
    log: KerasTuner sends the chief the status only). Needs a tuner of :func:`make_tuner` that
    holds the oracle (in-process or the chief). Used in: :func:`tune`,
    helpers/tune_command.py (the chief).
    """
    import keras_tuner as kt

    oracle = tuner.oracle
    if not isinstance(oracle, kt.Oracle):
        raise TypeError("this tuner is a distributed worker; the trials live on the chief")
    names = list(oracle.get_space().values)
    trials, folds = [], []
    for trial_id, tuner_id in sorted(oracle.trial_tuners.items()):
        trial = oracle.get_trial(trial_id)
        trials.append((trial_id, tuner_id, trial))
        folds += [m for m in trial.metrics.metrics if m.startswith(FOLD_PREFIX) and m not in folds]
    rows = []
    for trial_id, tuner_id, trial in trials:
        row = {"trial_id": str(trial_id), "tuner_id": tuner_id, "status": str(trial.status),
               **trial.hyperparameters.values}
        for metric in (*METRIC_COLUMNS, *folds):
            exists = trial.metrics.exists(metric)
            row[metric] = float(trial.metrics.get_last_value(metric)) if exists else math.nan
        row["error"] = "" if trial.status == COMPLETED else _error_line(trial.message)
        rows.append(row)
    columns = [*INFO_COLUMNS, *names, *METRIC_COLUMNS, *folds, "error"]
    return pd.DataFrame(rows, columns=columns)


def hp_columns(trials: pd.DataFrame) -> list[str]:
    """The hyperparameter columns of a trials table, in declaration order."""
    known = {*INFO_COLUMNS, *METRIC_COLUMNS, "error"}
    return [c for c in trials.columns if c not in known and not str(c).startswith(FOLD_PREFIX)]


def fold_columns(trials: pd.DataFrame) -> list[str]:
    """The per-fold score columns of a trials table (``"cross_val: <fold name>"``), in fold
    order; empty for a search on one in-library prepared set."""
    return [c for c in trials.columns if str(c).startswith(FOLD_PREFIX)]


def trial_name(trial_id) -> str:
    """The candidate name of a trial in a choice table: ``"trial 3"``."""
    return f"trial {trial_id}"


def trial_configs(trials: pd.DataFrame, space: SearchSpace, base: CNNConfig) -> dict[str, CNNConfig]:
    """``{trial name: CNNConfig}`` of every completed trial of a trials table, in trial order
    (names from :func:`trial_name`), e.g. to train or load each one as a candidate in every
    fold (:func:`helpers.protocol.evaluate_cnns`). Used in: notebooks/05_tuning.ipynb."""
    done = trials[(trials["status"] == COMPLETED) & trials[OBJECTIVE].notna()]
    names = hp_columns(trials)
    return {trial_name(row["trial_id"]): config_from_hp(
        FixedValues(json_safe({n: row[n] for n in names})), space, base)
        for _, row in done.iterrows()}


def choose_trials_per_fold(trials: pd.DataFrame) -> pd.DataFrame:
    """The nested choice of a search over folds: in each fold, the completed trial with the
    best clip accuracy on that fold's inner validation library (its ``cross_val`` column).

    Fold L's choice reads fold L's column only, so L (its outer test library) chooses
    nothing. Ties go to the earlier trial. The table has the shape of
    :func:`helpers.protocol.choose_per_fold`'s (``direction``, ``chosen``, one column per
    candidate, named by :func:`trial_name`), so :func:`helpers.protocol.majority` and
    :func:`helpers.protocol.fold_choices` read it. Raises ``ValueError`` when the table has no
    per-fold columns and :class:`TuningError` when no trial completed in every fold.
    Used in: :func:`result_from_trials`, helpers/tune_command.py.
    """
    folds = fold_columns(trials)
    if not folds:
        raise ValueError("the trials hold no per-fold scores: search with {fold name: prepared}")
    done = trials[(trials["status"] == COMPLETED) & trials[folds].notna().all(axis=1)]
    if done.empty:
        raise TuningError("no trial completed in every fold", trials)
    candidates = [trial_name(t) for t in done["trial_id"]]
    scores = pd.DataFrame(done[folds].to_numpy(dtype=float).T, columns=candidates,
                          index=pd.Index([f[len(FOLD_PREFIX):] for f in folds], name="direction"))
    chosen = pd.Series({d: str(row.idxmax()) for d, row in scores.iterrows()})  # first of equal maxima
    table = scores.round(4).assign(chosen=chosen).reset_index()
    return table[["direction", "chosen", *candidates]]


def result_from_trials(trials: pd.DataFrame, space: SearchSpace, base: CNNConfig) -> TuningResult:
    """What a trials table found (:class:`TuningResult`): over folds, each fold's choice and the
    majority's trial; in-library, the best completed trial. :class:`TuningError` if none
    completed."""
    from helpers.protocol import majority

    failed = trials[trials["status"] != COMPLETED]
    done = trials[(trials["status"] == COMPLETED) & trials[OBJECTIVE].notna()]
    if done.empty:
        reasons = "; ".join(sorted(set(failed["error"].astype(str))))[:500]
        raise TuningError(f"no trial completed ({len(failed)} failed: {reasons or 'unknown'})",
                          trials)

    def config_of(row) -> tuple[dict, CNNConfig]:
        values = json_safe({name: row[name] for name in hp_columns(trials)})
        return values, config_from_hp(FixedValues(values), space, base)

    choices, per_fold = None, {}
    if fold_columns(trials):
        choices = choose_trials_per_fold(trials)
        by_name = {trial_name(r["trial_id"]): r for _, r in done.iterrows()}
        best = by_name[majority(choices)]
        configs = trial_configs(trials, space, base)
        per_fold = {str(d): configs[c] for d, c in zip(choices["direction"], choices["chosen"])}
    else:
        best = done.loc[done[OBJECTIVE].idxmax()]  # idxmax: first of equal maxima
    values, config = config_of(best)
    return TuningResult(trials=trials.reset_index(drop=True), best_config=config,
                        best_hp=values, best_trial_id=str(best["trial_id"]),
                        best_score=float(best[OBJECTIVE]), n_failed=len(failed),
                        choices=choices, per_fold=per_fold)


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

    ``prepared`` is ``{fold name: Prepared}``, one per nested leave-one-library-out fold (every
    trial trains in every fold and is scored on each fold's inner validation library,
    ``cross_val``; the result chooses fold by fold, :class:`TuningResult`), or one
    ``Prepared`` (scored on its ``val`` clips). Each supplies train (fit) and val (early
    stopping); see :func:`evaluate_config`. The test splits (``test``, ``cross_test``) are never
    used. Failed trials are counted in ``n_failed`` and named in a :class:`TuningWarning`; a
    search with no completed trial, or stopped early after 3 failed trials in a row, raises
    :class:`TuningError` (its ``trials`` attribute holds the table).
    Used in: notebooks/05_tuning.ipynb.
    """
    if os.environ.get("KERASTUNER_ORACLE_IP"):
        raise TuningError("KERASTUNER_ORACLE_IP is set, so KerasTuner would run this search as "
                          "a distributed chief/worker; unset it or use `python -m helpers tune`")
    tuner = make_tuner(space, base, n_trials, directory, project_name, seed, overwrite)
    tuner.search(prepared, train_config, space, base, verbose=verbose)
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


def save_best(config: CNNConfig, path: Path | None = None, extra: dict | None = None,
              per_fold: Mapping[str, CNNConfig] | None = None) -> Path:
    """Write ``config`` as JSON (``{"cnn_config": {...}, **extra}``) atomically; returns the path.

    Default path: :func:`best_path`. ``extra`` records where it came from (score, trial).
    ``per_fold`` (a nested choice: fold name -> that fold's configuration) is stored as
    ``"per_fold": {fold name: {...}}``, so that a later chapter builds fold L on what fold L
    chose (:func:`load_best_per_fold`); ``config`` is then the majority's choice, for a model
    trained on every library.
    Used in: notebooks/05_tuning.ipynb, helpers/tune_command.py (``python -m helpers tune``).
    """
    path = Path(path) if path is not None else best_path()
    folds = {"per_fold": {str(k): asdict(v) for k, v in per_fold.items()}} if per_fold else {}
    return write_json(path, {"cnn_config": asdict(config), **(extra or {}), **folds})


def _read_best(path: Path | None, expected: Mapping[str, Any]) -> tuple[Path, dict]:
    """The JSON of :func:`save_best` at ``path``, checked: it exists, has a ``cnn_config`` and
    records ``expected`` (else a clear error naming both values)."""
    path = Path(path) if path is not None else best_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tuned hyperparameters; run notebooks/05_tuning.ipynb "
                                "first")
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or "cnn_config" not in raw:
        raise ValueError(f"{path}: expected a JSON object with a 'cnn_config' entry")
    differ = {k: (raw.get(k), v) for k, v in expected.items() if raw.get(k) != v}
    if differ:
        found = ", ".join(f"{k} {a!r} (wanted {b!r})" for k, (a, b) in differ.items())
        raise ValueError(f"{path}: tuned on other data: {found}; rerun notebooks/05_tuning.ipynb "
                         "with these settings")
    return path, raw


def _config(path: Path, values: Mapping[str, Any]) -> CNNConfig:
    """A CNNConfig from its JSON fields; unknown fields are refused, naming the file."""
    known = {f.name for f in fields(CNNConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown CNNConfig field(s) {unknown}")
    return CNNConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load_best(path: Path | None = None, fold=None, **expected) -> CNNConfig:
    """The CNNConfig saved by :func:`save_best` (default :func:`best_path`).

    Without ``fold``: the file's ``cnn_config`` (after a nested choice, the one most folds
    chose: what a model trained on every library uses). With ``fold`` (a fold of
    :func:`helpers.splits.library_folds`, or its name): what that fold chose, or ``cnn_config``
    when the file records no choice for it (another protocol or an in-library search).
    ``expected`` (e.g. ``dataset="demo", subset="instruments19"``): entries the file must record
    with these values, so that a configuration tuned on other data is refused, with both values
    named, instead of being used silently. Used in: notebooks/05_tuning.ipynb (checks the file
    it saved), notebooks/10_shipping.ipynb (the tuned network, one of the candidates to ship).
    """
    path, raw = _read_best(path, expected)
    if fold is not None:
        name = str(getattr(fold, "name", fold))
        per_fold = raw.get("per_fold") or {}
        if name in per_fold:
            return _config(path, per_fold[name])
    return _config(path, raw["cnn_config"])


def load_best_per_fold(path: Path | None = None, **expected) -> dict[str, CNNConfig]:
    """Each fold's own choice saved by :func:`save_best` (``{fold name: CNNConfig}``; empty
    when the file records none), for a chapter that builds fold L on what fold L chose, e.g.
    :func:`helpers.protocol.evaluate_per_fold`. ``expected`` as in :func:`load_best`.
    Used in: notebooks/06_pruning.ipynb (each fold's network, pruned), notebooks/10_shipping.ipynb.
    """
    path, raw = _read_best(path, expected)
    return {str(k): _config(path, v) for k, v in (raw.get("per_fold") or {}).items()}


def _score_label(objective: str, score_label: str | None) -> str:
    """The y label of ``objective``: ``score_label`` if given, else :data:`SCORE_LABEL` for
    ``score`` and the column name for any other objective."""
    if score_label is not None:
        return score_label
    return SCORE_LABEL if objective == OBJECTIVE else objective


def plot_trials(trials: pd.DataFrame, ax=None, objective: str = OBJECTIVE,
                score_label: str | None = None, star: str | None = "best",
                star_label: str = "best"):
    """Objective against each hyperparameter, one panel per hyperparameter, one trial starred.

    ``trials`` is a :func:`trials_table`; only completed trials are drawn (the title counts the
    others). A search over folds also shows each trial's per-fold scores (small grey points:
    one fold's inner validation library each) behind their mean. ``ax``: None (a new grid) or
    a sequence of at least as many axes as hyperparameters. ``score_label``: the y label and
    title wording of ``objective`` (default :data:`SCORE_LABEL`, right for a search over the
    folds; say "score: validation accuracy (clips)" for a search on one in-library set).
    ``star``: ``"best"`` stars the trial with the highest ``objective``, a trial id stars that
    trial (e.g. the one most folds chose), None stars none; ``star_label`` names it in the
    legend, followed by its ``trial_id`` as in the trials table and :func:`plot_best_so_far`.
    A panel whose hyperparameter every trial shares (a range narrowed to one value) is titled
    "(fixed)". Returns the array of axes used. Used in: notebooks/05_tuning.ipynb.
    """
    import matplotlib.pyplot as plt

    names = hp_columns(trials)
    folds = fold_columns(trials) if objective == OBJECTIVE else []
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
    if star == "best":
        best = done.loc[done[objective].idxmax()] if len(done) else None
    else:
        chosen = done[done["trial_id"].astype(str) == str(star)] if star is not None else done.iloc[:0]
        best = chosen.iloc[0] if len(chosen) else None
    label = _score_label(objective, score_label)
    for axis, name in zip(axes, names, strict=False):
        for k, fold in enumerate(folds):
            axis.scatter(done[name], done[fold], s=10, color="grey", alpha=0.35,
                         label="one fold's inner library" if k == 0 else None)
        axis.scatter(done[name], done[objective], alpha=0.7,
                     label="trial (mean over folds)" if folds else "trial")
        if best is not None:
            axis.scatter([best[name]], [best[objective]], marker="*", s=160, color="C3",
                         label=f"{star_label} (trial {best['trial_id']})")
        values = sorted(trials[name].dropna().unique())
        if name == "learning_rate":
            _log_ticks(axis, values)
        elif pd.api.types.is_integer_dtype(trials[name]) or name == "dropout":
            axis.set_xticks(values, [f"{v:g}" for v in values])  # the values drawn, on their grid
        axis.set_xlabel(_axis_label(name))
        axis.set_ylabel(textwrap.fill(label, 24, break_on_hyphens=False))  # a panel is short: the label on three lines
        axis.set_title(name if len(values) > 1 else f"{name} (fixed)")
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


def plot_best_so_far_per_fold(trials: pd.DataFrame, baseline: Mapping[str, float] | None = None,
                              ax=None, baseline_label: str = "untuned network"):
    """Fold by fold, the best inner-validation accuracy found so far, trial after trial.

    ``trials`` is a :func:`trials_table` of a search over folds. One step line per fold (its
    ``"cross_val: <fold>"`` column, running maximum over the completed trials in ``trial_id``
    order), and their mean over the folds as a thick line. With ``baseline`` (fold name ->
    the inner-validation accuracy of a reference network in that fold, e.g. the untuned
    one), every fold's line is drawn minus its own reference, so 0 is "as good as the
    reference" in every fold. A line still climbing at the last trial says more trials could
    find more in that fold. Returns the axes. Used in: notebooks/05_tuning.ipynb.
    """
    from matplotlib.ticker import MaxNLocator

    from helpers.plots import new_axes

    folds = fold_columns(trials)
    if not folds:
        raise ValueError("the trials hold no per-fold scores: search with {fold name: prepared}")
    _, ax = new_axes(ax, figsize=(10, 4.5))
    ids = pd.to_numeric(trials["trial_id"], errors="coerce")
    if ids.isna().any():
        raise ValueError(f"trial ids must be numbers, got {list(trials['trial_id'])}")
    order = trials.assign(n=ids).sort_values("n", kind="stable")
    order = order[order["status"] == COMPLETED]
    number = order["n"].to_numpy(dtype=float)
    curves = []
    for k, fold in enumerate(folds):
        name = fold[len(FOLD_PREFIX):]
        values = order[fold].to_numpy(dtype=float)
        if baseline is not None:
            values = values - float(baseline[name])
        best = np.fmax.accumulate(np.nan_to_num(values, nan=-np.inf))
        curves.append(best)
        ax.plot(number, best, drawstyle="steps-post", marker="o", markersize=4, color=f"C{k % 10}",
                alpha=0.7, linewidth=1.2, label=name)
    ax.plot(number, np.mean(curves, axis=0), drawstyle="steps-post", marker="o", color="black",
            linewidth=2.5, label="mean over the folds")
    if baseline is not None:
        ax.axhline(0.0, color="grey", linestyle="--", label=f"{baseline_label} (each fold's own)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    what = "best inner-validation accuracy so far"
    ax.set(title="Random search, fold by fold: " + what
           + (f", minus the {baseline_label}'s" if baseline is not None else ""),
           xlabel="trial_id (KerasTuner's, in order of creation)",
           ylabel=textwrap.fill(what + (f" − {baseline_label}'s" if baseline is not None else "")
                                + " (clips)", 34, break_on_hyphens=False))
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="fold",
              title_fontsize=8)
    return ax


def plot_best_so_far(trials: pd.DataFrame, ax=None, objective: str = OBJECTIVE,
                     baseline: float | None = None, baseline_label: str = "baseline",
                     score_label: str | None = None):
    """Each trial's score in order and the best score found so far (a search that still
    climbs at its last trial would find more with more trials). ``baseline`` draws a reference
    line; ``score_label`` is the y label (see :func:`plot_trials`). The x axis is KerasTuner's
    ``trial_id`` (0, 1, ... in order of creation), the id the trials table and
    :func:`plot_trials` show, and the best trial is starred and named by it. Failed trials
    keep their id but have no point. Returns the axes. Used in: notebooks/05_tuning.ipynb."""
    from matplotlib.ticker import MaxNLocator

    from helpers.plots import new_axes

    _, ax = new_axes(ax, figsize=(8, 4))
    ids = pd.to_numeric(trials["trial_id"], errors="coerce")
    if ids.isna().any():
        raise ValueError(f"trial ids must be numbers, got {list(trials['trial_id'])}")
    order = trials.assign(n=ids).sort_values("n", kind="stable")
    number = order["n"].to_numpy(dtype=float)
    values = order[objective].to_numpy(dtype=float)
    ax.plot(number, values, "o", color="C0", alpha=0.7, label="trial")
    ax.step(number, np.fmax.accumulate(np.nan_to_num(values, nan=-np.inf)), where="post",
            color="C3", label="best so far")
    done = order[(order["status"] == COMPLETED) & order[objective].notna()]
    if len(done):
        best = done.loc[done[objective].idxmax()]  # the trial plot_trials stars (first on ties)
        ax.scatter([best["n"]], [best[objective]], marker="*", s=160, color="C3", zorder=3,
                   label=f"best (trial {best['trial_id']})")
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label=baseline_label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="Random search: score per trial and best so far",
           xlabel="trial_id (KerasTuner's, in order of creation)",
           ylabel=_score_label(objective, score_label))
    ax.legend(fontsize=8, loc="best")
    return ax


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
