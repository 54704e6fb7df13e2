"""What does magnitude pruning buy? Sparsity, accuracy lost, gzip and int8-TFLite size, latency.

Loads a saved model bundle (default: models/instrument_cnn), prunes it to --sparsity while
fine-tuning on the demo data's training split, and prints one table with PASS/MISS per goal:
>= 80 % sparsity with <= 1 point clip accuracy lost (test), pruned .keras >= 3x smaller than
dense (both gzip'd), pruned int8 TFLite >= 10x smaller than the dense float .keras file (both
gzip'd; the uncompressed ratio is printed beside it), and the one-thread TFLite latency per
window of dense float / pruned float / pruned int8, measured interleaved in the same run.
It reports; a missed goal never makes it fail (exit status 0).
Run: .venv/bin/python benchmarks/bench_pruning.py [--model DIR] [--sparsity 0.8]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import helpers  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.data import dataset_root, load_clips
from helpers.experiment import prepare, score
from helpers.models import load_bundle
from helpers.paths import models_dir
from helpers.pruning import (
    Goals,
    PruneConfig,
    check_goals,
    model_sizes,
    prune_model,
    tflite_variants,
)
from helpers.splits import assign_splits
from helpers.tflite import compare_latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=models_dir() / "instrument_cnn",
                        help="model bundle folder (default: models/instrument_cnn)")
    parser.add_argument("--sparsity", type=float, default=0.8, help="target sparsity (0-1)")
    parser.add_argument("--fine-tune-epochs", type=int, default=5)
    parser.add_argument("--ramp-share", type=float, default=0.4,
                        help="share of the fine-tuning steps over which sparsity rises")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--min-layer-weights", type=int, default=1024,
                        help="conv/dense kernels smaller than this stay dense")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--subset", default="instruments19")
    parser.add_argument("--max-clips-per-class", type=int, default=None,
                        help="must match what the model was trained on")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-latency", type=int, default=200, help="timed runs per model")
    parser.add_argument("--n-representative", type=int, default=200)
    args = parser.parse_args()

    start = time.perf_counter()
    load = os.getloadavg()[0]
    bundle = load_bundle(args.model)
    clips = load_clips(dataset_root(args.dataset), subset=args.subset,
                       max_clips_per_class=args.max_clips_per_class, seed=args.split_seed)
    clips = assign_splits(clips, val_fraction=args.val_fraction, seed=args.split_seed)
    prepared = prepare(clips, bundle.feature_config, progress=False)
    if not np.allclose(prepared.mean, bundle.mean):
        print("warning: the standardiser differs from the model's: other clips or split than "
              "the model was trained on (check --max-clips-per-class / --split-seed)")
    (X_train, y_train), (X_val, y_val) = prepared.xy("train"), prepared.xy("val")
    config = PruneConfig(target_sparsity=args.sparsity, fine_tune_epochs=args.fine_tune_epochs,
                         batch_size=args.batch_size, learning_rate=args.learning_rate,
                         ramp_share=args.ramp_share, min_layer_weights=args.min_layer_weights)
    pruned, info = prune_model(bundle.model, X_train, y_train, X_val, y_val,
                               len(prepared.classes), config, seed=args.seed)
    dense_scores, pruned_scores = score(bundle.model, prepared), score(pruned, prepared)

    dense_tfl = tflite_variants(bundle.model, X_train, modes=("float",))
    pruned_tfl = tflite_variants(pruned, X_train, modes=("float", "int8"),
                                 n_representative=args.n_representative)
    dense_size, pruned_size = model_sizes(bundle.model), model_sizes(pruned, pruned_tfl)
    latency = compare_latency({"dense float": dense_tfl["float"],
                               "pruned float": pruned_tfl["float"],
                               "pruned int8": pruned_tfl["int8"]},
                              prepared.splits["test"].X, n=args.n_latency, threads=1)
    measured = {
        "sparsity": info["sparsity"],
        "accuracy_drop": dense_scores["accuracy"] - pruned_scores["accuracy"],
        "gzip_ratio": dense_size["keras_gzip_bytes"] / pruned_size["keras_gzip_bytes"],
        "int8_ratio_gzip": dense_size["keras_gzip_bytes"] / pruned_size["tflite_int8_gzip_bytes"],
        "int8_ratio_raw": dense_size["keras_bytes"] / pruned_size["tflite_int8_bytes"],
    }
    goals = check_goals(measured, Goals(min_sparsity=0.8))

    print(f"model {args.model} ({bundle.extra.get('name', '?')}), {len(X_train)} training "
          f"windows, {args.fine_tune_epochs} fine-tuning epochs ({info['seconds']:.1f} s), "
          f"target sparsity {args.sparsity:.2f}")
    print(f"clip accuracy (test): dense {dense_scores['accuracy']:.3f}, "
          f"pruned {pruned_scores['accuracy']:.3f}; MAP@3 dense {dense_scores['map_at_3']:.3f}, "
          f"pruned {pruned_scores['map_at_3']:.3f}")
    print(f"sizes (bytes): dense .keras {dense_size['keras_bytes']:,} "
          f"(gzip {dense_size['keras_gzip_bytes']:,}), pruned .keras {pruned_size['keras_bytes']:,} "
          f"(gzip {pruned_size['keras_gzip_bytes']:,}), pruned int8 .tflite "
          f"{pruned_size['tflite_int8_bytes']:,} (gzip {pruned_size['tflite_int8_gzip_bytes']:,})")
    print()
    print(f"{'measure':70s} {'value':>9s} {'goal':>9s}  result")
    for _, row in goals.iterrows():
        verdict = ("PASS" if row["met"] else "MISS") if row["counts"] else "(info)"
        print(f"{row['goal']:70s} {row['measured']:9.3f} {row['direction']}{row['threshold']:7.3f}"
              f"  {verdict}")
    print()
    print(f"{'TFLite latency per window, 1 thread':40s} {'median ms':>10s} {'mean ms':>9s} "
          f"{'p95 ms':>8s}")
    for name, row in latency.iterrows():
        print(f"{name:40s} {row['p50_ms']:10.3f} {row['mean_ms']:9.3f} {row['p95_ms']:8.3f}")
    print(f"\nwall time {time.perf_counter() - start:.0f} s; 1-min load average {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
