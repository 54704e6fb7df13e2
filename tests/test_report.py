"""helpers.report: the README's results table, timing table, key figures and gallery are generated."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.paths import figures_dir, results_dir
from helpers.report import (
    KEY_FIGURES,
    gallery_markdown,
    key_figures_markdown,
    replace_between,
    results_markdown,
    timing_markdown,
    write_readme,
)

SUMMARY = {"models": {
    "03/log-mel-cnn": {"name": "log-mel CNN", "notebook": "03_baselines", "dataset": "demo", "seeds": 3,
                       "in_library": {"accuracy": 0.8312, "accuracy_std": 0.011, "map_at_3": 0.889,
                                      "map_at_3_std": 0.004},
                       "cross_library": {"accuracy": 0.6301, "accuracy_std": 0.02, "map_at_3": 0.74,
                                         "map_at_3_std": 0.01},
                       "params": 353426},
    "03/svm-(rbf)": {"name": "SVM (RBF)", "notebook": "03_baselines", "dataset": "demo", "seeds": 1,
                     "in_library": {"accuracy": 0.689, "accuracy_std": None, "map_at_3": 0.773},
                     "cross_library": {"accuracy": 0.6, "map_at_3": 0.7}},
    "06/pruned-keras": {"name": "project CNN pruned", "notebook": "06_pruning", "dataset": "demo", "seeds": 1,
                        "in_library": {"accuracy": 0.81, "map_at_3": 0.88}, "params": 1000, "nonzero": 300},
}}


def test_results_table_has_one_row_per_model_with_both_columns():
    text = results_markdown(SUMMARY)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "| 0" in line]
    assert len(rows) == 3
    assert "| log-mel CNN | 03 | 0.831 ± 0.011 | 0.630 ± 0.020 | 0.889 ± 0.004 | 0.740 ± 0.010 | 353,426 | 3 |" in rows
    assert "| SVM (RBF) | 03 | 0.689 | 0.600 | 0.773 | 0.700 | – | 1 (single run) |" in rows
    assert "| project CNN pruned | 06 | 0.810 | – | 0.880 | – | 300 non-zero of 1,000 | 1 (single run) |" in rows
    assert "notebooks 03, 06" in text and "Dataset: demo" in text and "cross-library" in text


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


def _bench(profile: str, first: dict, second: dict) -> None:
    path = results_dir() / f"bench_chain_{profile}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"profile": profile, "first_run_seconds": first, "second_run_seconds": second,
                                "first_run_total": sum(first.values()), "second_run_total": sum(second.values()),
                                "load_average": {"first_start": 0.5}}))


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
                      "<!-- figures:end -->\n<!-- gallery:start -->\n<!-- gallery:end -->\n")
    text = write_readme(readme).read_text()
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
