"""helpers.results: stable keys, a rerun replaces its own entries, legacy entries go."""

import json

import pytest

from helpers.results import begin, load_summary, record


@pytest.fixture()
def output(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPERS_OUTPUT_DIR", str(tmp_path))
    return tmp_path


def test_begin_drops_the_notebooks_own_entries_and_keeps_the_others(output):
    record("models", "03/log-mel-cnn", {"notebook": "03_baselines", "accuracy": 0.5})
    record("models", "04/cutmix", {"notebook": "04_cutmix", "accuracy": 0.6})
    assert begin("03_baselines") == 1
    assert set(load_summary()["models"]) == {"04/cutmix"}
    record("models", "03/log-mel-cnn", {"notebook": "03_baselines", "accuracy": 0.7})
    assert load_summary()["models"]["03/log-mel-cnn"]["accuracy"] == 0.7


def test_begin_drops_entries_that_name_no_notebook(output):
    record("pruning", "06/goals", {"notebook": "06_pruning", "met": 1})
    summary = load_summary()
    summary["pruning"]["goals"] = {"met": 0}          # written by an older version
    summary["augmentation"] = {"04 robustness": 0.3}  # not even a dict entry
    (output / "results" / "summary.json").write_text(json.dumps(summary))
    assert begin("08_ablation") == 2
    after = load_summary()
    assert set(after["pruning"]) == {"06/goals"} and after["augmentation"] == {}


def test_record_refuses_an_entry_without_its_notebook(output):
    with pytest.raises(ValueError, match="must name its notebook"):
        record("models", "x", {"accuracy": 1.0})
