"""The README as the report: its results table and figure gallery are generated, never typed.

``python -m helpers report`` (run by ``make run`` after the chain) rewrites the parts of
README.md between ``<!-- results:start -->`` / ``<!-- results:end -->``,
``<!-- figures:start -->`` / ``<!-- figures:end -->`` (the key figures, inline),
``<!-- gallery:start -->`` / ``<!-- gallery:end -->`` and ``<!-- scale:start -->`` /
``<!-- scale:end -->`` (the FSDKaggle2018 cost estimate) from ``results/summary.json``,
``figures/`` and the benchmarks' records (``results/bench_chain_<profile>.json``,
``results/bench_anchor.json``, ``results/bench_scale.json``).
The web book (:mod:`helpers.book`) builds its landing page from the same generators.

Run times are also given in **reference units** (u): the time, in the same run, of a fixed
workload (``benchmarks/reference.py``), so that runs on days when the machine is faster or
slower compare. The full profile's budget is :data:`BUDGET_UNITS` reference units of a cold run
(goal :data:`GOAL_UNITS`); it was first anchored as 20 minutes of an older run, re-measured on
this machine (``benchmarks/bench_chain.py --anchor``), and raised when the chain took on the
nested leave-one-library-out protocol. A run counts in units only when it was measured with the
anchor's reference workload (the same version).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict
from pathlib import Path

from helpers.paths import REPO_ROOT, figures_dir, results_dir
from helpers.results import load_summary

BUDGET_MINUTES = {"full": 20, "smoke": 5}  # wall-clock budget, where a run has no units
GOAL_MINUTES = {"full": 15}  # what the full profile aimed at in minutes (anchor era)
BUDGET_UNITS = {"full": 100.0}  # the full chain's budget, cold, in reference units (issue #22)
GOAL_UNITS = {"full": 68.0}  # what it aims at
ANCHOR_FILE = "bench_anchor.json"  # benchmarks/bench_chain.py --anchor COMMIT writes it
MARKERS = {"results": ("<!-- results:start -->", "<!-- results:end -->"),
           "figures": ("<!-- figures:start -->", "<!-- figures:end -->"),
           "gallery": ("<!-- gallery:start -->", "<!-- gallery:end -->"),
           "scale": ("<!-- scale:start -->", "<!-- scale:end -->")}

# The figures that tell the story, shown inline in the README and on the book's landing page,
# in reading order, each with its one-line caption (no numbers: those are in the figures).
KEY_FIGURES: tuple[tuple[str, str], ...] = (
    ("03_model_comparison", "Notebook 03: the two CNNs and eight classical classifiers, each tested on "
                            "the sample libraries it trained on and on a library it never heard "
                            "(nested leave-one-library-out, pooled over seven folds)."),
    ("04_augmentation_comparison", "Notebook 04: the log-mel CNN under each training recipe (CutMix and "
                                   "its relatives, waveform augmentation), in-library and "
                                   "cross-library; each fold chooses on its inner validation library."),
    ("09_transfer_comparison", "Notebook 09: classifiers on embeddings of a network pretrained on real "
                               "music, against the log-mel CNN trained from scratch and a "
                               "logistic regression on MFCC."),
    ("06_sparsity_sweep", "Notebook 06: what magnitude pruning costs as the share of zero weights "
                          "grows; validation chooses the sparsity, test only reports."),
    ("07_cam_logmel_examples", "Notebook 07: the log-mel CNN's Grad-CAM maps for right and wrong "
                               "predictions; the chapter's two sanity checks decide whether such "
                               "maps show what the network uses."),
    ("08_ablation_bars", "Notebook 08: the ablation: fewer conv or dense layers, MFCC or log-mel "
                         "input, with or without CutMix, judged on the libraries each model never heard."),
)


def _fmt(value, std=None, digits: int = 3) -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return f"{text} ± {std:.{digits}f}" if std is not None else text


def _score(entry: dict, column: str, metric: str) -> str:
    block = entry.get(column)
    if not isinstance(block, dict) or block.get(metric) is None:
        return "–"
    # the block's own spread: a model trained on every library is one run, but its cross-library
    # block is its recipe's (or its procedure's), over that recipe's folds and seeds
    std = block.get(f"{metric}_std")
    return _fmt(block[metric], std if isinstance(std, (int, float)) and math.isfinite(std) else None)


def _weights(entry: dict) -> str:
    """Weights of the model; for a pruned model, its non-zero weights out of all."""
    params, nonzero = entry.get("params"), entry.get("nonzero")
    if not isinstance(params, (int, float)):
        return "–"
    if isinstance(nonzero, (int, float)):
        return f"{nonzero:,.0f} non-zero of {params:,.0f}"
    return f"{params:,.0f}"


def pruning_goals_markdown(summary: dict) -> str:
    """One line: the pruning goals notebook 06 met, and those it missed by how much ('' if none)."""
    rows = summary.get("pruning", {}).get("06/goals", {}).get("rows", {})
    goals = {k: r for k, r in rows.items() if r.get("counts")}
    if not goals:
        return ""
    missed = [f"{r['goal']} (measured {r['measured']:.3g}, missed by {abs(r['margin']):.3g})"
              for r in goals.values() if not r["met"]]
    met = [r["goal"] for r in goals.values() if r["met"]]
    text = f"Pruning (notebook 06) met {len(met)} of its {len(goals)} goals"
    text += (": " + "; ".join(met) + "." if not missed else
             (f" ({'; '.join(met)})" if met else "") + ". Missed: " + "; ".join(missed) + ".")
    return text


def shipped_markdown(summary: dict, weakest: int = 5, confusions: int = 4) -> str:
    """The shipped model's goals (issue #22) met or not, its weakest classes and most frequent
    confusions on the pooled cross-library test, from notebook 10's ``shipping/10/choice``
    ('' before notebook 10 has run)."""
    choice = summary.get("shipping", {}).get("10/choice", {})
    goals, recall = choice.get("goals", {}), choice.get("per_class_recall", {})
    if not goals and not recall:
        return ""
    lines = []
    if goals:
        met = [g for g, r in goals.items() if r.get("status") == "met"]
        lines.append(f"Shipped model (notebook 10, the procedure chosen fold by fold, pooled cross-library "
                     f"test): {len(met)} of {len(goals)} goals met. " + "; ".join(
                         f"{g} {r['measured']:.3f} (goal ≥ {r['at least']:.2f}, {r['status']})"
                         for g, r in goals.items()) + ".")
    if recall:
        low = sorted(recall.items(), key=lambda kv: kv[1])[:weakest]
        lines.append("Weakest classes (cross-library recall): " + ", ".join(
            f"{name} {value:.2f}" for name, value in low) + ".")
    pairs = choice.get("confusions", [])[:confusions]
    if pairs:
        lines.append("Most frequent confusions: " + "; ".join(
            f"{c['true class']} named {c['named']} ({c['share of the true class']:.0%} of its clips)"
            for c in pairs) + ".")
    return "\n\n".join(lines)


def results_markdown(summary: dict, run: str = "full", timing: bool = True) -> str:
    """The results table: every model once, its in-library and cross-library test scores.

    A row's scores are pooled over the nested leave-one-library-out folds (± standard deviation
    over the fold x seed runs); single runs are marked. ``run`` names the profile of the chain run that wrote
    ``summary``; with ``timing``, the benchmark's timing table (or else the chain's own time)
    follows.
    """
    models = summary.get("models", {})
    if not models:
        return "_No results yet: run `make run`._"
    lines = ["| model | notebook | in-library accuracy | cross-library accuracy | in-library MAP@3 "
             "| cross-library MAP@3 | weights | runs (folds × seeds) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key in sorted(models):
        m = models[key]
        seeds, folds = int(m.get("seeds", 1)), int(m.get("folds", 1))
        runs = f"{folds} × {seeds}" if folds * seeds > 1 else "1 (single run)"
        both = " †" if "cross_library_from" in m else ""  # trained on every library
        lines.append(
            f"| {m.get('name', key)} | {key[:2]} | {_score(m, 'in_library', 'accuracy')}{both} "
            f"| {_score(m, 'cross_library', 'accuracy')} | {_score(m, 'in_library', 'map_at_3')}{both} "
            f"| {_score(m, 'cross_library', 'map_at_3')} | {_weights(m)} "
            f"| {runs} |")
    dataset = sorted({m.get("dataset", "?") for m in models.values()})
    chapters = sorted({key[:2] for key in models if key[:2].isdigit()})
    lines.append("")
    lines.append(
        f"Dataset: {', '.join(dataset)}. Nested leave-one-library-out: in each fold a model trains on "
        "five sample libraries, chooses on a sixth and is tested on the seventh. **In-library**: the "
        "training libraries' test clips; **cross-library**: every clip of the held-out library. Scores are "
        "pooled over the folds (every clip is a cross-library test clip once); ± is the standard deviation "
        "over the fold × seed runs. **†** Trained on the training clips of every library and tested on "
        "their test clips: more training data than the other rows, so this in-library number does not "
        "compare with theirs; such a model has no library left to test on, so its cross-library column is "
        "its recipe's (or its choosing procedure's), over the folds (or empty). No test clip chose anything. "
        f"Generated from `results/summary.json` (notebooks {', '.join(chapters)} of the last {run} run).")
    goals = pruning_goals_markdown(summary)
    if goals:
        lines += ["", goals]
    shipped = shipped_markdown(summary)
    if shipped:
        lines += ["", shipped]
    bench = timing_markdown() if timing else ""
    if bench:
        lines += ["", bench]
    elif timing:  # no benchmark yet: the chain's own record of its last full run
        lines.append(chain_time_markdown("full"))
    return "\n".join(lines).rstrip()


def chain_time_markdown(profile: str) -> str:
    """One line with the time of the last chain run of ``profile`` (``results/chain_<profile>.json``),
    or '' if there is none."""
    chain = results_dir() / f"chain_{profile}.json"
    if not chain.is_file():
        return ""
    times = json.loads(chain.read_text())
    per_nb = ", ".join(f"{k} {v:.0f} s" for k, v in times["seconds"].items())
    return f"Chain run time ({profile} profile): {times['total_seconds'] / 60:.1f} min ({per_nb})."


def anchored_budget(anchor: dict, minutes: float) -> float:
    """``minutes`` of the anchored run, in reference units.

    The anchor (``results/bench_anchor.json``) is a chain run of an older commit whose committed
    benchmark took ``committed_total_seconds``, re-measured cold on this machine:
    ``total_units``. A budget of ``minutes`` is that share of the same run:
    ``total_units * minutes * 60 / committed_total_seconds`` (20 minutes of a run that took
    19.8 is 20/19.8 of its units).
    """
    return anchor["total_units"] * minutes * 60 / anchor["committed_total_seconds"]


def budget_verdict(profile: str, seconds: float, units: float | None = None,
                   anchor: dict | None = None) -> str:
    """'within' or '**over by ...**' for a chain run of ``profile``.

    In reference units when the run has ``units`` and an ``anchor`` of the full profile exists
    (full profile only: the smoke run is too short and noisy for units), else in minutes of
    wall-clock time against :data:`BUDGET_MINUTES`.
    """
    if profile == "full" and units is not None and anchor_applies(anchor):
        budget = BUDGET_UNITS[profile]
        return ("within" if units <= budget else
                f"**over by {units - budget:.1f} u ({100 * (units / budget - 1):.0f} %)**")
    minutes, budget = seconds / 60, BUDGET_MINUTES[profile]
    return "within" if minutes <= budget else f"**over by {minutes - budget:.1f} min**"


def anchor_applies(anchor: dict | None, bench: dict | None = None) -> bool:
    """An anchor of the full profile, measured with the same reference workload as ``bench``."""
    if not anchor or anchor.get("profile") != "full":
        return False
    if bench is None:
        return True
    return (bench.get("reference", {}).get("version") == anchor.get("reference", {}).get("version")
            and "first_run_total_units" in bench)


def _read_result(name: str) -> dict | None:
    path = results_dir() / name
    return json.loads(path.read_text()) if path.is_file() else None


def _cell(seconds: float | None, units: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.0f} s" + (f" ({units:.1f} u)" if units is not None else "")


def timing_markdown() -> str:
    """Seconds (and reference units) per notebook, first (cold cache) and second (warm) run, per
    profile, from the ``results/bench_chain_<profile>.json`` files ``benchmarks/bench_chain.py
    --keep`` writes; the budget verdicts, anchored in units by ``results/bench_anchor.json``."""
    benches = {p: b for p in ("full", "smoke") if (b := _read_result(f"bench_chain_{p}.json"))}
    if not benches:
        return ""
    anchor = _read_result(ANCHOR_FILE)
    runs = ("first", "second")
    header = " | ".join(f"{p}: {run} run" for p in benches for run in runs)
    lines = [f"| notebook | {header} |", "| --- |" + " --- |" * (2 * len(benches))]
    names = list(next(iter(benches.values()))["first_run_seconds"])
    for name in names:
        cells = " | ".join(_cell(b[f"{run}_run_seconds"].get(name), b.get(f"{run}_run_units", {}).get(name))
                           for b in benches.values() for run in runs)
        lines.append(f"| {name} | {cells} |")
    totals = []
    for b in benches.values():
        for run in runs:
            units = b.get(f"{run}_run_total_units")
            totals.append(f"**{b[f'{run}_run_total'] / 60:.1f} min**"
                          + (f" ({units:.0f} u)" if units is not None else ""))
    lines.append(f"| total | {' | '.join(totals)} |")
    verdicts = []
    for profile, b in benches.items():
        anchored = profile == "full" and anchor_applies(anchor, b)
        for run in runs:
            seconds, units = b[f"{run}_run_total"], b.get(f"{run}_run_total_units")
            measured = f"{units:.1f} u" if anchored else f"{seconds / 60:.1f} min"
            verdicts.append(f"{profile} {run} run {measured}: "
                            f"{budget_verdict(profile, seconds, units, anchor if anchored else None)}")
    budget = budget_sentence(anchor if anchor_applies(anchor) else None)
    if anchor_applies(anchor) and "full" in benches and not anchor_applies(anchor, benches["full"]):
        budget += (" The full benchmark in the table was not measured in the anchor's reference units, so "
                   f"its verdict is against {BUDGET_MINUTES['full']} min of wall-clock time.")
    lines += ["", budget + " " + "; ".join(verdicts) + "."]
    medians = [f"{b['reference']['median']:.1f} s in the {p} run" for p, b in benches.items()
               if "reference" in b]
    if medians:
        unit = next(b["reference"]["unit"] for b in benches.values() if "reference" in b)
        lines.append(f"A reference unit (u) is {unit} ({', '.join(medians)}; the median of repeats "
                     "before, between and after the notebooks), so that runs on days when the "
                     "machine is faster or slower compare.")
    loads = "; ".join(f"{p}: {b['load_average']['first_start']:.1f} at the start"
                      for p, b in benches.items())
    cores = _and(sorted({f"{b['cpu_count']}" for b in benches.values() if b.get("cpu_count")}))
    at = _and([f"{p} at commit `{b['commit']}`" for p, b in benches.items() if b.get("commit")])
    lines.append("Time per notebook, measured by `benchmarks/bench_chain.py`"
                 + (f" on a {cores}-core machine" if cores else "") + (f" ({at})" if at else "")
                 + ": the first "
                 "run starts from an empty cache, the second reuses its features and trained runs "
                 f"(1-minute load average {loads}).")
    return "\n".join(lines)


def budget_sentence(anchor: dict | None) -> str:
    """The budget, in units when ``anchor`` (a full-profile anchor) is given."""
    smoke = (f"the smoke profile within {BUDGET_MINUTES['smoke']} min of wall-clock time (too short "
             "and noisy a run to count in units)")
    if anchor is None:
        return (f"Budget: the full profile within {BUDGET_MINUTES['full']} min, {smoke}; no "
                "anchored run measured yet (`benchmarks/bench_chain.py --anchor COMMIT`).")
    committed = anchor["committed_total_seconds"] / 60
    return (f"Budget: the full profile within {BUDGET_UNITS['full']:.0f} u cold, goal "
            f"{GOAL_UNITS['full']:.0f} u (first set as {BUDGET_MINUTES['full']} minutes of the run at "
            f"commit `{anchor['commit']}`: {committed:.1f} min when committed, "
            f"{anchor['total_units']:.1f} u re-measured cold here on {anchor['date'][:10]}, i.e. "
            f"{anchored_budget(anchor, BUDGET_MINUTES['full']):.1f} u; raised when the chain took on "
            f"the nested leave-one-library-out protocol); {smoke}.")


def _and(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join(items) if len(items) < 3 else ", ".join(items[:-1]) + " and " + items[-1]


def _rate(record: dict) -> str:
    """', its files at 44.1 kHz like FSDKaggle2018's' (the demo's sample rate, when recorded)."""
    rate = record.get("sample_rate")
    return f", its files at {rate / 1000:g} kHz like FSDKaggle2018's" if rate == 44100 else (
        f", its files at {rate / 1000:g} kHz" if rate else "")


def _minutes(value: float) -> str:
    """Minutes (seconds under one), to a precision an estimate deserves."""
    if value < 1:
        return f"{max(value * 60, 1):.0f} s"
    return f"{value:.0f} min" if value >= 10 else f"{value:.1f} min"


def scale_markdown(record: dict | None = None) -> str:
    """The FSDKaggle2018 cost estimate of ``benchmarks/bench_scale.py`` (``record``: its
    ``results/bench_scale.json``, read when not given): what each step costs per window on the
    demo at several sizes, and what that predicts for the subsets of the real dataset."""
    record = record if record is not None else _read_result("bench_scale.json")
    if not record:
        return ("_No scale benchmark yet: `benchmarks/bench_scale.py --keep .` measures one._")
    fits, est, protocol = record["fits"], record["fsdkaggle2018"], record["protocol"]
    sizes = record["sizes"]
    per_1000 = {step: f"{1000 * f['time']['b']:.2g}" for step, f in fits.items()}
    factors = _and([f"{s['factor']:g}x" for s in sizes])
    clips = _and([f"{s['clips']:,}" for s in sizes])
    rates = []
    if "logmel" in per_1000 and "mfcc" in per_1000:
        rates.append(f"feature extraction {per_1000['logmel']} s (log-mel) and "
                     f"{per_1000['mfcc']} s (MFCC) per 1,000 windows")
    if "train-logmel" in per_1000 and "train-mfcc" in per_1000:
        rates.append(f"one training epoch, with its validation pass, {per_1000['train-logmel']} s "
                     f"(log-mel CNN) and {per_1000['train-mfcc']} s (seed CNN) per 1,000 "
                     "training windows, on one TensorFlow thread as the project's training jobs run")
    if "embed" in fits:
        rates.append(f"musicnn embeddings at {1 / fits['embed']['time']['b']:.0f}x real time "
                     f"(on {100 * record['embed_share']:.0f} % of the clips)")
    text = [f"Measured by `benchmarks/bench_scale.py` on {record['date'][:10]} on a "
            f"{record['cpu_count']}-core machine (1-minute load average "
            f"{record['load_averages_start'][0]:.1f} at the start): the demo built at {factors} "
            f"its default size ({clips} clips){_rate(record)}, each step's time fitted as a + b x n: "
            + "; ".join(rates) + "."]
    if "reference" in record:
        ref = record["reference"]
        text[0] += (f" That day a reference unit, {ref['unit']}, lasted {ref['median']:.1f} s, so these "
                    "minutes can be set against the chain's times in units (results section).")
    subsets = list(est)
    from helpers.features import LOGMEL

    # the front end the record was measured with (older records: the project's)
    features = next(iter(record.get("feature_configs", {}).values()), asdict(LOGMEL))
    cut, window = features["max_seconds"], features["window_seconds"]
    hop = features.get("window_hop_seconds", window)
    spacing = "without overlap" if hop >= window else f"every {hop:g} s"
    rows = [("clips (train + test)", lambda e: f"{e['clips']['train']:,} + {e['clips']['test']:,}"),
            (f"audio, clips cut at {cut:g} s", lambda e: f"{e['audio_seconds'] / 3600:.1f} h"),
            (f"{window:g}-s windows per feature type", lambda e: f"{max(e['windows'].values()):,}")]
    steps = est[subsets[0]]["steps"]
    if "logmel" in steps and "mfcc" in steps:
        rows.append(("feature extraction, log-mel + MFCC",
                     lambda e: _minutes(e["steps"]["logmel"]["minutes"] + e["steps"]["mfcc"]["minutes"])))
    for step, label in (("train-logmel", "one epoch, log-mel CNN"), ("train-mfcc", "one epoch, seed CNN"),
                        ("embed", "musicnn embeddings, every clip")):
        if step in steps:
            rows.append((label, lambda e, step=step: _minutes(e["steps"][step]["minutes"])))
    trainings = est[subsets[0]]["protocol"]["trainings"]
    if trainings:
        n = sum(t["trainings"] for t in trainings.values())
        rows.append((f"notebook 03: features + {n} CNN trainings, one after another",
                     lambda e: _minutes(e["protocol"]["serial_minutes"])))
    rows.append(("peak memory of the largest step",
                 lambda e: f"{max(s['peak_mib'] for s in e['steps'].values()) / 1024:.1f} GiB"))
    table = [f"| FSDKaggle2018 | {' | '.join(f'`{s}`' for s in subsets)} |",
             "| --- |" + " --- |" * len(subsets)]
    table += [f"| {label} | {' | '.join(fn(est[s]) for s in subsets)} |" for label, fn in rows]
    first = est[subsets[0]]
    means = first["mean_seconds"]
    text += ["", *table, "",
             "The metadata gives every clip's class and split but no durations: each clip is taken "
             f"to last its split's mean, {means['train']:.1f} s for a training clip and "
             f"{means['test']:.1f} s for a test clip (the published total duration of the split "
             f"over its clips; source: {record['durations_source']}), cut at {cut:g} s into "
             f"{window:g}-s windows {spacing}. Every window is counted (the activity gate, which drops "
             "silent ones, is not applied), so the counts are upper estimates."]
    if trainings:
        epochs = " and ".join(f"{t['epochs']:.3g} ({'log-mel CNN' if s == 'train-logmel' else 'seed CNN'})"
                              for s, t in trainings.items())
        text[-1] += (f" Notebook 03 on FSDKaggle2018 is in-library only (the metadata names no "
                     f"sample library): {len(protocol['seeds'])} seeds x {len(trainings)} CNNs, each "
                     f"trained to early stopping (at most {protocol['epochs']} epochs, patience "
                     f"{protocol['patience']}), assumed to take as many epochs as it took on the "
                     f"demo at {record['protocol_factor']:g}x (the mean over those seeds, in-library): "
                     f"{epochs}. "
                     + (f"The chain runs {record['workers']} trainings at a time, which at best divides "
                        f"their part by {record['workers']}" if record.get("workers") else
                        "The chain runs trainings side by side (`helpers.parallel`), which at best "
                        "divides their part by the number of workers")
                     + "; the classical baselines and the figures are not counted.")
    return "\n".join(text)


def gallery_markdown(folder: Path | None = None) -> str:
    """Every figure of ``figures/``, grouped by notebook number."""
    folder = folder or figures_dir()
    figures = sorted(folder.glob("*.png"))
    if not figures:
        return "_No figures yet: run `make run`._"
    lines, current = [], None
    for fig in figures:
        if fig.name[:2] != current:
            current = fig.name[:2]
            lines.append(f"\n**Notebook {current}**\n")
        rel = fig.relative_to(REPO_ROOT) if fig.is_relative_to(REPO_ROOT) else fig
        lines.append(f"- [{fig.stem}]({rel})")
    return "\n".join(lines).strip()


def key_figures_markdown(folder: Path | None = None, link_prefix: str | None = None) -> str:
    """The :data:`KEY_FIGURES` found in ``folder`` (default ``figures/``) as inline images with
    their captions; missing ones are left out. Links are ``<link_prefix>/<name>.png``
    (default: the folder relative to the repository, as the README needs)."""
    folder = folder or figures_dir()
    if link_prefix is None:
        link_prefix = str(folder.relative_to(REPO_ROOT) if folder.is_relative_to(REPO_ROOT) else folder)
    shown = [(name, caption) for name, caption in KEY_FIGURES if (folder / f"{name}.png").is_file()]
    if not shown:
        return "_No figures yet: run `make run`._"
    return "\n\n".join(f"![{caption}]({link_prefix}/{name}.png)\n*{caption}*"
                        for name, caption in shown)


def replace_between(text: str, key: str, body: str) -> str:
    """Replace what stands between the two markers of ``key`` (they must exist)."""
    start, end = MARKERS[key]
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"README lacks the markers {start} ... {end}")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def write_readme(readme: Path | None = None) -> Path:
    """Regenerate the results table, the key figures, the gallery and the scale estimate in
    README.md."""
    readme = readme or REPO_ROOT / "README.md"
    text = readme.read_text()
    text = replace_between(text, "results", results_markdown(load_summary()))
    text = replace_between(text, "figures", key_figures_markdown())
    text = replace_between(text, "gallery", gallery_markdown())
    text = replace_between(text, "scale", scale_markdown())
    readme.write_text(text)
    return readme
