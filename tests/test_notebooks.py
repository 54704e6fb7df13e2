"""The notebook chain: stripped sources, and a smoke run whose recorded metrics we check.

The smoke run (fixture ``smoke_runs`` in conftest.py, shared with tests/test_book.py) executes
every numbered notebook with papermill and the smoke profile (tiny parameters) into a temporary
output folder, twice and each from an empty cache, so we can assert reproducibility too.
"""

from __future__ import annotations

import json
import math
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
    assert "profile =" in tagged[0].source
    assert "import *" not in "\n".join(c.source for c in code)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {path.name[:2]}")


def test_every_smoke_knob_is_used_by_some_notebook():
    import papermill as pm

    declared = set().union(*(pm.inspect_notebook(str(p)).keys() for p in NOTEBOOKS))
    assert set(PROFILES["smoke"]) <= declared, set(PROFILES["smoke"]) - declared


def _models(out: Path) -> dict:
    return json.loads((out / "results" / "summary.json").read_text())["models"]


@pytest.mark.slow
def test_smoke_chain_records_finite_metrics_above_chance(smoke_runs):
    models = _models(smoke_runs[0])
    assert any(k.startswith("03 ") for k in models)
    for name, m in models.items():
        for metric in ("accuracy", "macro_f1", "map_at_3"):
            assert m[metric] is not None and math.isfinite(m[metric]) and 0 <= m[metric] <= 1, (name, metric)
    n_classes = 18  # the demo dataset's classes (Gong has no honest source)
    best = max(models.values(), key=lambda m: m["accuracy"])
    assert best["accuracy"] > 2 / n_classes
    assert best["map_at_3"] > best["accuracy"] - 1e-9


@pytest.mark.slow
def test_chain_writes_exactly_the_committed_figures(smoke_runs):
    written = {p.name for p in (smoke_runs[0] / "figures").glob("*.png")}
    committed = {p.name for p in (ROOT / "figures").glob("*.png")}
    assert written == committed


@pytest.mark.slow
def test_chain_saves_a_model_that_predict_uses(smoke_runs, write_tone):
    bundle = smoke_runs[0] / "models" / "instrument_cnn"
    clip = write_tone("new/clip.wav", seconds=2.0)
    done = subprocess.run([sys.executable, "-m", "helpers", "predict", "--model", str(bundle),
                           str(clip.parent)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "path,top1,top1_p,top2,top2_p,top3,top3_p"


@pytest.mark.slow
def test_two_smoke_runs_give_the_same_metrics(smoke_runs):
    first, second = (_models(out) for out in smoke_runs)
    assert first.keys() == second.keys()
    for name in first:
        for metric in ("accuracy", "macro_f1", "map_at_3"):
            assert first[name][metric] == pytest.approx(second[name][metric], abs=1e-9), (name, metric)
