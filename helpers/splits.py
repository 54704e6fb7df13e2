"""Honest splits: by clip, never by window; and by source library, to measure generalisation.

The seed project cut every recording into windows and then split the WINDOWS at random, so
pieces of one recording sat in train and in test, and its accuracy measured memory, not
generalisation. Here a clip (and all of its windows) belongs to exactly one split.

**In-library** (:func:`assign_splits`): every library's clips in every split.

- ``test``: the dataset's official test split, untouched until the final score (less any clip
  that plays a recording another library of the table holds: ``unused``);
- ``val``:  carved from the training clips, stratified by class and grouped, to choose
  checkpoints;
- ``train``: the rest.

**Cross-library** (:func:`library_directions`, "leave one library out"): a softer leak than
windows is a sample library. The demo renders every class from the same two SoundFonts, so a
model tested on clips of the libraries it trained on is partly tested on memory of those
libraries. One *direction* holds one library out:

- ``train`` / ``val``: the other libraries' training clips (``val`` for early stopping);
- ``test``: the other libraries' test clips (the **in-library** test of this model);
- ``cross_val``: the held-out library's training clips (**cross-library validation**: where
  choices meant to generalise are made);
- ``cross_test``: the held-out library's test clips (the **cross-library** test).

No clip of the held-out library is ever trained on, and no test clip of any library ever
chooses anything. But with two libraries, ``cross_val`` and ``cross_test`` are clips of the same
sampled instruments, so a choice made on one is fitted to the other.

**Nested leave-one-library-out** (:func:`library_folds`, three or more libraries): one *fold*
per library L, the outer test library, which chooses nothing. Inside the fold one other library
V, rotated from fold to fold, is the *inner validation* library where the fold's choices are
made; the model trains on the remaining libraries:

- ``train`` / ``val``: the training clips of the libraries other than L and V;
- ``test``: their test clips (the **in-library** test);
- ``cross_val``: every clip of V (**inner validation**: the fold's choices);
- ``cross_test``: every clip of L (the **cross-library** test: reported, never chosen on);
- ``unused``: clips of the training libraries that share a recording with L or V, and clips of
  V that share one with L (the ``shares`` column, written by the demo's deduplication), so that
  no recording sits on both sides of a split and no recording of L takes part in a choice.

Pooled over the folds, every clip gets one cross-library prediction from a model that never
heard its library, nor a recording shared with it, and that was chosen without it.
Used in: notebooks/02_preprocessing.ipynb and every notebook that trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")
CROSS_SPLITS = ("train", "val", "test", "cross_val", "cross_test")
SCORED_SPLITS = CROSS_SPLITS[1:]  # what a trained model is scored on (train only trains)
UNUSED = "unused"  # a fold's clips that share a recording with its held-out libraries
LIBRARY_COLUMN = "library"
SHARES_COLUMN = "shares"  # other libraries a clip's recordings also appear in, ";"-separated
INNER_COVERAGE = 0.9  # an inner validation library covers this share of the classes, at least


class SplitError(ValueError):
    """A split cannot be made from this clip table; the message says why and what to do."""


def assign_splits(clips: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0,
                  group_col: str = "fname") -> pd.DataFrame:
    """Return a copy of ``clips`` whose ``split`` column is 'train', 'val' or 'test'.

    ``clips`` must carry the official split ('train'/'test') in ``split``. Validation clips are
    drawn from 'train', stratified by ``label`` and grouped by ``group_col`` (clips sharing a
    group value never straddle train and val). With several libraries (the ``library`` and
    ``shares`` columns of the demo), a test clip that plays a recording another library of the
    table also holds is ``unused``: that library's copy of the recording may train, so the clip
    would test memory (the demo's in-library test loses 57 of its 540 clips this way).
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
    if {LIBRARY_COLUMN, SHARES_COLUMN} <= set(out.columns):
        trained = set(out.loc[out["split"] != "test", LIBRARY_COLUMN].astype(str))
        shares = shared_with(out)
        out.loc[(out["split"] == "test") & shares.map(lambda s: bool(s & trained)), "split"] = UNUSED
        check_no_shared_recordings(out)
    check_no_leakage(out, group_col)
    return out


def clip_mask(clips: pd.DataFrame, mask_or_split) -> np.ndarray:
    """Boolean mask over the rows of ``clips``: a split name ('train', 'val', 'test') picks the
    rows of that split, a mask is taken as it is. Used in: the ``select`` methods of
    :class:`helpers.features.FeatureSet` and :class:`helpers.pretrained.ClipEmbeddings`."""
    if isinstance(mask_or_split, str):
        if "split" not in clips:
            raise KeyError("the clip table has no 'split' column; call helpers.splits.assign_splits")
        return (clips["split"] == mask_or_split).to_numpy()
    return np.asarray(mask_or_split, dtype=bool)


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
    return table.reindex(columns=[s for s in (*CROSS_SPLITS, UNUSED) if s in table.columns])



@dataclass(frozen=True)
class Direction:
    """One leave-one-library-out direction: ``clips`` with splits as in :data:`CROSS_SPLITS`.

    ``name`` reads "A → B" (trained on A, held out B); ``held_out`` is the library whose clips
    are ``cross_val`` and ``cross_test``; ``trained_on`` the others.
    """

    name: str
    held_out: str
    trained_on: tuple[str, ...]
    clips: pd.DataFrame
    validated_on: str = ""  # nested folds: the inner validation library (cross_val)


def library_directions(clips: pd.DataFrame, group_col: str = LIBRARY_COLUMN,
                       val_fraction: float = 0.2, seed: int = 0) -> list[Direction]:
    """One :class:`Direction` per library in ``group_col`` (each held out once), sorted by name.

    ``clips`` carries the official split ('train'/'test') in ``split`` and the library of each
    clip in ``group_col`` (any column: a user's own sources work the same way). Each returned
    table holds every clip of ``clips``, in the same order, relabelled; validation is carved
    from the training libraries' training clips by :func:`assign_splits`. Raises
    :class:`SplitError` when the column is missing (FSDKaggle2018 records no library), has
    gaps, or names fewer than two libraries.
    """
    names = _check_library_column(clips, group_col, minimum=2)
    libraries = clips[group_col]
    directions = []
    for held_out in names:
        out = clips.copy()
        own = (libraries.astype(str) != held_out).to_numpy()
        own_splits = assign_splits(out[own], val_fraction=val_fraction, seed=seed)["split"]
        out.loc[own, "split"] = own_splits.to_numpy()
        out.loc[~own, "split"] = out.loc[~own, "split"].map({"train": "cross_val",
                                                             "test": "cross_test"})
        trained_on = tuple(n for n in names if n != held_out)
        directions.append(Direction(f"{' + '.join(trained_on)} → {held_out}", held_out,
                                    trained_on, out))
        check_no_leakage(out)
    return directions


def _check_library_column(clips: pd.DataFrame, group_col: str, minimum: int) -> list[str]:
    """The sorted library names of ``clips``, or a :class:`SplitError` saying what is missing."""
    if group_col not in clips.columns:
        raise SplitError(
            f"the clip table has no {group_col!r} column, so cross-library evaluation does not "
            "apply: it needs to know which sample library (source) each clip comes from. The "
            "demo set records it (in demo_sources.csv); FSDKaggle2018 does not (its clips come "
            "from thousands of Freesound uploaders and the metadata names none), so on "
            "FSDKaggle2018 only the in-library split applies. For your own data, add a "
            "sources.csv (fname,library) beside the metadata folder.")
    libraries = clips[group_col]
    if libraries.isna().any():
        missing = clips.loc[libraries.isna(), "fname"].tolist()
        raise SplitError(f"{len(missing)} clip(s) have no {group_col!r}, e.g. {missing[:3]}")
    names = sorted(libraries.astype(str).unique())
    if len(names) < minimum:
        why = ("one to test, one to choose on, one to train on" if minimum > 2 else
               "one to train on, one held out")
        raise SplitError(f"cross-library evaluation needs at least {minimum} libraries in "
                         f"{group_col!r} ({why}); found {names}")
    if not set(clips["split"]) <= {"train", "test"}:
        raise SplitError("cross-library splits expect the official splits ('train'/'test') in "
                         f"'split', got {sorted(set(clips['split']))}")
    return names


def shared_with(clips: pd.DataFrame, shares_col: str = SHARES_COLUMN) -> pd.Series:
    """Per clip, the set of other libraries its recordings also appear in (empty without the
    column)."""
    if shares_col not in clips.columns:
        return pd.Series([frozenset()] * len(clips), index=clips.index)
    return clips[shares_col].fillna("").astype(str).map(
        lambda text: frozenset(t for t in text.split(";") if t))


def inner_libraries(clips: pd.DataFrame, group_col: str = LIBRARY_COLUMN) -> dict[str, str]:
    """The inner validation library of each fold: held-out library -> validation library.

    Candidates are the libraries that cover at least :data:`INNER_COVERAGE` of the classes the
    most complete library covers (a validation library with few classes could not judge the
    rest); fold L takes the candidate that follows L in sorted order, cyclically, so the
    choosing moves from library to library.
    """
    names = sorted(clips[group_col].astype(str).unique())
    coverage = clips.groupby(clips[group_col].astype(str))["label"].nunique()
    best = int(np.ceil(INNER_COVERAGE * coverage.max()))
    candidates = [n for n in names if coverage[n] >= best]
    out = {}
    for held_out in names:
        later = [c for c in candidates if c > held_out] + [c for c in candidates if c < held_out]
        if not later:
            raise SplitError(f"no library besides {held_out!r} covers {best} classes or more, so fold "
                             f"{held_out!r} has no inner validation library")
        out[held_out] = later[0]
    return out


def library_folds(clips: pd.DataFrame, group_col: str = LIBRARY_COLUMN,
                  shares_col: str = SHARES_COLUMN, val_fraction: float = 0.2,
                  seed: int = 0) -> list[Direction]:
    """Nested leave-one-library-out: one fold (a :class:`Direction`) per library, sorted by name.

    In the fold that holds out L (``held_out``, all of its clips ``cross_test``), the inner
    validation library V (``validated_on``, all of its clips ``cross_val``) is chosen by
    :func:`inner_libraries`; the other libraries' training clips are ``train``/``val``
    (:func:`assign_splits`) and their test clips ``test``. A training library's clip whose
    ``shares_col`` names L or V (it plays a recording that L or V also holds), and a clip of V
    whose ``shares_col`` names L, is ``unused`` in that fold. ``group_col``
    may be any column (a user's own sources). Raises :class:`SplitError` for a missing column,
    gaps, fewer than three libraries, or splits other than the official 'train'/'test'.
    """
    names = _check_library_column(clips, group_col, minimum=3)
    libraries = clips[group_col].astype(str)
    shares = shared_with(clips, shares_col)
    inner = inner_libraries(clips, group_col)
    folds = []
    for held_out in names:
        validated_on = inner[held_out]
        out = clips.copy()
        is_test = (libraries == held_out).to_numpy()
        is_val = (libraries == validated_on).to_numpy()
        linked = shares.map(lambda s, a=held_out, b=validated_on: a in s or b in s).to_numpy()
        chooses_on_test = is_val & shares.map(lambda s, a=held_out: a in s).to_numpy()
        own = ~is_test & ~is_val & ~linked
        out.loc[own, "split"] = assign_splits(out[own], val_fraction=val_fraction,
                                              seed=seed)["split"].to_numpy()
        out.loc[is_val, "split"] = "cross_val"
        out.loc[is_test, "split"] = "cross_test"
        out.loc[(~is_test & ~is_val & linked) | chooses_on_test, "split"] = UNUSED
        trained_on = tuple(n for n in names if n not in (held_out, validated_on))
        folds.append(Direction(f"{held_out} (chosen on {validated_on})", held_out, trained_on,
                               out, validated_on=validated_on))
        check_no_leakage(out)
        check_no_shared_recordings(out, group_col, shares_col)
    return folds


def check_no_shared_recordings(fold: pd.DataFrame, group_col: str = LIBRARY_COLUMN,
                               shares_col: str = SHARES_COLUMN) -> None:
    """Raise if a clip that trains or is scored in-library shares a recording with a library
    that the fold validates or tests on (a recording on both sides of the split), a clip of
    the inner validation library shares one with the test library (a choice made on it), or an
    in-library test clip shares one with a library that trains (:func:`assign_splits`)."""
    trained = set(fold.loc[fold["split"].isin(["train", "val"]), group_col].astype(str))
    remembered = shared_with(fold, shares_col)[fold["split"] == "test"].map(lambda s: bool(s & trained))
    if remembered.any():
        names = fold.loc[remembered[remembered].index, "fname"].tolist()
        raise AssertionError(f"{len(names)} in-library test clip(s) share a recording with a library "
                             f"that trains, e.g. {names[:3]}")
    outside = fold.loc[fold["split"].isin(["cross_val", "cross_test"]), group_col].astype(str)
    held = set(outside.unique())
    inside = fold["split"].isin(["train", "val", "test"])
    shares = shared_with(fold, shares_col)
    crossing = shares[inside].map(lambda s: bool(s & held))
    if crossing.any():
        names = fold.loc[crossing[crossing].index, "fname"].tolist()
        raise AssertionError(f"{len(names)} training-side clip(s) share a recording with the "
                             f"held-out libraries {sorted(held)}, e.g. {names[:3]}")
    tested = set(fold.loc[fold["split"] == "cross_test", group_col].astype(str).unique())
    choosing = shares[fold["split"] == "cross_val"].map(lambda s: bool(s & tested))
    if choosing.any():
        names = fold.loc[choosing[choosing].index, "fname"].tolist()
        raise AssertionError(f"{len(names)} inner-validation clip(s) share a recording with the "
                             f"test library {sorted(tested)}, e.g. {names[:3]}")
