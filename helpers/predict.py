"""``python -m helpers predict``: label new audio files with a saved model.

Prints CSV ``path,top1,top1_p,top2,top2_p,top3,top3_p`` (one row per readable file) to stdout.
A clip of any length is cut into windows and the window probabilities are averaged, exactly
as in the evaluation. Unreadable files are reported on stderr and the exit status is 1, but
every other file is still predicted.
Used in: notebooks/03_baselines.ipynb (demo of the command) and by users.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from helpers.paths import models_dir

DEFAULT_MODEL_NAME = "instrument_cnn"  # the bundle `make run` saves in models/
HEADER = ("path", "top1", "top1_p", "top2", "top2_p", "top3", "top3_p")


class TFLiteModel:
    """A TFLite model with a ``predict(X)`` like Keras' (float, dynamic-range or int8 I/O)."""

    def __init__(self, path: Path, threads: int = 1):
        import tensorflow as tf

        self.path = Path(path)
        self.interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]

    def _quantize(self, X: np.ndarray) -> np.ndarray:
        scale, zero = self._in["quantization"]
        if self._in["dtype"] in (np.int8, np.uint8) and scale:
            info = np.iinfo(self._in["dtype"])
            return np.clip(np.round(X / scale + zero), info.min, info.max).astype(self._in["dtype"])
        return X.astype(self._in["dtype"])

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        scale, zero = self._out["quantization"]
        if self._out["dtype"] in (np.int8, np.uint8) and scale:
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def predict_one(self, x: np.ndarray) -> np.ndarray:
        """Probabilities ``(n_classes,)`` of one window ``(bins, frames, 1)``."""
        self.interpreter.set_tensor(self._in["index"], self._quantize(x[np.newaxis]))
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self._out["index"]))[0]

    def predict(self, X: np.ndarray, **_: Any) -> np.ndarray:
        """Probabilities ``(n, n_classes)`` of windows ``(n, bins, frames, 1)``, one at a time."""
        return np.stack([self.predict_one(x) for x in np.asarray(X, np.float32)])


@dataclass(frozen=True)
class Predictor:
    """A loaded model and what it needs: classes, feature parameters, standardiser."""

    model: Any
    classes: tuple[str, ...]
    feature_config: Any
    mean: np.ndarray
    std: np.ndarray

    def predict_file(self, path: Path) -> np.ndarray:
        """Clip probabilities ``(n_classes,)`` of an audio file (windows averaged)."""
        from helpers.features import file_windows, standardize

        X = standardize(file_windows(path, self.feature_config), self.mean, self.std)
        return np.asarray(self.model.predict(X, verbose=0)).mean(axis=0)


def load_predictor(model: Path | None = None) -> Predictor:
    """Load a model bundle folder (Keras) or a ``.tflite`` file inside a bundle folder.

    ``None`` loads ``models/instrument_cnn`` (what ``make run`` trains).
    """
    from helpers.features import FeatureConfig
    from helpers.models import META_FILE, NORMALIZER_FILE, load_bundle

    path = Path(model) if model is not None else models_dir() / DEFAULT_MODEL_NAME
    if not path.exists():
        hint = " (run `make run` first to train it)" if model is None else ""
        raise FileNotFoundError(f"model not found: {path}{hint}")
    if path.suffix == ".tflite":
        folder = path.parent
        for needed in (META_FILE, NORMALIZER_FILE):
            if not (folder / needed).is_file():
                raise FileNotFoundError(f"{path}: needs {needed} beside it (a model bundle folder)")
        meta = json.loads((folder / META_FILE).read_text())
        with np.load(folder / NORMALIZER_FILE) as npz:
            mean, std = npz["mean"], npz["std"]
        config = FeatureConfig(**meta["feature_config"])
        return Predictor(TFLiteModel(path), tuple(meta["classes"]), config, mean, std)
    bundle = load_bundle(path)
    return Predictor(bundle.model, bundle.classes, bundle.feature_config, bundle.mean, bundle.std)


def top_k(probs: np.ndarray, classes, k: int = 3) -> list:
    """``[class1, p1, class2, p2, ...]`` for the ``k`` most probable classes."""
    order = np.argsort(-probs, kind="stable")[:k]
    row: list = []
    for i in order:
        row += [classes[i], f"{probs[i]:.4f}"]
    return row


def predict_paths(paths: list[str | Path], model: Path | None = None,
                  out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Predict every audio file under ``paths``; returns the exit status (1 if any file failed)."""
    from helpers.audio import AudioError, find_audio_files
    from helpers.progress import progress

    files = find_audio_files(paths)
    missing = [p for p in map(Path, paths) if not p.exists()]
    failed = len(missing)
    for p in missing:
        print(f"{p}: no such file or folder", file=err)
    files = [f for f in files if f.exists()]
    if not files:
        print("no audio files found (WAV, FLAC or OGG)", file=err)
        return 1
    predictor = load_predictor(model)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for f in progress(files, desc="predict", unit="file", disable=len(files) < 20, file=err):
        try:
            probs = predictor.predict_file(f)
        except AudioError as exc:
            print(f"{exc.path}: {exc.problem}", file=err)
            failed += 1
            continue
        writer.writerow([str(f), *top_k(probs, predictor.classes)])
    if failed:
        print(f"{failed} file(s) could not be predicted", file=err)
    return 1 if failed else 0
