"""helpers.experiment: the run cache behind train_cnn (identical trainings are trained once)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import helpers  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.augment import AugmentConfig
from helpers.experiment import Prepared, run_key, train_cnn
from helpers.features import FeatureConfig, FeatureSet
from helpers.models import CNNConfig
from helpers.paths import cache_dir
from helpers.training import TrainConfig

CLASSES = ["Bass", "Cello", "Flute"]
TINY = CNNConfig(conv_filters=(4,), kernel_sizes=(3,), dense_units=(8,), dropout=0.1)
TRAIN = TrainConfig(epochs=2, batch_size=4, patience=1, seed=0)


def _prepared(seed: int = 0) -> Prepared:
    """3 classes, windows (8, 8, 1), 2 windows per clip; 6 train clips, 3 val, 3 test."""
    config = FeatureConfig(kind="logmel", n_mels=8, window_seconds=0.1625)
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", 6), ("val", 3), ("test", 3)):
        fnames = [f"{split}{i}.wav" for i in range(n)]
        clips = pd.DataFrame({"fname": fnames, "label": [CLASSES[i % 3] for i in range(n)],
                              "split": split})
        X = rng.normal(size=(2 * n, *config.input_shape)).astype(np.float32)
        splits[split] = FeatureSet(X=X, clip_ids=np.repeat(fnames, 2), clips=clips,
                                   skipped=pd.DataFrame(), config=config)
    return Prepared(classes=CLASSES, feature_config=config, splits=splits,
                    mean=np.zeros(8, np.float32), std=np.ones(8, np.float32))


def _weights(model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


def test_an_identical_training_is_loaded_from_the_cache():
    prepared = _prepared()
    model, result = train_cnn(prepared, TINY, TRAIN)
    assert not result.cached
    assert len(list((cache_dir() / "runs").iterdir())) == 1
    again, cached = train_cnn(_prepared(), TINY, TRAIN)  # an equal, separately built Prepared
    assert cached.cached
    assert (cached.history, cached.best_epoch, cached.epochs_run, cached.seconds) == \
        (result.history, result.best_epoch, result.epochs_run, result.seconds)
    for a, b in zip(_weights(model), _weights(again), strict=True):
        np.testing.assert_array_equal(a, b)
    X = prepared.xy("test")[0]
    np.testing.assert_allclose(model.predict(X, verbose=0), again.predict(X, verbose=0), rtol=0, atol=0)


def test_a_cached_run_equals_a_fresh_run(monkeypatch):
    """Training is deterministic, so loading instead of training changes no number."""
    model, _ = train_cnn(_prepared(), TINY, TRAIN)
    monkeypatch.setenv("HELPERS_RUN_CACHE", "0")
    fresh, result = train_cnn(_prepared(), TINY, TRAIN)
    assert not result.cached
    for a, b in zip(_weights(model), _weights(fresh), strict=True):
        np.testing.assert_array_equal(a, b)


def test_switching_the_cache_off_writes_nothing(monkeypatch):
    monkeypatch.setenv("HELPERS_RUN_CACHE", "0")
    train_cnn(_prepared(), TINY, TRAIN)
    assert not (cache_dir() / "runs").exists()


@pytest.mark.parametrize("change", ["data", "network", "seed", "epochs", "augment"])
def test_the_key_changes_with_everything_that_shapes_a_run(change):
    base = run_key(_prepared(), TINY, TRAIN)
    other = {
        "data": lambda: run_key(_prepared(seed=1), TINY, TRAIN),
        "network": lambda: run_key(_prepared(), CNNConfig((4,), (3,), (16,), dropout=0.1), TRAIN),
        "seed": lambda: run_key(_prepared(), TINY, TrainConfig(epochs=2, batch_size=4, patience=1, seed=1)),
        "epochs": lambda: run_key(_prepared(), TINY, TrainConfig(epochs=3, batch_size=4, patience=1, seed=0)),
        "augment": lambda: run_key(_prepared(), TINY, TRAIN, AugmentConfig("cutmix")),
    }[change]()
    assert other != base


def test_no_augmentation_and_kind_none_share_a_key():
    assert run_key(_prepared(), TINY, TRAIN, AugmentConfig("none")) == run_key(_prepared(), TINY, TRAIN)


def test_a_damaged_entry_is_trained_again():
    prepared = _prepared()
    train_cnn(prepared, TINY, TRAIN)
    (entry,) = (cache_dir() / "runs").iterdir()
    (entry / "weights.npz").write_bytes(b"not a zip")
    _, result = train_cnn(prepared, TINY, TRAIN)
    assert not result.cached
    _, result = train_cnn(prepared, TINY, TRAIN)
    assert result.cached  # the retrained run replaced the damaged entry
