"""One experiment's data, ready to train, and the train-then-score loop every chapter repeats.

``prepare`` turns a clip table (with train/val/test splits) into standardised feature windows;
the standardiser is fit on the training windows only. ``train_cnn`` and ``score`` keep the
rules of honest evaluation in one place: checkpoints are chosen on validation, test is only
scored, and scores are clip-level (windows averaged per clip).
Used in: notebooks 03-08.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from helpers.features import FeatureConfig, FeatureSet


@dataclass(frozen=True)
class Prepared:
    """Standardised windows per split, the class list and the standardiser."""

    classes: list[str]
    feature_config: FeatureConfig
    splits: dict[str, FeatureSet]
    mean: np.ndarray
    std: np.ndarray

    def xy(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Windows ``(n, bins, frames, 1)`` and their class indices ``(n,)`` of one split."""
        fs = self.splits[split]
        return fs.X, fs.window_labels(self.classes)

    def clip_y(self, split: str) -> np.ndarray:
        """Class index of each clip of a split ``(n_clips,)``, in window first-appearance order."""
        return self.splits[split].clip_labels(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.feature_config.input_shape


def prepare(clips: pd.DataFrame, feature_config: FeatureConfig, progress: bool = True) -> Prepared:
    """Extract (or load cached) windows for ``clips`` and standardise them with train statistics.

    ``clips`` needs ``fname, path, label, split`` with split in train/val/test
    (see :func:`helpers.splits.assign_splits`).
    """
    from helpers.data import classes_of
    from helpers.features import extract_features, fit_standardizer, standardize

    fs = extract_features(clips, feature_config, progress=progress)
    parts = {s: fs.select(s) for s in ("train", "val", "test")}
    empty = [s for s, p in parts.items() if len(p.X) == 0]
    if empty:
        raise ValueError(f"no usable windows in split(s) {empty}: too few clips?")
    mean, std = fit_standardizer(parts["train"].X)
    parts = {s: replace(p, X=standardize(p.X, mean, std)) for s, p in parts.items()}
    return Prepared(classes=classes_of(fs.clips), feature_config=feature_config, splits=parts,
                    mean=mean, std=std)


def train_cnn(prepared: Prepared, cnn_config, train_config, augment=None, verbose: int = 0):
    """Build and fit a CNN on the train split, choosing the checkpoint on val.

    Returns ``(model, TrainResult)``.
    """
    from helpers.models import build_cnn
    from helpers.training import fit, set_seed

    set_seed(train_config.seed)
    model = build_cnn(prepared.input_shape, len(prepared.classes), cnn_config)
    X_train, y_train = prepared.xy("train")
    X_val, y_val = prepared.xy("val")
    result = fit(model, X_train, y_train, X_val, y_val, len(prepared.classes), train_config,
                 augment=augment, verbose=verbose)
    return model, result


def clip_probabilities(model, prepared: Prepared, split: str = "test") -> np.ndarray:
    """Clip probabilities ``(n_clips, n_classes)`` of a split, windows averaged per clip."""
    from helpers.evaluation import aggregate_clips
    from helpers.training import predict_windows

    fs = prepared.splits[split]
    clip_ids, probs = aggregate_clips(predict_windows(model, fs.X), fs.clip_ids)
    assert list(clip_ids) == list(fs.clips["fname"]), "clip order differs from the clip table"
    return probs


def score(model, prepared: Prepared, split: str = "test") -> dict:
    """Clip-level accuracy, macro precision/recall/F1 and MAP@3 on a split."""
    from helpers.evaluation import clip_metrics

    return clip_metrics(prepared.clip_y(split), clip_probabilities(model, prepared, split))


def run_variant(prepared: Prepared, name: str, cnn_config, train_config, augment=None,
                return_model: bool = False):
    """Train one variant with one seed and return a results row (test and val scores, size, time).

    With ``return_model`` the result is ``(row, model, TrainResult)``.
    """
    from helpers.models import count_params

    model, result = train_cnn(prepared, cnn_config, train_config, augment=augment)
    test = score(model, prepared, "test")
    val = score(model, prepared, "val")
    row = {"model": name, "seed": train_config.seed, **test,
           "val_accuracy": val["accuracy"], "val_map_at_3": val["map_at_3"],
           "params": count_params(model), "train_seconds": result.seconds,
           "best_epoch": result.best_epoch, "epochs_run": result.epochs_run}
    return (row, model, result) if return_model else row
