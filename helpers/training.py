"""Training: seeding, one ``fit`` with early stopping on validation, prediction, history plot.

The checkpoint is always chosen on the validation split (early stopping with the best weights
restored); the test set is never seen during training. Same seed, same data -> same weights and
history (op determinism is switched on).
Used in: notebooks/03_baselines.ipynb, 04_cutmix.ipynb, 05_tuning.ipynb, 07_cam.ipynb,
08_ablation.ipynb, 09_pretrained.ipynb, 10_shipping.ipynb (:class:`TrainConfig` in all of them,
:func:`plot_history` in 03, :func:`predict_windows` in 07); helpers/experiment.py (every
training), helpers/protocol.py, helpers/pruning.py, helpers/cam.py, helpers/tune_command.py.
Augmentation comes from :mod:`helpers.augment` (on the fly, or as precomputed
:class:`helpers.augment.Versions` of the training windows).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from helpers.augment import Versions, augment_dataset
from helpers.plots import new_axes

VAL_BATCH_SIZE = 256  # windows per validation batch in :func:`fit`


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains: epochs, batch size, early stopping on ``monitor``, seed."""

    epochs: int = 40
    batch_size: int = 32
    patience: int = 8  # epochs without improvement of `monitor` before stopping
    monitor: str = "val_loss"  # a validation metric: the checkpoint is chosen on it
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 0:
            raise ValueError(f"epochs, batch_size must be >= 1 and patience >= 0: {self}")
        if not self.monitor.startswith("val_"):
            raise ValueError(
                f"monitor must be a validation metric ('val_...'), got {self.monitor!r}: "
                "the checkpoint is chosen on the validation split"
            )


@dataclass(frozen=True)
class TrainResult:
    """What :func:`fit` returns; the model itself is trained in place.

    ``history`` maps metric names (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``) to
    one value per epoch; ``best_epoch`` is the 1-based epoch whose weights were restored
    (``history[m][best_epoch - 1]``); ``seconds`` is the wall-clock training time.
    ``cached`` is True when the run was loaded from the run cache
    (:func:`helpers.experiment.train_cnn`) instead of trained now.
    """

    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    seconds: float
    cached: bool = False


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow ops deterministic.

    Call it before building a model (weights are initialised at build time).
    """
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _is_maximised(monitor: str) -> bool:
    """Accuracy-like metrics improve upwards, losses downwards (Keras' 'auto' rule)."""
    return monitor.endswith(("acc", "accuracy", "auc"))


def best_epoch_of(history: dict[str, list[float]], monitor: str = "val_loss") -> int:
    """1-based epoch with the best ``monitor`` value (first one on ties, as early stopping)."""
    values = np.asarray(history[monitor], dtype=float)
    index = np.nanargmax(values) if _is_maximised(monitor) else np.nanargmin(values)
    return int(index) + 1


def one_thread_input():
    """``tf.data.Options`` that run an input pipeline on one thread, without autotuning.

    Our pipelines (slice, shuffle, batch, a cheap map) cost little next to a training step.
    With tf.data's defaults each pipeline also starts its own thread pool and an autotuning
    thread, and one-thread training processes sharing the cores (:mod:`helpers.parallel`)
    then leave the cores idle while they wait for those threads to be scheduled. With these
    options the batches and the weights are exactly the same, and
    ``benchmarks/bench_parallel.py`` prints the throughput with and without them.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    return options


def make_dataset(X: np.ndarray, y: np.ndarray, n_classes: int, batch_size: int,
                 shuffle: bool = False, seed: int = 0):
    """Batched ``tf.data.Dataset`` of ``(x float32, one-hot float32 (batch, n_classes))``.

    With ``shuffle`` the order changes every epoch, reproducibly for a given ``seed``.
    """
    import tensorflow as tf

    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} windows but y has {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got {y.min()}..{y.max()}")
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    ds = tf.data.Dataset.from_tensor_slices((X, onehot))
    if shuffle:
        ds = ds.shuffle(len(X), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).with_options(one_thread_input())


def versions_dataset(versions: Versions, batch_size: int, seed: int = 0):
    """Shuffled batches where each window comes from one of its versions, drawn anew each epoch.

    The draw is reproducible: a fresh pipeline with the same ``seed`` replays the same epochs.
    """
    import tensorflow as tf

    X = np.ascontiguousarray(np.moveaxis(np.asarray(versions.X, np.float32), 0, 1))  # (n, V, ...)
    y = np.ascontiguousarray(np.moveaxis(np.asarray(versions.y, np.float32), 0, 1))
    n_versions = X.shape[1]
    ds = tf.data.Dataset.from_tensor_slices((X, y)).shuffle(len(X), seed=seed,
                                                            reshuffle_each_iteration=True)
    draws = tf.data.Dataset.random(seed + 1, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, draws)).map(
        lambda xy, r: (tf.gather(xy[0], r % n_versions), tf.gather(xy[1], r % n_versions)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).with_options(one_thread_input())


def fit(model, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
        n_classes: int, config: TrainConfig, augment=None, verbose: int = 0,
        callbacks: Sequence = (), variants: Versions | None = None) -> TrainResult:
    """Train ``model`` in place with early stopping on validation; restore the best weights.

    ``X_*`` are standardised windows ``(n, n_bins, n_frames, 1)``, ``y_*`` int class indices
    ``(n,)``; labels are one-hot encoded here. ``augment`` (a config from ``helpers.augment``
    with ``kind != "none"``) is applied to the shuffled training batches only. ``variants``
    (:class:`helpers.augment.Versions` of the training windows, version 0 = ``X_train``) makes
    every epoch draw one version per window.
    The run is reseeded with ``config.seed`` so shuffling and dropout repeat exactly.
    ``callbacks`` are added to early stopping (e.g. TF-MOT's ``UpdatePruningStep``).
    """
    import tensorflow as tf
    import tf_keras as keras

    set_seed(config.seed)
    if variants is not None:
        if variants.X.shape[1] != len(X_train):
            raise ValueError(f"variants hold {variants.X.shape[1]} windows, the training split "
                             f"{len(X_train)}")
        train = versions_dataset(variants, config.batch_size, seed=config.seed)
    else:
        train = make_dataset(X_train, y_train, n_classes, config.batch_size, shuffle=True,
                             seed=config.seed)
    if augment is not None and getattr(augment, "kind", "none") != "none":
        train = augment_dataset(train, augment, config.seed)
    train = train.prefetch(tf.data.AUTOTUNE)
    # Validation only predicts: bigger batches cost less per window; the loss is the same up
    # to float rounding (it is a mean over windows).
    val = make_dataset(X_val, y_val, n_classes, max(config.batch_size, VAL_BATCH_SIZE))
    val = val.prefetch(tf.data.AUTOTUNE)
    stopper = keras.callbacks.EarlyStopping(monitor=config.monitor, patience=config.patience,
                                            restore_best_weights=True)
    start = time.perf_counter()
    keras_history = model.fit(train, validation_data=val, epochs=config.epochs,
                              callbacks=[stopper, keras.callbacks.TerminateOnNaN(), *callbacks],
                              verbose=verbose)
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in keras_history.history.items()}
    if config.monitor not in history:
        raise KeyError(f"monitor {config.monitor!r} not among the metrics {sorted(history)}")
    return TrainResult(history=history, best_epoch=best_epoch_of(history, config.monitor),
                       epochs_run=len(history[config.monitor]), seconds=seconds)


def predict_windows(model, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``(n_windows, n_classes)`` for windows ``X`` (inference mode)."""
    X = np.asarray(X, dtype=np.float32)
    if len(X) == 0:
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
    return np.asarray(model.predict(X, batch_size=batch_size, verbose=0))


def plot_history(history, ax=None, monitor: str = "val_loss"):
    """Loss and accuracy per epoch, training vs validation, with the best epoch marked.

    ``history`` is a :class:`TrainResult` or its ``history`` dict. ``ax``: None (a new figure
    with two panels), a pair of axes (loss, accuracy), or one axes (loss on it, accuracy on a
    twin y axis). Returns ``(ax_loss, ax_accuracy)``.
    Used in: notebooks/03_baselines.ipynb.
    """
    import matplotlib.pyplot as plt

    history = getattr(history, "history", history)
    twin = ax is not None and not isinstance(ax, (list, tuple, np.ndarray))
    if ax is None:
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    elif twin:
        fig, ax_loss = new_axes(ax)
        ax_acc = ax_loss.twinx()
    else:
        ax_loss, ax_acc = ax
        fig = ax_loss.figure
    best = best_epoch_of(history, monitor) if monitor in history else None
    panels = ((ax_loss, "loss", "loss (categorical cross-entropy)"),
              (ax_acc, "accuracy", "accuracy (share of windows)"))
    for axis, key, label in panels:
        for split, prefix, style in (("training", "", "-"), ("validation", "val_", "--")):
            values = history.get(prefix + key)
            if values is not None:
                epochs = np.arange(1, len(values) + 1)
                axis.plot(epochs, values, style, marker="o", markersize=3, label=f"{split} {key}",
                          color="C0" if key == "loss" else "C1")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        if best is not None and not (twin and axis is ax_acc):
            axis.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best})")
    title = f"Training history (best epoch chosen on {monitor})"
    if twin:
        handles, labels = ax_loss.get_legend_handles_labels()
        more_handles, more_labels = ax_acc.get_legend_handles_labels()
        ax_loss.legend(handles + more_handles, labels + more_labels, loc="best", fontsize=8)
        ax_acc.grid(False)
        ax_loss.set_title(title)
    else:
        for axis, name in ((ax_loss, "Loss"), (ax_acc, "Accuracy")):
            axis.legend(loc="best", fontsize=8)
            axis.set_title(f"{name} per epoch")
        fig.suptitle(title)
    return ax_loss, ax_acc
