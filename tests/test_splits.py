"""Splits are by clip: no clip (and so no window) in two splits; validation is stratified."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.splits import (
    SHARES_COLUMN,
    UNUSED,
    SplitError,
    assign_splits,
    check_no_leakage,
    check_no_shared_recordings,
    library_directions,
    library_folds,
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
    with pytest.raises(SplitError, match="at least 2 libraries"):
        library_directions(_libraries(libraries=("only",)))
    gaps = _libraries()
    gaps.loc[0, "library"] = None
    with pytest.raises(SplitError, match="have no 'library'"):
        library_directions(gaps)


def test_any_grouping_column_works():
    clips = _libraries().rename(columns={"library": "microphone"})
    assert len(library_directions(clips, group_col="microphone")) == 2


# --- nested leave-one-library-out ------------------------------------------------------------

def test_nested_folds_test_each_library_once_and_choose_on_another():
    clips = _libraries(libraries=("L1", "L2", "L3", "L4"))
    folds = library_folds(clips)
    assert [f.held_out for f in folds] == ["L1", "L2", "L3", "L4"]
    assert [f.validated_on for f in folds] == ["L2", "L3", "L4", "L1"]  # rotated
    for f in folds:
        out = f.clips
        assert list(out["fname"]) == list(clips["fname"])
        lib = out["library"]
        assert set(out.loc[lib == f.held_out, "split"]) == {"cross_test"}  # all its clips
        assert set(out.loc[lib == f.validated_on, "split"]) == {"cross_val"}
        rest = ~lib.isin([f.held_out, f.validated_on])
        assert set(out.loc[rest, "split"]) == {"train", "val", "test"}
        assert (out.loc[rest & (clips["split"] == "test"), "split"] == "test").all()
        assert f.trained_on == tuple(sorted(set(clips["library"]) - {f.held_out, f.validated_on}))
    # pooled over the folds, every clip is tested cross-library exactly once
    tested = pd.concat([f.clips.loc[f.clips["split"] == "cross_test", "fname"] for f in folds])
    assert sorted(tested) == sorted(clips["fname"])


def test_inner_validation_library_covers_the_most_classes():
    clips = _libraries(libraries=("L1", "L2", "L3"))
    small = _libraries(classes=("A",), libraries=("drums",))
    folds = library_folds(pd.concat([clips, small], ignore_index=True))
    assert "drums" not in {f.validated_on for f in folds}
    assert {f.held_out: f.validated_on for f in folds}["drums"] == "L1"


def test_a_shared_recording_never_sits_on_both_sides_of_a_split():
    """L3's class-A clips play a recording that L1 also holds: in every fold that tests or
    validates on L1 they are unused; elsewhere they train (and L1's clips likewise)."""
    clips = _libraries(libraries=("L1", "L2", "L3", "L4"))
    a1 = (clips["library"] == "L1") & (clips["label"] == "A")
    a3 = (clips["library"] == "L3") & (clips["label"] == "A")
    clips[SHARES_COLUMN] = ""
    clips.loc[a1, SHARES_COLUMN] = "L3"
    clips.loc[a3, SHARES_COLUMN] = "L1"
    for f in library_folds(clips):
        out, held = f.clips, {f.held_out, f.validated_on}
        sides = {"cross_val", "cross_test"}
        if "L1" in held and "L3" not in held:
            assert set(out.loc[a3, "split"]) == {UNUSED}
        if "L3" in held and "L1" not in held:
            assert set(out.loc[a1, "split"]) == {UNUSED}
        if not held & {"L1", "L3"}:  # both train: their test clips would test memory
            assert set(out.loc[(a1 | a3) & (clips["split"] == "train"), "split"]) <= {"train", "val"}
            assert set(out.loc[(a1 | a3) & (clips["split"] == "test"), "split"]) == {UNUSED}
        assert not (out.loc[a1, "split"].isin(sides).any() and
                    out.loc[a3, "split"].isin(["train", "val", "test"]).any())
        check_no_shared_recordings(out)
    bad = library_folds(clips)[0].clips  # L1 held out: force L3's shared clips into training
    bad.loc[a3, "split"] = "train"
    with pytest.raises(AssertionError, match="share a recording"):
        check_no_shared_recordings(bad)


def test_an_in_library_test_clip_never_plays_a_recording_that_trains():
    """With every library in training (assign_splits), L1's and L3's class-A test clips play a
    recording the other library trains on: they are unused; their training clips still train,
    and a table without the library columns is split as before."""
    clips = _libraries(libraries=("L1", "L2", "L3"))
    plain = assign_splits(clips, seed=3)
    a13 = clips["library"].isin(["L1", "L3"]) & (clips["label"] == "A")
    clips[SHARES_COLUMN] = ""
    clips.loc[a13, SHARES_COLUMN] = clips.loc[a13, "library"].map({"L1": "L3", "L3": "L1"})
    out = assign_splits(clips, seed=3)
    official_test = clips["split"] == "test"
    assert set(out.loc[a13 & official_test, "split"]) == {UNUSED}
    assert (out.loc[~(a13 & official_test), "split"] == plain.loc[~(a13 & official_test), "split"]).all()
    assert UNUSED not in set(plain["split"])
    only_l1 = assign_splits(clips[clips["library"] != "L3"], seed=3)  # L3 gone: nothing to remember
    assert UNUSED not in set(only_l1["split"])
    bad = out.copy()
    bad.loc[a13 & official_test, "split"] = "test"
    with pytest.raises(AssertionError, match="in-library test clip"):
        check_no_shared_recordings(bad)


def test_an_inner_validation_clip_sharing_a_recording_with_the_test_library_chooses_nothing():
    """The fold that tests on L1 chooses on L2; L2's clips that play one of L1's recordings
    would let L1 take part in the choice, so they are unused there (and only there)."""
    clips = _libraries(libraries=("L1", "L2", "L3", "L4"))
    a1 = (clips["library"] == "L1") & (clips["label"] == "A")
    a2 = (clips["library"] == "L2") & (clips["label"] == "A")
    clips[SHARES_COLUMN] = ""
    clips.loc[a1, SHARES_COLUMN] = "L2"
    clips.loc[a2, SHARES_COLUMN] = "L1"
    fold = {f.held_out: f for f in library_folds(clips)}["L1"]
    assert fold.validated_on == "L2"
    assert set(fold.clips.loc[a2, "split"]) == {UNUSED}
    others = (fold.clips["library"] == "L2") & ~a2
    assert set(fold.clips.loc[others, "split"]) == {"cross_val"}
    bad = fold.clips.copy()
    bad.loc[a2, "split"] = "cross_val"
    with pytest.raises(AssertionError, match="inner-validation clip"):
        check_no_shared_recordings(bad)


def test_nested_folds_need_three_libraries_and_say_why():
    with pytest.raises(SplitError, match="at least 3 libraries"):
        library_folds(_libraries())
    with pytest.raises(SplitError, match="FSDKaggle2018 does not"):
        library_folds(_libraries().drop(columns="library"))
    folds = library_folds(_libraries(libraries=("a", "b", "c")).rename(columns={"library": "mic"}),
                          group_col="mic")
    assert [f.held_out for f in folds] == ["a", "b", "c"]
