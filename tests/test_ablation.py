"""helpers.ablation: the conv x dense grid as recipes of the nested leave-one-library-out
protocol, CutMix per fold, choices made fold by fold, tables and plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import json  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import helpers  # noqa: E402, F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.ablation import (  # noqa: E402
    ABLATION_BASE,
    ABLATION_MFCC,
    AblationConfig,
    cut_network,
    cutmix_per_fold,
    cutmix_setting,
    cutmix_table,
    evaluate_plan,
    factor_table,
    grid_table,
    make_variant,
    one_fold,
    per_library_table,
    plot_ablation,
    plot_grid,
    runs_of_choice,
    smallest_not_worse,
    stopped_by_budget,
    variant_table,
    variants,
)
from helpers.augment import AugmentConfig, save_augment_config  # noqa: E402
from helpers.features import LOGMEL  # noqa: E402
from helpers.models import SEED_CNN, CNNConfig, build_cnn  # noqa: E402
from helpers.plots import label_problems  # noqa: E402
from helpers.protocol import Runs, choose_per_fold, summarise  # noqa: E402
from helpers.stats import verdicts  # noqa: E402
from helpers.training import TrainConfig  # noqa: E402

TINY = CNNConfig(conv_filters=(4, 4, 4), kernel_sizes=(3, 3, 3), dense_units=(8, 8, 8),
                 dropout=0.1)


def test_default_plan_is_the_seed_grid_plus_one_factor_at_a_time():
    plan = variants(AblationConfig(augments=("none", AugmentConfig("cutmix", alpha=0.2))))
    grid = [v for v in plan if v.feature == "mfcc" and v.augment == "none"]
    assert len(grid) == 16 and len(plan) == 18 and len({v.name for v in plan}) == 18
    assert {(v.n_conv, v.n_dense) for v in grid} == {(k, m) for k in range(4) for m in range(4)}
    extra = plan[16:]
    assert [(v.n_conv, v.n_dense, v.feature, v.augment) for v in extra] == [
        (3, 3, "logmel", "none"), (3, 3, "mfcc", "cutmix")]
    assert extra[1].augmentation == AugmentConfig("cutmix", alpha=0.2)  # the chosen setting
    full = next(v for v in grid if (v.n_conv, v.n_dense) == (3, 3))
    assert full.cnn == ABLATION_BASE and full.name == "conv3-dense3 mfcc"
    assert list(variant_table(plan).index) == [v.name for v in plan]


def test_a_variant_is_a_recipe_on_the_projects_front_end():
    train = TrainConfig(epochs=3)
    mfcc = make_variant(SEED_CNN, 1, 2).recipe(train)
    logmel = make_variant(SEED_CNN, 3, 3, feature="logmel", augment=AugmentConfig("cutmix")).recipe(train)
    assert mfcc.features == ABLATION_MFCC and mfcc.features.hop_length == LOGMEL.hop_length
    assert logmel.features == LOGMEL and logmel.augment == AugmentConfig("cutmix")
    assert mfcc.augment is None and mfcc.train == train
    # one fold's own setting replaces an augmented variant's, and leaves a plain variant alone
    own = AugmentConfig("cutmix", alpha=0.2, prob=0.5)
    assert make_variant(SEED_CNN, 3, 3, augment=AugmentConfig("cutmix")).recipe(train, own).augment == own
    assert make_variant(SEED_CNN, 1, 2).recipe(train, own).augment is None


def test_the_cutmix_arm_reads_notebook_04s_setting_or_says_it_uses_the_default(tmp_path):
    path = tmp_path / "best_cutmix.json"
    config, note = cutmix_setting(path)
    assert config == AugmentConfig("cutmix") and "default" in note and "not found" in note
    save_augment_config(AugmentConfig("cutmix", alpha=0.2, prob=0.5), path)
    config, note = cutmix_setting(path)
    assert config == AugmentConfig("cutmix", alpha=0.2, prob=0.5) and "notebook 04" in note


def _folds(*names):
    return [SimpleNamespace(name=n, held_out=n.split(" ")[0]) for n in names]


def test_each_fold_trains_with_the_cutmix_setting_it_chose_in_notebook_04(tmp_path):
    """04 stores each fold's own setting under extra["per_fold"] (or beside the fields); a fold
    it does not name takes the global setting (the majority), as chosen_in does."""
    path = tmp_path / "best_cutmix.json"
    folds = _folds("A (chosen on B)", "B (chosen on C)", "C (chosen on A)")
    save_augment_config(AugmentConfig("cutmix", alpha=1.0, prob=0.5), path, extra={
        "notebook": "04_cutmix", "per_fold": {"A (chosen on B)": {"alpha": 1.0, "prob": 1.0},
                                              "B (chosen on C)": {"alpha": 1.0, "prob": 0.5}}})
    config, of, note = cutmix_per_fold(path, folds)
    assert config == AugmentConfig("cutmix", alpha=1.0, prob=0.5)
    assert of == {"A (chosen on B)": AugmentConfig("cutmix", alpha=1.0, prob=1.0),
                  "B (chosen on C)": config, "C (chosen on A)": config}
    assert note.startswith("CutMix") and "2 of 3 folds' own settings" in note
    assert "probability 0.5 in 2 of 3 folds" in note and "probability 1 in 1 of 3 folds" in note
    assert list(cutmix_table(of)["probability"]) == [1.0, 0.5, 0.5]
    # every fold named, and "per_fold" beside the fields instead of under "extra"
    payload = json.loads(path.read_text())
    payload["per_fold"] = {f.name: {"prob": 1.0} for f in folds}
    del payload["extra"]
    path.write_text(json.dumps(payload))
    config, of, note = cutmix_per_fold(path, folds)
    assert cutmix_setting(path)[0] == config and "each fold's own setting" in note
    assert set(of.values()) == {AugmentConfig("cutmix", alpha=1.0, prob=1.0)}
    # an old file without per-fold settings: every fold the global one
    save_augment_config(AugmentConfig("cutmix", alpha=0.2, prob=0.5), path)
    config, of, note = cutmix_per_fold(path, folds)
    assert set(of.values()) == {config} and "names none of these folds" in note
    # no file: the default, and the note says so
    config, of, note = cutmix_per_fold(tmp_path / "missing.json", folds)
    assert config == AugmentConfig("cutmix") and "not found" in note and len(of) == 3


def test_a_bad_per_fold_setting_names_the_file(tmp_path):
    path = tmp_path / "best_cutmix.json"
    save_augment_config(AugmentConfig("cutmix"), path, extra={"per_fold": {"A": {"beta": 2}}})
    with pytest.raises(ValueError, match="best_cutmix.json.*unknown augmentation field"):
        cutmix_per_fold(path, _folds("A"))
    save_augment_config(AugmentConfig("cutmix"), path, extra={"per_fold": {"A": "CutMix α=1 p=1"}})
    with pytest.raises(ValueError, match="per_fold"):
        cutmix_per_fold(path, _folds("A"))


def test_evaluate_plan_trains_the_augmented_variant_with_each_folds_setting(monkeypatch):
    import helpers.ablation as ablation

    calls = []
    monkeypatch.setattr(ablation, "evaluate_cnns", lambda recipes, folds, seeds, data=None: (
        calls.append(("together", [r.name for r in recipes], [f.name for f in folds])) or Runs(pd.DataFrame())))
    monkeypatch.setattr(ablation, "evaluate_per_fold", lambda recipe_of, folds, seeds, name, data=None: (
        calls.append(("per fold", name, {f: r.augment for f, r in recipe_of.items()})) or Runs(pd.DataFrame())))
    folds = _folds("A", "B")
    plan = variants(AblationConfig(conv_counts=(0, 3), dense_counts=(3,), features=(),
                                   augments=("none", AugmentConfig("cutmix"))))
    own = {"A": AugmentConfig("cutmix", prob=0.5)}
    evaluate_plan(plan, folds, [0], TrainConfig(epochs=1), own, data=object())
    assert calls == [("together", ["conv0-dense3 mfcc", "conv3-dense3 mfcc"], ["A", "B"]),
                     ("per fold", "conv3-dense3 mfcc + cutmix",
                      {"A": AugmentConfig("cutmix", prob=0.5), "B": AugmentConfig("cutmix")})]


CLASSES = ["a", "b"]


def _runs(model: str, correct: dict, params: int = 10, seeds=(0,)) -> Runs:
    """Runs of ``model`` whose top class is right exactly on the clips ``correct[(fold, split)]``
    marks (a list of 0/1)."""
    runs, rows = Runs(pd.DataFrame(), classes=CLASSES), []
    for (fold, split), marks in correct.items():
        for seed in seeds:
            m = np.asarray(marks)
            runs.probs[(model, fold, seed, split)] = np.where(m[:, None] == 1, [[0.9, 0.1]], [[0.1, 0.9]])
            runs.labels[(model, fold, split)] = np.zeros(len(m), dtype=int)
            runs.clips[(model, fold, split)] = np.array([f"{fold[0]}{i}" for i in range(len(m))])
            runs.weights[(model, fold, seed)] = [np.zeros(1)]
            rows.append({"model": model, "direction": fold, "seed": seed, "split": split,
                         "accuracy": m.mean(), "macro_f1": m.mean(), "map_at_3": m.mean(),
                         "n_clips": len(m), "best_epoch": 3, "epochs_run": 5, "max_epochs": 10,
                         "train_seconds": 1.0, "params": params, "cached": False})
    runs.table = pd.DataFrame(rows)
    runs.networks[model] = ("cnn", (8, 8, 1))
    return runs


def _three_models():
    """Fold A: big 0.9 > mid 0.85 > small 0.5 on inner validation (mid not detectably worse than
    big over 40 clips, small clearly worse). Fold B: small is best. Cross-library test: big 1.0,
    mid 0.5, small 0.0 in both folds."""
    n = 40
    val = {"big": ([1] * 36 + [0] * 4, [0] * 20 + [1] * 20), "mid": ([1] * 34 + [0] * 6, [0] * 21 + [1] * 19),
           "small": ([1] * 20 + [0] * 20, [1] * 30 + [0] * 10)}
    test = {"big": [1] * n, "mid": [1, 0] * (n // 2), "small": [0] * n}
    size = {"big": 1000, "mid": 100, "small": 10}
    runs = Runs(pd.DataFrame(), classes=CLASSES)
    for model in val:
        runs = runs + _runs(model, {("A", "cross_val"): val[model][0], ("B", "cross_val"): val[model][1],
                                    ("A", "cross_test"): test[model], ("B", "cross_test"): test[model],
                                    ("A", "test"): test[model], ("B", "test"): test[model]}, size[model])
    return runs, size


def test_smallest_not_worse_chooses_fold_by_fold_on_inner_validation_only():
    runs, size = _three_models()
    table = smallest_not_worse(runs, ["big", "mid", "small"], size).set_index("direction")
    assert table.loc["A", "best"] == "big" and table.loc["A", "smallest"] == "mid"
    assert table.loc["A", "not_worse"] == 2  # small is detectably worse in fold A
    assert table.loc["B", "best"] == "small" and table.loc["B", "smallest"] == "small"
    # the best column is choose_per_fold's choice (same ties, same split)
    _, choices = choose_per_fold(runs, ["big", "mid", "small"], "best")
    assert list(choices["chosen"]) == list(table["best"])
    # the cross-library test (big always right) plays no part: change it and nothing moves
    flipped = runs.select(["big", "mid", "small"])
    flipped.table = flipped.table.assign(accuracy=np.where(flipped.table["split"] == "cross_test", 0.0,
                                                           flipped.table["accuracy"]))
    for key in [k for k in flipped.probs if k[3] == "cross_test"]:
        flipped.probs[key] = flipped.probs[key][:, ::-1]
    assert smallest_not_worse(flipped, ["big", "mid", "small"], size).equals(table.reset_index())


def test_runs_of_choice_scores_each_folds_own_choice():
    runs, size = _three_models()
    table = smallest_not_worse(runs, ["big", "mid", "small"], size)
    chosen = runs_of_choice(runs, dict(zip(table["direction"], table["smallest"])), "smallest")
    assert set(chosen.table["model"]) == {"smallest"}
    by_fold = chosen.table[chosen.table["split"] == "cross_test"].set_index("direction")["accuracy"]
    assert by_fold.to_dict() == {"A": 0.5, "B": 0.0}  # mid in fold A, small in fold B
    assert summarise(chosen).loc["smallest", "cross_test_accuracy"] == pytest.approx(0.25)
    assert set(chosen.weights) == {("smallest", "A", 0), ("smallest", "B", 0)}
    assert set(chosen.networks) == {("smallest", "A"), ("smallest", "B")}
    only_a = one_fold(runs, "A")
    assert set(only_a.table["direction"]) == {"A"} and all(k[1] == "A" for k in only_a.probs)


def test_factor_and_per_library_tables():
    runs, size = _three_models()
    summary = summarise(runs)
    answers = verdicts({"Size?": {"a": "big", "b": "small", "difference": 1.0, "ci_low": 0.9, "ci_high": 1.0,
                                  "p_value": 0.001}})
    table = factor_table(summary, answers)
    row = table.loc["Size?"]
    assert (row["arm a"], row["arm b"], row["weights a"], row["weights b"]) == ("big", "small", 1000, 10)
    assert row["cross-library a"] == "1.000 ± 0.000" and row["verdict"] == "big better than small"
    assert row["a - b (cross-library)"] == "+1.000 [+0.900, +1.000]" and row["p (Holm)"] == "0.001"
    folds = [SimpleNamespace(name="A", held_out="libA"), SimpleNamespace(name="B", held_out="libB")]
    libraries = per_library_table(runs, folds, ["mid", "big"], summary)
    assert list(libraries.index) == ["mid", "big"]
    assert list(libraries.columns) == ["libA (40 clips)", "libB (40 clips)", "pooled"]
    assert libraries.loc["mid", "pooled"] == pytest.approx(0.5)


def test_grid_variants_build_models_with_the_right_layer_counts():
    for v in variants(AblationConfig(base=TINY, features=())):
        model = build_cnn((8, 8, 1), 3, v.cnn)
        names = [layer.name for layer in model.layers]
        assert sum(n.startswith("conv") and n[4:].isdigit() for n in names) == v.n_conv
        assert sum(n.startswith("dense") and n[5:].isdigit() for n in names) == v.n_dense
        assert names[-2:] == ["logits", "probs"]
        assert v.cnn.conv_filters == TINY.conv_filters[:v.n_conv]
        assert v.cnn.dropout == TINY.dropout  # everything else is the base's


def test_bad_plans_are_refused():
    with pytest.raises(ValueError, match="exceed the base"):
        AblationConfig(base=TINY, dense_counts=(0, 4))
    with pytest.raises(ValueError, match="feature kind"):
        AblationConfig(features=("stft",))
    with pytest.raises(ValueError, match="cannot keep"):
        cut_network(CNNConfig((4,), (3,), ()), 2, 0)


def _fake_summary(plan):
    """A summarise()-like table: accuracy grows with conv blocks and dense layers."""
    rows = {v.name: {"cross_test_accuracy": 0.3 + 0.1 * v.n_conv + 0.01 * v.n_dense,
                     "cross_test_accuracy_std": 0.01 * (1 + v.n_dense), "test_accuracy": 0.5}
            for v in plan}
    return pd.DataFrame.from_dict(rows, orient="index")


def test_grid_table_and_plots_have_titles_labels_and_colour_bar():
    plan = variants(AblationConfig(conv_counts=(0, 1, 2), dense_counts=(0, 1), features=()))
    summary = _fake_summary(plan)
    table = grid_table(summary, plan, "cross_test_accuracy")
    assert table.shape == (3, 2) and table.loc[2, 1] == pytest.approx(0.3 + 0.2 + 0.01)
    ax = plot_grid(summary, plan, "cross_test_accuracy", "cross-library test accuracy")
    assert ax.get_xlabel() == "hidden dense layers kept" and ax.get_ylabel() == "conv blocks kept"
    assert ax.figure.axes[-1].get_ylabel() == "cross-library test accuracy"
    assert len(ax.texts) == 6  # every cell annotated
    assert label_problems(ax.figure) == []  # save_fig would accept it
    ax = plot_ablation(summary)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(summary.index)
    assert ax.get_title() and label_problems(ax.figure) == []
    plt.close("all")


def test_stopped_by_budget_by_hand():
    runs = pd.DataFrame({"best_epoch": [5, 10, 10, 3, 8], "epochs_run": [9, 10, 10, 3, 10],
                         "max_epochs": [10, 10, 12, 10, 10]})
    # early stopping ended runs 0, 2 and 3 before their budget; run 1 was still improving at the
    # budget; run 4 peaked at epoch 8 but the budget of 10 came before the patience ran out
    assert list(stopped_by_budget(runs)) == [False, True, False, False, True]
    assert stopped_by_budget(runs).dtype == bool
