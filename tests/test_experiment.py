"""helpers.experiment: trainings run as jobs in worker processes, and the run cache behind them
(identical trainings are trained once)."""

from __future__ import annotations

import numpy as np
import pytest

import helpers  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.augment import AugmentConfig
from helpers.experiment import TrainJob, run_key, train_cnn, train_many
from helpers.models import CNNConfig
from helpers.parallel import local_pool
from helpers.paths import cache_dir
from helpers.training import TrainConfig

TINY = CNNConfig(conv_filters=(4,), kernel_sizes=(3,), dense_units=(8,), dropout=0.1)
TRAIN = TrainConfig(epochs=2, batch_size=4, patience=1, seed=0)


def _job(prepared, cnn=TINY, train=TRAIN, augment=None):
    return TrainJob(prepared, cnn, train, augment, tuple(prepared.splits))


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
    base = run_key(_job(tiny_prepared()))
    other = {
        "data": lambda: run_key(_job(tiny_prepared(seed=1))),
        "network": lambda: run_key(_job(tiny_prepared(), CNNConfig((4,), (3,), (16,), dropout=0.1))),
        "seed": lambda: run_key(_job(tiny_prepared(), train=TrainConfig(epochs=2, batch_size=4, patience=1, seed=1))),
        "epochs": lambda: run_key(_job(tiny_prepared(), train=TrainConfig(epochs=3, batch_size=4, patience=1, seed=0))),
        "augment": lambda: run_key(_job(tiny_prepared(), augment=AugmentConfig("cutmix"))),
    }[change]()
    assert other != base


def test_no_augmentation_and_kind_none_share_a_key(tiny_prepared):
    assert run_key(_job(tiny_prepared(), augment=AugmentConfig("none"))) == run_key(_job(tiny_prepared()))


def test_a_damaged_entry_is_trained_again(tiny_prepared):
    prepared = tiny_prepared()
    train_cnn(prepared, TINY, TRAIN)
    (entry,) = (cache_dir() / "runs").iterdir()
    (entry / "weights.npz").write_bytes(b"not a zip")
    _, result = train_cnn(prepared, TINY, TRAIN)
    assert not result.cached
    _, result = train_cnn(prepared, TINY, TRAIN)
    assert result.cached  # the retrained run replaced the damaged entry


def test_one_worker_or_two_give_identical_runs(tiny_prepared, monkeypatch):
    """Every job runs with one TensorFlow thread in its own process, so the pool size changes
    no number: a sequential run (one worker) equals a parallel one."""
    monkeypatch.setenv("HELPERS_RUN_CACHE", "0")
    jobs = [_job(tiny_prepared(), train=TrainConfig(epochs=2, batch_size=4, patience=1, seed=s))
            for s in (0, 1, 2)]
    one = train_many(jobs, executor=local_pool(1), progress=False)
    two = train_many(jobs, executor=local_pool(2), progress=False)
    for a, b in zip(one, two, strict=True):
        for wa, wb in zip(a.weights, b.weights, strict=True):
            np.testing.assert_array_equal(wa, wb)
        for split in a.probs:
            np.testing.assert_array_equal(a.probs[split], b.probs[split])
    assert not np.array_equal(one[0].weights[0], one[1].weights[0])  # seeds do differ


def test_equal_jobs_in_one_call_train_once(tiny_prepared):
    prepared = tiny_prepared()
    outcomes = train_many([_job(prepared), _job(tiny_prepared())], progress=False)
    assert outcomes[0] is outcomes[1]
    assert len(list((cache_dir() / "runs").iterdir())) == 1


def test_the_run_key_follows_the_training_code_not_unrelated_code(tiny_prepared, monkeypatch):
    import inspect

    import helpers.experiment as experiment
    import helpers.models as models

    base = run_key(_job(tiny_prepared()))
    monkeypatch.setattr(models, "save_bundle", lambda *a, **k: None)  # bundle code: not a training
    assert run_key(_job(tiny_prepared())) == base
    source = inspect.getsource

    def changed_source(obj):
        text = source(obj)
        return text + "\n# changed" if getattr(obj, "__name__", "") == "build_cnn" else text

    monkeypatch.setattr(inspect, "getsource", changed_source)
    assert run_key(_job(tiny_prepared())) != base
    assert experiment.run_code_digest() != base


def test_scoring_all_splits_in_one_call_equals_one_call_per_split(tiny_prepared):
    """split_probabilities predicts the windows of every split together; each split's clip
    probabilities are exactly those of predicting that split alone, in its clip order."""
    from helpers.evaluation import aggregate_clips
    from helpers.experiment import split_probabilities
    from helpers.training import predict_windows

    prepared = tiny_prepared()
    model, _ = train_cnn(prepared, TINY, TRAIN)
    together = split_probabilities(model, prepared, ("test", "train", "val"))
    assert list(together) == ["test", "train", "val"]
    for split, probs in together.items():
        fs = prepared.splits[split]
        ids, alone = aggregate_clips(predict_windows(model, fs.X), fs.clip_ids)
        assert list(ids) == list(fs.clips["fname"])
        np.testing.assert_array_equal(probs, alone)
    assert split_probabilities(model, prepared, ()) == {}
