"""helpers.report: the README's results table, timing table, key figures and gallery are generated."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.paths import figures_dir, results_dir
from helpers.report import (
    BUDGET_UNITS,
    GOAL_UNITS,
    KEY_FIGURES,
    anchored_budget,
    budget_verdict,
    gallery_markdown,
    key_figures_markdown,
    replace_between,
    results_markdown,
    scale_markdown,
    shipped_markdown,
    timing_markdown,
    write_readme,
)

SUMMARY = {"models": {
    "03/log-mel-cnn": {"name": "log-mel CNN", "notebook": "03_baselines", "dataset": "demo", "seeds": 3,
                       "folds": 7, "in_library": {"accuracy": 0.8312, "accuracy_std": 0.011, "map_at_3": 0.889,
                                      "map_at_3_std": 0.004},
                       "cross_library": {"accuracy": 0.6301, "accuracy_std": 0.02, "map_at_3": 0.74,
                                         "map_at_3_std": 0.01},
                       "params": 353426},
    "03/svm-(rbf)": {"name": "SVM (RBF)", "notebook": "03_baselines", "dataset": "demo", "seeds": 1,
                     "in_library": {"accuracy": 0.689, "accuracy_std": None, "map_at_3": 0.773},
                     "cross_library": {"accuracy": 0.6, "map_at_3": 0.7}},
    "06/pruned-keras": {"name": "project CNN pruned", "notebook": "06_pruning", "dataset": "demo", "seeds": 1,
                        "in_library": {"accuracy": 0.81, "map_at_3": 0.88}, "params": 1000, "nonzero": 300,
                        "cross_library_from": "not measured: trained on both libraries"},
    "10/shipped": {"name": "shipped", "notebook": "10_shipping", "dataset": "demo", "seeds": 1,
                   "in_library": {"accuracy": 0.911, "map_at_3": 0.94},
                   "cross_library": {"accuracy": 0.73, "accuracy_std": 0.004, "map_at_3": 0.8,
                                     "map_at_3_std": float("nan")},
                   "cross_library_from": "its recipe trained on one library, 3 seed(s)"},
}}


def test_results_table_has_one_row_per_model_with_both_columns():
    text = results_markdown(SUMMARY)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "| 0" in line]
    assert len(rows) == 4
    # one run trained on both libraries; its cross-library block is its recipe's, with that spread
    assert "| shipped | 10 | 0.911 † | 0.730 ± 0.004 | 0.940 † | 0.800 | – | 1 (single run) |" in rows
    assert "| log-mel CNN | 03 | 0.831 ± 0.011 | 0.630 ± 0.020 | 0.889 ± 0.004 | 0.740 ± 0.010 | 353,426 | 7 × 3 |" in rows
    assert "| SVM (RBF) | 03 | 0.689 | 0.600 | 0.773 | 0.700 | – | 1 (single run) |" in rows
    # trained on both libraries: its in-library number is marked, the note says why it does not compare
    assert "| project CNN pruned | 06 | 0.810 † | – | 0.880 † | – | 300 non-zero of 1,000 | 1 (single run) |" in rows
    assert "**†** Trained on the training clips of every library" in text
    assert "notebooks 03, 06, 10" in text and "Dataset: demo" in text and "cross-library" in text


def test_the_missed_pruning_goals_are_named_with_their_margin():
    goals = {"notebook": "06_pruning", "rows": {
        "sparsity": {"goal": "sparsity >= 80%", "measured": 0.7, "margin": -0.1, "met": False, "counts": True},
        "gzip_ratio": {"goal": "pruned .keras >= 3x smaller", "measured": 3.2, "margin": 0.2, "met": True, "counts": True},
        "int8_ratio_raw": {"goal": "reported only", "measured": 2.0, "margin": -8, "met": False, "counts": False}}}
    text = results_markdown({**SUMMARY, "pruning": {"06/goals": goals}}, timing=False)
    assert ("Pruning (notebook 06) met 1 of its 2 goals (pruned .keras >= 3x smaller). Missed: "
            "sparsity >= 80% (measured 0.7, missed by 0.1).") in text
    assert "reported only" not in text


def test_no_results_says_how_to_get_them():
    assert "make run" in results_markdown({})


def _bench(profile: str, first: dict, second: dict, unit: float | None = None) -> None:
    """A bench_chain record; with ``unit`` (seconds of a reference unit), in units too."""
    record = {"profile": profile, "first_run_seconds": first, "second_run_seconds": second,
              "first_run_total": sum(first.values()), "second_run_total": sum(second.values()),
              "load_average": {"first_start": 0.5}}
    if unit is not None:
        record["reference"] = {"median": unit, "version": 1, "unit": "the median time of the reference"}
        for run, times in (("first", first), ("second", second)):
            record[f"{run}_run_units"] = {k: v / unit for k, v in times.items()}
            record[f"{run}_run_total_units"] = sum(times.values()) / unit
    _write("bench_chain", profile, record)


def _write(stem: str, profile: str | None, record: dict) -> None:
    path = results_dir() / (f"{stem}_{profile}.json" if profile else f"{stem}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


# The anchored run: 1190 s when committed (19.8 min), 600 s = 120 units of 5 s re-measured today.
ANCHOR = {"commit": "b2f9d46", "profile": "full", "date": "2026-11-30T12:00:00+00:00",
          "total_units": 120.0, "committed_total_seconds": 1190.0, "reference": {"version": 1}}


def test_timing_table_shows_both_runs_of_each_profile():
    assert timing_markdown() == ""  # nothing measured yet
    _bench("full", {"01_eda": 30.0, "03_baselines": 270.0}, {"01_eda": 29.0, "03_baselines": 60.0})
    _bench("smoke", {"01_eda": 14.0, "03_baselines": 40.0}, {"01_eda": 13.0, "03_baselines": 17.0})
    text = timing_markdown()
    assert "| 03_baselines | 270 s | 60 s | 40 s | 17 s |" in text
    assert "| total | **5.0 min** | **1.5 min** | **0.9 min** | **0.5 min** |" in text
    assert "full first run 5.0 min: within" in text
    _bench("smoke", {"01_eda": 14.0, "03_baselines": 346.0}, {"01_eda": 13.0, "03_baselines": 17.0})
    assert "smoke first run 6.0 min: **over by 1.0 min**" in timing_markdown()
    assert "timing" not in results_markdown({}) and "| 01_eda |" in results_markdown(SUMMARY)
    assert "issue" not in timing_markdown() and "no anchored run" in timing_markdown()


def test_budget_in_units_is_fixed_and_the_anchor_scales_its_minutes():
    assert anchored_budget(ANCHOR, 20) == pytest.approx(120 * 1200 / 1190)
    assert anchored_budget(ANCHOR, 15) == pytest.approx(120 * 900 / 1190)
    budget = BUDGET_UNITS["full"]
    assert budget_verdict("full", 5000.0, units=budget - 0.1, anchor=ANCHOR) == "within"
    assert budget_verdict("full", 60.0, units=budget * 1.1, anchor=ANCHOR) == \
        f"**over by {0.1 * budget:.1f} u (10 %)**"
    # without units or an anchor, and always for smoke: minutes of wall-clock time
    assert budget_verdict("full", 1300.0) == "**over by 1.7 min**"
    assert budget_verdict("full", 1300.0, units=budget * 2) == "**over by 1.7 min**"
    assert budget_verdict("smoke", 240.0, units=1000.0, anchor=ANCHOR) == "within"
    assert budget_verdict("full", 1300.0, units=1.0, anchor={**ANCHOR, "profile": "smoke"}) == \
        "**over by 1.7 min**"


def test_timing_table_in_units_with_the_anchored_verdict():
    _bench("full", {"01_eda": 30.0, "03_baselines": 600.0}, {"01_eda": 30.0, "03_baselines": 60.0}, unit=5.0)
    _bench("smoke", {"01_eda": 14.0, "03_baselines": 40.0}, {"01_eda": 13.0, "03_baselines": 17.0}, unit=5.0)
    text = timing_markdown()
    assert "| 03_baselines | 600 s (120.0 u) | 60 s (12.0 u) | 40 s (8.0 u) | 17 s (3.4 u) |" in text
    assert "| total | **10.5 min** (126 u) | **1.5 min** (18 u) |" in text
    assert "no anchored run" in text and "full first run 10.5 min: within" in text
    _write("bench_anchor", None, ANCHOR)
    text = timing_markdown()
    budget = BUDGET_UNITS["full"]
    assert f"full profile within {budget:.0f} u cold, goal {GOAL_UNITS['full']:.0f} u" in text
    assert "commit `b2f9d46`" in text
    assert "19.8 min when committed, 120.0 u re-measured cold here on 2026-11-30" in text
    assert f"i.e. {anchored_budget(ANCHOR, 20):.1f} u" in text
    assert f"full first run 126.0 u: **over by {126 - budget:.1f} u" in text
    assert "full second run 18.0 u: within" in text and "smoke first run 0.9 min: within" in text
    assert "A reference unit (u) is the median time of the reference (5.0 s in the full run" in text
    # a benchmark of another reference version (or none) is not counted against the anchor
    _write("bench_anchor", None, {**ANCHOR, "reference": {"version": 2}})
    text = timing_markdown()
    assert "full first run 10.5 min: within" in text and "not measured in the anchor's reference units" in text
    assert f"full profile within {budget:.0f} u cold" in text


def _scale_record() -> dict:
    fit = {"time": {"a": 1.0, "b": 0.005}, "memory": {"a": 300.0, "b": 0.01}, "unit": "windows"}
    steps = {"logmel": {"n": 38000, "minutes": 3.2, "peak_mib": 700.0},
             "mfcc": {"n": 38000, "minutes": 4.0, "peak_mib": 800.0},
             "train-logmel": {"n": 27000, "minutes": 0.4, "peak_mib": 1500.0},
             "train-mfcc": {"n": 27000, "minutes": 1.5, "peak_mib": 2048.0},
             "embed": {"n": 37000, "minutes": 31.0, "peak_mib": 1900.0}}
    subset = {"clips": {"train": 4827, "test": 890}, "audio_seconds": 37080.0,
              "windows": {"logmel": 38239, "mfcc": 38239}, "mean_seconds": {"train": 6.84, "test": 4.5},
              "steps": steps,
              "protocol": {"trainings": {"train-logmel": {"trainings": 3, "epochs": 14, "minutes": 16.8},
                                         "train-mfcc": {"trainings": 3, "epochs": 10, "minutes": 45.0}},
                           "features_minutes": 7.2, "serial_minutes": 69.0}}
    return {"date": "2026-11-30T12:00:00+00:00", "cpu_count": 2, "load_averages_start": [0.4, 0.5, 0.6],
            "sizes": [{"factor": 1.0, "clips": 2160}, {"factor": 2.0, "clips": 4320}],
            "fits": {"logmel": fit, "mfcc": fit, "train-logmel": fit, "train-mfcc": fit,
                     "embed": {**fit, "time": {"a": 0.0, "b": 0.05}}},
            "fsdkaggle2018": {"instruments19": subset, "all41": subset},
            "protocol": {"seeds": [0, 1, 2], "epochs": 30, "patience": 4}, "protocol_factor": 1.0,
            "embed_share": 0.1, "durations_source": "the dataset's README", "sample_rate": 44100,
            "reference": {"median": 8.11, "unit": "the median time of the reference"}}


def test_scale_paragraph_is_generated_from_the_benchmark():
    assert "bench_scale.py --keep" in scale_markdown()  # nothing measured yet
    text = scale_markdown(_scale_record())
    assert "on 2026-11-30 on a 2-core machine (1-minute load average 0.4 at the start)" in text
    assert "That day a reference unit, the median time of the reference, lasted 8.1 s" in text and "1x and 2x its default size (2,160 and 4,320 clips), its files at 44.1 kHz like FSDKaggle2018's," in text
    assert "5 s (log-mel) and 5 s (MFCC) per 1,000 windows" in text
    assert "musicnn embeddings at 20x real time (on 10 % of the clips)" in text
    assert "| FSDKaggle2018 | `instruments19` | `all41` |" in text
    assert "| clips (train + test) | 4,827 + 890 | 4,827 + 890 |" in text
    assert "| 1-s windows per feature type | 38,239 | 38,239 |" in text
    assert "| feature extraction, log-mel + MFCC | 7.2 min | 7.2 min |" in text
    assert "| one epoch, log-mel CNN | 24 s | 24 s |" in text
    assert "| musicnn embeddings, every clip | 31 min | 31 min |" in text
    assert "| notebook 03: features + 6 CNN trainings, one after another | 69 min | 69 min |" in text
    assert "| peak memory of the largest step | 2.0 GiB | 2.0 GiB |" in text
    assert "6.8 s for a training clip and 4.5 s for a test clip" in text and "the dataset's README" in text
    assert "14 (log-mel CNN) and 10 (seed CNN)" in text and "3 seeds x 2 CNNs" in text
    _write("bench_scale", None, _scale_record())
    assert scale_markdown() == text


def test_replace_between_needs_the_markers():
    text = "a\n<!-- gallery:start -->\nold\n<!-- gallery:end -->\nb"
    assert replace_between(text, "gallery", "new") == "a\n<!-- gallery:start -->\nnew\n<!-- gallery:end -->\nb"
    with pytest.raises(ValueError, match="results:start"):
        replace_between(text, "results", "x")


def test_write_readme_fills_every_section(tmp_path):
    figures_dir().mkdir(parents=True)
    (figures_dir() / "03_confusion.png").write_bytes(b"png")
    (figures_dir() / "03_model_comparison.png").write_bytes(b"png")
    (results_dir()).mkdir(parents=True, exist_ok=True)
    (results_dir() / "summary.json").write_text(json.dumps(SUMMARY))
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:start -->\n<!-- results:end -->\n<!-- figures:start -->\n"
                      "<!-- figures:end -->\n<!-- gallery:start -->\n<!-- gallery:end -->\n"
                      "<!-- scale:start -->\nan estimate typed in\n<!-- scale:end -->\n")
    _write("bench_scale", None, _scale_record())
    text = write_readme(readme).read_text()
    assert "typed in" not in text and "| FSDKaggle2018 | `instruments19` | `all41` |" in text
    assert "| SVM (RBF) | 03 | 0.689 |" in text
    assert "**Notebook 03**" in text and "03_confusion" in text
    figures = text.split("<!-- figures:start -->")[1].split("<!-- figures:end -->")[0]
    assert f"![{KEY_FIGURES[0][1]}](" in figures and "03_model_comparison.png)" in figures
    assert gallery_markdown(tmp_path / "empty").startswith("_No figures yet")


def test_key_figures_skip_missing_files_and_keep_their_order(tmp_path):
    assert key_figures_markdown(tmp_path).startswith("_No figures yet")
    names = [name for name, _ in KEY_FIGURES]
    for name in (names[-1], names[0]):  # written out of order, one missing in between
        (tmp_path / f"{name}.png").write_bytes(b"png")
    text = key_figures_markdown(tmp_path, link_prefix="figs")
    links = re.findall(r"!\[[^\]]+\]\(figs/([^)]+)\.png\)", text)
    assert links == [names[0], names[-1]]
    assert f"*{KEY_FIGURES[0][1]}*" in text and KEY_FIGURES[1][1] not in text


def test_key_figures_are_four_to_six_committed_figures_with_one_line_captions():
    committed = Path(__file__).resolve().parents[1] / "figures"
    assert 4 <= len(KEY_FIGURES) <= 6
    for name, caption in KEY_FIGURES:
        assert (committed / f"{name}.png").is_file(), f"{name}: renamed? update KEY_FIGURES"
        assert "\n" not in caption and caption.endswith(".")


def test_the_readme_shows_the_key_figures_inline():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("<!-- figures:start -->")[1].split("<!-- figures:end -->")[0]
    for name, _ in KEY_FIGURES:
        assert f"(figures/{name}.png)" in section


def test_the_readme_scale_estimate_is_the_committed_benchmarks_generated_text():
    root = Path(__file__).resolve().parents[1]
    record = json.loads((root / "results" / "bench_scale.json").read_text())
    readme = (root / "README.md").read_text()
    section = readme.split("<!-- scale:start -->\n")[1].split("\n<!-- scale:end -->")[0]
    assert section == scale_markdown(record)


def test_the_shipped_models_goals_weak_classes_and_confusions_come_from_notebook_10():
    choice = {"notebook": "10_shipping", "goals": {
        "pooled cross-library accuracy": {"at least": 0.85, "measured": 0.71, "status": "not met"},
        "Saxophone recall (cross-library)": {"at least": 0.7, "measured": 0.75, "status": "met"}},
        "per_class_recall": {"Saxophone": 0.75, "Violin_or_fiddle": 0.2, "Cello": 0.5},
        "confusions": [{"true class": "Violin_or_fiddle", "named": "Cello", "share of the true class": 0.4}]}
    text = shipped_markdown({"shipping": {"10/choice": choice}}, weakest=2)
    assert "1 of 2 goals met" in text
    assert "pooled cross-library accuracy 0.710 (goal ≥ 0.85, not met)" in text
    assert "Weakest classes (cross-library recall): Violin_or_fiddle 0.20, Cello 0.50." in text
    assert "Violin_or_fiddle named Cello (40% of its clips)" in text
    assert shipped_markdown({}) == "" and "1 of 2 goals met" in results_markdown(
        {**SUMMARY, "shipping": {"10/choice": choice}}, timing=False)
