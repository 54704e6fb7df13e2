"""helpers.parallel: trainings on a Dask cluster give exactly what the local pool gives."""

from __future__ import annotations

import numpy as np
import pytest

import helpers  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.experiment import TrainJob, train_many
from helpers.models import CNNConfig
from helpers.parallel import describe, get_executor, local_pool, local_workers, shutdown
from helpers.training import TrainConfig

TINY = CNNConfig(conv_filters=(4,), kernel_sizes=(3,), dense_units=(8,), dropout=0.1)


def _grid(prepared):
    return [TrainJob(prepared, TINY, TrainConfig(epochs=2, batch_size=4, patience=1, seed=s),
                     splits=tuple(prepared.splits)) for s in (0, 1, 2, 3)]


@pytest.mark.slow
def test_a_tiny_grid_on_a_local_dask_cluster_matches_the_local_pool(tiny_prepared, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("HELPERS_RUN_CACHE", "0")
    jobs = _grid(tiny_prepared())
    local = train_many(jobs, executor=local_pool(2), progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        monkeypatch.setenv("HELPERS_DASK_SCHEDULER", cluster.scheduler_address)
        try:
            executor = get_executor()
            assert "Dask" in describe(executor)
            remote = train_many(jobs, progress=False)
            workers = {w["host"] for w in executor._client.scheduler_info()["workers"].values()}
        finally:
            shutdown()
    assert workers == {"127.0.0.1"}
    for a, b in zip(local, remote, strict=True):
        for wa, wb in zip(a.weights, b.weights, strict=True):
            np.testing.assert_array_equal(wa, wb)
        for split in a.probs:
            np.testing.assert_array_equal(a.probs[split], b.probs[split])


def test_the_number_of_local_workers(monkeypatch):
    monkeypatch.setenv("HELPERS_WORKERS", "3")
    assert local_workers() == 3
    monkeypatch.setenv("HELPERS_WORKERS", "zero")
    with pytest.raises(ValueError, match="HELPERS_WORKERS must be a whole number"):
        local_workers()
    monkeypatch.delenv("HELPERS_WORKERS")
    assert 1 <= local_workers() <= 2
