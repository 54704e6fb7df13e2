"""What a shorter early-stopping patience would save, and what it would cost on inner validation.

Every CNN of the chain stops after ``patience`` epochs without a lower validation loss and keeps
its best epoch. A smaller patience ends each training sooner, which would shorten the chain; it
also stops some trainings before a later, better epoch. This trains the log-mel CNN with the
recipes that decide the shipped model (no augmentation, CutMix, waveform augmentation) in every
nested leave-one-library-out fold with every seed, once per patience, and prints per recipe and
patience:

- accuracy on the folds' inner validation libraries (pooled, ± over fold x seed runs), the
  number every choice of the series is made on (fold by fold), and the in-library and
  cross-library test accuracy;
- epochs run and best epoch (means), seconds per training (measured in this run: the run cache
  is off);
- the paired difference against the largest patience on the inner validation clips
  (:func:`helpers.stats.compare`: bootstrap interval over seeds and clips, permutation p-value),
  with Holm's correction over the recipes and patiences compared (:func:`helpers.stats.verdicts`).

The settings are the chapters': epochs, patience, batch size and seeds from notebook 03's
``parameters`` cell, the waveform copies from notebook 04's, and CutMix at the setting notebook
04 chose (``results/best_cutmix.json``; its grid's first setting when the file is missing).
Smaller patiences than the chapters' are compared unless ``--patience`` names others.

Run: .venv/bin/python benchmarks/bench_patience.py [--patience 4 3 2] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import time

from bench_scale import NOTEBOOK_03, ROOT, notebook_defaults

NOTEBOOK_04 = ROOT / "notebooks" / "04_cutmix.ipynb"


def chosen_cutmix():
    """Notebook 04's CutMix setting (``results/best_cutmix.json``), or its grid's first setting."""
    from helpers.augment import AugmentConfig, load_augment_config
    from helpers.paths import results_dir

    path = results_dir() / "best_cutmix.json"
    if path.is_file():
        return load_augment_config(path)
    grid = notebook_defaults(NOTEBOOK_04, ("cutmix_alphas", "cutmix_probs"))
    return AugmentConfig("cutmix", alpha=grid["cutmix_alphas"][0], prob=grid["cutmix_probs"][0])


def recipes(patiences, epochs: int, batch_size: int, cutmix, waveform_copies: int):
    """The recipes of the comparison, one per (recipe, patience), named ``"<recipe>, patience p"``."""
    from helpers.augment_audio import WaveformAugment
    from helpers.features import LOGMEL
    from helpers.models import LOGMEL_CNN
    from helpers.protocol import CNNRecipe
    from helpers.training import TrainConfig

    kinds = {"none": {}, "CutMix": {"augment": cutmix},
             "waveform augmentation": {"versions": WaveformAugment(copies=waveform_copies)}}
    return {(kind, p): CNNRecipe(f"{kind}, patience {p}", LOGMEL, LOGMEL_CNN,
                                 TrainConfig(epochs=epochs, patience=p, batch_size=batch_size), **extra)
            for kind, extra in kinds.items() for p in patiences}


def mean_std(mean: float, std: float) -> str:
    """'0.655 ± 0.011', or the mean alone when there is no spread (one seed)."""
    return f"{mean:.3f}" if std != std else f"{mean:.3f} ± {std:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    chapters = notebook_defaults(NOTEBOOK_03, ("seeds", "epochs", "patience", "batch_size"))
    parser.add_argument("--patience", type=int, nargs="+", default=None,
                        help="patiences to compare; the largest is the reference (default: notebook "
                             "03's and the two below it)")
    parser.add_argument("--seeds", type=int, nargs="+", default=chapters["seeds"],
                        help="default: notebook 03's")
    args = parser.parse_args()
    patience = chapters["patience"]
    args.patience = args.patience or [p for p in (patience, patience - 1, patience - 2) if p >= 1]
    if min(args.patience) < 1:
        parser.error("--patience values must be at least 1")
    copies = notebook_defaults(NOTEBOOK_04, ("waveform_copies",))["waveform_copies"]
    os.environ["HELPERS_RUN_CACHE"] = "0"  # train everything here, so the seconds compare

    import pandas as pd

    from helpers.data import dataset_root, load_clips
    from helpers.protocol import PreparedCache, evaluate_cnns, paired, summarise
    from helpers.splits import library_folds
    from helpers.stats import compare, verdict_table, verdicts

    patiences = sorted(set(args.patience), reverse=True)
    cutmix = chosen_cutmix()
    plan = recipes(patiences, chapters["epochs"], chapters["batch_size"], cutmix, copies)
    print(f"epochs {chapters['epochs']}, batch {chapters['batch_size']}, seeds {args.seeds}; CutMix alpha "
          f"{cutmix.alpha:g}, probability {cutmix.prob:g}; waveform augmentation with {copies} copies")
    directions = library_folds(load_clips(dataset_root("demo")))
    start = time.perf_counter()
    runs = evaluate_cnns(list(plan.values()), directions, args.seeds, data=PreparedCache(directions))
    print(f"{len(plan) * len(directions) * len(args.seeds)} trainings in {time.perf_counter() - start:.0f} s; "
          f"{os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.1f}\n")

    summary = summarise(runs)
    epochs = (runs.table.drop_duplicates(["model", "direction", "seed"])
              .groupby("model")[["epochs_run", "best_epoch"]].mean())
    names = [r.name for r in plan.values()]
    summary, epochs = summary.loc[names], epochs.loc[names]
    table = pd.DataFrame({
        "inner validation": [mean_std(m, s) for m, s in zip(summary["cross_val_accuracy"],
                                                             summary["cross_val_accuracy_std"])],
        "in-library test": summary["test_accuracy"].round(3),
        "cross-library test": summary["cross_test_accuracy"].round(3),
        "epochs run": epochs["epochs_run"].round(1),
        "best epoch": epochs["best_epoch"].round(1),
        "s per training": summary["train_seconds"].round(2),
    }, index=names)
    pd.set_option("display.width", 200)
    print(table.to_string(), "\n")

    reference = patiences[0]
    questions = {}
    for (kind, p), recipe in plan.items():
        if p == reference:
            continue
        base = plan[(kind, reference)]
        saved = 1 - summary.loc[recipe.name, "train_seconds"] / summary.loc[base.name, "train_seconds"]
        questions[f"{kind}: patience {p} vs {reference}"] = {
            "a": recipe.name, "b": base.name, **compare(*paired(runs, recipe.name, base.name)),
            "time_saved": saved}
    if questions:
        print("Paired differences on the cross-library validation clips (Holm over "
              f"{len(questions)} questions):")
        shown = verdicts(questions)
        print(verdict_table(shown, ["difference", "ci_low", "ci_high", "p_holm", "time_saved", "verdict"])
              .to_string())


if __name__ == "__main__":
    main()
