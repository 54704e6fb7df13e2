"""One experiment's data, ready to train, and the train-then-score loop every chapter repeats.

``prepare`` turns a clip table (with train/val/test splits) into standardised feature windows;
the standardiser is fit on the training windows only. ``train_cnn`` and ``score`` keep the
rules of honest evaluation in one place: checkpoints are chosen on validation, test is only
scored, and scores are clip-level (windows averaged per clip).

Trained runs are cached beside the features (``<cache>/runs/``): a run is identified by a hash
of the training and validation windows, the network, the training settings, the augmentation
and the source of the code that trains (``models``, ``training``, ``augment``), so a later
chapter that repeats an identical training (notebook 04's "none", notebook 05's baseline,
notebook 07's MFCC network) loads notebook 03's weights instead of training again, and a second
run of the chain skips every training it already did. Training is
deterministic, so a cached run equals a fresh one; ``HELPERS_RUN_CACHE=0`` switches the cache off.
Used in: notebooks 03-08.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.features import FeatureConfig, FeatureSet
from helpers.paths import cache_dir

RUN_CODE = ("models.py", "training.py", "augment.py")  # the source a cached run depends on


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

    @cached_property
    def fingerprint(self) -> str:
        """Hash of what training sees: classes, train and validation windows and labels."""
        digest = hashlib.sha256(json.dumps(self.classes).encode())
        for split in ("train", "val"):
            X, y = self.xy(split)
            for array in (np.ascontiguousarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)):
                digest.update(str(array.shape).encode())
                digest.update(array.tobytes())
        return digest.hexdigest()[:20]


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


def run_cache_enabled() -> bool:
    """False when ``HELPERS_RUN_CACHE`` is ``0``/``false``/``no`` (every run then trains)."""
    return os.environ.get("HELPERS_RUN_CACHE", "1").strip().lower() not in ("0", "false", "no")


def run_key(prepared: Prepared, cnn_config, train_config, augment=None) -> str:
    """The cache key of one training: data, network, settings, augmentation and code."""
    import tensorflow as tf

    helpers_dir = Path(__file__).parent
    code = hashlib.sha256(b"".join((helpers_dir / name).read_bytes() for name in RUN_CODE))
    if augment is not None and getattr(augment, "kind", "none") == "none":
        augment = None  # "none" and no augmentation train identically
    parts = {
        "data": prepared.fingerprint,
        "cnn": dataclasses.asdict(cnn_config),
        "train": dataclasses.asdict(train_config),
        "augment": None if augment is None else dataclasses.asdict(augment),
        "code": code.hexdigest()[:20],
        "tensorflow": tf.__version__,
    }
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _load_run(directory: Path, prepared: Prepared, cnn_config):
    """``(model, TrainResult)`` from a cache entry, or None when absent or unreadable."""
    from helpers.models import build_cnn
    from helpers.training import TrainResult

    try:
        meta = json.loads((directory / "run.json").read_text())
        with np.load(directory / "weights.npz") as npz:
            weights = [npz[f"w{i}"] for i in range(len(npz.files))]
        model = build_cnn(prepared.input_shape, len(prepared.classes), cnn_config)
        model.set_weights(weights)
        return model, TrainResult(**meta, cached=True)
    except Exception:  # a damaged entry is treated as missing and trained again
        return None


def _save_run(directory: Path, model, result) -> None:
    from helpers.models import replace_dir_atomically

    def fill(tmp: Path) -> None:
        np.savez(tmp / "weights.npz", **{f"w{i}": w for i, w in enumerate(model.get_weights())})
        meta = {k: v for k, v in dataclasses.asdict(result).items() if k != "cached"}
        (tmp / "run.json").write_text(json.dumps(meta) + "\n")

    replace_dir_atomically(directory, fill)


def train_cnn(prepared: Prepared, cnn_config, train_config, augment=None, verbose: int = 0):
    """Build and fit a CNN on the train split, choosing the checkpoint on val.

    Returns ``(model, TrainResult)``. An identical earlier training is loaded from the run
    cache instead (``TrainResult.cached`` is then True and ``seconds`` is the original
    training time); see the module docstring.
    """
    from helpers.models import build_cnn
    from helpers.training import fit, set_seed

    directory = cache_dir() / "runs" / run_key(prepared, cnn_config, train_config, augment)
    if run_cache_enabled() and directory.is_dir():
        loaded = _load_run(directory, prepared, cnn_config)
        if loaded is not None:
            return loaded
    set_seed(train_config.seed)
    model = build_cnn(prepared.input_shape, len(prepared.classes), cnn_config)
    X_train, y_train = prepared.xy("train")
    X_val, y_val = prepared.xy("val")
    result = fit(model, X_train, y_train, X_val, y_val, len(prepared.classes), train_config,
                 augment=augment, verbose=verbose)
    if run_cache_enabled():
        _save_run(directory, model, result)
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
           "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "cached": result.cached}
    return (row, model, result) if return_model else row
