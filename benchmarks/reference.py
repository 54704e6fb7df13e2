"""The reference workload: a fixed measure of this machine's speed, to express run times in.

Machines of this kind run at different speeds from day to day, and this one is bimodal: the same
work takes either about T or about 2T seconds, in spells. A run time in seconds therefore says
little about the code on its own; divided by the time of a fixed workload measured in the same
run, it compares across days. The workload is frozen here and does NOT follow the project: it
is the log-mel CNN of the chain run the budget is anchored to (commit b2f9d46), trained on
random input, written out layer by layer instead of through ``helpers.models`` (whose
configurations change with the project):

* input (64, 44, 1) (64 mel bands x 44 frames), 18 classes, batches of 64 random windows drawn
  from a fixed pool of 1,024 (normal noise, seed 0);
* three conv blocks, each Conv2D 3x3 (same padding, ReLU; 16, 32, 64 filters) + 2x2 max pooling
  + dropout 0.3; Flatten; Dense 128 (ReLU) + dropout 0.3; Dense 18 + softmax;
* Adam at 2e-3, categorical cross-entropy, ``tf_keras`` (Keras 2);
* ONE intra-op and one inter-op TensorFlow thread, and ``OMP_NUM_THREADS=1`` (as the project's
  training jobs run), in a process of its own.

**One unit** is the median time of one repeat: :data:`STEPS` training steps of that network.
:class:`ReferenceWorker` keeps the network warm in a side process, so that a benchmark can take
one short repeat between two notebooks without paying TensorFlow's start-up each time (the
process sleeps, using no CPU, while it waits). Summaries are robust (:func:`summarise`): the
median of every repeat of the run, and the share of repeats in the slow mode.

Run: .venv/bin/python benchmarks/reference.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REFERENCE_VERSION = 1  # bump if anything below changes: units of two versions do not compare
INPUT_SHAPE = (64, 44, 1)
N_CLASSES = 18
BATCH_SIZE = 64
STEPS = 300  # training steps per repeat; one unit = the median seconds of a repeat
WARMUP_STEPS = 60  # once, when the worker starts (tracing, oneDNN kernels)
POOL = 1024  # random windows the batches are drawn from
CONV_FILTERS = (16, 32, 64)
KERNEL_SIZE = 3
DENSE_UNITS = 128
DROPOUT = 0.3
LEARNING_RATE = 2e-3
THREADS = 1  # TensorFlow intra-op and inter-op threads, and OMP/BLAS threads
SLOW_RATIO = 1.5  # a repeat slower than this times the run's fastest is in the slow mode

THREAD_ENV = {"OMP_NUM_THREADS": str(THREADS), "OPENBLAS_NUM_THREADS": str(THREADS),
              "MKL_NUM_THREADS": str(THREADS), "TF_USE_LEGACY_KERAS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "2"}


def describe() -> str:
    """What a unit is, as a noun phrase (the report quotes it)."""
    return (f"the median time of {STEPS} training steps (batches of {BATCH_SIZE}) of a "
            f"frozen 3-block log-mel CNN ({'/'.join(map(str, CONV_FILTERS))} filters, dense "
            f"{DENSE_UNITS}) on random {INPUT_SHAPE[0]} x {INPUT_SHAPE[1]} input, on one "
            f"TensorFlow thread, measured in the same run")


def summarise(repeats: list[float]) -> dict:
    """Median and spread of reference repeats (seconds), and how many ran in the slow mode.

    ``slow`` counts repeats above :data:`SLOW_RATIO` times the fastest: this machine's speed
    is bimodal, and the median stays in whichever mode most of the run was in.
    """
    if not repeats:
        raise ValueError("no reference repeats to summarise")
    fastest = min(repeats)
    return {"repeats": [round(r, 3) for r in repeats], "median": round(statistics.median(repeats), 3),
            "min": round(fastest, 3), "max": round(max(repeats), 3),
            "slow": sum(r > SLOW_RATIO * fastest for r in repeats), "steps": STEPS,
            "batch_size": BATCH_SIZE, "threads": THREADS, "version": REFERENCE_VERSION}


def in_units(seconds: float, unit_seconds: float) -> float:
    """``seconds`` expressed in reference units (a unit lasting ``unit_seconds``)."""
    if unit_seconds <= 0:
        raise ValueError(f"a reference unit must last a positive time, not {unit_seconds}")
    return seconds / unit_seconds


# --- the worker process -------------------------------------------------------------------------

def _build():
    """The frozen network, compiled (see the module docstring)."""
    import tf_keras as keras

    layers = keras.layers
    inputs = keras.Input(shape=INPUT_SHAPE)
    x = inputs
    for filters in CONV_FILTERS:
        x = layers.Conv2D(filters, KERNEL_SIZE, padding="same", activation="relu")(x)
        x = layers.MaxPool2D(2)(x)
        x = layers.Dropout(DROPOUT)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(DENSE_UNITS, activation="relu")(x)
    x = layers.Dropout(DROPOUT)(x)
    outputs = layers.Activation("softmax")(layers.Dense(N_CLASSES)(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def _serve() -> None:
    """Worker loop: each line ``run`` on stdin -> one repeat, its seconds on stdout."""
    for name, value in THREAD_ENV.items():
        os.environ[name] = value
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    tf.get_logger().setLevel("ERROR")
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((POOL, *INPUT_SHAPE), dtype=np.float32)
    Y = np.eye(N_CLASSES, dtype=np.float32)[rng.integers(0, N_CLASSES, POOL)]
    data = tf.data.Dataset.from_tensor_slices((X, Y)).repeat().batch(BATCH_SIZE)
    model = _build()
    initial = model.get_weights()
    model.fit(data, epochs=1, steps_per_epoch=WARMUP_STEPS, verbose=0)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        model.set_weights(initial)  # every repeat does the same arithmetic
        start = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=STEPS, verbose=0)
        print(f"{time.perf_counter() - start:.4f}", flush=True)


class ReferenceWorker:
    """The reference network, warm, in a side process: ``with ReferenceWorker() as ref:
    seconds = ref.measure(5)``. ``python`` defaults to this interpreter."""

    def __init__(self, python: str | None = None):
        self.python = python or sys.executable
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ReferenceWorker:
        env = {**os.environ, **THREAD_ENV}
        self.process = subprocess.Popen([self.python, str(Path(__file__).resolve()), "--serve"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=env)
        if self.process.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the reference worker did not start (see its messages above)")
        return self

    def measure(self, repeats: int = 1) -> list[float]:
        """Seconds of each of ``repeats`` repeats, run back to back."""
        if self.process is None:
            raise RuntimeError("ReferenceWorker is not running: use it in a with statement")
        out = []
        for _ in range(repeats):
            self.process.stdin.write("run\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the reference worker stopped")
            out.append(float(line))
        return out

    def close(self) -> None:
        if self.process is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def __exit__(self, *exc) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds to sleep between repeats (to sample slow spells)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve()
        return
    repeats = []
    with ReferenceWorker() as ref:
        for i in range(args.repeats):
            if i and args.pause:
                time.sleep(args.pause)
            repeats += ref.measure(1)
            if not args.json:
                print(f"repeat {i + 1}: {repeats[-1]:.2f} s", flush=True)
    summary = summarise(repeats)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"One unit is {describe()}.\nmedian {summary['median']:.2f} s (fastest {summary['min']:.2f}, "
              f"slowest {summary['max']:.2f}; {summary['slow']} of {len(repeats)} in the slow "
              f"mode); 1-minute load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
