"""Ablation: which parts of the network, input and training matter, over seeds and libraries.

The seed paper's grid keeps the first ``k`` conv blocks (0..3) and the first ``m`` hidden dense
layers (0..3) of a base network: 16 architectures, from a linear model on the raw window
(0 conv, 0 dense) to the full network. Two more factors are varied on the full network only
(one factor at a time, not the 64-cell product): the input feature (log-mel vs MFCC) and
augmentation (none vs CutMix). Every variant is a :class:`helpers.protocol.CNNRecipe`, trained
with several seeds in both cross-library directions (:func:`helpers.protocol.evaluate_cnns`),
so each question is answered on cross-library validation clips with a paired test
(:mod:`helpers.stats`), and test clips are only reported.
Used in: notebooks/08_ablation.ipynb.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.features import LOGMEL, FeatureConfig
from helpers.models import SEED_CNN, CNNConfig
from helpers.plots import new_axes

# The ablation's base: the seed network's layout (three 3x3 conv blocks, Flatten, three dense
# layers) at half its width (16/32/64 filters, 128/64/32 units), without dropout and at Adam's
# rate 2e-3: 108 trainings (18 variants x 3 seeds x 2 directions) must fit the chain's time
# budget, the half-width network costs far less per epoch, and without dropout early stopping
# ends its runs sooner (notebook 08 reports how many of them early stopping ended). The grid
# asks which layers matter, and the layout is what it cuts; notebook 03 reports the full seed
# network itself.
ABLATION_BASE = replace(SEED_CNN, conv_filters=(16, 32, 64), dense_units=(128, 64, 32),
                        dropout=0.0, learning_rate=2e-3)
# The grid's input: MFCC at the project's front-end resolution (the seed paper's feature type,
# with the log-mel variant on exactly the same frames).
ABLATION_MFCC = replace(LOGMEL, kind="mfcc")
FEATURES: dict[str, FeatureConfig] = {"mfcc": ABLATION_MFCC, "logmel": LOGMEL}


@dataclass(frozen=True)
class AblationConfig:
    """The ablation plan: the grid, the one-at-a-time factors and the base network.

    The conv x dense grid runs on ``grid_feature`` without augmentation; each other entry of
    ``features`` and ``augments`` is tried on the full base network. An entry of ``augments``
    is "none" or an :class:`helpers.augment.AugmentConfig`.
    """

    base: CNNConfig = ABLATION_BASE
    conv_counts: tuple[int, ...] = (0, 1, 2, 3)
    dense_counts: tuple[int, ...] = (0, 1, 2, 3)
    grid_feature: str = "mfcc"
    features: tuple[str, ...] = ("mfcc", "logmel")
    augments: tuple[Any, ...] = ("none",)

    def __post_init__(self) -> None:
        too_many = [k for k in self.conv_counts if not 0 <= k <= len(self.base.conv_filters)]
        too_many += [m for m in self.dense_counts if not 0 <= m <= len(self.base.dense_units)]
        if too_many:
            raise ValueError(f"layer counts {too_many} exceed the base network "
                             f"({len(self.base.conv_filters)} conv, "
                             f"{len(self.base.dense_units)} dense)")
        for kind in (self.grid_feature, *self.features):
            if kind not in FEATURES:
                raise ValueError(f"unknown feature kind {kind!r}: one of {sorted(FEATURES)}")


@dataclass(frozen=True)
class Variant:
    """One cell of the plan: the base cut to ``n_conv`` / ``n_dense``, on ``feature``, with
    ``augment`` ("none" or its kind name; ``augmentation`` holds the full settings)."""

    name: str
    n_conv: int
    n_dense: int
    feature: str
    augment: str
    cnn: CNNConfig = field(repr=False)
    augmentation: Any = field(default=None, repr=False)

    def recipe(self, train):
        """The :class:`helpers.protocol.CNNRecipe` that trains this variant with ``train``."""
        from helpers.protocol import CNNRecipe

        return CNNRecipe(self.name, FEATURES[self.feature], self.cnn, train, self.augmentation)


def cut_network(base: CNNConfig, n_conv: int, n_dense: int) -> CNNConfig:
    """``base`` with only its first ``n_conv`` conv blocks and first ``n_dense`` dense layers."""
    if not 0 <= n_conv <= len(base.conv_filters) or not 0 <= n_dense <= len(base.dense_units):
        raise ValueError(f"cannot keep {n_conv} conv / {n_dense} dense layers of a network with "
                         f"{len(base.conv_filters)} / {len(base.dense_units)}")
    return replace(base, conv_filters=base.conv_filters[:n_conv],
                   kernel_sizes=base.kernel_sizes[:n_conv], dense_units=base.dense_units[:n_dense])


def make_variant(base: CNNConfig, n_conv: int, n_dense: int, feature: str = "mfcc",
                 augment="none") -> Variant:
    """One :class:`Variant`, named like ``"conv2-dense1 mfcc"`` (+ ``" + cutmix"``)."""
    kind = augment if isinstance(augment, str) else augment.kind
    name = f"conv{n_conv}-dense{n_dense} {feature}" + ("" if kind == "none" else f" + {kind}")
    return Variant(name, n_conv, n_dense, feature, kind, cut_network(base, n_conv, n_dense),
                   None if kind == "none" else augment)


def variants(config: AblationConfig | None = None) -> list[Variant]:
    """The conv x dense grid, then the full network with each other feature and augmentation.

    Order: grid row by row (conv count, then dense count), then the extra factors; no
    duplicates (the full network on the grid's settings appears once).
    """
    config = config or AblationConfig()
    full_conv, full_dense = max(config.conv_counts), max(config.dense_counts)
    plan = [(k, m, config.grid_feature, "none") for k in config.conv_counts
            for m in config.dense_counts]
    plan += [(full_conv, full_dense, f, "none") for f in config.features]
    plan += [(full_conv, full_dense, config.grid_feature, a) for a in config.augments]
    seen, out = set(), []
    for k, m, feature, augment in plan:
        variant = make_variant(config.base, k, m, feature, augment)
        if variant.name not in seen:
            seen.add(variant.name)
            out.append(variant)
    return out


def cutmix_setting(path: Path | str) -> tuple[Any, str]:
    """The CutMix setting notebook 04 chose on cross-library validation (``best_cutmix.json``).

    Returns ``(AugmentConfig, note)``; without the file, CutMix's default setting, and the note
    says so. The augmentation arm of the ablation is always CutMix (the seed paper's).
    """
    from helpers.augment import AugmentConfig, load_augment_config

    path = Path(path)
    if not path.is_file():
        return AugmentConfig("cutmix"), f"CutMix at its default setting ({path.name} not found: notebook 04 writes it)"
    config = load_augment_config(path)
    return config, (f"CutMix with alpha {config.alpha:g} and probability {config.prob:g}, the setting "
                    f"notebook 04 chose on cross-library validation ({path.name})")


def variant_table(variant_list: list[Variant]) -> pd.DataFrame:
    """The plan as a table: one row per variant."""
    return pd.DataFrame([{"variant": v.name, "conv blocks": v.n_conv, "dense layers": v.n_dense,
                          "input": v.feature, "augmentation": v.augment} for v in variant_list]
                        ).set_index("variant")


def grid_table(summary: pd.DataFrame, variant_list: list[Variant], column: str,
               feature: str = "mfcc") -> pd.DataFrame:
    """``summary[column]`` of the grid variants as a table: rows conv blocks, columns dense
    layers (``summary`` from :func:`helpers.protocol.summarise`, indexed by variant name)."""
    cells = [(v.n_conv, v.n_dense, summary.loc[v.name, column]) for v in variant_list
             if v.feature == feature and v.augment == "none" and v.name in summary.index]
    table = pd.DataFrame(cells, columns=["n_conv", "n_dense", column])
    return table.pivot(index="n_conv", columns="n_dense", values=column)


def plot_grid(summary: pd.DataFrame, variant_list: list[Variant], column: str, label: str,
              ax=None, title: str | None = None, cmap: str = "viridis"):
    """Heatmap of one summary column over the conv x dense grid, annotated. Returns the axes."""
    import seaborn as sns

    table = grid_table(summary, variant_list, column)
    _, ax = new_axes(ax, figsize=(6, 5))
    sns.heatmap(table, ax=ax, annot=True, fmt=".3f", cmap=cmap, square=True,
                cbar_kws={"label": label})
    ax.set(title=title or label, xlabel="hidden dense layers kept", ylabel="conv blocks kept")
    ax.tick_params(axis="y", labelrotation=0)
    return ax


def plot_ablation(summary: pd.DataFrame, ax=None, title: str | None = None):
    """Horizontal bars per variant: cross-library validation accuracy (the verdicts' metric)
    with its standard deviation over seeds, in-library validation accuracy as dots."""
    _, ax = new_axes(ax, figsize=(8, max(3.0, 0.32 * len(summary) + 1.2)))
    y = np.arange(len(summary))
    ax.barh(y, summary["cross_val_accuracy"], xerr=summary["cross_val_accuracy_std"].fillna(0),
            capsize=3, color="C1", alpha=0.9, label="cross-library validation (bar: ± std over seeds)")
    ax.scatter(summary["val_accuracy"], y, color="C0", zorder=3, label="in-library validation")
    ax.set_yticks(y, summary.index)
    ax.invert_yaxis()
    ax.set(title=title or "Ablation: validation accuracy per variant", xlabel="clip accuracy",
           ylabel="variant", xlim=(0, 1))
    ax.legend(loc="lower right", fontsize=8)
    return ax


def stopped_by_budget(table: pd.DataFrame) -> pd.Series:
    """Per training (one row per run of ``Runs.table`` with one split): True when the epoch
    budget, not early stopping, ended it (it ran all ``max_epochs`` epochs, whichever was its
    best; the complement of :func:`helpers.protocol.summarise`'s ``stopped_early``)."""
    return table["epochs_run"] >= table["max_epochs"]
