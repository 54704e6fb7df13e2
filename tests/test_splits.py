"""Splits are by clip: no clip (and so no window) in two splits; validation is stratified."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.splits import (
    SplitError,
    assign_splits,
    check_no_leakage,
    library_directions,
    split_summary,
)


def _clips(n_per_class=20, classes=("A", "B", "C"), n_test=5):
    rows = []
    for c in classes:
        for i in range(n_per_class):
            rows.append({"fname": f"{c}{i}.wav", "label": c,
                         "split": "test" if i < n_test else "train"})
    return pd.DataFrame(rows)


def test_validation_is_carved_from_train_and_test_is_untouched():
    clips = _clips()
    out = assign_splits(clips, val_fraction=0.2, seed=0)
    assert (out.loc[clips["split"] == "test", "split"] == "test").all()
    counts = split_summary(out)
    assert list(counts.columns) == ["train", "val", "test"]
    assert (counts["val"] == 3).all()  # 15 training clips per class, a fifth to validation
    assert (counts["test"] == 5).all()


def test_same_seed_same_split_other_seed_other_split():
    clips = _clips(40)
    a = assign_splits(clips, seed=1)
    assert a.equals(assign_splits(clips, seed=1))
    assert not a.equals(assign_splits(clips, seed=2))


def test_groups_never_straddle_train_and_val():
    clips = _clips(30, n_test=0)
    clips["group"] = [f"g{i // 3}" for i in range(len(clips))]
    out = assign_splits(clips, seed=0, group_col="group")
    assert out.groupby("group")["split"].nunique().max() == 1


def test_leak_is_detected():
    bad = pd.DataFrame({"fname": ["a", "a"], "split": ["train", "test"], "label": ["x", "x"]})
    with pytest.raises(AssertionError, match="more than one split"):
        check_no_leakage(bad)


@settings(max_examples=30, deadline=None)
@given(n_per_class=st.integers(3, 30), n_classes=st.integers(2, 6),
       frac=st.floats(0.1, 0.5), seed=st.integers(0, 10_000))
def test_every_training_clip_lands_in_exactly_one_split(n_per_class, n_classes, frac, seed):
    clips = _clips(n_per_class, tuple("ABCDEF"[:n_classes]), n_test=1)
    out = assign_splits(clips, val_fraction=frac, seed=seed)
    assert len(out) == len(clips) and out["fname"].is_unique
    assert set(out["split"]) <= {"train", "val", "test"}
    assert (out["split"] == "val").sum() >= 1
    assert np.all(out.groupby("label")["split"].apply(lambda s: (s == "train").any()))


def _libraries(n_per_class=20, classes=("A", "B", "C"), libraries=("L1", "L2")):
    rows = []
    for lib in libraries:
        for c in classes:
            for i in range(n_per_class):
                rows.append({"fname": f"{lib}{c}{i}.wav", "label": c, "library": lib,
                             "split": "test" if i < 5 else "train"})
    return pd.DataFrame(rows)


def test_each_library_is_held_out_once_and_never_trained_on():
    clips = _libraries(libraries=("L1", "L2", "L3"))
    directions = library_directions(clips)
    assert [d.held_out for d in directions] == ["L1", "L2", "L3"]
    for d in directions:
        out = d.clips
        assert list(out["fname"]) == list(clips["fname"])  # every clip, same order
        held = out["library"] == d.held_out
        assert set(out.loc[held, "split"]) == {"cross_val", "cross_test"}
        assert set(out.loc[~held, "split"]) == {"train", "val", "test"}
        # official test clips stay test clips; held-out training clips are cross-library validation
        assert (out.loc[held & (clips["split"] == "test"), "split"] == "cross_test").all()
        assert (out.loc[~held & (clips["split"] == "test"), "split"] == "test").all()
        assert d.trained_on == tuple(sorted(set(clips["library"]) - {d.held_out}))
    assert directions[0].name == "L2 + L3 → L1"


def test_cross_library_split_says_why_it_does_not_apply_to_fsdkaggle2018():
    clips = _libraries().drop(columns="library")
    with pytest.raises(SplitError, match="FSDKaggle2018 does not"):
        library_directions(clips)
    with pytest.raises(SplitError, match="at least two libraries"):
        library_directions(_libraries(libraries=("only",)))
    gaps = _libraries()
    gaps.loc[0, "library"] = None
    with pytest.raises(SplitError, match="have no 'library'"):
        library_directions(gaps)


def test_any_grouping_column_works():
    clips = _libraries().rename(columns={"library": "microphone"})
    assert len(library_directions(clips, group_col="microphone")) == 2
