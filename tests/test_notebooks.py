"""The notebook chain: stripped sources, and a smoke run whose recorded metrics we check.

The smoke run (fixture ``smoke_runs`` in conftest.py, shared with tests/test_book.py) executes
every numbered notebook with papermill and the smoke profile (tiny parameters) into a temporary
output folder, twice and each from an empty cache, so we can assert reproducibility too.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.chain import PROFILES, chain_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = chain_notebooks()


def test_there_is_a_numbered_chain():
    assert [p.name[:2] for p in NOTEBOOKS] == sorted({p.name[:2] for p in NOTEBOOKS})
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{path.name} has outputs: strip them"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    assert not re.search(r"^profile\s*=", tagged[0].source, re.M), \
        f"{path.name}: the chain passes a profile's values itself; no notebook declares `profile`"
    assert not any("apply_profile" in c.source for c in code), \
        f"{path.name}: no cell applies a profile (the chain injects its values as parameters)"
    assert "import *" not in "\n".join(c.source for c in code)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {path.name[:2]}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_reads_every_parameter(path):
    """papermill skips a line it cannot parse (e.g. an '=' inside the comment) with a mere
    warning, and the chain then cannot set that parameter. And every parameter is a literal:
    papermill injects the chain's values in a cell AFTER the parameters cell, so a value
    computed there from another parameter would keep the full profile's."""
    import ast

    import papermill as pm

    nb = nbformat.read(path, as_version=4)
    source = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", [])).source
    body = ast.parse(source).body
    assert all(isinstance(node, ast.Assign) for node in body), f"{path.name}: only assignments"
    assigned = {t.id for node in body for t in node.targets if isinstance(t, ast.Name)}
    declared = set(pm.inspect_notebook(str(path)))
    assert assigned <= declared, f"{path.name}: papermill cannot read {sorted(assigned - declared)}"
    for node in body:
        ast.literal_eval(node.value)  # raises ValueError for a computed value


def test_every_smoke_knob_is_used_by_some_notebook():
    """Every knob of the smoke profile is a parameter some notebook declares (the chain passes a
    notebook only the knobs it declares, so a misspelt or retired knob would change nothing)."""
    import papermill as pm

    declared = set().union(*(pm.inspect_notebook(str(p)).keys() for p in NOTEBOOKS))
    assert set(PROFILES["smoke"]) <= declared, set(PROFILES["smoke"]) - declared


def _models(out: Path) -> dict:
    return json.loads((out / "results" / "summary.json").read_text())["models"]


def _scores(entry: dict):
    """(column, metric, value) of every score a models entry records."""
    for column in ("in_library", "cross_library"):
        for metric in ("accuracy", "macro_f1", "map_at_3"):
            if isinstance(entry.get(column), dict) and metric in entry[column]:
                yield column, metric, entry[column][metric]


@pytest.mark.slow
def test_smoke_chain_records_finite_metrics_above_chance(smoke_runs):
    models = _models(smoke_runs[0])
    assert any(k.startswith("03/") for k in models)
    for name, entry in models.items():
        assert entry["notebook"][:2] == name[:2], name  # stable keys name their notebook
        scores = list(_scores(entry))
        assert scores, f"{name} records no score"
        for column, metric, value in scores:
            assert value is not None and math.isfinite(value) and 0 <= value <= 1, (name, column, metric)
    # every headline model of 03 and 04 has both columns
    for name, entry in models.items():
        if name[:2] in ("03", "04"):
            assert {"in_library", "cross_library"} <= set(entry), name
    n_classes = 18  # the demo dataset's classes (Gong has no honest source)
    best = max(models.values(), key=lambda m: m["in_library"]["accuracy"])
    assert best["in_library"]["accuracy"] > 2 / n_classes
    assert best["in_library"]["map_at_3"] > best["in_library"]["accuracy"] - 1e-9


@pytest.mark.slow
def test_no_executed_cell_shows_tensorflows_start_up_notices(smoke_runs):
    for path in sorted((smoke_runs[0] / "executed").glob("*.ipynb")):
        shown = json.dumps([c.get("outputs", []) for c in nbformat.read(path, as_version=4).cells])
        assert "absl::InitializeLog" not in shown and "oneDNN custom operations" not in shown, path.name


def _recorded_verdicts(summary) -> set[str]:
    """Every ``verdict`` string anywhere in results/summary.json."""
    if isinstance(summary, dict):
        found = {v for k, v in summary.items() if k == "verdict" and isinstance(v, str)}
        return found.union(*(_recorded_verdicts(v) for k, v in summary.items() if k != "verdict"))
    if isinstance(summary, list):
        return set().union(*(_recorded_verdicts(v) for v in summary))
    return set()


def _takeaways(path: Path) -> str:
    """What an executed notebook's Takeaways section displayed (markdown and printed text)."""
    cells = nbformat.read(path, as_version=4).cells
    start = next((i for i, c in enumerate(cells) if c.source.startswith("## Takeaways")), None)
    if start is None:
        return ""
    text = []
    for cell in cells[start + 1:]:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            break
        for out in cell.get("outputs", []):
            text.append(out.get("data", {}).get("text/markdown", "") + out.get("text", ""))
    return "\n".join(text)


@pytest.mark.slow
def test_takeaways_take_their_verdict_words_from_the_recorded_verdicts(smoke_runs):
    """Every 'better than' / 'worse than' a takeaway shows sits inside a verdict recorded in
    results/summary.json: the takeaways repeat the tests' verdicts, never their own comparison."""
    verdicts = _recorded_verdicts(json.loads((smoke_runs[0] / "results" / "summary.json").read_text()))
    assert verdicts, "the smoke run recorded no verdict"
    for path in sorted((smoke_runs[0] / "executed").glob("*.ipynb")):
        text = _takeaways(path)
        covered = [(m.start(), m.start() + len(v)) for v in verdicts for m in re.finditer(re.escape(v), text)]
        for word in re.finditer(r" (better|worse) than ", text):
            assert any(a <= word.start() < b for a, b in covered), (
                f"{path.name}: '{text[max(0, word.start() - 60): word.end() + 40]}' is not a recorded verdict")


def test_chain_writes_exactly_the_committed_figures(smoke_runs):
    written = {p.name for p in (smoke_runs[0] / "figures").glob("*.png")}
    committed = {p.name for p in (ROOT / "figures").glob("*.png")}
    assert written == committed


@pytest.mark.slow
def test_chain_saves_models_that_predict_uses(smoke_runs, write_tone):
    """The project's CNN (notebook 05) and the shipped model (notebook 10, predict's default,
    with its "none of these" columns) both label new audio from a fresh process."""
    clip = write_tone("new/clip.wav", seconds=2.0)
    header = "path,top1,top1_p,top2,top2_p,top3,top3_p"
    for bundle, expected in (("instrument_cnn", header), ("instrument_classifier", header + ",ood_score,status")):
        done = subprocess.run([sys.executable, "-m", "helpers", "predict", "--model",
                               str(smoke_runs[0] / "models" / bundle), str(clip.parent)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == expected, bundle


@pytest.mark.slow
def test_two_smoke_runs_give_the_same_metrics(smoke_runs):
    first, second = (_models(out) for out in smoke_runs)
    assert first.keys() == second.keys()
    for name in first:
        for (column, metric, a), (_, _, b) in zip(_scores(first[name]), _scores(second[name]), strict=True):
            assert a == pytest.approx(b, abs=1e-9), (name, column, metric)


@pytest.mark.slow
def test_rerunning_a_notebook_replaces_its_own_results(smoke_runs, tmp_path):
    """Stable keys: a notebook's second run leaves exactly the keys of its first."""
    import os
    import shutil

    out = tmp_path / "rerun"
    shutil.copytree(smoke_runs[0] / "results", out / "results")
    before = json.loads((out / "results" / "summary.json").read_text())
    env = {**os.environ, "HELPERS_OUTPUT_DIR": str(out), "HELPERS_CACHE_DIR": str(smoke_runs[0] / "cache")}
    done = subprocess.run([sys.executable, "-m", "helpers", "chain", "--profile", "smoke", "--from", "03",
                           "--to", "03", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    after = json.loads((out / "results" / "summary.json").read_text())
    assert {s: set(v) for s, v in before.items()} == {s: set(v) for s, v in after.items()}
