"""Notebook 03's log-mel CNN on the seven-library demo, nested leave-one-library-out: what it
scores and what it costs.

The chapters run on the seven deduplicated libraries (``python -m helpers data demo``) with
:func:`helpers.splits.library_folds`. This measures what that protocol gives and costs for the
chapters' base model, trained as notebook 03 trains it (epochs, patience, batch size from its
``parameters`` cell; seeds from ``--seeds``), outside the chain:

- per fold: the test library, the inner validation library, clips per split, and accuracy on
  the inner validation library (``cross_val``), on the training libraries' test clips
  (in-library) and on the held-out library (``cross_test``);
- **pooled cross-library** accuracy, MAP@3 and macro-F1 over every clip of every library (each
  tested once per seed by a model that never heard its library), mean ± std over seeds, and
  per library and per class (recall);
- the time of the trainings, in seconds and in reference units (``benchmarks/reference.py``,
  timed in the same run), and per training.

The run cache is off, so every training is timed. Run:
.venv/bin/python benchmarks/bench_libraries.py [--seeds 0] [--clips-per-class 120]
"""

from __future__ import annotations

import argparse
import os
import time

from bench_scale import NOTEBOOK_03, notebook_defaults
from reference import ReferenceWorker, in_units


def mean_std(values) -> str:
    """'0.655 ± 0.011', or the value alone for one seed."""
    import numpy as np

    values = np.asarray(values, float)
    return f"{values.mean():.3f}" if len(values) < 2 else f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    chapters = notebook_defaults(NOTEBOOK_03, ("seeds", "epochs", "patience", "batch_size",
                                               "val_fraction", "split_seed"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help=f"training seeds (default 0; notebook 03 uses {chapters['seeds']})")
    parser.add_argument("--clips-per-class", type=int, default=120,
                        help="size of the seven-library demo (default 120, as the two-SoundFont one)")
    args = parser.parse_args()
    os.environ["HELPERS_RUN_CACHE"] = "0"  # train everything here, so the seconds are real

    from dataclasses import replace

    import numpy as np
    import pandas as pd

    from helpers import paths
    from helpers.data import load_clips
    from helpers.demo import DEMO, build_demo
    from helpers.evaluation import per_class_report
    from helpers.features import LOGMEL
    from helpers.models import LOGMEL_CNN
    from helpers.protocol import CNNRecipe, PreparedCache, evaluate_cnns, pooled
    from helpers.splits import library_folds, split_summary
    from helpers.training import TrainConfig

    config = replace(DEMO, clips_per_class=args.clips_per_class)
    folder = "demo" if args.clips_per_class == DEMO.clips_per_class else f"demo_{args.clips_per_class}"
    root = build_demo(paths.data_dir() / folder, config, workers=min(2, os.cpu_count() or 1))
    clips = load_clips(root)
    folds = library_folds(clips, val_fraction=chapters["val_fraction"], seed=chapters["split_seed"])
    pd.set_option("display.width", 200)
    print("\nclips per class and library:")
    print(clips.pivot_table(index="label", columns="library", values="fname", aggfunc="count",
                            fill_value=0).to_string(), "\n")
    print("clips per split and fold:")
    print(pd.DataFrame({f.name: split_summary(f.clips).sum() for f in folds}).T.to_string(), "\n")

    train = TrainConfig(epochs=chapters["epochs"], patience=chapters["patience"],
                        batch_size=chapters["batch_size"])
    recipe = CNNRecipe("log-mel CNN", LOGMEL, LOGMEL_CNN, train)
    data = PreparedCache(folds)
    for fold in folds:  # features first, so the timing below is the trainings'
        data.get(fold, LOGMEL)
    with ReferenceWorker() as ref:
        before = ref.measure(3)
        start = time.perf_counter()
        runs = evaluate_cnns([recipe], folds, args.seeds, data=data)
        seconds = time.perf_counter() - start
        unit = float(np.median(before + ref.measure(3)))

    table = runs.table.pivot_table(index=["direction", "seed"], columns="split", values="accuracy")
    epochs = runs.table.drop_duplicates(["direction", "seed"]).set_index(["direction", "seed"])
    table["best/run epochs"] = [f"{int(b)}/{int(e)}" for b, e in
                                zip(epochs.loc[table.index, "best_epoch"], epochs.loc[table.index, "epochs_run"])]
    print(table.round(3).to_string(), "\n")

    cross = pooled(runs, recipe.name, "cross_test")
    inside = pooled(runs, recipe.name, "test")
    print(f"pooled cross-library ({int(cross['n_clips'].iloc[0])} clips, {len(args.seeds)} seed(s)): "
          f"accuracy {mean_std(cross['accuracy'])}, MAP@3 {mean_std(cross['map_at_3'])}, "
          f"macro-F1 {mean_std(cross['macro_f1'])}")
    print(f"in-library (the training libraries' test clips, pooled over folds): accuracy "
          f"{mean_std(inside['accuracy'])}\n")

    seed = args.seeds[0]
    by_library = {}
    names, labels, preds = [], [], []
    for fold in folds:
        key = (recipe.name, fold.name, "cross_test")
        y = runs.labels[key]
        p = runs.probs[(recipe.name, fold.name, seed, "cross_test")].argmax(1)
        by_library[fold.held_out] = float((y == p).mean())
        names.append(fold.held_out)
        labels.append(y)
        preds.append(p)
    print(f"cross-library accuracy per held-out library (seed {seed}):")
    print(pd.Series(by_library).round(3).to_string(), "\n")
    report = per_class_report(np.concatenate(labels), np.concatenate(preds), runs.classes)
    print(f"pooled cross-library per class (seed {seed}):")
    print(report.round(3).to_string(), "\n")

    n = len(folds) * len(args.seeds)
    print(f"{n} trainings in {seconds:.0f} s = {in_units(seconds, unit):.1f} reference units "
          f"(unit {unit:.2f} s); {seconds / n:.0f} s = {in_units(seconds / n, unit):.2f} u per "
          f"training; {os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
