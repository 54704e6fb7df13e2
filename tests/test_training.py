"""helpers.training: determinism, early stopping on validation, a learnable toy problem, plots."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import helpers  # noqa: E402, F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.models import CNNConfig, build_cnn  # noqa: E402
from helpers.training import (  # noqa: E402
    TrainConfig,
    best_epoch_of,
    fit,
    plot_history,
    predict_windows,
    set_seed,
)

SHAPE = (8, 6, 1)
TINY = CNNConfig(conv_filters=(4,), kernel_sizes=(3,), dense_units=(8,), dropout=0.2)


def _noise(n: int, seed: int, n_classes: int = 3):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, *SHAPE)).astype(np.float32),
            rng.integers(0, n_classes, size=n))


def _train_tiny(config: TrainConfig):
    set_seed(config.seed)
    model = build_cnn(SHAPE, 3, TINY)
    X, y = _noise(48, 0)
    Xv, yv = _noise(16, 1)
    return model, fit(model, X, y, Xv, yv, 3, config)


def test_same_seed_gives_identical_history_and_weights():
    config = TrainConfig(epochs=3, batch_size=8, patience=5, seed=7)
    model_a, result_a = _train_tiny(config)
    model_b, result_b = _train_tiny(config)
    assert result_a.history == result_b.history
    for wa, wb in zip(model_a.get_weights(), model_b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert set(result_a.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert result_a.epochs_run == 3 and result_a.seconds > 0


def test_early_stopping_restores_best_validation_weights():
    # random labels and a big learning rate: validation loss soon rises, training continues
    set_seed(0)
    model = build_cnn(SHAPE, 3, CNNConfig((8,), (3,), (64,), dropout=0.0, learning_rate=1e-2))
    X, y = _noise(24, 2)
    Xv, yv = _noise(24, 3)
    result = fit(model, X, y, Xv, yv, 3, TrainConfig(epochs=30, batch_size=8, patience=3))
    val_loss = result.history["val_loss"]
    assert result.best_epoch == int(np.argmin(val_loss)) + 1
    assert result.best_epoch < result.epochs_run <= 30  # stopped early, after the best epoch
    assert result.epochs_run == result.best_epoch + 3  # patience epochs without improvement
    restored = model.evaluate(Xv, np.eye(3, dtype=np.float32)[yv], batch_size=8, verbose=0)[0]
    assert restored == pytest.approx(min(val_loss), rel=1e-4)


def test_learns_bright_patch_toy_problem():
    rng = np.random.default_rng(0)
    n = 240
    X = rng.normal(0, 1, size=(n, 16, 12, 1)).astype(np.float32)
    y = rng.integers(0, 2, size=n)
    for i in np.flatnonzero(y == 1):  # class 1: a bright 4x4 patch somewhere
        r, c = rng.integers(0, 12), rng.integers(0, 8)
        X[i, r:r + 4, c:c + 4, 0] += 3.0
    set_seed(0)
    config = CNNConfig((8,), (3,), (), dropout=0.0, global_pool=True, learning_rate=1e-2)
    model = build_cnn((16, 12, 1), 2, config)
    result = fit(model, X[:180], y[:180], X[180:], y[180:], 2,
                 TrainConfig(epochs=12, batch_size=16, patience=5, seed=0))
    probs = predict_windows(model, X[180:])
    assert probs.shape == (60, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(probs.argmax(axis=1) == y[180:]) >= 0.9, result.history["val_accuracy"]


@dataclass(frozen=True)
class _FakeAugment:
    kind: str


def test_augment_hook_is_applied_to_training_batches_only(monkeypatch):
    import helpers.training as training

    calls = []

    def augment_dataset(ds, config, seed):
        calls.append((config, seed, ds.element_spec[1].shape.as_list()))
        return ds

    monkeypatch.setattr(training, "augment_dataset", augment_dataset)  # fit's augmentation
    config = TrainConfig(epochs=1, batch_size=8, seed=3)
    set_seed(0)
    model = build_cnn(SHAPE, 3, TINY)
    X, y = _noise(16, 0)
    fit(model, X, y, X, y, 3, config, augment=_FakeAugment("none"))
    assert calls == []
    fit(model, X, y, X, y, 3, config, augment=_FakeAugment("cutmix"))
    assert calls == [(_FakeAugment("cutmix"), 3, [None, 3])]  # batched one-hot labels


def test_predict_windows_empty_input():
    model = build_cnn(SHAPE, 3, TINY)
    assert predict_windows(model, np.zeros((0, *SHAPE), np.float32)).shape == (0, 3)


def test_train_config_requires_validation_monitor():
    with pytest.raises(ValueError, match="validation"):
        TrainConfig(monitor="loss")


HISTORY = {"loss": [1.0, 0.7, 0.5, 0.4], "val_loss": [1.1, 0.8, 0.9, 1.0],
           "accuracy": [0.4, 0.6, 0.7, 0.8], "val_accuracy": [0.3, 0.5, 0.6, 0.5]}


def test_best_epoch_of():
    assert best_epoch_of(HISTORY) == 2
    assert best_epoch_of(HISTORY, "val_accuracy") == 3  # accuracy: higher is better


def test_plot_history_two_panels_labels_and_best_epoch():
    ax_loss, ax_acc = plot_history(HISTORY)
    assert ax_loss.get_xlabel() == ax_acc.get_xlabel() == "epoch"
    assert "loss" in ax_loss.get_ylabel() and "accuracy" in ax_acc.get_ylabel()
    assert ax_loss.get_title() and ax_acc.get_title()
    labels = ax_loss.get_legend_handles_labels()[1]
    assert {"training loss", "validation loss", "best epoch (2)"} <= set(labels)
    assert {"training accuracy", "validation accuracy"} <= set(
        ax_acc.get_legend_handles_labels()[1])
    plt.close("all")


def test_plot_history_on_one_axes_uses_twin():
    _, ax = plt.subplots()
    ax_loss, ax_acc = plot_history(HISTORY, ax=ax)
    assert ax_loss is ax and ax_acc is not ax
    assert ax_acc.get_ylabel().startswith("accuracy")
    assert len(ax.get_legend().get_texts()) == 5  # 2 loss + best epoch + 2 accuracy
    plt.close("all")
