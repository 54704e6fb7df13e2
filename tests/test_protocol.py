"""helpers.protocol: runs over directions and seeds, summaries by hand, paired scores, recipes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import helpers  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.augment import AugmentConfig, StaticCutMix
from helpers.augment_audio import WaveformAugment
from helpers.features import LOGMEL
from helpers.models import LOGMEL_CNN
from helpers.protocol import (
    CNNRecipe,
    PreparedCache,
    Runs,
    chapter_data,
    choose_per_fold,
    chosen_in,
    clip_scores,
    convergence_text,
    evaluate_clip_model,
    fold_choices,
    headline,
    load_fold_recipes,
    load_recipe,
    majority,
    paired,
    pooled,
    save_fold_recipes,
    save_recipe,
    summarise,
)
from helpers.training import TrainConfig

CLASSES = ["a", "b"]


def _runs(model: str, correct: dict, seeds=(0, 1)) -> Runs:
    """Runs of ``model`` whose top class is right exactly on the clips ``correct[(direction,
    split)]`` marks (a list of 0/1), the same for every seed unless a seed key is given."""
    runs, rows = Runs(pd.DataFrame(), classes=CLASSES), []
    for (direction, split), marks in correct.items():
        for seed in seeds:
            m = np.asarray(marks[seed] if isinstance(marks, dict) else marks)
            labels = np.zeros(len(m), dtype=int)
            probs = np.where(m[:, None] == 1, [[0.9, 0.1]], [[0.1, 0.9]])
            runs.probs[(model, direction, seed, split)] = probs
            runs.labels[(model, direction, split)] = labels
            runs.clips[(model, direction, split)] = np.array([f"c{i}" for i in range(len(m))])
            rows.append({"model": model, "direction": direction, "seed": seed, "split": split,
                         "accuracy": m.mean(), "macro_f1": m.mean(), "map_at_3": m.mean(),
                         "n_clips": len(m), "best_epoch": 3, "epochs_run": 5, "max_epochs": 10,
                         "train_seconds": 1.0, "params": 10, "cached": False})
    runs.table = pd.DataFrame(rows)
    return runs


def test_summary_pools_clips_over_directions_and_spreads_over_runs_by_hand():
    runs = _runs("m", {("A→B", "cross_test"): {0: [1, 1, 0, 0], 1: [1, 1, 1, 0]},
                       ("B→A", "cross_test"): {0: [1, 0], 1: [1, 1]}})
    row = summarise(runs).loc["m"]
    # pooled: seed 0 (2 + 1) / 6 = 0.5, seed 1 (3 + 2) / 6 = 5/6; the mean over seeds 2/3
    assert row["cross_test_accuracy"] == pytest.approx(2 / 3)
    # the spread is over the four (direction, seed) runs: 0.5, 0.5, 0.75, 1.0
    assert row["cross_test_accuracy_std"] == pytest.approx(np.std([0.5, 0.5, 0.75, 1.0], ddof=1))
    assert row["seeds"] == 2 and row["directions"] == 2 and row["converged"] == 1.0
    table = headline(summarise(runs))
    assert table.loc["m", "cross-library test accuracy"] == "0.667 ± 0.239"


def test_converged_and_stopped_early_are_different_questions():
    runs = _runs("m", {("A→B", "val"): [1, 0], ("B→A", "val"): [1, 1]})
    # the second training converged (best 8 of 10) but ran the whole budget of 10 epochs
    runs.table.loc[runs.table["direction"] == "B→A", ["best_epoch", "epochs_run"]] = (8, 10)
    row = summarise(runs).loc["m"]
    assert row["converged"] == 1.0 and row["stopped_early"] == 0.5
    assert convergence_text(summarise(runs)) == (
        "100% of the trainings had their best epoch before their last; early stopping ended 50% "
        "before the epoch budget, the other 50% ran the whole budget.")
    every = summarise(_runs("m", {("A→B", "val"): [1, 0]}))
    assert convergence_text(every).endswith("early stopping ended every one of them before the epoch budget.")


def test_paired_scores_align_clips_and_repeat_a_single_run():
    a = _runs("a", {("A→B", "cross_val"): [1, 0, 1], ("B→A", "cross_val"): [0, 1]})
    b = _runs("b", {("A→B", "cross_val"): [0, 0, 1], ("B→A", "cross_val"): [0, 0]}, seeds=(0,))
    runs = a + b
    seeds, units, matrix = clip_scores(runs, "a", "cross_val")
    assert seeds == [0, 1] and list(units) == ["A→B/c0", "A→B/c1", "A→B/c2", "B→A/c0", "B→A/c1"]
    A, B = paired(runs, "a", "b", "cross_val")
    assert A.shape == B.shape == (2, 5)  # b's single seed repeated for a's two
    assert (A - B).sum(axis=1).tolist() == [2.0, 2.0]


def test_paired_keeps_only_the_seeds_asked_for():
    a = _runs("a", {("A→B", "cross_val"): {0: [1, 1], 1: [1, 0], 2: [0, 0]}}, seeds=(0, 1, 2))
    b = _runs("b", {("A→B", "cross_val"): [0, 0]}, seeds=(0, 1, 2))
    A, B = paired(a + b, "a", "b", "cross_val", seeds=[1, 2])
    assert A.tolist() == [[1, 0], [0, 0]] and B.shape == (2, 2)  # seed 0's runs left out
    single = _runs("c", {("A→B", "cross_val"): [1, 1]}, seeds=(0,))  # one run: repeated, as without seeds
    A, C = paired(a + single, "a", "c", "cross_val", seeds=[1, 2])
    assert A.shape == C.shape == (2, 2)
    with pytest.raises(ValueError, match=r"'a' has no runs with seed\(s\) \[7\]"):
        paired(a + b, "a", "b", "cross_val", seeds=[7])


def test_a_clip_model_runs_in_every_direction():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    features, labels, clips = {}, {}, {}
    for direction in ("A→B", "B→A"):
        y = {s: rng.integers(0, 2, 40) for s in ("train", "val", "test", "cross_val", "cross_test")}
        features[direction] = {s: (v[:, None] * 3 + rng.normal(size=(40, 2))) for s, v in y.items()}
        labels[direction] = y
        clips[direction] = {s: np.array([f"{direction}{s}{i}" for i in range(40)]) for s in y}
    runs = evaluate_clip_model("logistic", lambda seed: LogisticRegression(random_state=seed),
                               features, labels, clips, CLASSES, seeds=[0])
    summary = summarise(runs)
    assert summary.loc["logistic", "cross_test_accuracy"] > 0.8
    assert set(runs.table["split"]) == {"val", "test", "cross_val", "cross_test"}


@pytest.mark.parametrize("recipe", [
    CNNRecipe("plain", LOGMEL, LOGMEL_CNN, TrainConfig(epochs=3)),
    CNNRecipe("static", LOGMEL, LOGMEL_CNN, TrainConfig(), AugmentConfig("cutmix", alpha=0.2), StaticCutMix(3, 0.2)),
    CNNRecipe("waveform", LOGMEL, LOGMEL_CNN, TrainConfig(), None, WaveformAugment(copies=2)),
], ids=lambda r: r.name)
def test_a_saved_recipe_is_rebuilt_exactly(recipe, tmp_path):
    path = save_recipe(recipe, tmp_path / "recipe.json", extra={"chosen_by": "cross_val"})
    assert load_recipe(path) == recipe
    with pytest.raises(FileNotFoundError, match="no saved recipe"):
        load_recipe(tmp_path / "missing.json")


def test_an_ensemble_averages_probabilities_clip_by_clip():
    from helpers.protocol import combine

    a = _runs("a", {("A→B", "cross_val"): [1, 0, 1]})
    b = _runs("b", {("A→B", "cross_val"): [0, 0, 1]}, seeds=(0,))
    both = combine(a + b, ["a", "b"], "a+b", weights=[3, 1])
    probs = both.probs[("a+b", "A→B", 1, "cross_val")]
    np.testing.assert_allclose(probs[0], 0.75 * np.array([0.9, 0.1]) + 0.25 * np.array([0.1, 0.9]))
    assert list(both.table["seed"]) == [0, 1]  # b's single run serves both of a's seeds
    assert summarise(both).loc["a+b", "cross_val_accuracy"] == pytest.approx(2 / 3)


def test_each_fold_chooses_on_its_own_validation_and_the_choice_is_tested_by_hand():
    """Fold F1 validates best with 'a', fold F2 with 'b': the chosen model is a in F1 and b in
    F2, and its cross-library test clips are exactly those models' clips there."""
    a = _runs("a", {("F1", "cross_val"): [1, 1, 1, 0], ("F1", "cross_test"): [1, 0, 0, 0],
                    ("F2", "cross_val"): [1, 0, 0, 0], ("F2", "cross_test"): [1, 1, 1, 1]})
    b = _runs("b", {("F1", "cross_val"): [1, 1, 0, 0], ("F1", "cross_test"): [1, 1, 1, 1],
                    ("F2", "cross_val"): [1, 1, 1, 1], ("F2", "cross_test"): [0, 0, 0, 0]})
    chosen, choices = choose_per_fold(a + b, ["a", "b"], "chosen")
    assert dict(zip(choices["direction"], choices["chosen"])) == {"F1": "a", "F2": "b"}
    assert list(choices.columns) == ["direction", "chosen", "a", "b"]
    row = summarise(chosen).loc["chosen"]
    assert row["cross_test_accuracy"] == pytest.approx((0.25 + 0.0) / 2)  # a's F1, b's F2
    assert row["cross_val_accuracy"] == pytest.approx((0.75 + 1.0) / 2)
    assert chosen.probs[("chosen", "F2", 0, "cross_test")] is b.probs[("b", "F2", 0, "cross_test")]
    tie, _ = choose_per_fold(a + a.rename("a", "c"), ["c", "a"], "tie")
    assert set(tie.table["direction"]) == {"F1", "F2"}
    assert tie.probs[("tie", "F1", 0, "cross_val")] is not None
    with pytest.raises(KeyError, match="no 'cross_val' runs"):
        choose_per_fold(a, ["a", "zzz"], "x")


def test_pooled_scores_weigh_every_clip_once():
    runs = _runs("m", {("big", "cross_test"): [1, 1, 1, 1, 1, 1], ("small", "cross_test"): [0, 0]})
    table = pooled(runs, "m")
    assert list(table.index) == [0, 1]
    assert table.loc[0, "accuracy"] == pytest.approx(6 / 8)  # the mean over folds would say 0.5
    assert table.loc[0, "n_clips"] == 8 and table.loc[0, "directions"] == 2
    with pytest.raises(KeyError, match="no runs"):
        pooled(runs, "m", split="test")


def test_fold_choices_keep_each_fold_and_a_majority_with_ties_to_the_earlier_candidate():
    choices = pd.DataFrame({"direction": ["A", "B", "C", "D"], "chosen": ["y", "x", "y", "x"],
                            "x": [0.1, 0.9, 0.2, 0.8], "y": [0.2, 0.1, 0.3, 0.1]})
    assert majority(choices) == "x"  # 2 against 2: the earlier candidate column
    assert majority(choices, ["y", "x"]) == "y"
    record = fold_choices(choices.iloc[:3])
    assert record == {"per_fold": {"A": "y", "B": "x", "C": "y"}, "chosen": "y"}
    assert chosen_in(record, "B") == "x" and chosen_in(record, "unknown fold") == "y"


def test_fold_recipes_round_trip(tmp_path):
    from helpers.features import LOGMEL
    from helpers.models import LOGMEL_CNN

    a = CNNRecipe("a", LOGMEL, LOGMEL_CNN, TrainConfig(epochs=3))
    b = CNNRecipe("b", LOGMEL, LOGMEL_CNN, TrainConfig(epochs=5))
    save_fold_recipes(tmp_path / "r.json", a, {"L1": a, "L2": b}, extra={"why": "test"})
    chosen, per_fold = load_fold_recipes(tmp_path / "r.json")
    assert chosen == a and per_fold == {"L1": a, "L2": b}
    save_recipe(b, tmp_path / "plain.json")
    assert load_fold_recipes(tmp_path / "plain.json") == (b, {})


def _tiny_dataset(root) -> None:
    """A dataset in FSDKaggle2018's layout with a library per clip (demo_sources.csv): two
    classes, four libraries, 4 training and 2 test clips per class and library; empty audio
    files (load_clips only checks that they exist)."""
    from helpers.data import AUDIO_TEST_DIR, AUDIO_TRAIN_DIR, META_DIR, TEST_CSV, TRAIN_CSV

    rows = {"train": [], "test": []}
    for library in "abcd":
        for label in ("Cello", "Flute"):
            for split, n in (("train", 4), ("test", 2)):
                rows[split] += [(f"{library}_{label}_{split}{i}.wav", label, library) for i in range(n)]
    for split, folder, name in (("train", AUDIO_TRAIN_DIR, TRAIN_CSV), ("test", AUDIO_TEST_DIR, TEST_CSV)):
        (root / folder).mkdir(parents=True)
        for fname, _, _ in rows[split]:
            (root / folder / fname).touch()
        table = pd.DataFrame({"fname": [r[0] for r in rows[split]], "label": [r[1] for r in rows[split]],
                              "freesound_id": 1, "license": "CC0"})
        table = table.assign(manually_verified=1) if split == "train" else table.assign(usage="Public")
        (root / META_DIR).mkdir(exist_ok=True)
        table.to_csv(root / META_DIR / name, index=False)
    pd.DataFrame([(r[0], r[2]) for split in rows for r in rows[split]],
                 columns=["fname", "library"]).to_csv(root / "demo_sources.csv", index=False)


def test_chapter_data_is_the_clips_the_folds_and_a_cache_of_them(tmp_path, monkeypatch):
    from helpers.data import dataset_root, load_clips
    from helpers.splits import library_folds

    monkeypatch.setenv("HELPERS_DATA_DIR", str(tmp_path))
    _tiny_dataset(dataset_root("demo"))
    classes = ["Cello", "Flute"]
    chapter = chapter_data("demo", classes, verified_only=False, max_clips_per_class=12, split_seed=3,
                           val_fraction=0.25, max_folds=2)
    clips = load_clips(dataset_root("demo"), subset=classes, max_clips_per_class=12, seed=3)
    pd.testing.assert_frame_equal(chapter.clips, clips)
    assert len(clips) == 2 * 12 + 2 * 8  # the cap: 12 of a class's 16 training clips, drawn with split_seed
    by_hand = library_folds(clips, val_fraction=0.25, seed=3)
    assert [f.name for f in chapter.folds] == [f.name for f in by_hand[:2]] and len(by_hand) == 4
    for fold, expected in zip(chapter.folds, by_hand):
        pd.testing.assert_frame_equal(fold.clips, expected.clips)
    assert isinstance(chapter.data, PreparedCache) and chapter.data.directions == chapter.folds
    assert chapter.data._data == {}  # nothing extracted until a chapter asks for a fold's windows
    assert len(chapter_data("demo", classes).folds) == 4  # max_folds None: every library once

