"""How fast is ``python -m helpers predict``? Clips per second and x real time on one core.

On a folder of clips (default: the first 200 demo test clips), each model two ways:

* the shipped model (``--shipped``, default models/instrument_classifier, the bundle notebook 10
  writes: the CNN and a head on musicnn embeddings averaged, or either alone). Before: musicnn
  runs through the Keras models, each file's patches in calls of their own
  (``musicnn_engine="keras"``); after: :class:`helpers.pretrained.FastMusicnn` (each distinct
  window of the timbral filters once, the patches of many files per call, every call of one
  fixed shape). Both batch the CNN's windows across files. A bundle without musicnn runs the
  same both ways;
* a Keras CNN bundle (``--model``) and TFLite models (``--tflite``). Before: one model call per
  file (``batch_files=1``), and for TFLite one window per interpreter call (``batch_windows=1``);
  after: the windows of many files per call (the defaults of :mod:`helpers.predict`).

Everything runs on one thread: TensorFlow's intra- and inter-op pools are set to 1, TFLite gets
``num_threads=1``, and BLAS/OpenMP are limited to one thread. For each model and way the table
gives the whole of predict after loading the model (read, resample, features, model, CSV row):
clips per second and x real time (seconds of audio analysed per second of run time; predict
cuts files at the model's ``max_seconds``), the process's CPU time per clip (less sensitive to
other jobs than wall time), and the model calls alone (same inputs, grouped as predict groups
them) in milliseconds per clip: medians of ``--rounds`` runs, interleaved so that a change of
load hits every row alike; ``speed-up`` is the median over rounds of before's time / after's.
It also checks whether both ways print the same CSV (4 decimals).

Then the two ways of the shipped model on every labelled clip of the folder (not only the timed
ones; ``--accuracy-clips``): the accuracy of each, how often they agree on the top class and on
the top three (in order), the largest difference of a probability and, with a detector, of the
``ood_score`` (printed to 4 decimals, so a row can differ there) and how often the status agrees.
Times are noisy on a shared machine: run it twice.
Run: .venv/bin/python benchmarks/bench_predict.py [--shipped DIR] [--model DIR] [--tflite FILE ...]
     [--clips 200] [--rounds 3] [--no-cnn]
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"  # one core

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import helpers  # noqa: E402, F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.audio import duration_seconds, find_audio_files  # noqa: E402
from helpers.data import dataset_root  # noqa: E402
from helpers.paths import models_dir  # noqa: E402
from helpers.predict import (  # noqa: E402
    DEFAULT_BATCH_FILES,
    DEFAULT_BATCH_WINDOWS,
    DEFAULT_MODEL_NAME,
    CNNClips,
    load_predictor,
)

WAYS = {  # name -> load_predictor options, per kind of row
    "before": {"keras": {"batch_files": 1}, "tflite": {"batch_files": 1, "batch_windows": 1},
               "shipped": {"musicnn_engine": "keras"}},
    "after": {"keras": {}, "tflite": {}, "shipped": {"musicnn_engine": "fast"}},
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


def run_predict(predictor, files: list[Path]) -> tuple[float, float, list]:
    """Wall and CPU seconds of predict's loop over ``files`` (after loading the model), and
    its results (CSV row and probabilities of every readable file)."""
    start, cpu = time.perf_counter(), time.process_time()
    results = [(predictor.row(r), r.probs) for r in predictor.iter_files(files)
               if r.error is None]
    return time.perf_counter() - start, time.process_time() - cpu, results


def time_model(predictor, inputs: list) -> tuple[float, int | None]:
    """Seconds of the model calls alone on precomputed inputs, and for a CNN the number of
    calls (Keras ``predict`` batches or TFLite invocations: at most ``batch_windows`` windows
    each; None for other kinds)."""
    size_of = predictor.clip_model.size_of
    batches = groups(inputs, size_of, predictor.batch_files, predictor.batch_windows)
    start = time.perf_counter()
    for batch in batches:
        predictor.outputs(batch)
    seconds = time.perf_counter() - start
    if not isinstance(predictor.clip_model, CNNClips):
        return seconds, None
    return seconds, sum(math.ceil(sum(map(size_of, b)) / predictor.batch_windows) for b in batches)


def labels_of(files: list[Path]) -> dict[str, str]:
    """The label of each file the demo's metadata names (by file name); {} without metadata."""
    from helpers.data import load_metadata

    try:
        table = load_metadata(dataset_root("demo"))
    except (FileNotFoundError, ValueError):
        return {}
    label = dict(zip(table["fname"], table["label"]))
    return {f.name: label[f.name] for f in files if f.name in label}


def compare_ways(before, after, files: list[Path]) -> list[str]:
    """Accuracy of both predictors on the labelled ``files`` and how they agree."""
    labels = labels_of(files)
    results = {}
    for way, predictor in (("before", before), ("after", after)):
        results[way] = [r for r in predictor.iter_files(files) if r.error is None]
    names = [r.path.name for r in results["before"]]
    assert names == [r.path.name for r in results["after"]], "the two ways predicted other files"
    p_before, p_after = (np.stack([r.probs for r in results[w]]) for w in ("before", "after"))
    classes = np.array(before.classes)
    top3_before = np.argsort(-p_before, axis=1, kind="stable")[:, :3]
    top3_after = np.argsort(-p_after, axis=1, kind="stable")[:, :3]
    lines = [f"{len(names)} clips predicted both ways: top class the same for "
             f"{np.mean(top3_before[:, 0] == top3_after[:, 0]):.1%}, top three (in order) for "
             f"{np.mean(np.all(top3_before == top3_after, axis=1)):.1%}; largest probability "
             f"difference {np.abs(p_before - p_after).max():.2e}"]
    if before.ood is not None:
        s_before, s_after = (np.array([r.ood_score for r in results[w]]) for w in results)
        same = np.mean([a.status == b.status for a, b in zip(results["before"], results["after"])])
        gap = np.abs(s_before - s_after)
        lines.append(f"'unlike any class' detector: the same status for {same:.1%}; largest "
                     f"score difference {gap.max():.2e} ({(gap / np.abs(s_before)).max():.1e} "
                     f"relative; threshold {before.ood.threshold:.4g})")
    known = [i for i, n in enumerate(names) if labels.get(n) in set(classes)]
    if not known:
        return lines + ["no labels for these clips (accuracy needs the demo's test clips)"]
    truth = np.array([labels[names[i]] for i in known])
    for way, probs in (("before", p_before), ("after", p_after)):
        top1 = classes[probs[known].argmax(axis=1)]
        lines.append(f"accuracy {way}: {np.mean(top1 == truth):.4f} "
                     f"({int(np.sum(top1 == truth))} of {len(known)} labelled clips)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shipped", type=Path, default=models_dir() / DEFAULT_MODEL_NAME,
                        help="the shipped bundle (default: models/instrument_classifier)")
    parser.add_argument("--model", type=Path, default=models_dir() / "instrument_cnn",
                        help="Keras CNN bundle folder (default: models/instrument_cnn)")
    parser.add_argument("--tflite", type=Path, nargs="*", default=None,
                        help="TFLite models (default: every .tflite in models/instrument_cnn_tflite)")
    parser.add_argument("--no-cnn", action="store_true",
                        help="time the shipped bundle only (no --model, no --tflite)")
    parser.add_argument("--folder", type=Path, default=None,
                        help="clips to predict (default: the demo's FSDKaggle2018.audio_test)")
    parser.add_argument("--clips", type=int, default=200, help="time the first N files")
    parser.add_argument("--accuracy-clips", type=int, default=None,
                        help="compare the shipped model's two ways on the first N files "
                             "(default: all; 0: skip)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="timed runs of every model and way, interleaved; medians are shown")
    args = parser.parse_args()

    one_thread()
    folder = args.folder or dataset_root("demo") / "FSDKaggle2018.audio_test"
    all_files = find_audio_files([folder])
    files = all_files[:args.clips]
    if not files:
        raise SystemExit(f"no audio files in {folder}")
    models = [("shipped", args.shipped)]
    if not args.no_cnn:
        tflite = args.tflite
        if tflite is None:
            tflite = sorted((models_dir() / "instrument_cnn_tflite").glob("*.tflite"))
        models += [("keras", args.model)] + [("tflite", p) for p in tflite]
    missing = [str(p) for _, p in models if not p.exists()]
    if missing:
        raise SystemExit(f"model(s) not found: {', '.join(missing)} (run `make run`, or pass "
                         "--shipped / --model / --tflite)")

    durations = [duration_seconds(f) for f in files]
    predictors = {(kind, path, way): load_predictor(path, threads=1, **WAYS[way][kind])
                  for kind, path in models for way in WAYS}
    inputs_of: dict = {}  # model inputs, shared by the models that read the same

    def inputs_for(kind: str, path: Path, predictor) -> list:
        cm = predictor.clip_model
        key = (("cnn", repr(cm.feature_config), cm.mean.tobytes(), cm.std.tobytes())
               if isinstance(cm, CNNClips) else (kind, path))
        if key not in inputs_of:
            inputs_of[key] = [cm.inputs_of_file(f) for f in files]
        return inputs_of[key]

    def analysed(predictor) -> float:
        cap = predictor.clip_model.max_seconds
        return sum(min(d, cap) if cap else d for d in durations)

    shipped = predictors["shipped", args.shipped, "after"]
    print(f"{len(files)} clips from {folder}: {sum(durations):.0f} s of audio "
          f"({analysed(shipped):.0f} s analysed by the shipped model, "
          f"{shipped.clip_model.kind!r}, files cut at {shipped.clip_model.max_seconds} s); "
          f"one thread; {args.rounds} rounds; load average {os.getloadavg()[0]:.1f}")
    print(f"CNN rows: after = up to {DEFAULT_BATCH_FILES} files or {DEFAULT_BATCH_WINDOWS} windows "
          "per model call; before = one call per file (TFLite: per window). Shipped: before = "
          "musicnn through the Keras models, one file per call; after = FastMusicnn\n")

    for predictor in predictors.values():
        run_predict(predictor, files[:5])  # warm-up: graph tracing, interpreter, librosa
    seconds: dict = {key: [] for key in predictors}
    cpu_seconds: dict = {key: [] for key in predictors}
    model_seconds: dict = {key: [] for key in predictors}
    results_of, calls_of = {}, {}
    for _ in range(args.rounds):  # interleaved, so a change of load hits every way alike
        for key, predictor in predictors.items():
            elapsed, cpu, results_of[key] = run_predict(predictor, files)
            seconds[key].append(elapsed)
            cpu_seconds[key].append(cpu)
            elapsed, calls_of[key] = time_model(predictor, inputs_for(key[0], key[1], predictor))
            model_seconds[key].append(elapsed)
    load_after = os.getloadavg()[0]

    header = ("model", "way", "clips/s", "x real time", "cpu ms/clip", "model calls",
              "model ms/clip", "speed-up", "same CSV")
    lines = []
    for (kind, path, way), predictor in predictors.items():
        run = statistics.median(seconds[kind, path, way])
        speedup = same = ""
        if way == "after":
            speedup = "{:.2f}x".format(statistics.median(
                b / a for b, a in zip(seconds[kind, path, "before"], seconds[kind, path, way])))
            rows = [[r for r, _ in results_of[kind, path, w]] for w in ("before", "after")]
            differ = sum(a != b for a, b in zip(*rows))
            top3 = sum(a[1:7] != b[1:7] for a, b in zip(*rows))  # class and probability columns
            same = "yes" if differ == 0 and len(rows[0]) == len(rows[1]) else \
                f"{differ} of {len(rows[0])} rows differ ({top3} in the top 3)"
        calls = calls_of[kind, path, way]
        lines.append([f"{kind} {path.name}", way, f"{len(files) / run:.1f}",
                      f"{analysed(predictor) / run:.0f}",
                      f"{1000 * statistics.median(cpu_seconds[kind, path, way]) / len(files):.1f}",
                      "-" if calls is None else str(calls),
                      f"{1000 * statistics.median(model_seconds[kind, path, way]) / len(files):.2f}",
                      speedup, same])
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in lines:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"(load average at the end: {load_after:.1f})")

    if args.accuracy_clips != 0:
        subset = all_files[:args.accuracy_clips] if args.accuracy_clips else all_files
        print(f"\nShipped model {args.shipped}, before (Keras musicnn) against after "
              "(FastMusicnn):")
        for line in compare_ways(predictors["shipped", args.shipped, "before"], shipped, subset):
            print(f"  {line}")


if __name__ == "__main__":
    main()
