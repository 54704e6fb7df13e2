"""What a shorter early-stopping patience would save, and what it would cost on cross-library validation.

Every CNN of the chain stops after ``patience`` epochs without a lower validation loss and keeps
its best epoch. A smaller patience ends each training sooner, which would shorten the chain; it
also stops some trainings before a later, better epoch. This trains the log-mel CNN with the
recipes that decide the shipped model (no augmentation, CutMix, waveform augmentation) in both
cross-library directions with every seed, once per patience, and prints per recipe and
patience:

- cross-library validation accuracy (mean ± standard deviation over seeds), the number every
  choice of the series is made on, and the in-library and cross-library test accuracy;
- epochs run and best epoch (means), seconds per training (measured in this run: the run cache
  is off);
- the paired difference against the largest patience on the cross-library validation clips
  (:func:`helpers.stats.compare`: bootstrap interval over seeds and clips, permutation p-value),
  with Holm's correction over the recipes and patiences compared (:func:`helpers.stats.verdicts`).

Run: .venv/bin/python benchmarks/bench_patience.py [--patience 4 3 2] [--seeds 0 1 2]
(about three minutes per patience on two cores).
"""

from __future__ import annotations

import argparse
import os
import time


def recipes(patiences, epochs: int, batch_size: int, cutmix_alpha: float, cutmix_prob: float):
    """The recipes of the comparison, one per (recipe, patience), named ``"<recipe>, patience p"``."""
    from helpers.augment import AugmentConfig
    from helpers.augment_audio import WaveformAugment
    from helpers.features import LOGMEL
    from helpers.models import LOGMEL_CNN
    from helpers.protocol import CNNRecipe
    from helpers.training import TrainConfig

    kinds = {"none": {}, "CutMix": {"augment": AugmentConfig("cutmix", alpha=cutmix_alpha, prob=cutmix_prob)},
             "waveform augmentation": {"versions": WaveformAugment(copies=2)}}
    return {(kind, p): CNNRecipe(f"{kind}, patience {p}", LOGMEL, LOGMEL_CNN,
                                 TrainConfig(epochs=epochs, patience=p, batch_size=batch_size), **extra)
            for kind, extra in kinds.items() for p in patiences}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patience", type=int, nargs="+", default=[4, 3, 2],
                        help="patiences to compare; the largest is the reference (default 4 3 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default 0 1 2")
    parser.add_argument("--epochs", type=int, default=30, help="epoch budget (default 30, the chain's)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cutmix-alpha", type=float, default=0.2)
    parser.add_argument("--cutmix-prob", type=float, default=0.5)
    args = parser.parse_args()
    if min(args.patience) < 1:
        parser.error("--patience values must be at least 1")
    os.environ["HELPERS_RUN_CACHE"] = "0"  # train everything here, so the seconds compare

    import pandas as pd

    from helpers.data import dataset_root, load_clips
    from helpers.protocol import PreparedCache, evaluate_cnns, paired, summarise
    from helpers.splits import library_directions
    from helpers.stats import compare, verdict_table, verdicts

    patiences = sorted(set(args.patience), reverse=True)
    plan = recipes(patiences, args.epochs, args.batch_size, args.cutmix_alpha, args.cutmix_prob)
    directions = library_directions(load_clips(dataset_root("demo")))
    start = time.perf_counter()
    runs = evaluate_cnns(list(plan.values()), directions, args.seeds, data=PreparedCache(directions))
    print(f"{len(plan) * len(directions) * len(args.seeds)} trainings in {time.perf_counter() - start:.0f} s; "
          f"{os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.1f}\n")

    summary = summarise(runs)
    epochs = (runs.table.drop_duplicates(["model", "direction", "seed"])
              .groupby("model")[["epochs_run", "best_epoch"]].mean())
    table = pd.DataFrame({
        "cross-library val": [f"{summary.loc[r.name, 'cross_val_accuracy']:.3f} ± "
                              f"{summary.loc[r.name, 'cross_val_accuracy_std']:.3f}" for r in plan.values()],
        "in-library test": summary.loc[[r.name for r in plan.values()], "test_accuracy"].round(3).to_numpy(),
        "cross-library test": summary.loc[[r.name for r in plan.values()], "cross_test_accuracy"].round(3).to_numpy(),
        "epochs run": epochs.loc[[r.name for r in plan.values()], "epochs_run"].round(1).to_numpy(),
        "best epoch": epochs.loc[[r.name for r in plan.values()], "best_epoch"].round(1).to_numpy(),
        "s per training": summary.loc[[r.name for r in plan.values()], "train_seconds"].round(2).to_numpy(),
    }, index=[r.name for r in plan.values()])
    pd.set_option("display.width", 200)
    print(table.to_string(), "\n")

    reference = patiences[0]
    questions = {}
    for (kind, p), recipe in plan.items():
        if p == reference:
            continue
        base = plan[(kind, reference)]
        questions[f"{kind}: patience {p} vs {reference}"] = {
            "a": recipe.name, "b": base.name, **compare(*paired(runs, recipe.name, base.name))}
        saved = 1 - summary.loc[recipe.name, "train_seconds"] / summary.loc[base.name, "train_seconds"]
        questions[f"{kind}: patience {p} vs {reference}"]["time_saved"] = saved
    if questions:
        print("Paired differences on the cross-library validation clips (Holm over "
              f"{len(questions)} questions):")
        shown = verdicts(questions)
        print(verdict_table(shown, ["difference", "ci_low", "ci_high", "p_holm", "time_saved", "verdict"])
              .to_string())


if __name__ == "__main__":
    main()
