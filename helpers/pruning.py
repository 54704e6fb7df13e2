"""Magnitude pruning with TF-MOT, and what it buys: sparsity, file size, TFLite size and latency.

The recipe (Zhu & Gupta 2017, as implemented by TF-MOT): wrap a *trained* model with
``prune_low_magnitude``; while fine-tuning, a ``PolynomialDecay`` schedule raises the share of
zeroed weights of every conv and dense kernel from ``initial_sparsity`` to ``target_sparsity``,
each time zeroing the smallest-magnitude weights; ``strip_pruning`` then removes the wrappers.

Two traps this module handles:

* TF-MOT updates the masks only every ``frequency`` training steps (default 100) and only up to
  ``end_step``. On a small dataset the fine-tuning may never reach the target, so the schedule
  is derived from the number of fine-tuning steps (:func:`schedule_steps`) and the sparsity
  reached is *measured* (:func:`sparsity`, :func:`assert_sparsity`).
* Early stopping with ``restore_best_weights`` would also restore old masks and step counters,
  so fine-tuning runs a fixed number of epochs (no early stopping).

A pruned model is no smaller in memory (zeros are still stored); it compresses better (gzip)
and TFLite can quantise it. Used in: notebooks/06_pruning.ipynb.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.plots import new_axes

TFLITE_FILE = "model.tflite"
TFLITE_MODES: tuple[str, ...] = ("float", "dynamic", "int8")
PRUNABLE_LAYERS: tuple[str, ...] = ("Conv2D", "Dense")  # layer classes whose kernels are pruned


@dataclass(frozen=True)
class PruneConfig:
    """How :func:`prune_model` prunes and fine-tunes.

    Sparsity rises from ``initial_sparsity`` to ``target_sparsity`` (shares of each kernel's
    weights set to zero) over the first ``ramp_share`` of the fine-tuning steps (polynomial
    decay of degree ``power``); the remaining steps fine-tune at the target. ``frequency``
    (steps between mask updates) defaults to about ``mask_updates`` updates over the ramp.
    ``learning_rate`` is the Adam rate of the fine-tuning (small: the model is trained already).
    """

    target_sparsity: float
    fine_tune_epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-4
    initial_sparsity: float = 0.0
    frequency: int | None = None
    ramp_share: float = 0.6
    mask_updates: int = 10
    power: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.target_sparsity < 1.0:
            raise ValueError(f"target_sparsity must be in [0, 1), got {self.target_sparsity}")
        if not 0.0 <= self.initial_sparsity <= self.target_sparsity:
            raise ValueError(f"initial_sparsity must be in [0, target_sparsity="
                             f"{self.target_sparsity}], got {self.initial_sparsity}")
        if self.fine_tune_epochs < 1 or self.batch_size < 1 or self.mask_updates < 1:
            raise ValueError(f"fine_tune_epochs, batch_size and mask_updates must be >= 1: {self}")
        if self.frequency is not None and self.frequency < 1:
            raise ValueError(f"frequency must be >= 1 or None, got {self.frequency}")
        if not 0.0 < self.ramp_share <= 1.0:
            raise ValueError(f"ramp_share must be in (0, 1], got {self.ramp_share}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


@dataclass(frozen=True)
class Schedule:
    """Pruning steps of one fine-tuning run (TF-MOT counts steps from 1, one per batch)."""

    steps_per_epoch: int
    total_steps: int
    begin_step: int
    end_step: int  # the last mask update; sparsity equals the target from here on
    frequency: int  # steps between mask updates


def schedule_steps(n_train: int, config: PruneConfig) -> Schedule:
    """Derive ``end_step`` and ``frequency`` so the target is reached inside the fine-tuning.

    TF-MOT updates the masks at steps ``begin_step + k * frequency <= end_step`` and the
    schedule only reaches the target at ``end_step``; so ``end_step`` is made a multiple of
    ``frequency`` no later than the last step. Raises ``ValueError`` if an explicit
    ``config.frequency`` exceeds the number of fine-tuning steps (no update would happen).
    """
    if n_train < 1:
        raise ValueError("need at least one training window to fine-tune")
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    total = steps_per_epoch * config.fine_tune_epochs
    ramp = max(1, int(total * config.ramp_share))
    frequency = config.frequency or max(1, ramp // config.mask_updates)
    if frequency > total:
        raise ValueError(
            f"frequency={frequency} exceeds the {total} fine-tuning steps ({steps_per_epoch} "
            f"steps x {config.fine_tune_epochs} epochs): the masks would never be updated; "
            "lower PruneConfig.frequency or fine-tune longer")
    end = max(frequency, (ramp // frequency) * frequency)
    return Schedule(steps_per_epoch, total, 0, end, frequency)


# ----------------------------------------------------------------------------- measuring


def _prunable_kernels(model) -> list[tuple[str, np.ndarray]]:
    """``(layer name, kernel)`` of every Conv2D/Dense layer (also inside pruning wrappers)."""
    kernels = []
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # a PruneLowMagnitude wrapper holds .layer
        if type(inner).__name__ in PRUNABLE_LAYERS:
            kernels.append((inner.name, np.asarray(inner.kernel.numpy())))
    if not kernels:
        raise ValueError(f"model {model.name!r} has no Conv2D or Dense layer to measure")
    return kernels


def layer_sparsity(model) -> pd.DataFrame:
    """Per prunable layer: kernel ``weights``, ``zeros`` and ``sparsity`` (share of zeros)."""
    rows = [{"layer": name, "weights": k.size, "zeros": int(np.sum(k == 0))}
            for name, k in _prunable_kernels(model)]
    table = pd.DataFrame(rows).set_index("layer")
    table["sparsity"] = table["zeros"] / table["weights"]
    return table


def sparsity(model) -> float:
    """Share of exactly-zero weights among all conv and dense kernels (biases excluded)."""
    table = layer_sparsity(model)
    return float(table["zeros"].sum() / table["weights"].sum())


def count_nonzero(model) -> int:
    """Number of non-zero weights of the whole model (every weight tensor)."""
    return int(sum(np.count_nonzero(w) for w in model.get_weights()))


def assert_sparsity(model, target: float, tolerance: float = 0.02) -> float:
    """Return the measured sparsity; raise ``AssertionError`` if it is below ``target - tolerance``.

    The usual cause is a schedule whose ``end_step`` was never reached (too few steps for
    the mask-update ``frequency``). Used in: notebooks/06_pruning.ipynb.
    """
    measured = sparsity(model)
    if measured < target - tolerance:
        raise AssertionError(
            f"measured sparsity {measured:.3f} is below the target {target:.3f} "
            f"(tolerance {tolerance}): the pruning schedule did not reach its end step; "
            "lower PruneConfig.frequency or add fine-tune epochs")
    return measured


# ----------------------------------------------------------------------------- pruning


def _compile(model, learning_rate: float) -> None:
    """Adam + categorical cross-entropy + accuracy, as :func:`helpers.models.build_cnn`."""
    import tf_keras as keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="categorical_crossentropy", metrics=["accuracy"])


def prune_model(model, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray,
                y_val: np.ndarray, n_classes: int, config: PruneConfig, seed: int = 0,
                verbose: int = 0):
    """Prune a copy of a trained ``model`` to ``config.target_sparsity`` while fine-tuning it.

    ``X_*`` standardised windows ``(n, bins, frames, 1)``, ``y_*`` class indices ``(n,)``.
    ``model`` itself is not changed. Fine-tunes for exactly ``config.fine_tune_epochs``
    (validation is only recorded), strips the wrappers and compiles the result.
    Returns ``(pruned_model, info)``; ``info`` holds the measured ``sparsity``, ``nonzero``,
    ``params``, the ``schedule``, the fine-tuning ``history`` and ``seconds``. Warns if the
    measured sparsity is more than 0.02 below the target.
    """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from helpers.training import make_dataset, set_seed

    schedule = schedule_steps(len(X_train), config)
    set_seed(seed)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    decay = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=config.initial_sparsity, final_sparsity=config.target_sparsity,
        begin_step=schedule.begin_step, end_step=schedule.end_step, power=config.power,
        frequency=schedule.frequency)
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(copy, pruning_schedule=decay)
    _compile(wrapped, config.learning_rate)
    train = make_dataset(X_train, y_train, n_classes, config.batch_size, shuffle=True,
                         seed=seed).prefetch(tf.data.AUTOTUNE)
    val = make_dataset(X_val, y_val, n_classes, config.batch_size).prefetch(tf.data.AUTOTUNE)
    start = time.perf_counter()
    history = wrapped.fit(train, validation_data=val, epochs=config.fine_tune_epochs,
                          callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], verbose=verbose)
    seconds = time.perf_counter() - start
    pruned = tfmot.sparsity.keras.strip_pruning(wrapped)
    _compile(pruned, config.learning_rate)
    measured = sparsity(pruned)
    if measured < config.target_sparsity - 0.02:
        warnings.warn(f"pruning reached sparsity {measured:.3f}, target "
                      f"{config.target_sparsity:.3f}: check the schedule {schedule}", stacklevel=2)
    info = {
        "target_sparsity": config.target_sparsity,
        "sparsity": measured,
        "nonzero": count_nonzero(pruned),
        "params": int(pruned.count_params()),
        "schedule": asdict(schedule),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "seconds": seconds,
    }
    return pruned, info


# ----------------------------------------------------------------------------- size


def keras_file_bytes(model) -> bytes:
    """The bytes of ``model`` saved in the native ``.keras`` format, without optimizer state.

    The file a bundle holds (:func:`helpers.models.save_bundle`). Its zip entries are stored
    uncompressed, so zeros still take space; :func:`gzip_size` shows what pruning saves.
    """
    from helpers.models import _inference_copy

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        _inference_copy(model).save(path)
        return path.read_bytes()


def gzip_size(path_or_bytes: str | Path | bytes) -> int:
    """Size in bytes of a file (or of ``bytes``) after gzip at the highest level."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return len(gzip.compress(data, compresslevel=9))


def _representative(X: np.ndarray, n: int):
    """A TFLite representative-dataset generator over up to ``n`` evenly spaced windows."""
    X = np.asarray(X, dtype=np.float32)
    index = np.unique(np.linspace(0, len(X) - 1, min(n, len(X))).astype(int))

    def generate():
        for i in index:
            yield [X[i:i + 1]]

    return generate


def to_tflite(model, mode: str = "float", representative: np.ndarray | None = None,
              n_representative: int = 200) -> bytes:
    """Convert a Keras model to a TFLite flatbuffer.

    ``mode``: ``"float"`` (float32), ``"dynamic"`` (dynamic-range: int8 weights of tensors
    with at least 1024 elements, float activations) or ``"int8"`` (full integer: int8
    weights, activations, input and output; needs ``representative`` windows
    ``(n, bins, frames, 1)`` from the *training* split to calibrate activation ranges).
    """
    import tensorflow as tf

    if mode not in TFLITE_MODES:
        raise ValueError(f"unknown TFLite mode {mode!r}; choose one of {TFLITE_MODES}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("mode='int8' needs representative training windows to calibrate")
        converter.representative_dataset = _representative(representative, n_representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Statistics for quantized inputs ..."
        return bytes(converter.convert())


def save_tflite_bundle(directory: str | Path, tflite_bytes: bytes, classes: Sequence[str],
                       feature_config, mean: np.ndarray, std: np.ndarray,
                       extra: dict | None = None) -> Path:
    """Write ``model.tflite``, ``meta.json`` and ``normalizer.npz`` into ``directory``.

    The same ``meta.json``/``normalizer.npz`` format as :func:`helpers.models.save_bundle`, so
    ``python -m helpers predict --model <directory>/model.tflite`` works. The write is atomic
    (temporary folder, then rename). Returns the path of ``model.tflite``.
    """
    from helpers.models import META_FILE, NORMALIZER_FILE, _json_default

    directory = Path(directory)
    if not is_dataclass(feature_config) or isinstance(feature_config, type):
        raise TypeError(f"feature_config must be a dataclass instance, got {feature_config!r}")
    meta = {"classes": [str(c) for c in classes], "feature_config": asdict(feature_config),
            "extra": dict(extra or {}), "model_file": TFLITE_FILE}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        (tmp / TFLITE_FILE).write_bytes(tflite_bytes)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=_json_default))
        np.savez(tmp / NORMALIZER_FILE, mean=np.asarray(mean, dtype=np.float32),
                 std=np.asarray(std, dtype=np.float32))
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
        tmp.rename(directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory / TFLITE_FILE


# ----------------------------------------------------------------------------- TFLite runs


def _interpreter(tflite_bytes: bytes, threads: int):
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tf.lite.Interpreter deprecation notice
        interpreter = tf.lite.Interpreter(model_content=tflite_bytes, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def tflite_latency(tflite_bytes: bytes, X: np.ndarray, n: int = 200, threads: int = 1,
                   warmup: int = 10) -> dict:
    """Milliseconds per window (``mean_ms``, ``p50_ms``, ``p95_ms``) over ``n`` single-window runs.

    Each run sets one window of ``X`` ``(m, bins, frames, 1)`` (cycled, quantised for int8
    models), invokes the interpreter on ``threads`` thread(s) and reads the output.
    """
    interpreter = _interpreter(tflite_bytes, threads)
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
    times = np.asarray(times)
    return {"mean_ms": float(times.mean()), "p50_ms": float(np.percentile(times, 50)),
            "p95_ms": float(np.percentile(times, 95))}


def tflite_predict(tflite_bytes: bytes, X: np.ndarray) -> np.ndarray:
    """Window probabilities ``(n, n_classes)`` with :class:`helpers.predict.TFLiteModel`."""
    from helpers.predict import TFLiteModel

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        path = Path(tmp) / TFLITE_FILE
        path.write_bytes(tflite_bytes)
        return TFLiteModel(path).predict(X)


def tflite_scores(tflite_bytes: bytes, prepared, split: str = "test") -> dict:
    """Clip-level metrics (:func:`helpers.evaluation.clip_metrics`) of a TFLite model on a split."""
    from helpers.evaluation import aggregate_clips, clip_metrics

    fs = prepared.splits[split]
    _, probs = aggregate_clips(tflite_predict(tflite_bytes, fs.X), fs.clip_ids)
    return clip_metrics(prepared.clip_y(split), probs)


# ----------------------------------------------------------------------------- sweep


def _row(name: str, target: float, model, prepared) -> dict:
    from helpers.experiment import score

    test, val = score(model, prepared, "test"), score(model, prepared, "val")
    return {"model": name, "target_sparsity": target, "sparsity": sparsity(model),
            "nonzero": count_nonzero(model), "params": int(model.count_params()),
            "gzip_bytes": gzip_size(keras_file_bytes(model)),
            "accuracy": test["accuracy"], "macro_f1": test["macro_f1"],
            "map_at_3": test["map_at_3"], "val_accuracy": val["accuracy"],
            "val_map_at_3": val["map_at_3"]}


def sweep(model, prepared, sparsities: Sequence[float], config: PruneConfig, seed: int = 0,
          progress: bool = True):
    """Prune ``model`` to each target sparsity and score it (clip level, test and val).

    ``prepared`` is a :class:`helpers.experiment.Prepared`; ``config.target_sparsity`` is
    replaced by each entry of ``sparsities`` (0.0 = the same fine-tuning without pruning, a
    fair reference). The first row (``model == "dense"``) is ``model`` as given.
    Returns ``(table, models)``: a DataFrame with one row per model (``target_sparsity``,
    measured ``sparsity``, ``nonzero``, ``params``, ``gzip_bytes``, ``accuracy``, ``macro_f1``,
    ``map_at_3``, ``val_accuracy``, ``val_map_at_3``, ``seconds``) and ``{target: pruned model}``.
    """
    from dataclasses import replace

    from tqdm.auto import tqdm

    X_train, y_train = prepared.xy("train")
    X_val, y_val = prepared.xy("val")
    rows = [{**_row("dense", float("nan"), model, prepared), "seconds": 0.0}]
    models = {}
    for target in tqdm(list(sparsities), desc="pruning sweep", disable=not progress):
        pruned, info = prune_model(model, X_train, y_train, X_val, y_val, len(prepared.classes),
                                   replace(config, target_sparsity=float(target)), seed=seed)
        rows.append({**_row(f"pruned {target:.0%}", float(target), pruned, prepared),
                     "seconds": info["seconds"]})
        models[float(target)] = pruned
    return pd.DataFrame(rows), models


def plot_sweep(table: pd.DataFrame, ax=None, metrics: Sequence[str] = ("accuracy", "map_at_3"),
               title: str = "Test scores after magnitude pruning"):
    """Scores against the measured sparsity, with the dense model as dashed lines.

    ``table`` is the first value :func:`sweep` returns. Returns the axes.
    Used in: notebooks/06_pruning.ipynb.
    """
    labels = {"accuracy": "accuracy", "map_at_3": "MAP@3", "macro_f1": "macro F1",
              "val_accuracy": "val accuracy", "val_map_at_3": "val MAP@3"}
    _, ax = new_axes(ax)
    dense = table[table["model"] == "dense"]
    pruned = table[table["model"] != "dense"].sort_values("sparsity")
    for i, metric in enumerate(metrics):
        label = labels.get(metric, metric)
        ax.plot(pruned["sparsity"], pruned[metric], marker="o", color=f"C{i}",
                label=f"pruned: {label}")
        if len(dense):
            ax.axhline(float(dense[metric].iloc[0]), color=f"C{i}", linestyle="--",
                       label=f"dense: {label}")
    ax.set(title=title, xlabel="sparsity (share of conv/dense weights that are zero)",
           ylabel="score on test clips (0-1)")
    ax.set_xlim(-0.02, 1.0)
    ax.legend(loc="lower left", fontsize=8)
    return ax
