"""How does the pipeline's cost grow with the data? The demo at 1x, 2x and 4x, and what that
predicts for FSDKaggle2018.

For each size (``--factors``, times the demo's default clips per class) the demo is built into
a temporary folder, written at 44.1 kHz (``--sample-rate``; FSDKaggle2018's clips are 16-bit
44.1 kHz PCM, the demo's default is the project's 22.05 kHz), so that reading a clip costs what
it costs on the real data, resampling included. Each step runs in a process of its own, which
reports its wall time and its peak resident memory (``ru_maxrss`` of itself and of its
children):

* ``build``: the demo build (``--workers`` processes), for information;
* ``logmel``, ``mfcc``: feature extraction of ``LOGMEL`` and ``SEED_MFCC`` into an empty cache,
  as notebook 02 does it, after a warm-up on three clips (imports, numba's compilation);
* ``train-logmel``, ``train-mfcc``: ``LOGMEL_CNN`` on the log-mel windows and ``SEED_CNN`` on
  the MFCC windows, trained as the project's jobs train (one TensorFlow thread,
  :func:`helpers.training.fit`, batches of notebook 03's size), on an in-library split
  (validation carved from the training clips), as FSDKaggle2018 would be split: a few epochs,
  timed one by one (an epoch includes its validation pass; the first also traces the graph, so
  the steady epoch is the median of the others). At ``--protocol-factor`` the networks train to
  early stopping with notebook 03's epochs, patience and seeds (one training per seed), which
  gives the epochs a training takes;
* ``embed``: musicnn clip embeddings (:func:`helpers.pretrained.clip_embeddings`, no cache,
  TensorFlow's default threads as in a notebook) of a fixed share (``--embed-share``) of the
  clips, when musicnn is installed.

Each step's cost is fitted as ``a + b * n`` (least squares over the sizes), ``n`` being what
it processes: all windows (features), training windows (an epoch), seconds of audio
(embeddings). The FSDKaggle2018 estimate takes its clip counts per class and split from the
real metadata shipped in ``helpers/resources``; the metadata holds no durations, so each clip
is taken to last the mean the dataset's README publishes (see :data:`PUBLISHED_HOURS`), cut at
``FeatureConfig.max_seconds`` into the project's 1-s windows. Every window is counted: the
activity gate, which drops silent windows, is not applied, so the window counts are an upper
estimate.

The reference workload of ``benchmarks/reference.py`` is timed before and after, so the run's
speed can be compared with the chain benchmark's (in reference units).

Run: .venv/bin/python benchmarks/bench_scale.py [--factors 1,2,4] [--keep .]
(``--keep DIR`` writes ``DIR/results/bench_scale.json``, which ``python -m helpers report``
turns into the README's estimate.)
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
from reference import ReferenceWorker, describe, summarise

from helpers.features import LOGMEL, SEED_MFCC, FeatureConfig, window_starts
from helpers.parallel import local_workers

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_03 = ROOT / "notebooks" / "03_baselines.ipynb"

# FSDKaggle2018's metadata holds no clip durations. Its README (FSDKaggle2018.doc/README.md of
# Zenodo record 2552860; the DCASE 2018 Task 2 description says the same) publishes the range,
# 300 ms to 30 s, and the total duration of each split: "roughly 18h" for the train set and
# "roughly 2h" for the test set. The mean clip duration of a split is that total over the
# split's clip count in the metadata.
PUBLISHED_HOURS = {"train": 18.0, "test": 2.0}
PUBLISHED_SOURCE = ("the FSDKaggle2018 README (Zenodo record 2552860): train set roughly 18 h, "
                    "test set roughly 2 h, clips of 300 ms to 30 s")
FSD_SAMPLE_RATE = 44100  # Hz: FSDKaggle2018's clips are 16-bit PCM at 44.1 kHz (its README)
FEATURES = {"logmel": LOGMEL, "mfcc": SEED_MFCC}
TRAIN_STEPS = {"train-logmel": ("logmel", "LOGMEL_CNN"), "train-mfcc": ("mfcc", "SEED_CNN")}
SUBSETS = ("instruments19", "all41")


# --- pure parts: the fit and the FSDKaggle2018 window counts ------------------------------------

def fit_cost(n, seconds) -> dict:
    """Least-squares line ``seconds = a + b * n`` over the sizes measured (numpy lstsq)."""
    n, seconds = np.asarray(n, dtype=float), np.asarray(seconds, dtype=float)
    if len(n) != len(seconds) or len(n) < 2 or len(set(n.tolist())) < 2:
        raise ValueError("a fit needs at least two sizes with different n")
    (a, b), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(n), n]), seconds, rcond=None)
    return {"a": float(a), "b": float(b)}


def predict(fit: dict, n: float) -> float:
    """What the fitted line gives for ``n``."""
    return fit["a"] + fit["b"] * n


def windows_per_clip(seconds: float, config: FeatureConfig) -> int:
    """Windows :func:`helpers.features.clip_windows` cuts from a clip of ``seconds`` before the
    activity gate: the clip is cut at ``max_seconds`` and padded to one window; frames as
    librosa counts them (centred frames: ``1 + samples // hop``)."""
    if config.max_seconds is not None:
        seconds = min(seconds, config.max_seconds)
    samples = max(int(round(seconds * config.sample_rate)),
                  int(round(config.window_seconds * config.sample_rate)))
    frames = max(1 + samples // config.hop_length, config.frames_per_window)
    return len(window_starts(frames, config.frames_per_window, config.frames_per_hop))


def mean_seconds(table: pd.DataFrame, hours: dict = PUBLISHED_HOURS) -> dict:
    """Mean clip duration per split: the published total over the split's clips in ``table``
    (the whole dataset's metadata)."""
    counts = table.groupby("split").size()
    return {split: hours[split] * 3600 / int(counts[split]) for split in hours}


def fsd_windows(table: pd.DataFrame, subset: str, val_fraction: float,
                configs: dict = FEATURES, hours: dict = PUBLISHED_HOURS) -> dict:
    """Clips, seconds of audio (cut at ``max_seconds``) and windows of ``subset`` of the
    FSDKaggle2018 metadata ``table``, every clip lasting its split's published mean.

    ``train_windows`` of a feature type are the windows a CNN trains on: the training split
    without its ``val_fraction`` of validation clips.
    """
    from helpers.data import subset_classes

    means = mean_seconds(table, hours)
    rows = table.loc[table["label"].isin(subset_classes(subset))]
    clips = {split: int((rows["split"] == split).sum()) for split in hours}
    max_seconds = min(c.max_seconds or np.inf for c in configs.values())
    out = {"subset": subset, "classes": int(rows["label"].nunique()), "clips": clips,
           "mean_seconds": {s: round(m, 2) for s, m in means.items()},
           "audio_seconds": round(sum(clips[s] * min(means[s], max_seconds) for s in clips), 1),
           "windows": {}, "train_windows": {}}
    for name, config in configs.items():
        per_split = {s: clips[s] * windows_per_clip(means[s], config) for s in clips}
        out["windows"][name] = sum(per_split.values())
        out["train_windows"][name] = round(per_split["train"] * (1 - val_fraction))
    return out


def notebook_defaults(path: Path, names) -> dict:
    """The defaults of ``names`` in the ``parameters`` cell of the notebook at ``path``."""
    import papermill as pm

    declared = pm.inspect_notebook(str(path))
    return {name: ast.literal_eval(declared[name]["default"]) for name in names}


def protocol_parameters(path: Path = NOTEBOOK_03) -> dict:
    """Notebook 03's defaults (seeds, epochs, patience, batch size, validation share), read from
    its ``parameters`` cell, so the estimate follows the notebook."""
    return notebook_defaults(path, ("seeds", "epochs", "patience", "batch_size", "val_fraction"))


# --- the steps, each in its own process ---------------------------------------------------------

def _peak_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # KiB on Linux


def _clips(root: Path) -> pd.DataFrame:
    from helpers.data import load_clips

    return load_clips(root)


def step_build(args) -> dict:
    from helpers.demo import DemoConfig, build_demo

    start = time.perf_counter()
    build_demo(args.root, DemoConfig(clips_per_class=args.clips_per_class,
                                     sample_rate=args.sample_rate),
               force=True, progress=False, workers=args.workers)
    seconds = time.perf_counter() - start
    import soundfile as sf

    clips = _clips(args.root)
    durations = [sf.info(p).duration for p in clips["path"]]
    cap = LOGMEL.max_seconds
    return {"seconds": seconds, "clips": len(clips),
            "audio_seconds": float(sum(min(d, cap) for d in durations)),
            "raw_audio_seconds": float(sum(durations))}


def step_features(args) -> dict:
    from helpers.features import extract_features

    config = FEATURES[args.step]
    clips = _clips(args.root)
    extract_features(clips.head(3), config, use_cache=False, progress=False)  # imports, JIT
    start = time.perf_counter()
    fs = extract_features(clips, config, use_cache=True, progress=False)
    return {"seconds": time.perf_counter() - start, "clips": len(clips), "windows": len(fs.X),
            "input_shape": list(config.input_shape)}


def step_train(args) -> dict:
    from helpers.parallel import configure_threads

    configure_threads(1)
    import tf_keras as keras

    from helpers import models
    from helpers.experiment import prepare
    from helpers.splits import assign_splits
    from helpers.training import TrainConfig, fit, set_seed

    feature, network = TRAIN_STEPS[args.step]
    cnn = getattr(models, network)
    clips = assign_splits(_clips(args.root), val_fraction=args.val_fraction, seed=0)
    prepared = prepare(clips, FEATURES[feature], progress=False)  # windows from the cache
    (X, y), (Xv, yv) = prepared.xy("train"), prepared.xy("val")
    to_stop = args.epochs > 0
    config = (TrainConfig(epochs=args.epochs, patience=args.patience, batch_size=args.batch_size)
              if to_stop else TrainConfig(epochs=args.few_epochs, patience=args.few_epochs,
                                          batch_size=args.batch_size))

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    seeds = [int(x) for x in args.seeds.split(",")] if to_stop else [0]
    times: list[float] = []
    per_seed, runs = [], []
    for seed in seeds:  # notebook 03 trains each network once per seed
        times = []
        set_seed(seed)
        model = models.build_cnn(prepared.input_shape, len(prepared.classes), cnn)
        result = fit(model, X, y, Xv, yv, len(prepared.classes), replace(config, seed=seed),
                     callbacks=[EpochTimes()])
        per_seed.append(times)
        runs.append(result)
        keras.backend.clear_session()
    steady = [t for ts in per_seed for t in (ts[1:] or ts)]  # the first epoch also traces
    return {"train_windows": len(X), "val_windows": len(Xv), "epoch_seconds": per_seed,
            "first_epoch": per_seed[0][0], "epoch": float(np.median(steady)), "seeds": seeds,
            "epochs_runs": [r.epochs_run for r in runs], "best_epochs": [r.best_epoch for r in runs],
            "epochs_run": float(np.mean([r.epochs_run for r in runs])),
            "to_early_stop": to_stop, "max_epochs": config.epochs, "patience": config.patience,
            "batch_size": config.batch_size, "network": network, "feature": feature,
            "params": models.count_params(model)}


def step_embed(args) -> dict:
    from helpers import pretrained as P
    from helpers.audio import load_audio

    clips = _clips(args.root)
    sample = clips.sample(frac=args.embed_share, random_state=0).reset_index(drop=True)
    config = P.EmbeddingConfig()
    audio = sum(len(load_audio(p, P.SAMPLE_RATE, config.max_seconds)) for p in sample["path"])
    P.clip_embeddings(sample.head(2), config, use_cache=False, progress=False)  # load the networks
    start = time.perf_counter()
    emb = P.clip_embeddings(sample, config, use_cache=False, progress=False)
    return {"seconds": time.perf_counter() - start, "clips": len(sample),
            "audio_seconds": audio / P.SAMPLE_RATE, "patches": int(np.sum(emb.n_patches)),
            "models": list(config.models)}


STEPS = {"build": step_build, "logmel": step_features, "mfcc": step_features,
         "train-logmel": step_train, "train-mfcc": step_train, "embed": step_embed}


def run_step(step: str, root: Path, cache: Path, args, **extra) -> dict:
    """``step`` in a fresh process; its record plus ``peak_mib``."""
    env = {**os.environ, "HELPERS_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    if step.startswith("train"):
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if args.embed_threads and step == "embed":
        env.update(OMP_NUM_THREADS=str(args.embed_threads))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step, "--root", str(root),
           "--workers", str(args.workers), "--embed-share", str(args.embed_share),
           "--embed-threads", str(args.embed_threads), "--sample-rate", str(args.sample_rate)]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        sys.stdout.write(done.stdout[-3000:])
        raise SystemExit(f"step {step} failed (exit status {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _worker(args) -> None:
    if args.step == "embed" and args.embed_threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.embed_threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.embed_threads)
    record = STEPS[args.step](args)
    record["peak_mib"] = _peak_mib()
    print(json.dumps(record))


def musicnn_available() -> bool:
    try:
        from helpers.pretrained import musicnn_dir

        musicnn_dir()
        return True
    except Exception:
        return False


def measure_size(factor: float, args, protocol: dict) -> dict:
    """Every step on the demo built at ``factor`` times the default clips per class."""
    from helpers.demo import DemoConfig

    clips_per_class = max(2, round(DemoConfig().clips_per_class * factor))
    out = {"factor": factor, "clips_per_class": clips_per_class, "steps": {}}
    to_stop = abs(factor - args.protocol_factor) < 1e-9
    with tempfile.TemporaryDirectory(prefix="bench_scale-") as tmp:
        root, cache = Path(tmp) / "demo", Path(tmp) / "cache"
        steps = ["build", "logmel", "mfcc", "train-logmel", "train-mfcc"]
        steps += ["embed"] if args.embed_share > 0 and musicnn_available() else []
        for step in steps:
            extra = {"clips_per_class": clips_per_class}
            if step.startswith("train"):
                extra.update(batch_size=protocol["batch_size"], val_fraction=protocol["val_fraction"],
                             few_epochs=args.epochs, seeds=",".join(map(str, protocol["seeds"])),
                             epochs=protocol["epochs"] if to_stop else 0, patience=protocol["patience"])
            record = run_step(step, root, cache, args, **extra)
            out["steps"][step] = record
            print(f"  {factor:g}x {step:13s} {_one_line(step, record)}", flush=True)
    out["clips"] = out["steps"]["build"]["clips"]
    out["audio_seconds"] = out["steps"]["build"]["audio_seconds"]
    return out


def _one_line(step: str, r: dict) -> str:
    if step == "build":
        return f"{r['seconds']:7.1f} s  {r['clips']} clips, {r['audio_seconds'] / 60:.0f} min of audio  peak {r['peak_mib']:.0f} MiB"
    if step in FEATURES:
        return f"{r['seconds']:7.1f} s  {r['windows']} windows ({r['windows'] / r['seconds']:.0f}/s)  peak {r['peak_mib']:.0f} MiB"
    if step.startswith("train"):
        runs = "+".join(map(str, r["epochs_runs"]))
        return (f"{r['epoch']:7.1f} s/epoch  {r['train_windows']} training windows, "
                f"{runs} epochs (first {r['first_epoch']:.1f} s)  peak {r['peak_mib']:.0f} MiB")
    return (f"{r['seconds']:7.1f} s  {r['clips']} clips ({r['clips'] / r['seconds']:.1f}/s, "
            f"{r['audio_seconds'] / r['seconds']:.0f}x real time)  peak {r['peak_mib']:.0f} MiB")


# --- fits and the estimate ----------------------------------------------------------------------

def cost_points(sizes: list[dict]) -> dict:
    """Per step: (n, seconds, peak MiB) at each size; ``n`` as the module docstring says."""
    points: dict = {}
    for size in sizes:
        for step, r in size["steps"].items():
            if step in FEATURES:
                n, s = r["windows"], r["seconds"]
            elif step.startswith("train"):
                n, s = r["train_windows"], r["epoch"]
            elif step == "embed":
                n, s = r["audio_seconds"], r["seconds"]
            else:
                continue
            points.setdefault(step, []).append((n, s, r["peak_mib"]))
    return points


def fits(sizes: list[dict]) -> dict:
    """Time and peak memory of each step as ``a + b * n``. Feature extraction and training hold
    every window in memory, so their peak grows with ``n``; the embeddings stream the clips
    through the networks a batch at a time, so their peak is taken as the largest measured."""
    out = {}
    for step, pts in cost_points(sizes).items():
        n, s, mem = zip(*pts)
        if len(set(n)) >= 2:
            memory = {"a": max(mem), "b": 0.0} if step == "embed" else fit_cost(n, mem)
            out[step] = {"unit": _unit(step), "time": fit_cost(n, s), "memory": memory,
                         "largest_peak_mib": max(mem)}
    return out


def _unit(step: str) -> str:
    """What ``n`` counts for ``step`` (plural)."""
    return {"embed": "seconds of audio"}.get(
        step, "training windows" if step.startswith("train") else "windows")


def estimate(fitted: dict, sizes: list[dict], protocol: dict, table: pd.DataFrame) -> dict:
    """Minutes and peak MiB per step for each FSDKaggle2018 subset, and notebook 03's CNN part."""
    stop_runs = {step: r for size in sizes for step, r in size["steps"].items()
                 if step.startswith("train") and r["to_early_stop"]}
    out = {}
    for subset in SUBSETS:
        counts = fsd_windows(table, subset, protocol["val_fraction"])
        n_of = {"logmel": counts["windows"]["logmel"], "mfcc": counts["windows"]["mfcc"],
                "train-logmel": counts["train_windows"]["logmel"],
                "train-mfcc": counts["train_windows"]["mfcc"], "embed": counts["audio_seconds"]}
        steps = {step: {"n": n_of[step], "minutes": predict(f["time"], n_of[step]) / 60,
                        "peak_mib": max(predict(f["memory"], n_of[step]), f["largest_peak_mib"])}
                 for step, f in fitted.items()}  # a larger set never needs less memory
        training = {}
        for step, run in stop_runs.items():
            if step in steps:
                trainings = len(protocol["seeds"])
                training[step] = {"trainings": trainings, "epochs": run["epochs_run"],
                                  "minutes": trainings * run["epochs_run"] * steps[step]["minutes"]}
        features = sum(steps[s]["minutes"] for s in FEATURES if s in steps)
        out[subset] = {**counts, "steps": steps,
                       "protocol": {"trainings": training, "features_minutes": features,
                                    "serial_minutes": features + sum(t["minutes"] for t in training.values())}}
    return out


def show(sizes: list[dict], fitted: dict, est: dict, protocol: dict) -> None:
    print(f"\n{'step':14s}" + "".join(f" {str(s['factor']) + 'x':>22s}" for s in sizes))
    print(f"{'clips':14s}" + "".join(f" {s['clips']:>22d}" for s in sizes))
    for step in sizes[0]["steps"]:
        cells = []
        for s in sizes:
            r = s["steps"].get(step)
            if r is None:
                cells.append(f" {'–':>22s}")
            elif step.startswith("train"):
                cells.append(f" {r['epoch']:6.1f} s/ep {r['peak_mib']:6.0f} MiB")
            else:
                cells.append(f" {r['seconds']:7.1f} s {r['peak_mib']:7.0f} MiB")
        print(f"{step:14s}" + "".join(cells))
    print("\nfit: seconds = a + b * n")
    for step, f in fitted.items():
        t, m = f["time"], f["memory"]
        print(f"  {step:13s} a = {t['a']:7.2f} s, b = {1000 * t['b']:8.3f} s per 1,000 {f['unit']};"
              f" peak memory {m['a']:.0f} MiB + {1000 * m['b']:.1f} MiB per 1,000")
    print(f"\nFSDKaggle2018 (clip durations: {PUBLISHED_SOURCE}; each clip at its split's mean, cut "
          f"at {LOGMEL.max_seconds:g} s, 1-s windows, no window dropped by the activity gate)")
    for subset, e in est.items():
        print(f"  {subset}: {e['clips']['train']} train + {e['clips']['test']} test clips of "
              f"{e['classes']} classes, {e['audio_seconds'] / 3600:.1f} h of audio, "
              f"windows {e['windows']}, training windows {e['train_windows']}")
        for step, s in e["steps"].items():
            print(f"    {step:13s} {s['minutes']:7.1f} min   peak {s['peak_mib']:6.0f} MiB")
        p = e["protocol"]
        for step, t in p["trainings"].items():
            print(f"    notebook 03: {t['trainings']} x {step} to early stopping "
                  f"({t['epochs']:.1f} epochs on average, as on the demo): {t['minutes']:.0f} min")
        print(f"    notebook 03's protocol, features + CNN trainings, serial: "
              f"{p['serial_minutes']:.0f} min (the chain trains on 2 worker processes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factors", default="1,2,4",
                        help="sizes, times the demo's default clips per class (default 1,2,4)")
    parser.add_argument("--protocol-factor", type=float, default=1.0,
                        help="the size at which the CNNs train to early stopping (default 1)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs timed at the other sizes (default 3)")
    parser.add_argument("--embed-share", type=float, default=0.1,
                        help="share of the clips embedded with musicnn (default 0.1; 0 skips)")
    parser.add_argument("--embed-threads", type=int, default=0,
                        help="TensorFlow threads of the embedding step (default 0: its default)")
    parser.add_argument("--workers", type=int, default=2, help="processes of the demo build")
    parser.add_argument("--sample-rate", type=int, default=FSD_SAMPLE_RATE,
                        help="sample rate the demo's files are written at (default 44100, "
                             "FSDKaggle2018's)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write DIR/results/bench_scale.json (e.g. --keep .)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="reference repeats before and after (default 3)")
    # a step in its own process
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clips-per-class", type=int, default=120, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--val-fraction", type=float, default=0.2, help=argparse.SUPPRESS)
    parser.add_argument("--few-epochs", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--patience", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", default="0", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        _worker(args)
        return

    from helpers.data import load_metadata, shipped_metadata_root
    from helpers.files import write_json

    factors = [float(f) for f in args.factors.split(",")]
    protocol = protocol_parameters()
    start = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    print(f"bench_scale: factors {factors}, demo files at {args.sample_rate} Hz, notebook 03's "
          f"protocol {protocol}; 1/5/15-min load "
          f"average {load_start} on {os.cpu_count()} cores", flush=True)
    with ReferenceWorker() as ref:  # this machine's speed of the day, in reference units
        before = ref.measure(args.repeats)
        sizes = [measure_size(f, args, protocol) for f in factors]
        after = ref.measure(args.repeats)
    reference = {**summarise(before + after), "before": before, "after": after, "unit": describe()}
    print(f"reference unit: {reference['median']:.2f} s (repeats {reference['repeats']})")
    fitted = fits(sizes)
    table = load_metadata(shipped_metadata_root())
    est = estimate(fitted, sizes, protocol, table)
    show(sizes, fitted, est, protocol)
    wall = time.perf_counter() - start
    print(f"\n{wall / 60:.1f} min in all; load average {load_start} at the start, "
          f"{[round(x, 2) for x in os.getloadavg()]} at the end")
    if args.keep:
        record = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "cpu_count": os.cpu_count(), "workers": local_workers(),
                  "load_averages_start": load_start,
                  "load_averages_end": [round(x, 2) for x in os.getloadavg()],
                  "wall_seconds": round(wall, 1), "factors": factors,
                  "protocol_factor": args.protocol_factor, "embed_share": args.embed_share,
                  "sample_rate": args.sample_rate, "reference": reference,
                  "protocol": protocol, "sizes": sizes, "fits": fitted, "fsdkaggle2018": est,
                  "durations_source": PUBLISHED_SOURCE, "published_hours": PUBLISHED_HOURS,
                  "feature_configs": {k: asdict(v) for k, v in FEATURES.items()}}
        path = write_json(args.keep.resolve() / "results" / "bench_scale.json", record)
        print(f"written to {path}")


if __name__ == "__main__":  # required: the demo build's worker processes re-import this file
    main()
