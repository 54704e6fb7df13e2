"""TFLite models run and timed: a flatbuffer with a Keras-like ``predict``, and its latency.

:class:`TFLiteModel` runs a ``.tflite`` file (float, dynamic-range or int8 input and output)
on batches of windows; :func:`tflite_predict` does the same for flatbuffer bytes.
:func:`tflite_latency` and :func:`compare_latency` time single-window invocations, the figure
a device running one clip at a time would see. TensorFlow is imported inside the functions, so
importing this module stays cheap. Making a flatbuffer (conversion, quantisation) is
:func:`helpers.pruning.to_tflite`'s.
Used in: helpers/predict.py (a bundle's ``model.tflite``: :class:`TFLiteModel`),
helpers/pruning.py (the pruned models' scores, :func:`tflite_predict`), notebooks/06_pruning.ipynb
(:func:`compare_latency`, imported through :mod:`helpers.pruning`), benchmarks/bench_pruning.py.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers import native_notices_hidden

DEFAULT_MAX_BATCH = 1024  # windows per interpreter call, unless the caller says (predict does)


class TFLiteModel:
    """A TFLite model with a ``predict(X)`` like Keras' (float, dynamic-range or int8 I/O).

    ``max_batch``: at most this many windows per interpreter call. The input tensor is resized
    to the batch (``resize_tensor_input`` + ``allocate_tensors``) when the model's batch
    dimension is dynamic; a model with a fixed batch size, or one whose resize fails, runs one
    window per call (``batching`` is then False). ``max_batch=1`` always runs one window per
    call (the path before batching).
    """

    def __init__(self, path: Path, threads: int = 1, max_batch: int = DEFAULT_MAX_BATCH):
        import tensorflow as tf

        self.path = Path(path)
        with warnings.catch_warnings(), native_notices_hidden():  # "Created ... XNNPACK delegate"
            warnings.simplefilter("ignore", UserWarning)  # tf.lite.Interpreter deprecation notice
            self.interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self.max_batch = max(1, int(max_batch))
        signature = self._in.get("shape_signature")
        self.batching = signature is not None and len(signature) > 0 and int(signature[0]) == -1
        self._batch = int(self._in["shape"][0])
        self.n_classes = int(self._out["shape"][-1])

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

    def _resize(self, n: int) -> None:
        if n != self._batch:
            shape = [n, *map(int, self._in["shape"][1:])]
            self.interpreter.resize_tensor_input(self._in["index"], shape, strict=True)
            self.interpreter.allocate_tensors()
            self._batch = n

    def _invoke(self, X: np.ndarray) -> np.ndarray:
        self._resize(len(X))
        self.interpreter.set_tensor(self._in["index"], self._quantize(X))
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self._out["index"]))

    def predict_one(self, x: np.ndarray) -> np.ndarray:
        """Probabilities ``(n_classes,)`` of one window ``(bins, frames, 1)``."""
        return self._invoke(np.asarray(x, np.float32)[np.newaxis])[0]

    def _predict_batch(self, X: np.ndarray) -> np.ndarray | None:
        """One call on the whole batch, or None (and ``batching`` off) if the model refuses."""
        try:
            probs = self._invoke(X)
        except (RuntimeError, ValueError):
            probs = None
        if probs is None or probs.shape != (len(X), self.n_classes):
            self.batching = False
            self._batch = -1  # unknown after a failed resize: the next call resizes to 1
            return None
        return probs

    def predict(self, X: np.ndarray, **_: Any) -> np.ndarray:
        """Probabilities ``(n, n_classes)`` of windows ``(n, bins, frames, 1)``: up to
        ``max_batch`` windows per interpreter call when the model allows it, else one by one."""
        X = np.asarray(X, np.float32)
        if len(X) == 0:
            return np.zeros((0, self.n_classes), np.float32)
        parts = []
        for start in range(0, len(X), self.max_batch):
            chunk = X[start:start + self.max_batch]
            probs = self._predict_batch(chunk) if self.batching and len(chunk) > 1 else None
            if probs is None:
                probs = np.stack([self.predict_one(x) for x in chunk])
            parts.append(probs)
        return np.concatenate(parts)


# ----------------------------------------------------------------------------- timing


def _interpreter(tflite_bytes: bytes, threads: int):
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tf.lite.Interpreter deprecation notice
        interpreter = tf.lite.Interpreter(model_content=tflite_bytes, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def _time_runs(interpreter, X: np.ndarray, n: int, warmup: int) -> np.ndarray:
    """Milliseconds of ``n`` single-window invocations (after ``warmup`` untimed ones)."""
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    X = np.asarray(X, dtype=np.float32)
    if len(X) == 0 or n < 1:
        raise ValueError("need at least one window and n >= 1")
    scale, zero = inp["quantization"]
    if inp["dtype"] == np.int8 and scale:
        X = np.clip(np.round(X / scale + zero), -128, 127)
    X = X.astype(inp["dtype"])
    times = []
    for i in range(warmup + n):
        start = time.perf_counter()
        interpreter.set_tensor(inp["index"], X[i % len(X)][None])
        interpreter.invoke()
        interpreter.get_tensor(out["index"])
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000.0)
    return np.asarray(times)


def _timing(times: np.ndarray) -> dict:
    return {"mean_ms": float(times.mean()), "p50_ms": float(np.percentile(times, 50)),
            "p95_ms": float(np.percentile(times, 95))}


def tflite_latency(tflite_bytes: bytes, X: np.ndarray, n: int = 200, threads: int = 1,
                   warmup: int = 10) -> dict:
    """Milliseconds per window (``mean_ms``, ``p50_ms``, ``p95_ms``) over ``n`` single-window runs.

    Each run sets one window of ``X`` ``(m, bins, frames, 1)`` (cycled, quantised for int8
    models), invokes the interpreter on ``threads`` thread(s) and reads the output.
    """
    return _timing(_time_runs(_interpreter(tflite_bytes, threads), X, n, warmup))


def compare_latency(models: Mapping[str, bytes], X: np.ndarray, n: int = 200, threads: int = 1,
                    rounds: int = 4, warmup: int = 10) -> pd.DataFrame:
    """Latency per window of several TFLite models, measured interleaved in the same run.

    Each model gets ``n`` timed single-window runs, split into ``rounds`` rounds that visit
    the models in turn, so a change of load on a shared machine hits every model alike.
    Returns one row per model (index: name) with ``mean_ms``, ``p50_ms``, ``p95_ms``, ``n``
    and ``threads``. Used in: notebooks/06_pruning.ipynb (imported from :mod:`helpers.pruning`),
    benchmarks/bench_pruning.py.
    """
    if not models:
        raise ValueError("no TFLite model to time")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    interpreters = {name: _interpreter(blob, threads) for name, blob in models.items()}
    sizes = [n // rounds + (1 if r < n % rounds else 0) for r in range(rounds)]
    times: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for r, size in enumerate(sizes):
        if size == 0:
            continue
        for name, interpreter in interpreters.items():
            times[name].append(_time_runs(interpreter, X, size, warmup if r == 0 else 0))
    rows = {name: {**_timing(np.concatenate(t)), "n": int(sum(map(len, t))), "threads": threads}
            for name, t in times.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def tflite_predict(tflite_bytes: bytes, X: np.ndarray) -> np.ndarray:
    """Window probabilities ``(n, n_classes)`` of a flatbuffer with :class:`TFLiteModel`."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        path = Path(tmp) / "model.tflite"
        path.write_bytes(tflite_bytes)
        return TFLiteModel(path).predict(X)
