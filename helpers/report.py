"""The README as the report: its results table and figure gallery are generated, never typed.

``python -m helpers report`` (run by ``make run`` after the chain) rewrites the parts of
README.md between ``<!-- results:start -->`` / ``<!-- results:end -->``,
``<!-- figures:start -->`` / ``<!-- figures:end -->`` (the key figures, inline) and
``<!-- gallery:start -->`` / ``<!-- gallery:end -->`` from ``results/summary.json`` and ``figures/``.
The web book (:mod:`helpers.book`) builds its landing page from the same generators.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers.paths import REPO_ROOT, figures_dir, results_dir
from helpers.results import load_summary

BUDGET_MINUTES = {"full": 20, "smoke": 5}  # the chain's time budget per profile (issue 6)
MARKERS = {"results": ("<!-- results:start -->", "<!-- results:end -->"),
           "figures": ("<!-- figures:start -->", "<!-- figures:end -->"),
           "gallery": ("<!-- gallery:start -->", "<!-- gallery:end -->")}

# The figures that tell the story, shown inline in the README and on the book's landing page,
# in reading order, each with its one-line caption (no numbers: those are in the figures).
KEY_FIGURES: tuple[tuple[str, str], ...] = (
    ("03_model_comparison", "Notebook 03: the two CNNs and eight classical classifiers, each tested on "
                            "the sample library it trained on and on the one it never heard."),
    ("04_augmentation_comparison", "Notebook 04: the log-mel CNN under each training recipe (CutMix and "
                                   "its relatives, waveform augmentation, PCEN), in-library and "
                                   "cross-library; cross-library validation makes the choice."),
    ("09_transfer_comparison", "Notebook 09: classifiers on embeddings of a network pretrained on real "
                               "music, against the CNNs trained from scratch."),
    ("06_sparsity_sweep", "Notebook 06: what magnitude pruning costs as the share of zero weights "
                          "grows; validation chooses the sparsity, test only reports."),
    ("07_cam_logmel_examples", "Notebook 07: Grad-CAM maps, where in time and frequency the CNN "
                               "looks, for right and wrong predictions."),
    ("08_ablation_bars", "Notebook 08: the ablation: fewer conv or dense layers, MFCC or log-mel "
                         "input, with or without CutMix, judged on cross-library validation."),
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
    std = block.get(f"{metric}_std") if entry.get("seeds", 1) > 1 else None
    return _fmt(block[metric], std)


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


def results_markdown(summary: dict, run: str = "full", timing: bool = True) -> str:
    """The results table: every model once, its in-library and cross-library test scores.

    A row's scores are the mean (± standard deviation over seeds) over both cross-library
    directions; single runs are marked. ``run`` names the profile of the chain run that wrote
    ``summary``; with ``timing``, the benchmark's timing table (or else the chain's own time)
    follows.
    """
    models = summary.get("models", {})
    if not models:
        return "_No results yet: run `make run`._"
    lines = ["| model | notebook | in-library accuracy | cross-library accuracy | in-library MAP@3 "
             "| cross-library MAP@3 | weights | seeds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key in sorted(models):
        m = models[key]
        seeds = int(m.get("seeds", 1))
        lines.append(
            f"| {m.get('name', key)} | {key[:2]} | {_score(m, 'in_library', 'accuracy')} "
            f"| {_score(m, 'cross_library', 'accuracy')} | {_score(m, 'in_library', 'map_at_3')} "
            f"| {_score(m, 'cross_library', 'map_at_3')} | {_weights(m)} "
            f"| {seeds if seeds > 1 else '1 (single run)'} |")
    dataset = sorted({m.get("dataset", "?") for m in models.values()})
    chapters = sorted({key[:2] for key in models if key[:2].isdigit()})
    lines.append("")
    lines.append(
        f"Dataset: {', '.join(dataset)}. **In-library**: a model trained on one sample library, tested on "
        "that library's test clips; **cross-library**: the same model tested on the other library's test "
        "clips (mean over both directions; ± is the standard deviation over seeds). Models trained on both "
        "libraries (the project's and the shipped model) have no library left to test on: their "
        "cross-library column is their recipe's, trained on one library. No test clip chose anything. "
        f"Generated from `results/summary.json` (notebooks {', '.join(chapters)} of the last {run} run).")
    goals = pruning_goals_markdown(summary)
    if goals:
        lines += ["", goals]
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


def budget_verdict(profile: str, seconds: float) -> str:
    """'within' or '**over by X min**' for a chain run of ``profile`` that took ``seconds``."""
    minutes, budget = seconds / 60, BUDGET_MINUTES[profile]
    return "within" if minutes <= budget else f"**over by {minutes - budget:.1f} min**"


def timing_markdown() -> str:
    """Seconds per notebook, first (cold cache) and second (warm) run, per profile, from the
    ``results/bench_chain_<profile>.json`` files ``benchmarks/bench_chain.py --keep`` writes."""
    benches = {}
    for profile in ("full", "smoke"):
        path = results_dir() / f"bench_chain_{profile}.json"
        if path.is_file():
            benches[profile] = json.loads(path.read_text())
    if not benches:
        return ""
    header = " | ".join(f"{p}: first run | {p}: second run" for p in benches)
    lines = [f"| notebook | {header} |", "| --- |" + " --- | --- |" * len(benches)]
    names = list(next(iter(benches.values()))["first_run_seconds"])
    for name in names:
        cells = " | ".join(f"{b['first_run_seconds'].get(name, float('nan')):.0f} s | "
                           f"{b['second_run_seconds'].get(name, float('nan')):.0f} s" for b in benches.values())
        lines.append(f"| {name} | {cells} |")
    totals = " | ".join(f"**{b['first_run_total'] / 60:.1f} min** | **{b['second_run_total'] / 60:.1f} min**"
                        for b in benches.values())
    lines.append(f"| total | {totals} |")
    loads = "; ".join(f"{p}: {b['load_average']['first_start']:.1f} at the start"
                      for p, b in benches.items())
    verdicts = []
    for profile, b in benches.items():
        for run in ("first", "second"):
            seconds = b[f"{run}_run_total"]
            verdicts.append(f"{profile} {run} run {seconds / 60:.1f} min: {budget_verdict(profile, seconds)}")
    lines.append("")
    lines.append(f"Budget (issue 6): full profile {BUDGET_MINUTES['full']} min, smoke profile "
                 f"{BUDGET_MINUTES['smoke']} min. " + "; ".join(verdicts) + ".")
    lines.append("Time per notebook, measured by `benchmarks/bench_chain.py` on a 2-core machine: the first "
                 "run starts from an empty cache, the second reuses its features and trained runs "
                 f"(1-minute load average {loads}).")
    return "\n".join(lines)


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
    """Regenerate the results table, the key figures and the gallery in README.md."""
    readme = readme or REPO_ROOT / "README.md"
    text = readme.read_text()
    text = replace_between(text, "results", results_markdown(load_summary()))
    text = replace_between(text, "figures", key_figures_markdown())
    text = replace_between(text, "gallery", gallery_markdown())
    readme.write_text(text)
    return readme
