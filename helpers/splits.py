"""Honest splits: by clip, never by window.

The seed project cut every recording into windows and then split the WINDOWS at random, so
pieces of one recording sat in train and in test, and its accuracy measured memory, not
generalisation. Here a clip (and all of its windows) belongs to exactly one split:

- ``test``: the dataset's official test split, untouched until the final score;
- ``val``:  carved from the training clips, stratified by class and grouped, to choose
  checkpoints and hyperparameters;
- ``train``: the rest.

Used in: notebooks/02_preprocessing.ipynb and every notebook that trains a model.
"""

from __future__ import annotations

import pandas as pd

SPLITS = ("train", "val", "test")


def assign_splits(clips: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0,
                  group_col: str = "fname") -> pd.DataFrame:
    """Return a copy of ``clips`` whose ``split`` column is 'train', 'val' or 'test'.

    ``clips`` must carry the official split ('train'/'test') in ``split``. Validation clips are
    drawn from 'train', stratified by ``label`` and grouped by ``group_col`` (clips sharing a
    group value never straddle train and val).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    missing = {"split", "label", group_col} - set(clips.columns)
    if missing:
        raise KeyError(f"clip table lacks column(s) {sorted(missing)}")
    out = clips.copy()
    train = out.index[out["split"] == "train"]
    n_splits = max(2, int(round(1 / val_fraction)))
    min_count = out.loc[train, "label"].value_counts().min()
    if min_count < n_splits:  # too few clips in some class for stratified folds
        n_splits = max(2, int(min_count))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, val_pos = next(folds.split(train, out.loc[train, "label"], out.loc[train, group_col]))
    out.loc[train[val_pos], "split"] = "val"
    check_no_leakage(out, group_col)
    return out


def check_no_leakage(clips: pd.DataFrame, group_col: str = "fname") -> None:
    """Raise if any clip (or group) appears in more than one split."""
    per_group = clips.groupby(group_col)["split"].nunique()
    leaked = per_group[per_group > 1]
    if len(leaked):
        raise AssertionError(f"{len(leaked)} {group_col} value(s) in more than one split, "
                             f"e.g. {list(leaked.index[:3])}")


def split_summary(clips: pd.DataFrame) -> pd.DataFrame:
    """Clips per class and split (a table for the notebooks)."""
    table = clips.pivot_table(index="label", columns="split", values="fname", aggfunc="count",
                              fill_value=0)
    return table.reindex(columns=[s for s in SPLITS if s in table.columns])

