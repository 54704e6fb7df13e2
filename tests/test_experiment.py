"""helpers.experiment: the run cache behind train_cnn (identical trainings are trained once)."""

from __future__ import annotations

import numpy as np
import pytest

import helpers  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.augment import AugmentConfig
from helpers.experiment import run_key, train_cnn
from helpers.models import CNNConfig
from helpers.paths import cache_dir
from helpers.training import TrainConfig

TINY = CNNConfig(conv_filters=(4,), kernel_sizes=(3,), dense_units=(8,), dropout=0.1)
TRAIN = TrainConfig(epochs=2, batch_size=4, patience=1, seed=0)


def _weights(model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


def test_an_identical_training_is_loaded_from_the_cache(tiny_prepared):
    prepared = tiny_prepared()
    model, result = train_cnn(prepared, TINY, TRAIN)
    assert not result.cached
    assert len(list((cache_dir() / "runs").iterdir())) == 1
    again, cached = train_cnn(tiny_prepared(), TINY, TRAIN)  # an equal, separately built Prepared
    assert cached.cached
    assert (cached.history, cached.best_epoch, cached.epochs_run, cached.seconds) == \
        (result.history, result.best_epoch, result.epochs_run, result.seconds)
    for a, b in zip(_weights(model), _weights(again), strict=True):
        np.testing.assert_array_equal(a, b)
    X = prepared.xy("test")[0]
    np.testing.assert_allclose(model.predict(X, verbose=0), again.predict(X, verbose=0), rtol=0, atol=0)


def test_a_cached_run_equals_a_fresh_run(tiny_prepared, monkeypatch):
    """Training is deterministic, so loading instead of training changes no number."""
    model, _ = train_cnn(tiny_prepared(), TINY, TRAIN)
    monkeypatch.setenv("HELPERS_RUN_CACHE", "0")
    fresh, result = train_cnn(tiny_prepared(), TINY, TRAIN)
    assert not result.cached
    for a, b in zip(_weights(model), _weights(fresh), strict=True):
        np.testing.assert_array_equal(a, b)


def test_switching_the_cache_off_writes_nothing(tiny_prepared, monkeypatch):
    monkeypatch.setenv("HELPERS_RUN_CACHE", "0")
    train_cnn(tiny_prepared(), TINY, TRAIN)
    assert not (cache_dir() / "runs").exists()


@pytest.mark.parametrize("change", ["data", "network", "seed", "epochs", "augment"])
def test_the_key_changes_with_everything_that_shapes_a_run(tiny_prepared, change):
    base = run_key(tiny_prepared(), TINY, TRAIN)
    other = {
        "data": lambda: run_key(tiny_prepared(seed=1), TINY, TRAIN),
        "network": lambda: run_key(tiny_prepared(), CNNConfig((4,), (3,), (16,), dropout=0.1), TRAIN),
        "seed": lambda: run_key(tiny_prepared(), TINY, TrainConfig(epochs=2, batch_size=4, patience=1, seed=1)),
        "epochs": lambda: run_key(tiny_prepared(), TINY, TrainConfig(epochs=3, batch_size=4, patience=1, seed=0)),
        "augment": lambda: run_key(tiny_prepared(), TINY, TRAIN, AugmentConfig("cutmix")),
    }[change]()
    assert other != base


def test_no_augmentation_and_kind_none_share_a_key(tiny_prepared):
    assert run_key(tiny_prepared(), TINY, TRAIN, AugmentConfig("none")) == run_key(tiny_prepared(), TINY, TRAIN)


def test_a_damaged_entry_is_trained_again(tiny_prepared):
    prepared = tiny_prepared()
    train_cnn(prepared, TINY, TRAIN)
    (entry,) = (cache_dir() / "runs").iterdir()
    (entry / "weights.npz").write_bytes(b"not a zip")
    _, result = train_cnn(prepared, TINY, TRAIN)
    assert not result.cached
    _, result = train_cnn(prepared, TINY, TRAIN)
    assert result.cached  # the retrained run replaced the damaged entry
