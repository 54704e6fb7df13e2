"""The same numbers on any machine of this kind: a short training's weights and a feature array,
in a fresh process with the project's pinned numeric settings (``helpers.PINNED``), against
hashes committed here.

If this fails on a new machine while the same commit passed elsewhere, the machine computes
differently (another CPU family, another package version): the message prints what it ran on
(``python -m helpers environment``) and the sums of the weights, to compare. Updating a hash is a
decision, to be made with the cause in hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The log-mel CNN of the series, three epochs on seeded random windows, one TensorFlow thread
# (as every training job runs), op determinism on: SHA-256 of the exact float32 weights.
TRAINING_HASH = "ff239b46b9cdfee3a9fb93abfd29691d81626c44339c4888678edc1bebe0eb64"
# Log-mel windows of a seeded random waveform (numpy's and librosa's code, pinned; one BLAS
# thread): SHA-256.
FEATURES_HASH = "3d5ccf907e8b4f783cbe2413e06ac864d3b691671e4bed7acdd368698dc2d788"

SCRIPT = r"""
import hashlib, json, os
import helpers
from helpers.environment import describe
import numpy as np

out = {"environment": describe()}
from helpers.features import LOGMEL, log_mel
y = np.random.default_rng(0).standard_normal(22050 * 3).astype(np.float32) * 0.1
out["features"] = hashlib.sha256(np.ascontiguousarray(log_mel(y, LOGMEL), np.float32).tobytes()).hexdigest()

import tensorflow as tf
import tf_keras as keras
from tensorflow.python.util import _pywrap_util_port as port
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from helpers.models import LOGMEL_CNN, build_cnn
from helpers.training import make_dataset, set_seed
shape = LOGMEL.input_shape
rng = np.random.default_rng(1234)
X = rng.standard_normal((1024, *shape)).astype(np.float32)
labels = rng.integers(0, 10, len(X))
set_seed(0)
model = build_cnn(shape, 10, LOGMEL_CNN)
model.fit(make_dataset(X, labels, 10, 64, shuffle=True, seed=0), epochs=3, verbose=0)
weights = [np.ascontiguousarray(w, np.float32) for w in model.get_weights()]
out["training"] = hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest()
out["weight_sums"] = [float(w.astype(np.float64).sum()) for w in weights]
out["onednn"] = bool(port.IsMklEnabled())
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def fresh_run() -> dict:
    # One BLAS/OpenMP thread, as the chain's worker processes compute: OpenBLAS's thread count
    # changes the features' last bits, and the test process may have set another.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.mark.slow
def test_the_numeric_settings_are_pinned_and_onednn_runs_everywhere(fresh_run):
    import helpers

    settings = fresh_run["environment"]["settings"]
    assert all(fresh_run["environment"]["settings_pinned"].values()), settings
    assert settings["ONEDNN_MAX_CPU_ISA"] == helpers.PINNED["ONEDNN_MAX_CPU_ISA"]
    assert fresh_run["onednn"], "TensorFlow's oneDNN operations are off despite the pin"


@pytest.mark.slow
def test_features_do_not_drift(fresh_run):
    assert fresh_run["features"] == FEATURES_HASH, (
        f"log-mel features changed: {fresh_run['features']} (committed {FEATURES_HASH}) on "
        f"{json.dumps(fresh_run['environment'])}")


@pytest.mark.slow
def test_a_short_training_does_not_drift(fresh_run):
    assert fresh_run["training"] == TRAINING_HASH, (
        f"weights changed: {fresh_run['training']} (committed {TRAINING_HASH}); weight sums "
        f"{fresh_run['weight_sums']} on {json.dumps(fresh_run['environment'])}")
