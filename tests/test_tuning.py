"""Tests of helpers.tuning and helpers.tune_command: search space -> CNNConfig, searches on tiny
data, failed trials, the saved best configuration, and `python -m helpers tune --workers 2` end
to end (a real chief and two workers on 127.0.0.1)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.experiment import Prepared
from helpers.features import FeatureConfig, FeatureSet
from helpers.models import LOGMEL_CNN, CNNConfig
from helpers.plots import label_problems
from helpers.training import TrainConfig
from helpers.tune_command import TuneJob
from helpers.tuning import (
    COMPLETED,
    FOLD_PREFIX,
    SCORE_LABEL,
    FixedValues,
    SearchSpace,
    TuningError,
    TuningWarning,
    choose_trials_per_fold,
    config_from_hp,
    fold_columns,
    hp_columns,
    hp_values,
    load_best,
    load_best_per_fold,
    plot_best_so_far_per_fold,
    plot_trials,
    save_best,
    space_table,
    trial_configs,
    tune,
)

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["Cello", "Flute", "Trumpet"]
# 8 bins x 6 frames: FeatureConfig's frames_per_window = 1 + 1.0 s * 1000 Hz / 200
TINY_FEATURES = FeatureConfig(n_mels=8, sample_rate=1000, hop_length=200, n_fft=256)
TINY_BASE = CNNConfig(conv_filters=(4,), kernel_sizes=(3,), dense_units=(8,), dropout=0.0)
TINY_SPACE = SearchSpace(filters=(4, 8), kernel_sizes=(3, 5), dense_units=(8, 16))
FAST = TrainConfig(epochs=2, batch_size=16, patience=1, seed=0)


def _split(split: str, clips_per_class: int, rng: np.random.Generator) -> FeatureSet:
    """2 windows per clip; each class lights up its own band of bins (learnable in an epoch)."""
    names, labels, windows, ids = [], [], [], []
    for c, label in enumerate(CLASSES):
        for k in range(clips_per_class):
            fname = f"{split}_{label}_{k}.wav"
            names.append(fname)
            labels.append(label)
            for _ in range(2):
                x = rng.normal(0, 1, (8, 6, 1)).astype(np.float32)
                x[2 * c:2 * c + 3] += 2.0
                windows.append(x)
                ids.append(fname)
    clips = pd.DataFrame({"fname": names, "label": labels, "split": split})
    return FeatureSet(X=np.stack(windows), clip_ids=np.array(ids), clips=clips,
                      skipped=pd.DataFrame({"fname": [], "reason": []}), config=TINY_FEATURES)


@pytest.fixture(scope="module")
def tiny() -> Prepared:
    """3 classes, windows (8, 6, 1), 2 windows per clip: 8/3/3 clips per class in train/val/test."""
    rng = np.random.default_rng(0)
    splits = {s: _split(s, n, rng) for s, n in (("train", 8), ("val", 3), ("test", 3))}
    return Prepared(classes=CLASSES, feature_config=TINY_FEATURES, splits=splits,
                    mean=np.zeros(8, np.float32), std=np.ones(8, np.float32))


FOLDS = ("A (chosen on B)", "B (chosen on C)", "C (chosen on A)")  # names as library_folds writes them


@pytest.fixture(scope="module")
def tiny_folds() -> dict[str, Prepared]:
    """Three nested folds of the tiny data: train/val/test plus cross_val (the inner validation
    library) and cross_test (the held-out library), 3 clips per class each."""
    rng = np.random.default_rng(1)
    folds = {}
    for name in FOLDS:
        splits = {s: _split(s, n, rng) for s, n in (("train", 8), ("val", 3), ("test", 3),
                                                     ("cross_val", 3), ("cross_test", 3))}
        folds[name] = Prepared(classes=CLASSES, feature_config=TINY_FEATURES, splits=splits,
                               mean=np.zeros(8, np.float32), std=np.ones(8, np.float32))
    return folds


# ----------------------------------------------------------------------------- search space


def test_config_from_hp_maps_every_hyperparameter():
    import keras_tuner as kt

    base = CNNConfig(conv_filters=(32, 64, 128), kernel_sizes=(3, 3, 3), dense_units=(64, 32),
                     batch_norm=True, global_pool=True)
    hp = kt.HyperParameters()
    config_from_hp(hp, SearchSpace(), base)  # declares the space
    assert list(hp.values) == ["conv1_filters", "conv2_filters", "conv3_filters",
                               "conv1_kernel", "conv2_kernel", "conv3_kernel",
                               "dense1_units", "dense2_units", "dropout", "learning_rate"]
    hp.values.update({"conv1_filters": 16, "conv2_filters": 64, "conv3_filters": 32,
                      "conv1_kernel": 5, "conv2_kernel": 3, "conv3_kernel": 5,
                      "dense1_units": 128, "dense2_units": 32,
                      "dropout": 0.30000000000000004, "learning_rate": 2e-4})
    config = config_from_hp(hp, SearchSpace(), base)
    assert config == CNNConfig(conv_filters=(16, 64, 32), kernel_sizes=(5, 3, 5),
                               dense_units=(128, 32), dropout=0.3, learning_rate=2e-4,
                               batch_norm=True, global_pool=True)  # kept from the base


def test_declared_ranges_follow_the_space():
    import keras_tuner as kt

    hp = kt.HyperParameters()
    config_from_hp(hp, SearchSpace(), LOGMEL_CNN)
    space = {p.name: p for p in hp.space}
    assert list(space["conv2_filters"].values) == [16, 32, 64]
    assert list(space["conv1_kernel"].values) == [3, 5]
    assert (space["dropout"].min_value, space["dropout"].max_value, space["dropout"].step) == (
        0.0, 0.5, 0.1)
    lr = space["learning_rate"]
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-4, 3e-3, "log")


def test_fixed_values_rebuild_a_config_and_name_missing_ones():
    values = {"conv1_filters": 8, "conv1_kernel": 5, "dense1_units": 16, "dropout": 0.1,
              "learning_rate": 1e-3}
    config = config_from_hp(FixedValues(values), TINY_SPACE, TINY_BASE)
    assert (config.conv_filters, config.kernel_sizes, config.dense_units) == ((8,), (5,), (16,))
    with pytest.raises(KeyError, match="dense1_units"):
        config_from_hp(FixedValues({k: v for k, v in values.items() if k != "dense1_units"}),
                       TINY_SPACE, TINY_BASE)


def test_hp_values_invert_config_from_hp():
    base = CNNConfig(conv_filters=(8, 32), kernel_sizes=(5, 3), dense_units=(64, 16),
                     dropout=0.2, batch_norm=True, learning_rate=5e-4)
    values = hp_values(base)
    assert values == {"conv1_filters": 8, "conv2_filters": 32, "conv1_kernel": 5,
                      "conv2_kernel": 3, "dense1_units": 64, "dense2_units": 16,
                      "dropout": 0.2, "learning_rate": 5e-4}
    assert config_from_hp(FixedValues(values), TINY_SPACE, base) == base


def test_space_table_lists_every_hyperparameter_and_the_base_value():
    space = SearchSpace(filters=(8, 16, 32), kernel_sizes=(3, 5), dense_units=(32, 64, 128))
    table = space_table(space, LOGMEL_CNN)  # LOGMEL_CNN: filters 16/32/64, 3x3, 128, 0.3, 2e-3
    assert list(table.index) == ["conv1_filters", "conv2_filters", "conv3_filters",
                                 "conv1_kernel", "conv2_kernel", "conv3_kernel",
                                 "dense1_units", "dropout", "learning_rate"]
    assert table.loc["conv2_filters", "values"] == "8, 16, 32"
    assert table.loc["conv2_filters", "n_values"] == 3
    assert table.loc["conv3_filters", "base"] == 64
    assert not table.loc["conv3_filters", "in_space"]  # 64 is outside (8, 16, 32)
    assert table.loc["conv1_filters", "in_space"] and table.loc["dropout", "in_space"]
    assert table.loc["dropout", "n_values"] == 6  # 0.0, 0.1, ..., 0.5
    assert table.loc["learning_rate", "sampling"] == "log-uniform"
    assert pd.isna(table.loc["learning_rate", "n_values"])
    assert isinstance(table.loc["conv1_filters", "base"], int)  # not upcast to 16.0
    assert table.loc["conv1_kernel", "what"].startswith("kernel size of conv layer 1")
    rate = LOGMEL_CNN.learning_rate
    fixed = space_table(SearchSpace(min_learning_rate=rate, max_learning_rate=rate), LOGMEL_CNN)
    assert fixed.loc["learning_rate", "sampling"] == "fixed"
    assert fixed.loc["learning_rate", "in_space"]
    off_grid = space_table(SearchSpace(), replace(LOGMEL_CNN, dropout=0.25))
    assert not off_grid.loc["dropout", "in_space"]  # 0.25 is not on the 0.1 grid


@pytest.mark.parametrize("bad", [dict(filters=()), dict(kernel_sizes=(3, 0)),
                                 dict(max_dropout=1.0), dict(dropout_step=0),
                                 dict(min_learning_rate=0.0),
                                 dict(min_learning_rate=1e-2, max_learning_rate=1e-3)])
def test_search_space_rejects_bad_ranges(bad):
    with pytest.raises(ValueError):
        SearchSpace(**bad)


# ----------------------------------------------------------------------------- searches


def test_two_trial_search_completes_and_scores_validation(tiny, tmp_path):
    result = tune(tiny, TINY_SPACE, TINY_BASE, n_trials=2, train_config=FAST,
                  directory=tmp_path / "kt", seed=0)
    trials = result.trials
    assert list(trials["trial_id"]) == ["0", "1"]
    assert (trials["status"] == COMPLETED).all() and result.n_failed == 0
    assert set(hp_columns(trials)) == {"conv1_filters", "conv1_kernel", "dense1_units",
                                       "dropout", "learning_rate"}
    for column in ("score", "val_map_at_3", "val_accuracy"):
        assert trials[column].between(0, 1).all()
    assert (trials["seconds"] > 0).all() and (trials["tuner_id"] == "tuner0").all()
    # one training per trial (one prepared set); FAST's 2 epochs and patience 1 can end either way
    assert set(trials["budget_runs"]) <= {0.0, 1.0}
    assert (trials["budget_runs"] == (trials["epochs_run"] >= FAST.epochs)).all()
    assert math.isfinite(result.best_score) and 0 <= result.best_score <= 1
    assert result.best_score == trials["score"].max()
    assert result.best_config == config_from_hp(FixedValues(result.best_hp), TINY_SPACE,
                                                TINY_BASE)
    assert plot_trials(trials)[0].get_ylabel().replace("\n", " ") == SCORE_LABEL
    # one in-library prepared set was searched: its score is in-library validation accuracy
    axes = plot_trials(trials, score_label="score: validation accuracy (clips)")
    assert len(axes) == 5 and axes[0].get_ylabel().replace("\n", " ") == "score: validation accuracy (clips)"
    # 4 panels per row sharing y: its label shows in the first column only
    assert [a.yaxis.label.get_visible() for a in axes] == [True, False, False, False, True]
    assert label_problems(axes[0].figure) == []  # save_fig would accept it
    assert axes[3].get_title() == "dropout" and axes[3].get_xlabel() == "dropout (share of units)"
    lr_labels = [t.get_text() for t in axes[4].get_xticklabels()]  # log axis: plain 1/3 ticks
    assert lr_labels and all(label.replace(".", "").replace("e-", "").isdigit() for label in lr_labels)
    assert axes[0].figure._suptitle.get_text().startswith("Random search")


def test_objective_is_validation_never_test(tiny, tmp_path, monkeypatch):
    """A trial's jobs also score the test clips (so the final runs can take them from the run
    cache), but the search never reads those: test probabilities made NaN change nothing."""
    import helpers.experiment as experiment

    seen = []
    original = experiment.train_many

    def test_poisoned(jobs, **kw):
        seen.extend(job.splits for job in jobs)
        return [replace(o, probs={**o.probs, "test": np.full_like(o.probs["test"], np.nan)})
                for o in original(jobs, **kw)]

    monkeypatch.setattr(experiment, "train_many", test_poisoned)
    result = tune(tiny, TINY_SPACE, TINY_BASE, n_trials=1, train_config=FAST, directory=tmp_path)
    assert seen == [("val", "test")]
    assert (result.trials["status"] == COMPLETED).all() and math.isfinite(result.best_score)


def test_the_final_runs_reuse_the_best_trials_trainings(tiny, tmp_path):
    from collections import namedtuple

    from helpers.protocol import CNNRecipe, evaluate_cnns

    result = tune(tiny, TINY_SPACE, TINY_BASE, n_trials=1, train_config=FAST, directory=tmp_path)

    class Data:  # what evaluate_cnns asks for the direction's windows
        def get(self, direction, features):
            return tiny

    runs = evaluate_cnns([CNNRecipe("tuned", TINY_FEATURES, result.best_config, FAST)],
                         [namedtuple("Direction", "name")("in-library")], [FAST.seed],
                         data=Data(), progress=False)
    assert runs.table["cached"].all()  # the trial's training, loaded from the run cache


def test_a_search_over_folds_scores_every_fold_and_chooses_fold_by_fold(tiny_folds, tmp_path,
                                                                         monkeypatch):
    """Each trial trains in every fold; fold L's choice reads L's inner validation score only,
    never a test split (cross_test and test made NaN change nothing); the result's majority is
    the trial most folds chose, and the run cache gives each fold's trainings back as runs
    that helpers.protocol.choose_per_fold chooses from in the same way."""
    import helpers.experiment as experiment
    from helpers.protocol import CNNRecipe, choose_per_fold, evaluate_cnns, majority

    original = experiment.train_many

    def test_poisoned(jobs, **kw):
        return [replace(o, probs={s: (np.full_like(p, np.nan) if s in ("test", "cross_test") else p)
                                  for s, p in o.probs.items()})
                for o in original(jobs, **kw)]

    monkeypatch.setattr(experiment, "train_many", test_poisoned)
    result = tune(tiny_folds, TINY_SPACE, TINY_BASE, n_trials=3, train_config=FAST,
                  directory=tmp_path / "kt", seed=0)
    monkeypatch.setattr(experiment, "train_many", original)
    trials = result.trials
    assert (trials["status"] == COMPLETED).all()
    assert fold_columns(trials) == [FOLD_PREFIX + f for f in FOLDS]
    assert set(hp_columns(trials)) == {"conv1_filters", "conv1_kernel", "dense1_units",
                                       "dropout", "learning_rate"}
    assert (trials["budget_runs"] <= len(FOLDS)).all()
    # score is the mean of the folds' inner-validation accuracies (for reading: it chooses nothing)
    assert np.allclose(trials["score"], trials[fold_columns(trials)].mean(axis=1))
    choices = result.choices
    assert list(choices["direction"]) == list(FOLDS)
    for fold, chosen in zip(choices["direction"], choices["chosen"]):
        column = trials[FOLD_PREFIX + fold].to_numpy()
        assert chosen == f"trial {trials['trial_id'].iloc[int(np.argmax(column))]}"  # first on ties
    assert f"trial {result.best_trial_id}" == majority(choices)
    assert set(result.per_fold) == set(FOLDS)
    for fold, chosen in zip(choices["direction"], choices["chosen"]):
        row = trials[trials["trial_id"] == chosen.split()[-1]].iloc[0]
        assert result.per_fold[fold] == config_from_hp(
            FixedValues({n: row[n] for n in hp_columns(trials)}), TINY_SPACE, TINY_BASE)
    assert result.best_config == result.per_fold[choices["direction"][
        list(choices["chosen"]).index(majority(choices))]]
    configs = trial_configs(trials, TINY_SPACE, TINY_BASE)
    assert list(configs) == [f"trial {t}" for t in trials["trial_id"]]
    assert all(result.per_fold[f] == configs[c] for f, c in zip(choices["direction"], choices["chosen"]))

    from collections import namedtuple

    class Data:  # what evaluate_cnns asks for a fold's windows
        def get(self, direction, features):
            return tiny_folds[direction.name]

    recipes = [CNNRecipe(f"trial {row.trial_id}", TINY_FEATURES,
                         config_from_hp(FixedValues({n: getattr(row, n) for n in hp_columns(trials)}),
                                        TINY_SPACE, TINY_BASE), FAST)
               for row in trials.itertuples(index=False)]
    folds = [namedtuple("Direction", "name")(name) for name in FOLDS]
    runs = evaluate_cnns(recipes, folds, [FAST.seed], data=Data(), progress=False)
    assert runs.table["cached"].all()  # the search's trainings, loaded from the run cache
    _, same = choose_per_fold(runs, [r.name for r in recipes], "tuned")
    assert list(same["chosen"]) == list(choices["chosen"])


def test_choose_trials_per_fold_skips_failed_trials_and_needs_folds():
    trials = pd.DataFrame({"trial_id": ["0", "1", "2"], "status": [COMPLETED, "FAILED", COMPLETED],
                           "score": [0.5, np.nan, 0.6],
                           FOLD_PREFIX + "A": [0.7, np.nan, 0.7], FOLD_PREFIX + "B": [0.3, np.nan, 0.5]})
    choices = choose_trials_per_fold(trials)
    assert list(choices.columns) == ["direction", "chosen", "trial 0", "trial 2"]
    assert list(choices["chosen"]) == ["trial 0", "trial 2"]  # a tie goes to the earlier trial
    with pytest.raises(ValueError, match="per-fold"):
        choose_trials_per_fold(trials.drop(columns=[FOLD_PREFIX + "A", FOLD_PREFIX + "B"]))
    with pytest.raises(TuningError, match="every fold"):
        choose_trials_per_fold(trials.assign(status="FAILED"))


def test_best_so_far_per_fold_draws_each_fold_against_its_own_baseline():
    trials = pd.DataFrame({"trial_id": ["0", "1", "2"], "status": COMPLETED, "score": 0.5,
                           FOLD_PREFIX + "A": [0.4, 0.6, 0.5], FOLD_PREFIX + "B": [0.7, 0.6, 0.9]})
    ax = plot_best_so_far_per_fold(trials, baseline={"A": 0.5, "B": 0.8})
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    assert np.allclose(lines["A"][:3], [-0.1, 0.1, 0.1])  # running best minus A's own baseline
    assert np.allclose(lines["B"][:3], [-0.1, -0.1, 0.1])
    assert np.allclose(lines["mean over the folds"][:3], [-0.1, 0.0, 0.1])
    assert label_problems(ax.figure) == []
    with pytest.raises(ValueError, match="per-fold"):
        plot_best_so_far_per_fold(trials.drop(columns=[FOLD_PREFIX + "A", FOLD_PREFIX + "B"]))


def test_failed_trial_is_reported_not_ranked(tiny, tmp_path, monkeypatch):
    import helpers.tuning as tuning

    calls = []
    evaluate = tuning.evaluate_config

    def fails_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("deliberate failure for the test")
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(tuning, "evaluate_config", fails_first)
    with pytest.warns(TuningWarning, match="1 of 3 trials did not complete"):
        result = tune(tiny, TINY_SPACE, TINY_BASE, n_trials=3, train_config=FAST,
                      directory=tmp_path)
    trials = result.trials
    assert result.n_failed == 1 and len(trials) == 3
    failed = trials.iloc[0]
    assert failed["status"] == "FAILED" and math.isnan(failed["score"])
    assert "deliberate failure" in failed["error"]
    assert result.best_trial_id in {"1", "2"}


@pytest.fixture
def broken_build(monkeypatch):
    """Every trial raises ``ValueError("broken model")`` (trainings run in worker processes, so
    the trial's evaluation is what fails here), so every trial fails."""
    import helpers.tuning as tuning

    def always_fails(*args, **kwargs):
        raise ValueError("broken model")

    monkeypatch.setattr(tuning, "evaluate_config", always_fails)


def test_search_with_no_completed_trial_raises(tiny, tmp_path, broken_build):
    with pytest.raises(TuningError, match="broken model") as info:
        tune(tiny, TINY_SPACE, TINY_BASE, n_trials=2, train_config=FAST, directory=tmp_path)
    assert list(info.value.trials["status"]) == ["FAILED", "FAILED"]


def test_search_stops_after_three_failures_in_a_row(tiny, tmp_path, broken_build):
    with pytest.raises(TuningError, match="3 trials failed in a row") as info:
        tune(tiny, TINY_SPACE, TINY_BASE, n_trials=6, train_config=FAST, directory=tmp_path)
    assert len(info.value.trials) == 3


def test_same_seed_samples_the_same_trials(tmp_path):
    from helpers.tuning import make_tuner

    def first_values(seed, name):
        tuner = make_tuner(TINY_SPACE, TINY_BASE, 3, tmp_path, name, seed=seed)
        return [tuner.oracle.create_trial(f"t{i}").hyperparameters.values for i in range(3)]

    assert first_values(0, "a") == first_values(0, "b")  # KerasTuner alone: seed 0 is random
    assert first_values(0, "c") != first_values(1, "d")


def _end(oracle, trial, score: float | None) -> None:
    """Report a trial as a worker would: its objective (None: the trial failed), then its end."""
    if score is None:
        trial.status = "FAILED"
    else:
        oracle.update_trial(trial.trial_id, {"score": score})
        trial.status = "COMPLETED"
    oracle.end_trial(trial)


def test_oracle_waits_for_workers_records_who_ran_what_and_knows_when_it_is_done(tmp_path):
    """The oracle's additions, driven the way the chief's gRPC service drives them."""
    from helpers.tuning import make_tuner

    oracle = make_tuner(TINY_SPACE, TINY_BASE, 2, tmp_path, "p", expected_workers=2,
                        wait_seconds=60).oracle
    assert oracle.create_trial("tuner0").status == "IDLE"  # tuner1 has not asked yet
    first = oracle.create_trial("tuner1")
    second = oracle.create_trial("tuner0")
    assert (first.status, second.status) == ("RUNNING", "RUNNING")
    assert oracle.trial_tuners == {first.trial_id: "tuner1", second.trial_id: "tuner0"}
    _end(oracle, first, 0.5)
    assert oracle.create_trial("tuner1").status == "STOPPED"  # 2 trials: none left
    assert not oracle.finished()  # tuner0's trial still runs
    _end(oracle, second, None)
    assert oracle.finished()
    assert [oracle.get_trial(t).status for t in sorted(oracle.trial_tuners)] == [
        "COMPLETED", "FAILED"]


def test_oracle_stops_handing_out_trials_after_three_failures_in_a_row(tmp_path):
    from helpers.tuning import make_tuner

    oracle = make_tuner(TINY_SPACE, TINY_BASE, 8, tmp_path, "p").oracle
    _end(oracle, oracle.create_trial("tuner0"), None)
    _end(oracle, oracle.create_trial("tuner0"), 0.5)  # a success resets the count
    for _ in range(3):
        _end(oracle, oracle.create_trial("tuner0"), None)  # KerasTuner's own limit never raises
    assert oracle.create_trial("tuner0").status == "STOPPED"
    assert oracle.gave_up == "3 trials failed in a row" and oracle.finished()


# ----------------------------------------------------------------------------- saved config


def test_save_load_best_round_trip(tmp_path):
    config = CNNConfig(conv_filters=(16, 64), kernel_sizes=(5, 3), dense_units=(32,),
                       dropout=0.3, batch_norm=True, global_pool=True, learning_rate=4e-4)
    path = save_best(config, extra={"val_map_at_3": np.float64(0.75), "trial_id": "3"})
    assert path == Path(os.environ["HELPERS_OUTPUT_DIR"]) / "results" / "best_hyperparameters.json"
    assert json.loads(path.read_text())["val_map_at_3"] == 0.75
    assert load_best() == config
    assert load_best(save_best(TINY_BASE, tmp_path / "x.json")) == TINY_BASE


def test_a_nested_choice_saves_each_folds_configuration_and_the_majoritys(tmp_path):
    from collections import namedtuple

    other = replace(TINY_BASE, dropout=0.2)
    path = save_best(TINY_BASE, tmp_path / "best.json", extra={"dataset": "demo"},
                     per_fold={"A (chosen on B)": other, "B (chosen on C)": TINY_BASE})
    assert load_best(path) == TINY_BASE  # the majority's: what a model on every library uses
    assert load_best(path, fold="A (chosen on B)") == other
    assert load_best(path, fold=namedtuple("Fold", "name")("A (chosen on B)")) == other
    assert load_best(path, fold="Z (chosen on A)") == TINY_BASE  # a fold it does not know
    assert load_best_per_fold(path, dataset="demo") == {"A (chosen on B)": other,
                                                        "B (chosen on C)": TINY_BASE}
    assert load_best_per_fold(save_best(TINY_BASE, tmp_path / "plain.json")) == {}
    with pytest.raises(ValueError, match="tuned on other data"):
        load_best_per_fold(path, dataset="fsdkaggle2018")


def test_load_best_explains_missing_and_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.json: no tuned hyperparameters"):
        load_best(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cnn_config": {"conv_filters": [8], "kernel_sizes": [3],
                                              "dense_units": [], "width": 3}}))
    with pytest.raises(ValueError, match="width"):
        load_best(bad)


def test_load_best_refuses_a_configuration_tuned_on_other_data(tmp_path):
    path = save_best(TINY_BASE, tmp_path / "best.json", extra={"dataset": "demo", "subset": "seed5"})
    assert load_best(path, dataset="demo", subset="seed5") == TINY_BASE
    with pytest.raises(ValueError, match="best.json: tuned on other data: subset 'seed5' "
                                         "\\(wanted 'instruments19'\\)"):
        load_best(path, dataset="demo", subset="instruments19")
    with pytest.raises(ValueError, match="verified_only None"):  # not recorded: refused too
        load_best(path, verified_only=False)


def test_the_tune_command_keeps_its_results_out_of_what_the_notebooks_read():
    """By default ``tune`` writes under build/tuning, never notebook 05's
    results/best_hyperparameters.json, which notebook 10 ships from."""
    from helpers.tuning import best_path

    job = TuneJob()
    out = Path(os.environ["HELPERS_OUTPUT_DIR"])
    assert job.tuning_dir == out / "build" / "tuning"
    assert job.best_file == out / "build" / "tuning" / "best_hyperparameters.json"
    assert job.best_file != best_path()
    assert TuneJob(best=best_path()).best_file == best_path()  # only when asked for


# ----------------------------------------------------------------------------- the command


@pytest.fixture
def chief_env(monkeypatch):
    """KerasTuner's variables for a chief on a free port of 127.0.0.1; yields the port."""
    from helpers.tune_command import free_port

    port = free_port()
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    return port


def test_a_chief_without_workers_gives_up_after_its_timeout_or_when_told(tmp_path, chief_env,
                                                                         monkeypatch):
    """KerasTuner's chief (tuner.search()) has no timeout; serve() adds one, and a stop event."""
    import threading
    import time

    from helpers.tune_command import free_port, serve
    from helpers.tuning import make_tuner

    tuner = make_tuner(TINY_SPACE, TINY_BASE, 2, tmp_path, "p")
    start = time.monotonic()
    assert serve(tuner, timeout=1.0) is False  # nobody came: cut short, not finished
    assert time.monotonic() - start >= 1.0  # it waited for its workers as long as told
    stop = threading.Event()
    stop.set()
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(free_port()))  # the first still serves
    other = make_tuner(TINY_SPACE, TINY_BASE, 2, tmp_path, "q")
    assert serve(other, timeout=60.0, stop=stop) is False


def test_a_chief_that_cannot_listen_says_so(tmp_path, chief_env, monkeypatch):
    import socket

    from helpers.tune_command import serve
    from helpers.tuning import make_tuner

    with socket.socket() as taken:
        # take a port the OS hands out now (a port found free a moment earlier may be gone)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(taken.getsockname()[1]))
        with pytest.raises(TuningError, match="cannot serve"):
            serve(make_tuner(TINY_SPACE, TINY_BASE, 2, tmp_path, "p"), timeout=30.0)


def _python(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def test_the_launcher_tells_the_chief_when_its_workers_are_done_and_stops_stragglers():
    from helpers.tune_command import wait_all

    # the chief waits until told (SIGTERM), then exits cleanly, as run_chief does
    chief = _python("import signal, sys, time\n"
                    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\ntime.sleep(60)")
    ends = wait_all({"chief": chief, "tuner0": _python("pass")}, timeout=50, local=True)
    # ended by being told (SIGTERM, exit 0), not stopped by wait_all's timeout
    assert chief.returncode == 0 and not ends["chief"][0]
    stuck = {"chief": _python("import time; time.sleep(60)"),
             "tuner0": _python("import time; time.sleep(60)")}
    ends = wait_all(stuck, timeout=1.0, local=True)
    assert all(stopped for stopped, _ in ends.values())
    assert all(p.poll() is not None for p in stuck.values())


def test_job_argv_round_trips_through_the_parser(tmp_path):
    from dataclasses import fields

    from helpers.cli import build_parser

    job = TuneJob(subset="Cello,Flute", max_clips_per_class=3, trials=4, epochs=1, workers=2,
                  port=5555, directory=tmp_path / "kt", best=tmp_path / "best.json", seed=3,
                  timeout=60.0)
    args = build_parser().parse_args(["tune", *job.argv()])
    assert TuneJob(**{f.name: getattr(args, f.name) for f in fields(TuneJob)}) == job


@pytest.mark.slow
def test_distributed_search_with_two_workers(tmp_path):
    """A chief and two workers on 127.0.0.1 share 4 trials over the nested folds; every trial
    completes, and the chief writes each fold's choice and the majority's."""
    from helpers.demo import DemoConfig, build_demo
    from helpers.tune_command import free_port, read_trials

    root = tmp_path / "data" / "demo"
    build_demo(root, DemoConfig(clips_per_class=12), progress=False)
    # three sources (a user's own sources.csv, read before the demo's): the folds need three
    sources = pd.read_csv(root / "demo_sources.csv").sort_values("fname").reset_index(drop=True)
    sources.assign(library=[f"S{i % 3}" for i in range(len(sources))])[["fname", "library"]].to_csv(
        root / "sources.csv", index=False)
    env = {**os.environ, "HELPERS_DATA_DIR": str(tmp_path / "data"),
           "HELPERS_CACHE_DIR": str(tmp_path / "cache"),
           "HELPERS_OUTPUT_DIR": str(tmp_path / "out")}
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(name, None)
    job = TuneJob(subset="Cello,Flute,Trumpet", trials=4, epochs=1, patience=1, workers=2,
                  port=free_port(), directory=tmp_path / "kt", timeout=180.0, wait_seconds=120.0)
    done = subprocess.run([sys.executable, "-m", "helpers", "tune", *job.argv()], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    logs = "".join(p.read_text() for p in sorted((tmp_path / "kt").glob("*_logs/*.log")))
    assert done.returncode == 0, done.stdout + done.stderr + logs
    trials = read_trials(job)
    assert len(trials) == 4 and (trials["status"] == COMPLETED).all(), trials
    assert trials["score"].between(0, 1).all()
    assert set(trials["tuner_id"]) == {"tuner0", "tuner1"}, trials  # both workers ran trials
    assert "tuner0: " in done.stdout and "tuner1: " in done.stdout
    assert len(fold_columns(trials)) == 3 and trials[fold_columns(trials)].notna().all().all()
    best = json.loads(job.best_file.read_text())
    assert best["trial_id"] in set(trials["trial_id"])
    assert isinstance(load_best(job.best_file), CNNConfig)
    assert set(best["per_fold"]) == set(best["choices"]["per_fold"]) == {
        c[len(FOLD_PREFIX):] for c in fold_columns(trials)}
    assert best["choices"]["chosen"] == f"trial {best['trial_id']}"
    assert "chosen by" in done.stdout


def test_the_tune_command_searches_notebook_05s_space():
    from helpers.models import LOGMEL_CNN
    from helpers.tune_command import job_space
    from helpers.tuning import LOGMEL_SPACE

    space, base = job_space(None)
    assert space is LOGMEL_SPACE and base is LOGMEL_CNN
    source = (Path(__file__).parents[1] / "notebooks" / "05_tuning.ipynb").read_text()
    assert "space = LOGMEL_SPACE" in source
    table = space_table(LOGMEL_SPACE, LOGMEL_CNN)
    assert table["in_space"].all()  # the untuned network is one of the points searched
