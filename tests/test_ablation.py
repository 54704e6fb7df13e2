"""helpers.ablation: the conv x dense grid as recipes of the cross-library protocol, plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import helpers  # noqa: E402, F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.ablation import (  # noqa: E402
    ABLATION_BASE,
    ABLATION_MFCC,
    AblationConfig,
    cut_network,
    cutmix_setting,
    grid_table,
    make_variant,
    plot_ablation,
    plot_grid,
    stopped_by_budget,
    variant_table,
    variants,
)
from helpers.augment import AugmentConfig, save_augment_config  # noqa: E402
from helpers.features import LOGMEL  # noqa: E402
from helpers.models import SEED_CNN, CNNConfig, build_cnn  # noqa: E402
from helpers.plots import label_problems  # noqa: E402
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


def test_the_cutmix_arm_reads_notebook_04s_setting_or_says_it_uses_the_default(tmp_path):
    path = tmp_path / "best_cutmix.json"
    config, note = cutmix_setting(path)
    assert config == AugmentConfig("cutmix") and "default" in note and "not found" in note
    save_augment_config(AugmentConfig("cutmix", alpha=0.2, prob=0.5), path)
    config, note = cutmix_setting(path)
    assert config == AugmentConfig("cutmix", alpha=0.2, prob=0.5) and "notebook 04" in note


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
    rows = {v.name: {"cross_val_accuracy": 0.3 + 0.1 * v.n_conv + 0.01 * v.n_dense,
                     "cross_val_accuracy_std": 0.01 * (1 + v.n_dense), "val_accuracy": 0.5}
            for v in plan}
    return pd.DataFrame.from_dict(rows, orient="index")


def test_grid_table_and_plots_have_titles_labels_and_colour_bar():
    plan = variants(AblationConfig(conv_counts=(0, 1, 2), dense_counts=(0, 1), features=()))
    summary = _fake_summary(plan)
    table = grid_table(summary, plan, "cross_val_accuracy")
    assert table.shape == (3, 2) and table.loc[2, 1] == pytest.approx(0.3 + 0.2 + 0.01)
    ax = plot_grid(summary, plan, "cross_val_accuracy", "cross-library validation accuracy")
    assert ax.get_xlabel() == "hidden dense layers kept" and ax.get_ylabel() == "conv blocks kept"
    assert ax.figure.axes[-1].get_ylabel() == "cross-library validation accuracy"
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
