"""The pure parts of the benchmarks: reference units, the cost fit, the FSDKaggle2018 window counts.

Nothing here times anything: speed is measured by the scripts themselves, never by a test.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.data import load_metadata, shipped_metadata_root
from helpers.features import LOGMEL, SEED_MFCC, clip_windows

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_chain  # noqa: E402
import bench_patience  # noqa: E402
import bench_scale  # noqa: E402
import reference  # noqa: E402


def test_reference_summary_is_the_median_and_counts_the_slow_mode():
    repeats = [5.0, 5.2, 10.3, 5.1, 10.2]  # this machine's two speeds
    summary = reference.summarise(repeats)
    assert summary["median"] == 5.2 and summary["min"] == 5.0 and summary["max"] == 10.3
    assert summary["slow"] == 2 and summary["repeats"] == repeats
    assert summary["steps"] == reference.STEPS and summary["threads"] == 1
    with pytest.raises(ValueError, match="no reference repeats"):
        reference.summarise([])


def test_units_divide_by_the_reference():
    assert reference.in_units(540.0, 5.4) == pytest.approx(100.0)
    assert bench_chain.units_of({"01_eda": 27.0, "03_baselines": 108.0}, 5.4) == {
        "01_eda": 5.0, "03_baselines": 20.0}
    with pytest.raises(ValueError, match="positive"):
        reference.in_units(10.0, 0.0)


def test_reference_network_is_frozen_not_the_projects():
    code = Path(reference.__file__).read_text().split('"""', 2)[2]  # after the docstring
    assert "import helpers" not in code and "from helpers" not in code
    assert reference.INPUT_SHAPE == (64, 44, 1) and reference.N_CLASSES == 18
    assert reference.CONV_FILTERS == (16, 32, 64) and reference.DENSE_UNITS == 128
    assert (reference.DROPOUT, reference.LEARNING_RATE, reference.BATCH_SIZE) == (0.3, 2e-3, 64)
    assert "300 training steps" in reference.describe()


def test_fit_recovers_a_line_and_refuses_too_few_sizes():
    n = [1000, 2000, 4000]
    fit = bench_scale.fit_cost(n, [2 + 0.01 * x for x in n])
    assert fit["a"] == pytest.approx(2.0) and fit["b"] == pytest.approx(0.01)
    assert bench_scale.predict(fit, 10_000) == pytest.approx(102.0)
    noisy = bench_scale.fit_cost([1, 2, 3, 4], [1.1, 1.9, 3.1, 3.9])  # least squares, not a join
    assert noisy["b"] == pytest.approx(0.96) and noisy["a"] == pytest.approx(0.1)
    for bad in (([1000], [3.0]), ([1000, 1000], [3.0, 4.0]), ([1, 2], [1.0])):
        with pytest.raises(ValueError, match="two sizes"):
            bench_scale.fit_cost(*bad)


@pytest.mark.parametrize("config", [LOGMEL, SEED_MFCC], ids=["logmel", "mfcc"])
@pytest.mark.parametrize("seconds", [0.3, 1.0, 1.5, 4.5, 6.84, 9.99])
def test_window_count_matches_what_the_features_cut(config, seconds):
    """Steady noise keeps every window, so clip_windows counts what windows_per_clip predicts."""
    y = np.random.default_rng(0).standard_normal(int(round(seconds * config.sample_rate)))
    assert len(clip_windows(y.astype(np.float32), config)) == bench_scale.windows_per_clip(seconds, config)


def test_window_count_stops_at_the_cap():
    capped = bench_scale.windows_per_clip(30.0, LOGMEL)
    assert capped == bench_scale.windows_per_clip(LOGMEL.max_seconds, LOGMEL) == 10
    assert bench_scale.windows_per_clip(30.0, replace(LOGMEL, max_seconds=None)) == 30


def test_fsd_window_counts_from_the_real_metadata():
    table = load_metadata(shipped_metadata_root())
    means = bench_scale.mean_seconds(table)
    assert means["train"] == pytest.approx(18 * 3600 / 9473) and means["test"] == pytest.approx(2 * 3600 / 1600)
    for subset, clips, classes in (("instruments19", {"train": 4827, "test": 890}, 19),
                                   ("all41", {"train": 9473, "test": 1600}, 41)):
        est = bench_scale.fsd_windows(table, subset, val_fraction=0.2)
        assert est["clips"] == clips and est["classes"] == classes
        for name, config in bench_scale.FEATURES.items():
            per_train = bench_scale.windows_per_clip(means["train"], config)
            per_test = bench_scale.windows_per_clip(means["test"], config)
            assert est["windows"][name] == clips["train"] * per_train + clips["test"] * per_test
            assert est["train_windows"][name] == round(clips["train"] * per_train * 0.8)
        expected = clips["train"] * means["train"] + clips["test"] * means["test"]
        assert est["audio_seconds"] == pytest.approx(expected, abs=0.1)


def test_fsd_windows_on_a_small_table():
    table = pd.DataFrame({"label": ["Cello"] * 3 + ["Bark"] * 2, "split": ["train", "train", "test", "train", "test"]})
    est = bench_scale.fsd_windows(table, "instruments19", 0.5, hours={"train": 3 * 3.0 / 3600, "test": 2 * 1.0 / 3600})
    assert est["clips"] == {"train": 2, "test": 1} and est["mean_seconds"] == {"train": 3.0, "test": 1.0}
    assert est["windows"]["logmel"] == 2 * 3 + 1 and est["train_windows"]["logmel"] == 3


def _size(factor, windows, train_windows, epoch, to_stop=False, epochs_run=3):
    steps = {"build": {"seconds": 10.0, "clips": 100 * factor, "audio_seconds": 300.0 * factor, "peak_mib": 200.0}}
    for name in ("logmel", "mfcc"):
        steps[name] = {"seconds": 1 + windows / 100, "windows": windows, "peak_mib": 300 + windows / 10}
    for name, scale in (("train-logmel", 1.0), ("train-mfcc", 2.0)):
        steps[name] = {"epoch": scale * epoch, "train_windows": train_windows, "peak_mib": 800.0,
                       "to_early_stop": to_stop, "epochs_run": epochs_run}
    steps["embed"] = {"seconds": 30.0 * factor, "audio_seconds": 600.0 * factor, "clips": 10 * factor,
                      "peak_mib": 1500.0}
    return {"factor": factor, "clips": 100 * factor, "steps": steps}


def test_fits_and_estimate_from_fake_sizes():
    sizes = [_size(1, 1000, 600, 6.0, to_stop=True, epochs_run=12), _size(2, 2000, 1200, 12.0)]
    fitted = bench_scale.fits(sizes)
    assert set(fitted) == {"logmel", "mfcc", "train-logmel", "train-mfcc", "embed"}
    assert fitted["logmel"]["time"]["b"] == pytest.approx(0.01) and fitted["logmel"]["unit"] == "windows"
    assert fitted["train-mfcc"]["time"]["b"] == pytest.approx(0.02)
    assert fitted["embed"]["time"]["b"] == pytest.approx(0.05) and fitted["embed"]["unit"] == "seconds of audio"
    assert fitted["logmel"]["memory"]["b"] == pytest.approx(0.1)  # windows held in memory
    assert fitted["embed"]["memory"] == {"a": 1500.0, "b": 0.0}  # streamed: the largest measured
    assert fitted["train-logmel"]["largest_peak_mib"] == 800.0
    protocol = {"seeds": [0, 1, 2], "epochs": 30, "patience": 4, "batch_size": 64, "val_fraction": 0.2}
    est = bench_scale.estimate(fitted, sizes, protocol, load_metadata(shipped_metadata_root()))
    e = est["instruments19"]
    n = e["train_windows"]["logmel"]
    assert e["steps"]["train-logmel"]["minutes"] == pytest.approx(0.01 * n / 60)
    training = e["protocol"]["trainings"]["train-logmel"]
    assert training["trainings"] == 3 and training["epochs"] == 12
    assert training["minutes"] == pytest.approx(3 * 12 * 0.01 * n / 60)
    features = e["steps"]["logmel"]["minutes"] + e["steps"]["mfcc"]["minutes"]
    assert e["protocol"]["serial_minutes"] == pytest.approx(
        features + sum(t["minutes"] for t in e["protocol"]["trainings"].values()))
    assert est["all41"]["steps"]["logmel"]["n"] > e["steps"]["logmel"]["n"]
    assert e["steps"]["logmel"]["peak_mib"] == pytest.approx(300 + e["steps"]["logmel"]["n"] / 10)
    shrinking = bench_scale.fits([_size(1, 1000, 600, 6.0), _size(2, 2000, 1200, 12.0)])
    shrinking["mfcc"]["memory"] = {"a": 900.0, "b": -0.5}  # noise can fit a falling line
    low = bench_scale.estimate(shrinking, sizes, protocol, load_metadata(shipped_metadata_root()))
    assert low["all41"]["steps"]["mfcc"]["peak_mib"] == shrinking["mfcc"]["largest_peak_mib"]


def test_protocol_parameters_come_from_notebook_03():
    """The estimate trains as notebook 03 does: the values its parameters cell sets (run here
    as plain Python, not through papermill as the benchmark reads them)."""
    import nbformat

    protocol = bench_scale.protocol_parameters()
    assert set(protocol) == {"seeds", "epochs", "patience", "batch_size", "val_fraction"}
    cells = nbformat.read(bench_scale.NOTEBOOK_03, as_version=4).cells
    parameters = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(parameters.source, namespace)  # the cell only assigns literals
    assert protocol == {name: namespace[name] for name in protocol}


class _FakeReference:
    """Stands in for the reference worker: every repeat lasts 2 s."""

    def __init__(self, python=None):
        self.calls = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def measure(self, repeats=1):
        self.calls += repeats
        return [2.0] * repeats


def test_bench_chain_runs_each_notebook_of_the_measured_tree_with_a_reference_after_each(tmp_path, monkeypatch,
                                                                                          capsys):
    """The orchestration on a fake tree whose helpers.chain 'runs' two notebooks instantly."""
    import argparse
    import json
    import os
    import subprocess

    tree = tmp_path / "tree"
    (tree / "helpers").mkdir(parents=True)
    (tree / "helpers" / "__init__.py").write_text("")
    (tree / "helpers" / "chain.py").write_text(
        "from pathlib import Path\n"
        "TIMES = {'01_a': 3.0, '02_b': 7.0}\n"
        "def chain_notebooks(start=None):\n"
        "    return [Path(__file__).parents[1] / 'notebooks' / f'{n}.ipynb' for n in TIMES]\n"
        "def run_notebook(path, profile, progress=True, overrides=None):\n"
        "    assert profile == 'smoke' and progress is False\n"
        "    return TIMES[path.stem]\n")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=tree, check=True)
    subprocess.run([*git, "add", "."], cwd=tree, check=True)
    subprocess.run([*git, "commit", "-qm", "fake"], cwd=tree, check=True)
    monkeypatch.setattr(bench_chain, "ReferenceWorker", _FakeReference)
    args = argparse.Namespace(profile="smoke", python=sys.executable, repeats=3)
    keep = tmp_path / "out"
    record = bench_chain.measure(args, tree, dict(os.environ), ("first", "second"), keep)
    assert record["first_run_seconds"] == record["second_run_seconds"] == {"01_a": 3.0, "02_b": 7.0}
    assert record["first_run_total"] == 10.0 and record["first_run_total_units"] == 5.0
    assert record["first_run_units"] == {"01_a": 1.5, "02_b": 3.5}
    ref = record["reference"]
    assert len(ref["before"]) == len(ref["after"]) == 3 and ref["median"] == 2.0
    assert list(ref["after_notebook"]["first"]) == ["01_a", "02_b"] and len(ref["repeats"]) == 10
    assert "training steps" in ref["unit"] and len(record["commit"]) >= 7
    chain = json.loads((keep / "results" / "chain_smoke.json").read_text())  # as `helpers chain` writes it
    assert chain["seconds"] == {"01_a": 3.0, "02_b": 7.0} and chain["total_seconds"] == 10.0
    record["profile"] = "full"
    anchor = {"commit": "b2f9d46", "profile": "full", "date": "2026-11-30", "total_units": 4.0,
              "committed_total_seconds": 1200.0, "reference": {"version": reference.REFERENCE_VERSION}}
    bench_chain.show(record, ("first", "second"), anchor)
    shown = capsys.readouterr().out
    assert "budget 100 units, goal 68 units (anchor b2f9d46" in shown  # fixed in units since #22
    assert "first run total 10 s (0.2 min) = 5.0 units: within" in shown


def test_bench_patience_trains_the_chapters_recipes_with_each_patience(monkeypatch, tmp_path):
    """Three recipes per patience, the chapters' epochs and batch size, CutMix as notebook 04
    chose it, or its grid's first setting when no choice was saved."""
    from helpers.augment import AugmentConfig, save_augment_config

    monkeypatch.setenv("HELPERS_OUTPUT_DIR", str(tmp_path))
    first = bench_patience.chosen_cutmix()
    grid = bench_scale.notebook_defaults(bench_patience.NOTEBOOK_04, ("cutmix_alphas", "cutmix_probs"))
    assert (first.alpha, first.prob) == (grid["cutmix_alphas"][0], grid["cutmix_probs"][0])
    save_augment_config(AugmentConfig("cutmix", alpha=0.5, prob=0.7), tmp_path / "results" / "best_cutmix.json")
    chosen = bench_patience.chosen_cutmix()
    assert (chosen.alpha, chosen.prob) == (0.5, 0.7)
    plan = bench_patience.recipes([4, 3], 30, 64, chosen, 2)
    assert sorted(plan) == sorted((k, p) for k in ("none", "CutMix", "waveform augmentation") for p in (4, 3))
    assert {r.train.patience for (_, p), r in plan.items() if p == 3} == {3}
    assert plan[("CutMix", 4)].augment == chosen and plan[("waveform augmentation", 4)].versions.copies == 2
    assert bench_patience.mean_std(0.5, float("nan")) == "0.500"
    assert bench_patience.mean_std(0.5, 0.01) == "0.500 ± 0.010"
