"""helpers.ablation: the conv x dense grid, runs over seeds, summary statistics, plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import helpers  # noqa: E402, F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.ablation import (  # noqa: E402
    ABLATION_BASE,
    AblationConfig,
    chosen_augmentation,
    compare_variants,
    cut_network,
    grid_table,
    make_variant,
    plot_ablation,
    plot_grid,
    run_ablation,
    stopped_by_budget,
    summarise,
    variants,
)
from helpers.augment import AugmentConfig  # noqa: E402
from helpers.models import SEED_CNN, CNNConfig, build_cnn  # noqa: E402
from helpers.plots import label_problems  # noqa: E402
from helpers.training import TrainConfig  # noqa: E402

TINY = CNNConfig(conv_filters=(4, 4, 4), kernel_sizes=(3, 3, 3), dense_units=(8, 8, 8),
                 dropout=0.1)


def test_default_plan_is_the_seed_grid_plus_one_factor_at_a_time():
    plan = variants()
    grid = [v for v in plan if v.feature == "mfcc" and v.augment == "none"]
    assert len(grid) == 16 and len(plan) == 18 and len({v.name for v in plan}) == 18
    assert {(v.n_conv, v.n_dense) for v in grid} == {(k, m) for k in range(4) for m in range(4)}
    extra = plan[16:]
    assert [(v.n_conv, v.n_dense, v.feature, v.augment) for v in extra] == [
        (3, 3, "logmel", "none"), (3, 3, "mfcc", "cutmix")]
    assert extra[1].augment_config.kind == "cutmix" and grid[0].augment_config is None
    full = next(v for v in grid if (v.n_conv, v.n_dense) == (3, 3))
    assert full.cnn == ABLATION_BASE and full.name == "conv3-dense3 mfcc"


def test_a_full_augment_config_is_carried_by_its_variant():
    chosen = AugmentConfig("mixup", alpha=0.3, prob=0.5)
    plan = variants(AblationConfig(augments=("none", chosen)))
    assert len(plan) == 18
    extra = plan[-1]
    assert extra.name == "conv3-dense3 mfcc + mixup" and extra.augment == "mixup"
    assert extra.augment_config == chosen  # not the default mixup settings
    assert make_variant(SEED_CNN, 1, 1, augment="cutmix").augment_config == AugmentConfig("cutmix")
    assert make_variant(SEED_CNN, 1, 1, augment=AugmentConfig()).augment_config is None
    with pytest.raises(ValueError, match="augmentation"):
        AblationConfig(augments=("nope",))


def test_chosen_augmentation_reads_notebook_04s_choice_or_falls_back(tmp_path):
    from helpers.augment import save_augment_config

    path = tmp_path / "best_augmentation.json"
    config, note = chosen_augmentation(path)
    assert config == AugmentConfig("cutmix") and "fallback" in note and "not found" in note
    save_augment_config(AugmentConfig("specaugment", time_masks=1), path, extra={"why": "val"})
    config, note = chosen_augmentation(path)
    assert config == AugmentConfig("specaugment", time_masks=1) and "notebook 04" in note
    save_augment_config(AugmentConfig("none"), path)
    config, note = chosen_augmentation(path)
    assert config.kind == "cutmix" and "no augmentation" in note


def test_grid_variants_build_models_with_the_right_layer_counts():
    for v in variants(AblationConfig(base=TINY, features=(), augments=())):
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
    with pytest.raises(ValueError, match="augmentation"):
        AblationConfig(augments=("pitchshift",))
    with pytest.raises(ValueError, match="cannot keep"):
        cut_network(CNNConfig((4,), (3,), ()), 2, 0)


def test_summarise_by_hand():
    table = pd.DataFrame({
        "model": ["a", "a", "a", "b"], "n_conv": [1, 1, 1, 0], "n_dense": [0, 0, 0, 0],
        "features": "mfcc", "augment": "none", "seed": [0, 1, 2, 0],
        "accuracy": [0.5, 0.6, 0.7, 0.4], "map_at_3": [0.6, 0.6, 0.9, 0.5],
        "params": [10, 10, 10, 4]})
    summary = summarise(table)
    assert list(summary["model"]) == ["a", "b"] and list(summary["n"]) == [3, 1]
    a = summary.iloc[0]
    assert a["accuracy_mean"] == pytest.approx(0.6)
    assert a["accuracy_std"] == pytest.approx(0.1)  # sample std (ddof=1)
    assert a["map_at_3_std"] == pytest.approx(np.std([0.6, 0.6, 0.9], ddof=1))
    assert a["params_mean"] == 10 and a["params_std"] == 0
    assert np.isnan(summary.iloc[1]["accuracy_std"])  # one seed: no spread
    assert "macro_f1_mean" not in summary  # absent metrics are skipped


def test_run_ablation_returns_one_row_per_variant_and_seed(tiny_prepared):
    prepared = {"logmel": tiny_prepared("logmel"), "mfcc": tiny_prepared("mfcc")}
    plan = [make_variant(TINY, 1, 1, "logmel"), make_variant(TINY, 0, 0, "mfcc", "mixup")]
    train = TrainConfig(epochs=1, batch_size=4, patience=1)
    table = run_ablation(prepared, plan, seeds=[0, 1], train_config=train, progress=False)
    assert len(table) == 4
    assert list(table["model"]) == ["conv1-dense1 logmel"] * 2 + ["conv0-dense0 mfcc + mixup"] * 2
    assert list(table["seed"]) == [0, 1, 0, 1]
    assert list(table["features"]) == ["logmel", "logmel", "mfcc", "mfcc"]
    assert list(table["augment"]) == ["none", "none", "mixup", "mixup"]
    assert list(table["n_conv"]) == [1, 1, 0, 0] and list(table["n_dense"]) == [1, 1, 0, 0]
    assert table[["accuracy", "map_at_3", "macro_f1"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (table["epochs_run"] == 1).all() and (table["n_clips"] == 3).all()
    assert table["params"].iloc[2] == 8 * 8 * 3 + 3  # a linear model on the flat window
    summary = summarise(table)
    assert list(summary["n"]) == [2, 2]
    with pytest.raises(KeyError, match="mfcc"):
        run_ablation({"logmel": prepared["logmel"]}, plan, [0], train, progress=False)


def _fake_summary() -> pd.DataFrame:
    rows = []
    for k in range(3):
        for m in range(2):
            for seed in range(2):
                rows.append({"model": f"conv{k}-dense{m} mfcc", "n_conv": k, "n_dense": m,
                             "features": "mfcc", "augment": "none", "seed": seed,
                             "accuracy": 0.3 + 0.1 * k + 0.02 * m + 0.01 * seed})
    rows.append({"model": "conv2-dense1 logmel", "n_conv": 2, "n_dense": 1,
                 "features": "logmel", "augment": "none", "seed": 0, "accuracy": 0.9})
    return summarise(pd.DataFrame(rows))


def test_plots_have_titles_labels_and_colour_bar():
    summary = _fake_summary()
    ax = plot_ablation(summary, "accuracy")
    assert "accuracy" in ax.get_title() and "2 seed" in ax.get_title()
    assert ax.get_xlabel() == "clip accuracy (test)" and ax.get_ylabel() == "variant"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(summary["model"])
    table = grid_table(summary, "accuracy")
    assert table.shape == (3, 2) and table.attrs["feature"] == "mfcc"
    assert table.loc[2, 1] == pytest.approx(0.3 + 0.2 + 0.02 + 0.005)
    ax = plot_grid(summary, "accuracy")
    assert ax.get_title() and ax.get_xlabel() == "hidden dense layers kept"
    assert ax.get_ylabel() == "conv blocks kept"
    assert ax.figure.axes[-1].get_ylabel() == "clip accuracy (test), mean over seeds"
    assert len(ax.texts) == 6  # every cell annotated
    assert label_problems(ax.figure) == []  # save_fig would accept it
    plt.close("all")


def test_grid_of_the_seed_spread():
    summary = _fake_summary()
    spread = grid_table(summary, "accuracy", stat="std")
    assert spread.attrs["stat"] == "std"
    assert spread.loc[1, 0] == pytest.approx(np.std([0.4, 0.41], ddof=1))
    ax = plot_grid(summary, "accuracy", stat="std")
    assert "std over seeds" in ax.get_title()
    assert ax.figure.axes[-1].get_ylabel() == "clip accuracy (test), std over seeds"
    with pytest.raises(ValueError, match="stat"):
        grid_table(summary, stat="median")
    plt.close("all")


def test_compare_variants_by_hand():
    table = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3 + ["c"],
                          "accuracy": [0.70, 0.72, 0.74, 0.60, 0.61, 0.62, 0.9]})
    out = compare_variants(table, "a", "b")
    assert out["difference"] == pytest.approx(0.11)
    se = np.sqrt(0.02 ** 2 / 3 + 0.01 ** 2 / 3)
    assert out["se"] == pytest.approx(se) and out["conclusive"] is True
    assert (out["n_a"], out["n_b"]) == (3, 3)
    close = table.assign(accuracy=[0.70, 0.80, 0.60, 0.69, 0.71, 0.70, 0.9])
    assert compare_variants(close, "a", "b")["conclusive"] is False  # within the spread
    single = compare_variants(table, "c", "a")
    assert single["conclusive"] is None and np.isnan(single["se"])  # one seed: no verdict
    with pytest.raises(KeyError, match="zzz"):
        compare_variants(table, "a", "zzz")


def test_stopped_by_budget_by_hand():
    runs = pd.DataFrame({"best_epoch": [3, 12, 11, 10, 12], "epochs_run": [5, 12, 12, 12, 12]})
    # early-stopped at 5; best at the last epoch; 1 epoch after the best; stopped by patience
    # exactly at the budget; best at the end
    assert stopped_by_budget(runs, epochs=12, patience=2).tolist() == [False, True, True, False, True]
    assert stopped_by_budget(runs, epochs=12, patience=1).tolist() == [False, True, False, False, True]
