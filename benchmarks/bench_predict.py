"""How fast is ``python -m helpers predict``? Clips per second and x real time on one core.

For a Keras model bundle and any TFLite models, on a folder of clips (default: the first 200
demo test clips), two ways of running the model:

* before: one model call per file (``batch_files=1``), and for TFLite one window per
  interpreter call (``batch_windows=1``): how ``predict`` ran before it batched;
* after: the windows of many files per call (the defaults of :mod:`helpers.predict`).

Everything runs on one thread: TensorFlow's intra- and inter-op pools are set to 1, TFLite gets
``num_threads=1``, and BLAS/OpenMP are limited to one thread. For each model and way the table
gives the whole of predict after loading the model (read, resample, features, model, CSV row):
clips per second and x real time (seconds of audio analysed per second of run time; predict
cuts files at the feature configuration's ``max_seconds``), and the model calls
alone (same inputs, grouped as predict groups them) in milliseconds per clip: medians of
``--rounds`` runs, interleaved so that a change of load hits every row alike. It also checks
that both ways print the same CSV. Times are noisy on a shared machine: run it twice.
Run: .venv/bin/python benchmarks/bench_predict.py [--model DIR] [--tflite FILE ...] [--clips 200]
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"  # one core

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import helpers  # noqa: E402, F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.audio import duration_seconds, find_audio_files  # noqa: E402
from helpers.data import dataset_root  # noqa: E402
from helpers.paths import models_dir  # noqa: E402
from helpers.predict import DEFAULT_BATCH_FILES, DEFAULT_BATCH_WINDOWS, load_predictor  # noqa: E402

WAYS = {  # name -> (batch_files, batch_windows) for Keras, and for TFLite
    "before": {"keras": (1, DEFAULT_BATCH_WINDOWS), "tflite": (1, 1)},
    "after": {"keras": (DEFAULT_BATCH_FILES, DEFAULT_BATCH_WINDOWS),
              "tflite": (DEFAULT_BATCH_FILES, DEFAULT_BATCH_WINDOWS)},
}


def one_thread() -> None:
    """TensorFlow on one thread (before any TensorFlow op runs)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def groups(inputs: list, size_of, batch_files: int, batch_windows: int) -> list[list]:
    """The inputs grouped as :meth:`helpers.predict.Predictor.iter_files` groups them."""
    out, current, n_units = [], [], 0
    for x in inputs:
        current.append(x)
        n_units += size_of(x)
        if len(current) >= batch_files or n_units >= batch_windows:
            out.append(current)
            current, n_units = [], 0
    return out + ([current] if current else [])


def run_predict(predictor, files: list[Path]) -> tuple[float, list[list[str]]]:
    """Seconds for predict's loop over ``files`` (after loading the model) and its CSV rows."""
    start = time.perf_counter()
    rows = [predictor.row(r) for r in predictor.iter_files(files) if r.error is None]
    return time.perf_counter() - start, rows


def time_model(predictor, inputs: list) -> tuple[float, int]:
    """Seconds of the model calls alone on precomputed inputs, and the number of calls (Keras
    ``predict`` batches or TFLite invocations: at most ``batch_windows`` windows each)."""
    size_of = predictor.clip_model.size_of
    batches = groups(inputs, size_of, predictor.batch_files, predictor.batch_windows)
    start = time.perf_counter()
    for batch in batches:
        predictor.outputs(batch)
    seconds = time.perf_counter() - start
    calls = sum(math.ceil(sum(map(size_of, b)) / predictor.batch_windows) for b in batches)
    return seconds, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=models_dir() / "instrument_cnn",
                        help="Keras model bundle folder (default: models/instrument_cnn)")
    parser.add_argument("--tflite", type=Path, nargs="*", default=None,
                        help="TFLite models (default: every .tflite in models/instrument_cnn_tflite)")
    parser.add_argument("--folder", type=Path, default=None,
                        help="clips to predict (default: the demo's FSDKaggle2018.audio_test)")
    parser.add_argument("--clips", type=int, default=200, help="use the first N files")
    parser.add_argument("--rounds", type=int, default=3,
                        help="timed runs of every model and way, interleaved; medians are shown")
    args = parser.parse_args()

    one_thread()
    folder = args.folder or dataset_root("demo") / "FSDKaggle2018.audio_test"
    files = find_audio_files([folder])[:args.clips]
    if not files:
        raise SystemExit(f"no audio files in {folder}")
    tflite = args.tflite
    if tflite is None:
        tflite = sorted((models_dir() / "instrument_cnn_tflite").glob("*.tflite"))
    models = [("keras", args.model)] + [("tflite", p) for p in tflite]
    missing = [str(p) for _, p in models if not p.exists()]
    if missing:
        raise SystemExit(f"model(s) not found: {', '.join(missing)} (run `make run`, or pass "
                         "--model / --tflite)")

    first = load_predictor(args.model)
    cap = first.feature_config.max_seconds
    durations = [duration_seconds(f) for f in files]
    audio = sum(min(d, cap) if cap else d for d in durations)
    inputs_of = {}  # model inputs per feature configuration and standardiser

    def inputs_for(predictor) -> list:
        cm = predictor.clip_model
        key = (repr(cm.feature_config), cm.mean.tobytes(), cm.std.tobytes())
        if key not in inputs_of:
            inputs_of[key] = [cm.inputs_of_file(f) for f in files]
        return inputs_of[key]

    print(f"{len(files)} clips from {folder}: {sum(durations):.0f} s of audio "
          f"({audio:.0f} s analysed, files cut at {cap} s), "
          f"{sum(map(len, inputs_for(first)))} windows; one thread; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"after = up to {DEFAULT_BATCH_FILES} files or {DEFAULT_BATCH_WINDOWS} windows per "
          "model call; before = one call per file (TFLite: per window)\n")

    header = ("model", "way", "clips/s", "x real time", "model calls", "model ms/clip",
              "same CSV")
    predictors = {(kind, path, way): load_predictor(path, batch_files=settings[kind][0],
                                                    batch_windows=settings[kind][1], threads=1)
                  for kind, path in models for way, settings in WAYS.items()}
    for predictor in predictors.values():
        run_predict(predictor, files[:5])  # warm-up: graph tracing, interpreter, librosa
    seconds: dict = {key: [] for key in predictors}
    model_seconds: dict = {key: [] for key in predictors}
    rows_of, calls_of = {}, {}
    for _ in range(args.rounds):  # interleaved, so a change of load hits every way alike
        for key, predictor in predictors.items():
            elapsed, rows_of[key] = run_predict(predictor, files)
            seconds[key].append(elapsed)
            elapsed, calls_of[key] = time_model(predictor, inputs_for(predictor))
            model_seconds[key].append(elapsed)
    lines = []
    for (kind, path, way) in predictors:
        run = statistics.median(seconds[kind, path, way])
        same = ("yes" if rows_of[kind, path, "before"] == rows_of[kind, path, "after"] else "NO"
                ) if way == "after" else ""
        lines.append([f"{kind} {path.name}", way, f"{len(files) / run:.1f}", f"{audio / run:.0f}",
                      str(calls_of[kind, path, way]),
                      f"{1000 * statistics.median(model_seconds[kind, path, way]) / len(files):.2f}",
                      same])
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in lines:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
