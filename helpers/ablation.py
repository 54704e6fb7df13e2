"""Ablation: which parts of the network, input and training matter, over several seeds.

The seed paper's grid keeps the first ``k`` conv blocks (0..3) and the first ``m`` hidden dense
layers (0..3) of a base network: 16 architectures, from a linear model on the raw window
(0 conv, 0 dense) to the full network. Two more factors are varied on the full network only
(one factor at a time, not the 64-cell product): the input feature (log-mel vs MFCC) and
augmentation (none vs e.g. CutMix). Every variant is trained with several seeds on the same
splits, so a difference can be compared with the seed-to-seed spread.
Used in: notebooks/08_ablation.ipynb.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.models import SEED_CNN, CNNConfig
from helpers.plots import new_axes

VARIANT_COLUMNS: tuple[str, ...] = ("model", "n_conv", "n_dense", "features", "augment")
SUMMARY_METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "map_at_3", "params",
                                    "train_seconds")
METRIC_LABELS: dict[str, str] = {
    "accuracy": "clip accuracy (test)",
    "macro_f1": "macro F1 (test)",
    "map_at_3": "MAP@3 (test)",
    "val_accuracy": "clip accuracy (validation)",
    "params": "weights (count)",
    "train_seconds": "training time (s)",
}


# The ablation's base: the seed network's layout (three 3x3 conv blocks, Flatten, three dense
# layers) at half its width (16/32/64 filters, 128/64/32 units), without dropout and at Adam's
# rate 2e-3. 54 trainings must fit the chain's time budget on a 2-core CPU, so every variant
# gets a short budget: half the filters and units make an epoch several times cheaper, and
# without dropout, at the higher rate, the network reaches its best validation score within
# that budget where the seed network's settings (dropout 0.2, rate 1e-3) are still improving.
# Early stopping on the validation loss regularises instead. The grid asks which layers
# matter, and the layout is what it cuts. Notebook 03 reports the full seed network ("seed CNN
# (MFCC)"), notebook 08 this base ("conv3-dense3 mfcc") with its epochs and training time, and
# benchmarks/bench_chain.py what the chain's budget costs.
ABLATION_BASE = replace(SEED_CNN, conv_filters=(16, 32, 64), dense_units=(128, 64, 32),
                        dropout=0.0, learning_rate=2e-3)


@dataclass(frozen=True)
class AblationConfig:
    """The ablation plan: the grid, the one-at-a-time factors and the reference settings.

    The conv x dense grid runs on ``grid_feature`` with ``grid_augment``; each other entry of
    ``features`` and ``augments`` is tried on the full base network (all its layers). An entry
    of ``augments`` is a kind name (default settings) or a full
    :class:`helpers.augment.AugmentConfig` (e.g. the one chosen in notebook 04).
    """

    base: CNNConfig = ABLATION_BASE
    conv_counts: tuple[int, ...] = (0, 1, 2, 3)
    dense_counts: tuple[int, ...] = (0, 1, 2, 3)
    grid_feature: str = "mfcc"  # the seed paper's input
    grid_augment: str = "none"
    features: tuple[str, ...] = ("mfcc", "logmel")
    augments: tuple[Any, ...] = ("none", "cutmix")  # kind names or AugmentConfig
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        from helpers.augment import KINDS

        too_many = [k for k in self.conv_counts if not 0 <= k <= len(self.base.conv_filters)]
        too_many += [m for m in self.dense_counts if not 0 <= m <= len(self.base.dense_units)]
        if too_many:
            raise ValueError(f"layer counts {too_many} exceed the base network "
                             f"({len(self.base.conv_filters)} conv, "
                             f"{len(self.base.dense_units)} dense)")
        for kind in (self.grid_feature, *self.features):
            if kind not in ("logmel", "mfcc"):
                raise ValueError(f"unknown feature kind {kind!r}: 'logmel' or 'mfcc'")
        for kind in (self.grid_augment, *map(_augment_kind, self.augments)):
            if kind not in KINDS:
                raise ValueError(f"unknown augmentation {kind!r}; choose one of {KINDS}")
        if not self.seeds:
            raise ValueError("need at least one seed")


def _augment_kind(augment) -> str:
    """The kind name of an augmentation given as a name or as an ``AugmentConfig``."""
    return augment if isinstance(augment, str) else augment.kind


@dataclass(frozen=True)
class Variant:
    """One trained configuration: the base network cut to ``n_conv`` conv blocks and ``n_dense``
    hidden dense layers (``cnn``), fed ``feature`` windows, trained with ``augment`` (a kind
    name; ``augmentation`` holds its full settings when they are not the defaults)."""

    name: str
    n_conv: int
    n_dense: int
    feature: str
    augment: str
    cnn: CNNConfig = field(repr=False)
    augmentation: Any = field(default=None, repr=False)

    @property
    def augment_config(self):
        """``helpers.augment.AugmentConfig`` for training, or None for no augmentation."""
        from helpers.augment import AugmentConfig

        if self.augment == "none":
            return None
        return self.augmentation if self.augmentation is not None else AugmentConfig(self.augment)


def cut_network(base: CNNConfig, n_conv: int, n_dense: int) -> CNNConfig:
    """``base`` with only its first ``n_conv`` conv blocks and first ``n_dense`` dense layers."""
    if not 0 <= n_conv <= len(base.conv_filters) or not 0 <= n_dense <= len(base.dense_units):
        raise ValueError(f"cannot keep {n_conv} conv / {n_dense} dense layers of a network with "
                         f"{len(base.conv_filters)} / {len(base.dense_units)}")
    return replace(base, conv_filters=base.conv_filters[:n_conv],
                   kernel_sizes=base.kernel_sizes[:n_conv], dense_units=base.dense_units[:n_dense])


def make_variant(base: CNNConfig, n_conv: int, n_dense: int, feature: str = "mfcc",
                 augment="none") -> Variant:
    """One :class:`Variant`, named like ``"conv2-dense1 mfcc"`` (+ ``" + cutmix"``).

    ``augment``: a kind name (default settings) or an ``AugmentConfig``.
    """
    kind = _augment_kind(augment)
    name = f"conv{n_conv}-dense{n_dense} {feature}" + ("" if kind == "none" else f" + {kind}")
    settings = None if isinstance(augment, str) or kind == "none" else augment
    return Variant(name, n_conv, n_dense, feature, kind, cut_network(base, n_conv, n_dense),
                   settings)


def variants(config: AblationConfig | None = None) -> list[Variant]:
    """The conv x dense grid, then the full network with each other feature and augmentation.

    ``config`` defaults to ``AblationConfig()`` (the seed network on MFCC, 16 + 2 variants).
    Order: grid row by row (conv count, then dense count), then the extra factors; no
    duplicates (the full network on the grid's settings appears once).
    """
    config = config or AblationConfig()
    full_conv, full_dense = max(config.conv_counts), max(config.dense_counts)
    plan = [(k, m, config.grid_feature, config.grid_augment)
            for k in config.conv_counts for m in config.dense_counts]
    plan += [(full_conv, full_dense, f, config.grid_augment) for f in config.features]
    plan += [(full_conv, full_dense, config.grid_feature, a) for a in config.augments]
    seen, out = set(), []
    for k, m, feature, augment in plan:
        key = (k, m, feature, _augment_kind(augment))
        if key not in seen:
            seen.add(key)
            out.append(make_variant(config.base, k, m, feature, augment))
    return out


def chosen_augmentation(path: Path | str) -> tuple[Any, str]:
    """The augmentation notebook 04 chose (``results/best_augmentation.json``), or CutMix.

    Returns ``(AugmentConfig, note)``; the note says where the config came from. Falls back to
    CutMix with default settings when the file (or ``helpers.augment.load_augment_config``) is
    missing, or when the saved choice is "none" (nothing to switch on).
    Used in: notebooks/08_ablation.ipynb.
    """
    from helpers import augment

    path = Path(path)
    fallback = augment.AugmentConfig("cutmix")
    loader = getattr(augment, "load_augment_config", None)
    if loader is None:
        return fallback, "CutMix (fallback: helpers.augment has no load_augment_config)"
    if not path.is_file():
        return fallback, f"CutMix (fallback: {path.name} not found; notebook 04 writes it)"
    config = loader(path)
    if config.kind == "none":
        return fallback, f"CutMix (fallback: {path.name} chose no augmentation)"
    return config, f"{config.kind} as chosen in notebook 04 ({path.name})"


def run_ablation(prepared_by_kind: Mapping[str, object], variant_list: Sequence[Variant],
                 seeds: Iterable[int], train_config, progress: bool = True) -> pd.DataFrame:
    """Train and score every variant with every seed (:func:`helpers.experiment.run_variant`).

    ``prepared_by_kind`` maps a feature kind ("logmel", "mfcc") to its
    :class:`helpers.experiment.Prepared` (the same clips and splits); ``train_config`` a
    :class:`helpers.training.TrainConfig` whose seed is replaced by each seed. Returns one row
    per (variant, seed): the variant columns ``n_conv, n_dense, features, augment`` plus
    run_variant's scores, size and time.
    """
    import tf_keras as keras

    from helpers.experiment import run_variant
    from helpers.progress import progress as progress_bar

    seeds = list(seeds)
    missing = sorted({v.feature for v in variant_list} - set(prepared_by_kind))
    if missing:
        raise KeyError(f"no prepared data for feature kind(s) {missing}; "
                       f"have {sorted(prepared_by_kind)}")
    rows = []
    with progress_bar(total=len(variant_list) * len(seeds), desc="ablation", unit="run",
                      disable=not progress) as bar:
        for variant in variant_list:
            for seed in seeds:
                bar.set_postfix_str(f"{variant.name}, seed {seed}")
                row = run_variant(prepared_by_kind[variant.feature], variant.name, variant.cnn,
                                  replace(train_config, seed=seed),
                                  augment=variant.augment_config)
                rows.append({**row, "n_conv": variant.n_conv, "n_dense": variant.n_dense,
                             "features": variant.feature, "augment": variant.augment})
                keras.backend.clear_session()  # free the graph of finished runs
                bar.update()
    from helpers.evaluation import results_table

    return results_table(rows)


def summarise(table: pd.DataFrame, metrics: Sequence[str] = SUMMARY_METRICS) -> pd.DataFrame:
    """Mean, standard deviation (ddof=1; NaN for one seed) and count over seeds per variant.

    One row per variant in order of first appearance, columns ``model, n_conv, n_dense,
    features, augment, n`` and ``<metric>_mean``, ``<metric>_std`` for each metric present.
    """
    keys = [c for c in VARIANT_COLUMNS if c in table.columns]
    metrics = [m for m in metrics if m in table.columns]
    grouped = table.groupby(keys, sort=False, dropna=False)
    out = grouped.size().rename("n").to_frame()
    for metric in metrics:
        out[f"{metric}_mean"] = grouped[metric].mean()
        out[f"{metric}_std"] = grouped[metric].std(ddof=1)
    return out.reset_index()


def plot_ablation(summary: pd.DataFrame, metric: str = "accuracy", ax=None,
                  title: str | None = None):
    """Horizontal bars of ``<metric>_mean`` per variant with ``<metric>_std`` error bars.

    ``summary`` comes from :func:`summarise`. Returns the axes.
    Used in: notebooks/08_ablation.ipynb.
    """
    _, ax = new_axes(ax, figsize=(8, max(3.0, 0.3 * len(summary) + 1)))
    label = METRIC_LABELS.get(metric, metric)
    y = np.arange(len(summary))
    std = summary[f"{metric}_std"].fillna(0.0) if f"{metric}_std" in summary else None
    ax.barh(y, summary[f"{metric}_mean"], xerr=std, capsize=3, color="C0", alpha=0.85)
    ax.set_yticks(y, summary["model"])
    ax.invert_yaxis()
    n = int(summary["n"].max()) if "n" in summary else 1
    ax.set(title=title or f"Ablation: {label} (mean ± std over {n} seed(s))",
           xlabel=label, ylabel="variant")
    return ax


def grid_table(summary: pd.DataFrame, metric: str = "accuracy", feature: str | None = None,
               augment: str | None = None, stat: str = "mean") -> pd.DataFrame:
    """``<metric>_<stat>`` (stat "mean" or "std") as a table: rows conv blocks, columns dense.

    ``feature``/``augment`` select the grid's settings (default: the pair with most variants).
    """
    if stat not in ("mean", "std"):
        raise ValueError(f"stat must be 'mean' or 'std', got {stat!r}")
    data = summary
    if feature is None or augment is None:
        common = summary.groupby(["features", "augment"]).size().idxmax()
        feature = feature or common[0]
        augment = augment or common[1]
    data = data[(data["features"] == feature) & (data["augment"] == augment)]
    table = data.pivot_table(index="n_conv", columns="n_dense", values=f"{metric}_{stat}",
                             dropna=False)
    table.attrs.update(feature=feature, augment=augment, stat=stat)
    return table


def plot_grid(summary: pd.DataFrame, metric: str = "accuracy", ax=None,
              feature: str | None = None, augment: str | None = None, title: str | None = None,
              stat: str = "mean"):
    """Heatmap of the conv x dense grid (``stat`` "mean" or "std" of ``metric`` over seeds),
    annotated with the values.

    Returns the axes. Used in: notebooks/08_ablation.ipynb.
    """
    import seaborn as sns

    table = grid_table(summary, metric, feature, augment, stat)
    label = METRIC_LABELS.get(metric, metric)
    what = "mean over seeds" if stat == "mean" else "std over seeds"
    _, ax = new_axes(ax, figsize=(6, 5))
    sns.heatmap(table, ax=ax, annot=True, fmt=".3g", cmap="viridis" if stat == "mean" else "rocket_r",
                square=True, cbar_kws={"label": f"{label}, {what}"})
    ax.set(title=title or f"{label}, {what}: conv blocks x dense layers "
                          f"({table.attrs['feature']}, augment: {table.attrs['augment']})",
           xlabel="hidden dense layers kept", ylabel="conv blocks kept")
    ax.tick_params(axis="y", labelrotation=0)
    return ax


def compare_variants(table: pd.DataFrame, a: str, b: str, metric: str = "accuracy",
                     n_se: float = 2.0) -> dict:
    """Is variant ``a`` better than ``b`` on ``metric`` beyond the seed-to-seed spread?

    ``table`` has one row per (variant, seed) (:func:`run_ablation`). Returns ``difference``
    (mean of a minus mean of b), its standard error ``se`` = sqrt(s_a²/n_a + s_b²/n_b) (sample
    std over seeds), the seed counts, and ``conclusive``: True when |difference| > ``n_se`` x
    se, None when a variant has a single seed (no spread, so no verdict).
    """
    values = {name: table.loc[table["model"] == name, metric].to_numpy(float) for name in (a, b)}
    for name, v in values.items():
        if len(v) == 0:
            raise KeyError(f"no runs of variant {name!r} in the table")
    va, vb = values[a], values[b]
    difference = float(va.mean() - vb.mean())
    if min(len(va), len(vb)) < 2:
        se, conclusive = float("nan"), None
    else:
        se = float(np.sqrt(va.var(ddof=1) / len(va) + vb.var(ddof=1) / len(vb)))
        conclusive = bool(abs(difference) > n_se * se)
    return {"a": a, "b": b, "metric": metric, "difference": difference, "se": se,
            "n_a": len(va), "n_b": len(vb), "conclusive": conclusive}


def stopped_by_budget(table: pd.DataFrame, epochs: int, patience: int) -> pd.Series:
    """Per run: True when the epoch budget, not early stopping, ended the training.

    Early stopping ends a run once ``patience`` epochs pass without improvement; a run that
    reached ``epochs`` with its best epoch fewer than ``patience`` epochs before the end was
    still improving (or had not yet waited long enough to tell), so a longer budget could
    change its score. Needs the columns ``best_epoch`` and ``epochs_run``.
    """
    return (table["epochs_run"] >= epochs) & (table["epochs_run"] - table["best_epoch"] < patience)
