"""Evaluation: windows -> clips, MAP@3 and the usual metrics, per-class report, confusion plot.

A clip yields one or more feature windows; the model scores windows, and every metric here is
computed per clip on the mean of its windows' probabilities (a clip is the unit the dataset
labels). Used in: notebooks/03_baselines.ipynb and every later notebook that scores a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.plots import new_axes


def aggregate_clips(window_probs: np.ndarray, clip_ids: Sequence[str]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Mean window probability per clip.

    ``window_probs`` ``(n_windows, n_classes)``, ``clip_ids`` ``(n_windows,)``. Returns the clip
    ids in order of first appearance ``(n_clips,)`` and their probabilities
    ``(n_clips, n_classes)``.
    """
    probs = np.asarray(window_probs, dtype=np.float64)
    ids = np.asarray(clip_ids)
    if probs.ndim != 2:
        raise ValueError(f"window_probs must be (n_windows, n_classes), got shape {probs.shape}")
    if len(ids) != len(probs):
        raise ValueError(f"{len(probs)} windows but {len(ids)} clip ids")
    codes, uniques = pd.factorize(ids, sort=False)
    sums = np.zeros((len(uniques), probs.shape[1]))
    np.add.at(sums, codes, probs)
    counts = np.bincount(codes, minlength=len(uniques))
    return np.asarray(uniques), sums / counts[:, None]


def _check_scores(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or y_true.shape != (len(probs),):
        raise ValueError(f"need y_true (n,) and probs (n, n_classes); got {y_true.shape} "
                         f"and {probs.shape}")
    if len(y_true) == 0:
        raise ValueError("cannot score an empty set of clips")
    if y_true.min() < 0 or y_true.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in [0, {probs.shape[1]}), got "
                         f"{y_true.min()}..{y_true.max()}")
    return y_true, probs


def map_at_k(y_true: np.ndarray, probs: np.ndarray, k: int = 3) -> float:
    """Mean average precision at ``k`` (DCASE 2018 Task 2 / Kaggle Freesound audio tagging).

    With one true label per clip, the definition is short::

        for each clip: rank the classes by probability (ties: lower class index first)
            score = 1 / rank of the true class   if rank <= k
                    0                            otherwise
        MAP@k = mean of the scores over clips

    So a clip scores 1, 1/2, 1/3 or 0 for k=3, and MAP@1 is accuracy.
    ``y_true`` ``(n,)`` class indices, ``probs`` ``(n, n_classes)``; returns a value in [0, 1].
    """
    y_true, probs = _check_scores(y_true, probs)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top_k = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # stable: ties by class index
    hits = top_k == y_true[:, None]  # at most one True per row
    scores = (hits / np.arange(1, top_k.shape[1] + 1)).sum(axis=1)
    return float(scores.mean())


def clip_correct(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per clip: 1.0 when the most probable class is the true one, else 0.0 ``(n,)``."""
    y_true, probs = _check_scores(y_true, probs)
    return (np.argsort(-probs, axis=1, kind="stable")[:, 0] == y_true).astype(np.float64)


def clip_precision_at_3(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per clip: its MAP@3 term, 1 / rank of the true class if within the top 3, else 0 ``(n,)``.

    The mean of this vector is :func:`map_at_k` with k = 3.
    """
    y_true, probs = _check_scores(y_true, probs)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :3]
    return ((top == y_true[:, None]) / np.arange(1, top.shape[1] + 1)).sum(axis=1)


def full_probabilities(model, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``model.predict_proba(X)`` as ``(n, n_classes)``: a scikit-learn model fit without some
    class has no column for it, which gets probability 0 here."""
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    known = np.asarray(getattr(model, "classes_", np.arange(proba.shape[1])), dtype=int)
    out = np.zeros((len(proba), n_classes))
    out[:, known] = proba
    return out


def clip_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, macro precision/recall/F1 and MAP@3 of clip probabilities ``(n, n_classes)``.

    Macro averages run over the classes present in ``y_true`` or the predictions
    (``zero_division=0``). Returns floats plus ``n_clips``.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    y_true, probs = _check_scores(y_true, probs)
    y_pred = probs.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "map_at_3": map_at_k(y_true, probs, k=3),
        "n_clips": int(len(y_true)),
    }


def clip_labels_for(clip_ids: Sequence[str], clip_labels: Mapping[str, int] | pd.Series
                    ) -> np.ndarray:
    """Look up each clip's class index; a clear ``KeyError`` lists clips without a label."""
    labels = clip_labels if isinstance(clip_labels, pd.Series) else pd.Series(dict(clip_labels))
    clip_ids = pd.Index(clip_ids)
    missing = list(clip_ids[~clip_ids.isin(labels.index)])
    if missing:
        raise KeyError(f"{len(missing)} clip(s) have no label, e.g. {missing[:3]}")
    return labels.loc[clip_ids].to_numpy(dtype=np.int64)


def evaluate_windows(window_probs: np.ndarray, window_clip_ids: Sequence[str],
                     clip_labels: Mapping[str, int] | pd.Series) -> dict:
    """Aggregate window probabilities to clips, then :func:`clip_metrics`.

    ``clip_labels`` maps clip id -> class index (dict or Series indexed by clip id).
    """
    clip_ids, clip_probs = aggregate_clips(window_probs, window_clip_ids)
    return clip_metrics(clip_labels_for(clip_ids, clip_labels), clip_probs)


def per_class_report(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]
                     ) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (rows in ``classes`` order)."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    return pd.DataFrame({"precision": precision, "recall": recall, "f1": f1,
                         "support": support.astype(int)},
                        index=pd.Index(list(classes), name="class"))


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], ax=None,
                   normalize: bool = True, title: str = "Confusion matrix (test clips)"):
    """Confusion matrix heatmap: rows true class, columns predicted class.

    With ``normalize`` each row is divided by its count, so a cell is the share of the true
    class predicted as that column (the diagonal is per-class recall). Returns the axes.
    Used in: notebooks/03_baselines.ipynb, 06_pruning.ipynb.
    """
    import seaborn as sns
    from sklearn.metrics import confusion_matrix

    n = len(classes)
    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(n)).astype(float)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.45 * n + 2.5)
    _, ax = new_axes(ax, figsize=(size + 1, size))
    sns.heatmap(matrix, ax=ax, annot=n <= 20, fmt=".2f" if normalize else ".0f",
                annot_kws={"fontsize": 7}, cmap="Blues", square=True,
                vmin=0, vmax=1 if normalize else None, xticklabels=list(classes),
                yticklabels=list(classes),
                cbar_kws={"label": "share of true class" if normalize else "clips"})
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=45)
    ax.tick_params(axis="y", labelrotation=0)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    return ax


# Preferred column order of results tables: what was run, then the metrics, then the cost.
RESULT_COLUMNS: tuple[str, ...] = (
    "model", "features", "augment", "split", "seed",
    "accuracy", "macro_precision", "macro_recall", "macro_f1", "map_at_3", "n_clips",
    "val_accuracy", "val_map_at_3",
    "params", "epochs_run", "best_epoch", "train_seconds", "seconds",
)


def results_table(rows: list[dict], sort_by: str | None = None) -> pd.DataFrame:
    """One row per run, columns in :data:`RESULT_COLUMNS` order, then any others as seen.

    ``sort_by``: a column to sort by, best (largest) first. Used in: no notebook or helpers
    module (the notebooks tabulate runs with :func:`helpers.protocol.summarise`); kept for
    tabulating one's own runs and covered by tests/test_evaluation.py.
    """
    table = pd.DataFrame(rows)
    known = [c for c in RESULT_COLUMNS if c in table.columns]
    table = table[known + [c for c in table.columns if c not in known]]
    if sort_by is not None:
        table = table.sort_values(sort_by, ascending=False, kind="stable")
    return table.reset_index(drop=True)
