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
and TFLite can quantise it (:func:`to_tflite`, :func:`model_sizes`); TFLite's kernels are dense,
so pruning alone does not change latency (:func:`helpers.tflite.compare_latency`, which
notebook 06 imports from here). :func:`check_goals` turns
the measured numbers into met/missed with margins.
:func:`prune_folds` prunes the networks of the nested leave-one-library-out folds too, so the
cost of pruning can be scored cross-library (on each fold's held-out library).
Used in: notebooks/06_pruning.ipynb, benchmarks/bench_pruning.py.
"""

from __future__ import annotations

import gzip
import math
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import native_notices_hidden
from helpers.plots import new_axes
from helpers.tflite import (
    compare_latency,  # noqa: F401  (notebooks/06_pruning.ipynb imports it from here)
    tflite_predict,
)

TFLITE_FILE = "model.tflite"
TFLITE_MODES: tuple[str, ...] = ("float", "dynamic", "int8")
PRUNABLE_LAYERS: tuple[str, ...] = ("Conv2D", "Dense")  # layer classes whose kernels are pruned


class PruningWarning(UserWarning):
    """The fine-tuning did not reach its target sparsity (see :func:`prune_model`)."""


@dataclass(frozen=True)
class PruneConfig:
    """How :func:`prune_model` prunes and fine-tunes.

    Sparsity rises from ``initial_sparsity`` to ``target_sparsity`` (shares of each kernel's
    weights set to zero) over the first ``ramp_share`` of the fine-tuning steps (polynomial
    decay of degree ``power``); the remaining steps fine-tune at the target. ``frequency``
    (steps between mask updates) defaults to about ``mask_updates`` updates over the ramp.
    ``learning_rate`` is the Adam rate of the fine-tuning (the model is trained already).
    Conv/dense layers whose kernel has fewer than ``min_layer_weights`` weights are left dense
    (a first conv layer of 16 3x3 filters has 144 weights that every later layer depends on;
    pruning it saves nothing and costs accuracy).
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
    min_layer_weights: int = 0

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
        if self.min_layer_weights < 0:
            raise ValueError(f"min_layer_weights must be >= 0, got {self.min_layer_weights}")


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


def schedule_levels(schedule: Schedule, target_sparsity: float, initial_sparsity: float = 0.0,
                    power: int = 3) -> pd.Series:
    """Sparsity TF-MOT's ``PolynomialDecay`` sets at each mask update of ``schedule``.

    Index: the update steps ``begin_step, begin_step + frequency, ... <= end_step``; values:
    the share of zeros each kernel has from that step on. The last value is what the pruned
    model ends with, so it shows whether a schedule reaches ``target_sparsity``.
    Used in: notebooks/06_pruning.ipynb.
    """
    import tensorflow_model_optimization as tfmot

    decay = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=initial_sparsity, final_sparsity=target_sparsity,
        begin_step=schedule.begin_step, end_step=schedule.end_step, power=power,
        frequency=schedule.frequency)
    steps = np.arange(schedule.begin_step, schedule.end_step + 1, schedule.frequency)
    levels = [float(decay(int(step))[1]) for step in steps]
    return pd.Series(levels, index=pd.Index(steps, name="step"), name="sparsity")


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


def sparsity(model, min_weights: int = 0) -> float:
    """Share of exactly-zero weights among the conv and dense kernels (biases excluded).

    ``min_weights`` restricts the count to kernels with at least that many weights: the ones
    :class:`PruneConfig` with the same ``min_layer_weights`` actually prunes.
    """
    table = layer_sparsity(model)
    table = table[table["weights"] >= min_weights]
    if table.empty:
        raise ValueError(f"no conv/dense kernel has >= {min_weights} weights")
    return float(table["zeros"].sum() / table["weights"].sum())


def count_nonzero(model) -> int:
    """Number of non-zero weights of the whole model (every weight tensor)."""
    return int(sum(np.count_nonzero(w) for w in model.get_weights()))


def assert_sparsity(model, target: float, tolerance: float = 0.02, min_weights: int = 0) -> float:
    """Return the measured sparsity; raise ``AssertionError`` if it is below ``target - tolerance``.

    The usual cause is a schedule whose ``end_step`` was never reached (too few steps for
    the mask-update ``frequency``). ``min_weights``: measure only the kernels that were
    pruned (see :func:`sparsity`). Used in: notebooks/06_pruning.ipynb.
    """
    measured = sparsity(model, min_weights)
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

    def wrap(layer):  # prune the large conv/dense kernels, leave every other layer as it is
        if type(layer).__name__ in PRUNABLE_LAYERS and (
                int(np.prod(layer.kernel.shape)) >= config.min_layer_weights):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=decay)
        return layer

    wrapped = keras.models.clone_model(copy, clone_function=wrap)
    if not any(type(layer).__name__ == "PruneLowMagnitude" for layer in wrapped.layers):
        raise ValueError(f"no conv/dense layer has >= {config.min_layer_weights} weights to prune")
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
                      f"{config.target_sparsity:.3f}: check the schedule {schedule}",
                      PruningWarning, stacklevel=2)
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
    from helpers.models import inference_copy

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        inference_copy(model).save(path)
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
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # "INFO: Assets written to ..." for every conversion
    try:
        # native_notices_hidden: the converter's C++ prints "fully_quantize: 0, inference_type:
        # ..." for every int8 model (shown after all if the conversion fails)
        with warnings.catch_warnings(), native_notices_hidden():
            warnings.simplefilter("ignore", UserWarning)  # "Statistics for quantized inputs ..."
            return bytes(converter.convert())
    finally:
        logger.setLevel(level)


def tflite_variants(model, representative: np.ndarray, modes: Sequence[str] = TFLITE_MODES,
                    n_representative: int = 200) -> dict[str, bytes]:
    """``{mode: flatbuffer}`` of :func:`to_tflite` for each of ``modes``.

    ``representative``: training windows for the int8 calibration (unused by other modes).
    """
    return {mode: to_tflite(model, mode, representative=representative,
                            n_representative=n_representative) for mode in modes}


def model_sizes(model, tflite: Mapping[str, bytes] | None = None) -> dict:
    """Sizes of one model: weights, non-zero weights, ``.keras`` file, TFLite flatbuffers.

    Returns ``params``, ``nonzero``, ``keras_bytes``, ``keras_gzip_bytes`` and, for every
    ``{mode: flatbuffer}`` in ``tflite``, ``tflite_<mode>_bytes`` and
    ``tflite_<mode>_gzip_bytes``. Used in: notebooks/06_pruning.ipynb.
    """
    keras_bytes = keras_file_bytes(model)
    row = {"params": int(model.count_params()), "nonzero": count_nonzero(model),
           "keras_bytes": len(keras_bytes), "keras_gzip_bytes": gzip_size(keras_bytes)}
    for mode, blob in (tflite or {}).items():
        row[f"tflite_{mode}_bytes"] = len(blob)
        row[f"tflite_{mode}_gzip_bytes"] = gzip_size(blob)
    return row


def save_tflite_bundle(directory: str | Path, tflite: bytes | Mapping[str, bytes],
                       classes: Sequence[str], feature_config, mean: np.ndarray, std: np.ndarray,
                       extra: dict | None = None, *, calibration: dict | None = None,
                       ood=None) -> Path | dict[str, Path]:
    """Write one or several ``.tflite`` models plus ``meta.json`` and ``normalizer.npz``.

    ``tflite`` is one flatbuffer (written as ``model.tflite``; returns its path) or a mapping
    ``{name: flatbuffer}`` (written as ``<name>.tflite`` side by side; returns ``{name: path}``).
    Every model of a folder shares the classes, feature parameters and standardiser, in the
    same ``meta.json``/``normalizer.npz`` format as :func:`helpers.models.save_bundle`, so
    ``python -m helpers predict --model <directory>/<name>.tflite`` works for each of them.
    ``calibration`` and ``ood`` are stored as by :func:`helpers.models.save_bundle` and shared
    by every model of the folder; a TFLite model exports probabilities only, so the detector
    must score probabilities (``"max_probability"``).
    The write is atomic (temporary folder, then rename); an older folder is replaced whole.
    Used in: notebooks/06_pruning.ipynb.
    """
    from helpers.files import atomic_folder, write_json
    from helpers.models import DEFAULT_KIND, META_FILE, NORMALIZER_FILE, OOD_FILE, calibration_meta

    directory = Path(directory)
    if not is_dataclass(feature_config) or isinstance(feature_config, type):
        raise TypeError(f"feature_config must be a dataclass instance, got {feature_config!r}")
    single = isinstance(tflite, (bytes, bytearray))
    files = {TFLITE_FILE: bytes(tflite)} if single else {
        f"{name}.tflite": bytes(blob) for name, blob in dict(tflite).items()}
    if not files:
        raise ValueError("no TFLite model to save")
    bad = [f for f in files if "/" in f or "\\" in f or f in (".tflite", META_FILE)]
    if bad:
        raise ValueError(f"model names must be plain file stems, got {bad}")
    entries, ood_arrays = calibration_meta(calibration, ood, n_classes=len(classes))
    if ood is not None and ood.needs != "probs":
        raise ValueError(f"a TFLite model gives no feature vectors for the {ood.method!r} "
                         "detector; use 'max_probability' or the Keras bundle")
    meta = {"kind": DEFAULT_KIND, "classes": [str(c) for c in classes],
            "feature_config": asdict(feature_config),
            "extra": dict(extra or {}), "model_file": next(iter(files)),
            "model_files": {f: {"bytes": len(b), "gzip_bytes": gzip_size(b)}
                            for f, b in files.items()}, **entries}

    def fill(tmp: Path) -> None:
        for name, blob in files.items():
            (tmp / name).write_bytes(blob)
        write_json(tmp / META_FILE, meta)
        np.savez(tmp / NORMALIZER_FILE, mean=np.asarray(mean, dtype=np.float32),
                 std=np.asarray(std, dtype=np.float32))
        if ood_arrays:
            np.savez(tmp / OOD_FILE, **ood_arrays)

    atomic_folder(directory, fill)
    if single:
        return directory / TFLITE_FILE
    return {Path(f).stem: directory / f for f in files}


# ----------------------------------------------------------------------------- TFLite scores


def tflite_scores(tflite_bytes: bytes, prepared, split: str = "test") -> dict:
    """Clip-level metrics (:func:`helpers.evaluation.clip_metrics`) of a TFLite model on a split."""
    from helpers.evaluation import aggregate_clips, clip_metrics

    fs = prepared.splits[split]
    _, probs = aggregate_clips(tflite_predict(tflite_bytes, fs.X), fs.clip_ids)
    return clip_metrics(prepared.clip_y(split), probs)


# ----------------------------------------------------------------------------- goals


@dataclass(frozen=True)
class Goals:
    """What the pruning chapter aims for (after Zhu & Gupta 2017 and the TF-MOT guide).

    ``min_sparsity`` of the conv/dense kernels in the deployable model, and at most
    ``max_accuracy_drop`` of clip accuracy lost (test) by the model pruned to that sparsity
    (the two halves of one goal: so sparse, and still that good); the pruned ``.keras`` file ``min_gzip_ratio`` times smaller than the
    dense one when both are gzip-compressed; the pruned int8 TFLite model ``min_int8_ratio``
    times smaller than the dense float ``.keras`` file (checked with both gzip-compressed,
    the uncompressed ratio reported beside it).
    """

    min_sparsity: float = 0.8
    max_accuracy_drop: float = 0.01
    min_gzip_ratio: float = 3.0
    min_int8_ratio: float = 10.0
    sparsity_tolerance: float = 0.001  # TF-MOT rounds each kernel's number of zeros


def check_goals(measured: Mapping[str, float], goals: Goals = Goals()) -> pd.DataFrame:
    """One row per goal: ``measured`` value, ``threshold``, ``met`` and ``margin``.

    ``measured`` needs ``sparsity`` (measured on the deployable model, 0-1), ``accuracy_drop``
    (dense minus pruned clip accuracy, 0-1, of the model pruned to ``goals.min_sparsity``), ``gzip_ratio`` (dense/pruned gzip'd ``.keras`` bytes),
    ``int8_ratio_gzip`` (dense ``.keras`` gzip bytes / pruned int8 ``.tflite`` gzip bytes) and
    ``int8_ratio_raw`` (the same, uncompressed). ``margin`` is positive when the goal is met
    and tells by how much it was missed otherwise (in the unit of ``measured``). The row
    ``int8_ratio_raw`` is reported, not part of the goals (``counts`` is False). The sparsity
    goal tolerates ``goals.sparsity_tolerance`` (rounding of the per-kernel zero counts).
    Used in: notebooks/06_pruning.ipynb, benchmarks/bench_pruning.py.
    """
    specs = [
        ("sparsity", f"sparsity >= {goals.min_sparsity:.0%}", goals.min_sparsity, ">=", True),
        ("accuracy_drop", f"clip accuracy lost at {goals.min_sparsity:.0%} sparsity <= "
         f"{goals.max_accuracy_drop * 100:g} point(s)",
         goals.max_accuracy_drop, "<=", True),
        ("gzip_ratio", f"pruned .keras >= {goals.min_gzip_ratio:g}x smaller (both gzip'd)",
         goals.min_gzip_ratio, ">=", True),
        ("int8_ratio_gzip", f"pruned int8 TFLite >= {goals.min_int8_ratio:g}x smaller than "
         "dense .keras (both gzip'd)", goals.min_int8_ratio, ">=", True),
        ("int8_ratio_raw", f"pruned int8 TFLite >= {goals.min_int8_ratio:g}x smaller than "
         "dense .keras (neither gzip'd)", goals.min_int8_ratio, ">=", False),
    ]
    missing = [key for key, *_ in specs if key not in measured]
    if missing:
        raise KeyError(f"check_goals needs {missing}")
    rows = []
    for key, goal, threshold, direction, counts in specs:
        value = float(measured[key])
        margin = value - threshold if direction == ">=" else threshold - value
        slack = goals.sparsity_tolerance if key == "sparsity" else 1e-12
        rows.append({"key": key, "goal": goal, "measured": value, "threshold": threshold,
                     "direction": direction, "met": bool(margin >= -slack), "margin": margin,
                     "counts": counts})
    return pd.DataFrame(rows).set_index("key")


# ----------------------------------------------------------------------------- sweep


def choose_sparsity(table: pd.DataFrame, accuracy_budget: float) -> tuple[float, str]:
    """The deployable sparsity of a sweep, chosen on validation, and the rule that chose it.

    ``table`` has ``target_sparsity`` and ``val_accuracy`` per row; the dense model is the row
    with ``target_sparsity`` NaN or first (notebook 06's sweep table: dense, control 0.0, then the
    pruned sparsities). The highest sparsity above 0 whose validation accuracy is at most
    ``accuracy_budget`` below the dense model's wins. If none is, the pruned setting with the
    best validation accuracy (the higher sparsity among ties): a rule never picks a setting its
    own numbers show is worse.
    """
    dense = float(table.iloc[0]["val_accuracy"])
    pruned = table[table["target_sparsity"] > 0]
    if pruned.empty:
        raise ValueError("the sweep has no pruned model (target_sparsity > 0) to choose from")
    within = pruned[pruned["val_accuracy"] >= dense - accuracy_budget - 1e-9]
    if len(within):
        return float(within["target_sparsity"].max()), (
            f"highest sparsity within {accuracy_budget:.3f} of the dense validation accuracy")
    best = pruned.sort_values(["val_accuracy", "target_sparsity"], ascending=False).iloc[0]
    return float(best["target_sparsity"]), (
        f"no pruned model stayed within {accuracy_budget:.3f} of the dense validation accuracy; "
        f"took the one with the best validation accuracy ({best['val_accuracy']:.3f})")


def _row(name: str, target: float, model, prepared) -> dict:
    from helpers.experiment import score

    test, val = score(model, prepared, "test"), score(model, prepared, "val")
    return {"model": name, "target_sparsity": target, "sparsity": sparsity(model),
            "nonzero": count_nonzero(model), "params": int(model.count_params()),
            "gzip_bytes": gzip_size(keras_file_bytes(model)),
            "accuracy": test["accuracy"], "macro_f1": test["macro_f1"],
            "map_at_3": test["map_at_3"], "val_accuracy": val["accuracy"],
            "val_map_at_3": val["map_at_3"]}


@dataclass(frozen=True)
class PruneJob:
    """One fine-tuning of :func:`sweep`, sent to a worker process: the trained network
    (``model_json`` and ``weights``), the windows, the settings and the seed."""

    model_json: str
    weights: list
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    config: PruneConfig
    seed: int = 0


def run_prune_job(job: PruneJob) -> tuple[list, dict, list[str]]:
    """:func:`prune_model` in a worker process (one TensorFlow thread, like every training
    job): the pruned network's weights (wrappers stripped), its ``info``, and the messages of
    any :class:`PruningWarning` (to be raised again where the sweep runs)."""
    from helpers.parallel import configure_threads

    configure_threads()
    import tf_keras as keras

    model = keras.models.model_from_json(job.model_json)
    model.set_weights(job.weights)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PruningWarning)
        pruned, info = prune_model(model, job.X_train, job.y_train, job.X_val, job.y_val,
                                   job.n_classes, job.config, seed=job.seed)
    weights = pruned.get_weights()
    keras.backend.clear_session()
    return weights, info, [str(w.message) for w in caught if issubclass(w.category, PruningWarning)]


def sweep(model, prepared, sparsities: Sequence[float], config: PruneConfig, seed: int = 0,
          progress: bool = True, executor=None):
    """Prune ``model`` to each target sparsity and score it (clip level, test and val).

    ``prepared`` is a :class:`helpers.experiment.Prepared`; ``config.target_sparsity`` is
    replaced by each entry of ``sparsities`` (0.0 = the same fine-tuning without pruning, a
    fair reference). The fine-tunings do not depend on each other, so they run side by side
    as jobs (:class:`PruneJob`) on ``executor`` (default :func:`helpers.parallel.get_executor`);
    each job runs with one TensorFlow thread, so its numbers do not depend on the executor.
    The first row (``model == "dense"``) is ``model`` as given.
    Returns ``(table, models)``: a DataFrame with one row per model (``target_sparsity``,
    measured ``sparsity``, ``nonzero``, ``params``, ``gzip_bytes``, ``accuracy``, ``macro_f1``,
    ``map_at_3``, ``val_accuracy``, ``val_map_at_3``, ``seconds``) and ``{target: pruned model}``.
    """
    from dataclasses import replace

    import tf_keras as keras

    from helpers.parallel import get_executor
    from helpers.progress import progress as progress_bar

    X_train, y_train = prepared.xy("train")
    X_val, y_val = prepared.xy("val")
    targets = [float(t) for t in sparsities]
    jobs = [PruneJob(model.to_json(), model.get_weights(), X_train, y_train, X_val, y_val,
                     len(prepared.classes), replace(config, target_sparsity=t), seed)
            for t in targets]
    executor = executor or get_executor()
    futures = [executor.submit(run_prune_job, job) for job in jobs]
    rows = [{**_row("dense", float("nan"), model, prepared), "seconds": 0.0}]
    models = {}
    with progress_bar(total=len(futures), desc="pruning sweep", unit="model",
                      disable=not progress) as bar:
        for target, future in zip(targets, futures):
            weights, info, messages = future.result()
            for message in messages:
                warnings.warn(message, PruningWarning, stacklevel=2)
            pruned = keras.models.clone_model(model)  # the stripped network has its layers
            pruned.set_weights(weights)
            _compile(pruned, config.learning_rate)
            rows.append({**_row(f"pruned {target:.0%}", target, pruned, prepared),
                         "seconds": info["seconds"]})
            models[target] = pruned
            bar.update()
    return pd.DataFrame(rows), models


def pruned_name(sparsity: float) -> str:
    """The model name of a network pruned to ``sparsity``: ``"pruned 80%"``."""
    return f"pruned {sparsity:.0%}"


def prune_folds(runs, model: str, prepared: Mapping[str, object], sparsities: Sequence[float],
                config: PruneConfig, seed: int = 0, splits: Sequence[str] | None = None,
                progress: bool = True, executor=None):
    """Prune, in every fold, the network ``runs`` holds for ``model`` to each of ``sparsities``,
    and score the pruned networks as :func:`helpers.protocol.evaluate_cnns` scores a training.

    ``runs`` is a :class:`helpers.protocol.Runs` with the weights of ``model`` in each fold
    (e.g. :func:`helpers.protocol.evaluate_per_fold`, from the run cache); ``prepared`` maps each
    fold's name to its :class:`helpers.experiment.Prepared`. The networks of the run with seed
    ``seed`` are pruned with ``config`` (``target_sparsity`` replaced by each entry of
    ``sparsities``; 0.0 is the same fine-tuning without pruning), fine-tuned on the fold's
    ``train`` windows only (``val`` recorded, never used to stop), side by side as
    :class:`PruneJob` s on ``executor``; nothing reads a test split to prune. Each pruned network
    is then scored on ``splits`` (default: every split the fold has of
    :data:`helpers.splits.SCORED_SPLITS`), so the result pools, pairs and summarises like any
    chapter's runs (``cross_test``: the fold's held-out library; ``test``: in-library).
    Returns a ``Runs`` with one model per sparsity
    (:func:`pruned_name`), each row also carrying the measured ``sparsity`` and ``nonzero``.
    Used in: notebooks/06_pruning.ipynb.
    """
    from dataclasses import replace

    import tensorflow as tf
    import tf_keras as keras

    from helpers.evaluation import clip_metrics
    from helpers.experiment import split_probabilities
    from helpers.parallel import get_executor
    from helpers.progress import progress as progress_bar
    from helpers.protocol import METRICS, Runs
    from helpers.splits import SCORED_SPLITS

    rows = runs.table[(runs.table["model"] == model) & (runs.table["seed"] == seed)]
    directions = list(dict.fromkeys(rows["direction"]))
    missing = [d for d in directions if d not in prepared]
    if not directions or missing:
        raise KeyError(f"no {model!r} runs with seed {seed}" if not directions else
                       f"no prepared data for fold(s) {missing}")
    targets = [float(t) for t in sparsities]
    plan, futures = [], []
    executor = executor or get_executor()
    for direction in directions:
        network = runs.network(model, direction, seed)
        data = prepared[direction]
        X_train, y_train = data.xy("train")
        X_val, y_val = data.xy("val")
        for target in targets:
            job = PruneJob(network.to_json(), network.get_weights(), X_train, y_train, X_val,
                           y_val, len(data.classes), replace(config, target_sparsity=target), seed)
            plan.append((direction, target, network, data))
            futures.append(executor.submit(run_prune_job, job))
    out = Runs(pd.DataFrame(), classes=list(runs.classes))
    table = []
    with progress_bar(total=len(futures), desc=f"pruning {len(directions)} fold(s)", unit="model",
                      disable=not progress) as bar:
        for (direction, target, network, data), future in zip(plan, futures):
            weights, info, messages = future.result()
            for message in messages:
                warnings.warn(message, PruningWarning, stacklevel=2)
            pruned = keras.models.clone_model(network)
            pruned.set_weights(weights)
            name = pruned_name(target)
            scored = [s for s in (splits or SCORED_SPLITS) if s in data.splits]
            logger = tf.get_logger()
            level = logger.level
            logger.setLevel("ERROR")  # a new network per fold: TensorFlow would warn of retracing
            try:
                probs = split_probabilities(pruned, data, scored)
            finally:
                logger.setLevel(level)
            for split in scored:
                labels = data.clip_y(split)
                metrics = clip_metrics(labels, probs[split])
                table.append({"model": name, "direction": direction, "seed": seed, "split": split,
                              **{m: metrics[m] for m in (*METRICS, "n_clips")},
                              "best_epoch": np.nan, "epochs_run": config.fine_tune_epochs,
                              "max_epochs": config.fine_tune_epochs, "train_seconds": info["seconds"],
                              "params": info["params"], "cached": False,
                              "target_sparsity": target, "sparsity": info["sparsity"],
                              "nonzero": info["nonzero"]})
                out.probs[(name, direction, seed, split)] = probs[split]
                out.clips[(name, direction, split)] = data.splits[split].clips["fname"].to_numpy()
                out.labels[(name, direction, split)] = labels
            out.histories[(name, direction, seed)] = info["history"]
            out.weights[(name, direction, seed)] = weights
            out.networks[(name, direction)] = (runs.networks.get((model, direction))
                                               or runs.networks[model])
            bar.update()
    out.table = pd.DataFrame(table)
    return out


def plot_sweep(table: pd.DataFrame, ax=None, metrics: Sequence[str] = ("accuracy", "map_at_3"),
               title: str = "Test scores after magnitude pruning"):
    """Scores against the measured sparsity, with the dense model as dashed lines and the
    control (target sparsity 0: fine-tuned, not pruned) as a square of its own.

    ``table`` is the first value :func:`sweep` returns. Returns the axes.
    Used in: notebooks/06_pruning.ipynb.
    """
    labels = {"accuracy": "accuracy", "map_at_3": "MAP@3", "macro_f1": "macro F1",
              "val_accuracy": "val accuracy", "val_map_at_3": "val MAP@3"}
    _, ax = new_axes(ax)
    dense = table[table["model"] == "dense"]
    control = table[table["target_sparsity"] == 0]
    pruned = table[table["target_sparsity"] > 0].sort_values("sparsity")
    for i, metric in enumerate(metrics):
        label = labels.get(metric, metric)
        ax.plot(pruned["sparsity"], pruned[metric], marker="o", color=f"C{i}",
                label=f"pruned: {label}")
        if len(control):
            ax.plot(control["sparsity"], control[metric], marker="s", linestyle="none",
                    markerfacecolor="white", color=f"C{i}",
                    label=f"control (fine-tuned, not pruned): {label}")
        if len(dense):
            ax.axhline(float(dense[metric].iloc[0]), color=f"C{i}", linestyle="--",
                       label=f"dense: {label}")
    ax.set(title=title, xlabel="sparsity (share of conv/dense weights that are zero)",
           ylabel="score on test clips (0-1)")
    ax.set_xlim(-0.02, 1.0)
    ax.legend(loc="lower left", fontsize=8)
    return ax
