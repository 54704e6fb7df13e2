"""helpers.evaluation: clip aggregation, MAP@k against hand-computed values, metrics, plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from helpers.evaluation import (  # noqa: E402
    aggregate_clips,
    clip_metrics,
    evaluate_windows,
    map_at_k,
    per_class_report,
    plot_confusion,
    results_table,
)

# One clip per row, 5 classes; the true class (0) sits at rank 1, 2, 3 and 4.
PROBS = np.array([
    [0.50, 0.20, 0.10, 0.10, 0.10],  # rank 1
    [0.30, 0.40, 0.10, 0.10, 0.10],  # rank 2
    [0.20, 0.40, 0.30, 0.05, 0.05],  # rank 3
    [0.10, 0.40, 0.30, 0.15, 0.05],  # rank 4
])
TRUE = np.zeros(4, dtype=int)


def test_map_at_3_hand_computed():
    assert map_at_k(TRUE, PROBS, k=3) == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    for row, expected in enumerate([1, 1 / 2, 1 / 3, 0]):
        assert map_at_k(TRUE[row:row + 1], PROBS[row:row + 1], k=3) == pytest.approx(expected)


def test_map_at_k_larger_k_and_bounds():
    assert map_at_k(TRUE, PROBS, k=5) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert map_at_k(np.arange(5), np.eye(5), k=3) == 1.0  # perfect
    assert map_at_k(np.zeros(3, int), np.tile([0.0, 0.2, 0.3, 0.5], (3, 1)), k=3) == 0.0


def test_map_ties_broken_by_class_index():
    uniform = np.full((2, 4), 0.25)
    # all tied: class 0 ranks first, class 2 third
    assert map_at_k(np.array([0, 2]), uniform, k=3) == pytest.approx((1 + 1 / 3) / 2)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 30), st.integers(2, 8), st.integers(0, 10_000))
def test_map_at_1_is_accuracy_and_in_unit_interval(n, n_classes, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(n_classes), size=n)
    y = rng.integers(0, n_classes, size=n)
    accuracy = np.mean(probs.argmax(axis=1) == y)
    assert map_at_k(y, probs, k=1) == pytest.approx(accuracy)
    m3 = map_at_k(y, probs, k=3)
    assert 0.0 <= map_at_k(y, probs, k=1) <= m3 <= 1.0


def test_map_rejects_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        map_at_k(TRUE, PROBS, k=0)
    with pytest.raises(ValueError, match="labels"):
        map_at_k(np.array([0, 0, 0, 7]), PROBS)
    with pytest.raises(ValueError, match="empty"):
        map_at_k(np.array([], int), np.zeros((0, 3)))


def test_aggregate_clips_means_in_first_appearance_order():
    probs = np.array([[1.0, 0.0], [0.2, 0.8], [0.0, 1.0], [0.6, 0.4], [0.3, 0.7]])
    ids = ["b", "a", "b", "c", "a"]
    clips, clip_probs = aggregate_clips(probs, ids)
    assert list(clips) == ["b", "a", "c"]
    np.testing.assert_allclose(clip_probs, [[0.5, 0.5], [0.25, 0.75], [0.6, 0.4]])
    np.testing.assert_allclose(clip_probs.sum(axis=1), 1.0)


def test_aggregate_single_window_clip_unchanged():
    probs = np.array([[0.1, 0.7, 0.2]])
    clips, clip_probs = aggregate_clips(probs, np.array(["x"]))
    assert list(clips) == ["x"]
    np.testing.assert_allclose(clip_probs, probs)


def test_aggregate_rejects_mismatched_ids():
    with pytest.raises(ValueError, match="clip ids"):
        aggregate_clips(np.ones((3, 2)) / 2, ["a", "b"])


def test_clip_metrics_ranges_and_values():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=40)
    y = rng.integers(0, 4, size=40)
    m = clip_metrics(y, probs)
    assert set(m) == {"accuracy", "macro_precision", "macro_recall", "macro_f1", "map_at_3",
                      "n_clips"}
    assert m["n_clips"] == 40
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "map_at_3"):
        assert 0.0 <= m[key] <= 1.0
    assert m["map_at_3"] >= m["accuracy"]
    perfect = clip_metrics(np.arange(4), np.eye(4))
    assert all(perfect[k] == 1.0 for k in ("accuracy", "macro_f1", "map_at_3"))


def test_evaluate_windows_aggregates_then_scores():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    ids = ["a", "a", "b", "b"]
    # clip a: mean (0.65, 0.35) -> class 0 (correct); clip b -> class 1 (true 0: wrong, rank 2)
    m = evaluate_windows(probs, ids, {"a": 0, "b": 0})
    assert m["n_clips"] == 2
    assert m["accuracy"] == 0.5
    assert m["map_at_3"] == pytest.approx((1 + 0.5) / 2)
    assert evaluate_windows(probs, ids, pd.Series({"b": 1, "a": 0}))["accuracy"] == 1.0
    with pytest.raises(KeyError, match="no label"):
        evaluate_windows(probs, ids, {"a": 0})


def test_per_class_report():
    report = per_class_report(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), ["x", "y", "z"])
    assert list(report.index) == ["x", "y", "z"]
    assert list(report.columns) == ["precision", "recall", "f1", "support"]
    assert report.loc["x", "recall"] == 0.5
    assert report.loc["y", "precision"] == pytest.approx(1 / 3)
    assert report.loc["z", "f1"] == 0.0
    assert report["support"].tolist() == [2, 1, 1]


def test_plot_confusion_labels_and_normalisation():
    ax = plot_confusion(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), ["x", "y", "z"])
    assert ax.get_xlabel() == "predicted class"
    assert ax.get_ylabel() == "true class"
    assert ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z"]
    mesh = ax.collections[0]
    assert mesh.colorbar.ax.get_ylabel() == "share of true class"
    values = np.asarray(mesh.get_array()).reshape(3, 3)
    np.testing.assert_allclose(values.sum(axis=1), 1.0)
    raw = plot_confusion(np.array([0, 0, 1]), np.array([0, 1, 1]), ["x", "y"], normalize=False)
    assert raw.collections[0].colorbar.ax.get_ylabel() == "clips"
    plt.close("all")


def test_results_table_orders_columns():
    rows = [{"extra": 1, "map_at_3": 0.5, "accuracy": 0.4, "model": "cnn"},
            {"model": "svm", "accuracy": 0.6, "map_at_3": 0.7, "extra": 2}]
    table = results_table(rows)
    assert list(table.columns) == ["model", "accuracy", "map_at_3", "extra"]
    assert results_table(rows, sort_by="map_at_3")["model"].tolist() == ["svm", "cnn"]
