"""Ablation: which parts of the network, input and training matter, over the library folds.

The seed paper's grid keeps the first ``k`` conv blocks (0..3) and the first ``m`` hidden dense
layers (0..3) of a base network: 16 architectures, from a linear model on the raw window
(0 conv, 0 dense) to the full network. Two more factors are varied on the full network only
(one factor at a time, not the 64-cell product): the input feature (log-mel vs MFCC) and
augmentation (none vs CutMix). Every variant is a :class:`helpers.protocol.CNNRecipe`, trained
in every fold of nested leave-one-library-out (:func:`helpers.splits.library_folds`) with every
seed (:func:`evaluate_plan`; CutMix at the setting each fold chose in notebook 04,
:func:`cutmix_per_fold`). Each factor's question is a paired test on the cross-library test's
(fold, clip) units (:mod:`helpers.stats`); a choice among the variants is made fold by fold on the
fold's inner validation library (:func:`smallest_not_worse`, :func:`runs_of_choice`).
Used in: notebooks/08_ablation.ipynb.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.features import LOGMEL, FeatureConfig
from helpers.models import SEED_CNN, CNNConfig
from helpers.plots import new_axes
from helpers.protocol import (
    CNNRecipe,
    PreparedCache,
    Runs,
    evaluate_cnns,
    evaluate_per_fold,
    headline,
    paired,
)
from helpers.stats import compare, verdicts

# The ablation's base: the seed network's layout (three 3x3 conv blocks, Flatten, three dense
# layers) at half its width (16/32/64 filters, 128/64/32 units), without dropout and at Adam's
# rate 2e-3: every variant trains once per fold and seed, so the plan's trainings must fit the
# chain's time budget; the half-width network costs far less per epoch, and without dropout
# early stopping ends its runs sooner (notebook 08 reports how many of them early stopping
# ended). The grid asks which layers matter, and the layout is what it cuts; notebook 03 reports
# the full seed network itself.
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

    def recipe(self, train, augmentation: Any = None) -> CNNRecipe:
        """The :class:`helpers.protocol.CNNRecipe` that trains this variant with ``train``;
        ``augmentation`` (e.g. one fold's own CutMix setting) replaces the variant's setting
        of an augmented variant, and is ignored by a variant without augmentation."""
        augment = self.augmentation
        if augment is not None and augmentation is not None:
            augment = augmentation
        return CNNRecipe(self.name, FEATURES[self.feature], self.cnn, train, augment)


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


def _read_cutmix_file(path: Path) -> tuple[dict, dict]:
    """``(fields, per_fold)`` of notebook 04's ``best_cutmix.json``: the global setting's fields
    and the per-fold settings (``{fold name: fields}``), stored beside the fields or under
    ``"extra"``."""
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(payload).__name__}")
    per_fold = payload.pop("per_fold", None)
    extra = payload.pop("extra", None) or {}
    if per_fold is None and isinstance(extra, dict):
        per_fold = extra.get("per_fold")
    per_fold = per_fold or {}
    if not isinstance(per_fold, dict) or not all(isinstance(v, dict) for v in per_fold.values()):
        raise ValueError(f"{path}: 'per_fold' must map each fold's name to its setting's fields")
    return payload, per_fold


def _augment_config(fields_: Mapping, path: Path, base=None):
    """An :class:`helpers.augment.AugmentConfig` from ``fields_`` (over ``base``'s, if given);
    an unknown field raises ``ValueError`` naming the file."""
    from dataclasses import fields as dataclass_fields

    from helpers.augment import AugmentConfig

    known = {f.name for f in dataclass_fields(AugmentConfig)}
    unknown = sorted(set(fields_) - known)
    if unknown:
        raise ValueError(f"{path}: unknown augmentation field(s) {unknown}; known: {sorted(known)}")
    try:
        return replace(base, **fields_) if base is not None else AugmentConfig(**fields_)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def cutmix_setting(path: Path | str) -> tuple[Any, str]:
    """The CutMix setting notebook 04 chose (``best_cutmix.json``): the setting most folds chose
    on their inner validation library (its top-level fields).

    Returns ``(AugmentConfig, note)``; without the file, CutMix's default setting, and the note
    says so. The augmentation arm of the ablation is always CutMix (the seed paper's). Each
    fold's own choice: :func:`cutmix_per_fold`.
    """
    from helpers.augment import AugmentConfig

    path = Path(path)
    if not path.is_file():
        return AugmentConfig("cutmix"), f"CutMix at its default setting ({path.name} not found: notebook 04 writes it)"
    config = _augment_config(_read_cutmix_file(path)[0], path)
    return config, (f"CutMix with alpha {config.alpha:g} and probability {config.prob:g}, the setting "
                    f"notebook 04 chose fold by fold on each fold's inner validation library ({path.name})")


def cutmix_per_fold(path: Path | str, folds: Sequence) -> tuple[Any, dict[str, Any], str]:
    """CutMix's setting in each fold: the one that fold chose in notebook 04 on its own inner
    validation library (``per_fold`` of ``best_cutmix.json``), so no fold trains with a setting
    its test library chose; a fold the file does not name (another protocol or dataset) gets the
    file's global setting, as :func:`helpers.protocol.chosen_in` does.

    Returns ``(global setting, {fold name: AugmentConfig}, note)``; the note starts with "CutMix"
    and says where each fold's setting came from.
    """
    path = Path(path)
    config, note = cutmix_setting(path)
    names = [getattr(f, "name", f) for f in folds]
    per_fold = _read_cutmix_file(path)[1] if path.is_file() else {}
    of = {name: _augment_config(per_fold[name], path, config) if name in per_fold else config
          for name in names}
    own = sum(name in per_fold for name in names)
    if not path.is_file():
        return config, of, note
    counts = pd.Series([f"alpha {c.alpha:g} and probability {c.prob:g}" for c in of.values()]).value_counts()
    settings = "; ".join(f"{setting} in {n} of {len(names)} folds" for setting, n in counts.items())
    if own == len(names):
        where = "each fold's own setting, chosen in notebook 04 on that fold's inner validation library"
    elif own:
        where = (f"{own} of {len(names)} folds' own settings, chosen in notebook 04 on their inner validation "
                 f"library; the other folds take the setting most folds chose")
    else:
        where = (f"the setting notebook 04 chose (on the inner validation libraries) for every fold ({path.name} names "
                 "none of these folds)")
    return config, of, f"CutMix: {where} ({path.name}): {settings}"


def cutmix_table(augmentation_of: Mapping[str, Any]) -> pd.DataFrame:
    """The CutMix setting of each fold (from :func:`cutmix_per_fold`) as a table."""
    return pd.DataFrame([{"fold: held out (chosen on)": fold, "alpha": c.alpha, "probability": c.prob}
                         for fold, c in augmentation_of.items()]).set_index("fold: held out (chosen on)")


def evaluate_plan(plan: Sequence[Variant], folds: Sequence, seeds: Sequence[int], train,
                  augmentation_of: Mapping[str, Any] | None = None,
                  data: PreparedCache | None = None) -> Runs:
    """Train every variant of ``plan`` in every fold with every seed.

    The variants without augmentation train side by side in one
    :func:`helpers.protocol.evaluate_cnns` call; an augmented variant trains in fold L with
    ``augmentation_of[L]`` (the fold's own setting; the variant's own when the fold is missing)
    through :func:`helpers.protocol.evaluate_per_fold`.
    """
    data = data or PreparedCache(folds)
    fixed = [v.recipe(train) for v in plan if v.augmentation is None]
    runs = evaluate_cnns(fixed, folds, seeds, data=data) if fixed else Runs(pd.DataFrame())
    for variant in plan:
        if variant.augmentation is None:
            continue
        recipe_of = {f.name: variant.recipe(train, (augmentation_of or {}).get(f.name)) for f in folds}
        runs = runs + evaluate_per_fold(recipe_of, folds, seeds, variant.name, data=data)
    return runs


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
    """Horizontal bars per variant: pooled cross-library test accuracy (the verdicts' split)
    with its standard deviation over the (fold, seed) runs, in-library test accuracy as dots."""
    _, ax = new_axes(ax, figsize=(8, max(3.0, 0.32 * len(summary) + 1.8)))
    y = np.arange(len(summary))
    ax.barh(y, summary["cross_test_accuracy"], xerr=summary["cross_test_accuracy_std"].fillna(0),
            capsize=3, color="C1", alpha=0.9,
            label="cross-library test, pooled (bar: ± std over held-out libraries and seeds)")
    ax.scatter(summary["test_accuracy"], y, color="C0", zorder=3, label="in-library test, pooled")
    ax.set_yticks(y, summary.index)
    ax.invert_yaxis()
    ax.set(title=title or "Ablation: test accuracy per variant", xlabel="clip accuracy",
           ylabel="variant", xlim=(0, 1))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8, frameon=False)
    return ax


def per_library_table(runs: Runs, folds: Sequence, models: Sequence[str],
                      summary: pd.DataFrame | None = None, metric: str = "accuracy") -> pd.DataFrame:
    """Cross-library test ``metric`` per held-out library (the fold that held it out; mean over
    seeds), one row per model, columns named "library (n clips)"; with ``summary``
    (:func:`helpers.protocol.summarise`), a last column "pooled" (over every library's clips)."""
    held_out = {f.name: f.held_out for f in folds}
    cross = runs.table[(runs.table["split"] == "cross_test") & runs.table["model"].isin(models)]
    cross = cross.assign(library=cross["direction"].map(held_out))
    table = cross.pivot_table(index="model", columns="library", values=metric).loc[list(models)]
    clips = cross.drop_duplicates("library").set_index("library")["n_clips"]
    table = table.rename(columns=lambda c: f"{c} ({int(clips[c])} clips)")
    if summary is not None:
        table["pooled"] = summary.loc[list(models), f"cross_test_{metric}"]
    return table.rename_axis(index="variant", columns="held-out library")


def factor_table(summary: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """One row per factor (a question of :func:`helpers.stats.verdicts`, with columns ``a`` and
    ``b``): both arms' sizes (``params``) and pooled in-library and cross-library test accuracy
    (mean ± std over the (fold, seed) runs), the paired difference a - b on the cross-library
    test with its 95 % interval, the Holm-corrected p-value and the verdict."""
    from helpers.stats import p_text

    shown = headline(summary)
    rows = {}
    for question, r in answers.iterrows():
        a, b = r["a"], r["b"]
        rows[question] = {
            "arm a": a, "arm b": b,
            "weights a": int(summary.loc[a, "params"]), "weights b": int(summary.loc[b, "params"]),
            "in-library a": shown.loc[a, "in-library test accuracy"],
            "in-library b": shown.loc[b, "in-library test accuracy"],
            "cross-library a": shown.loc[a, "cross-library test accuracy"],
            "cross-library b": shown.loc[b, "cross-library test accuracy"],
            "a - b (cross-library)": f"{r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
            "p (Holm)": p_text(r["p_holm"]).removeprefix("p = ").removeprefix("p "),
            "verdict": r["verdict"],
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("factor")


def one_fold(runs: Runs, direction: str) -> Runs:
    """The runs of ``runs`` in one direction (fold) only."""
    def keep(d):
        return {k: v for k, v in d.items() if k[1] == direction}

    table = runs.table[runs.table["direction"] == direction].reset_index(drop=True)
    return Runs(table, keep(runs.probs), keep(runs.clips), keep(runs.labels), list(runs.classes),
                keep(runs.histories), keep(runs.weights), dict(runs.networks))


def smallest_not_worse(runs: Runs, candidates: Sequence[str], params: Mapping[str, float],
                       alpha: float = 0.05, split: str = "cross_val",
                       metric: str = "accuracy") -> pd.DataFrame:
    """A nested choice, fold by fold: the best candidate on the fold's ``split`` (its inner
    validation library; mean over seeds, a tie goes to the earlier candidate), and the smallest
    candidate (fewest ``params``) **not detectably worse** than it on the same clips: each other
    candidate compared with the best by :func:`helpers.stats.compare` on the fold's ``split``
    units, Holm-corrected within the fold (:func:`helpers.stats.verdicts`).

    Returns one row per fold: ``direction``, ``best``, ``smallest``, ``not_worse`` (how many
    candidates, the best included, are not detectably worse). The held-out library plays no part.
    """
    candidates = list(candidates)
    rows = []
    for direction in dict.fromkeys(runs.table["direction"]):
        fold = one_fold(runs.select(candidates), direction)
        part = fold.table[fold.table["split"] == split]
        if part.empty:
            continue
        means = part.groupby("model")[metric].mean().reindex(candidates)
        best = str(means.idxmax())
        others = {m: {"a": best, "b": m, **compare(*paired(fold, best, m, split, metric))}
                  for m in candidates if m != best and np.isfinite(means[m])}
        tests = verdicts(others, alpha=alpha) if others else pd.DataFrame(columns=["significant"])
        not_worse = [best, *(m for m in tests.index if not tests.loc[m, "significant"])]
        smallest = min(not_worse, key=lambda m: (params[m], candidates.index(m)))
        rows.append({"direction": direction, "best": best, "smallest": smallest,
                     "not_worse": len(not_worse)})
    return pd.DataFrame(rows)


def runs_of_choice(runs: Runs, chosen: Mapping[str, str], name: str) -> Runs:
    """The runs of a per-fold choice as one model ``name``: in fold ``d``, the runs of
    ``chosen[d]`` (e.g. :func:`smallest_not_worse`'s ``smallest`` column). Its ``cross_test``
    scores are the honest cross-library score of the procedure "choose on the fold's inner
    validation library, then test" (:func:`helpers.protocol.select_per_fold`)."""
    from helpers.protocol import select_per_fold

    return select_per_fold(runs, chosen, name)


def stopped_by_budget(table: pd.DataFrame) -> pd.Series:
    """Per training (one row per run of ``Runs.table`` with one split): True when the epoch
    budget, not early stopping, ended it (it ran all ``max_epochs`` epochs, whichever was its
    best; the complement of :func:`helpers.protocol.summarise`'s ``stopped_early``)."""
    return table["epochs_run"] >= table["max_epochs"]
