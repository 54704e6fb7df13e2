"""Prose tied to code: what a chapter says about its models and experiments is what runs.

Notebook 03 describes its two CNNs from their configurations (``describe_cnn``); its markdown
must not claim an architecture feature the configurations lack (the bug this test was written
for: "the log-mel CNN adds batch normalisation and global average pooling" while it had
neither). Notebook 08's augmentation arm is CutMix, as its prose says, and the smoke run records
that it ran CutMix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from helpers.features import LOGMEL, SEED_MFCC
from helpers.models import LOGMEL_CNN, SEED_CNN, describe_cnn

ROOT = Path(__file__).resolve().parents[1]
NB03 = ROOT / "notebooks" / "03_baselines.ipynb"
NB08 = ROOT / "notebooks" / "08_ablation.ipynb"
DESCRIBED_03 = {"seed CNN": (SEED_CNN, SEED_MFCC), "log-mel CNN": (LOGMEL_CNN, LOGMEL)}
# phrase in the prose -> the configuration flag it claims
CLAIMS = {r"batch[- ]normali[sz]ation": "batch_norm", r"global average pooling": "global_pool"}
CLAIMS_BY_FLAG = {flag: phrase for phrase, flag in CLAIMS.items()}


def _markdown(path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


def _code(path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def _claims(text: str, phrase: str) -> list[tuple[str, str]]:
    """(sentence, model name) for every sentence of ``text`` that names a CNN of notebook 03
    and affirms ``phrase`` of it (not "no ..." / "without ..." / "neither ..." / "nor ...")."""
    found = []
    for sentence in re.split(r"(?<=[.!?:;])\s+", text):
        for match in re.finditer(phrase, sentence, re.I):
            if re.search(r"\b(no|not|without|neither|nor)\b[^.]{0,20}$", sentence[:match.start()], re.I):
                continue
            found += [(sentence, name) for name in DESCRIBED_03 if name.lower() in sentence.lower()]
    return found


def test_claim_finder_ties_a_claim_to_the_model_it_names():
    text = ("The log-mel CNN adds batch normalisation. The seed CNN has no batch normalisation. "
            "Global average pooling is discussed here without a model.")
    assert _claims(text, CLAIMS_BY_FLAG["batch_norm"]) == [
        ("The log-mel CNN adds batch normalisation.", "log-mel CNN")]
    assert _claims(text, CLAIMS_BY_FLAG["global_pool"]) == []


@pytest.mark.parametrize("phrase,flag", CLAIMS.items())
def test_notebook_03_claims_no_layer_its_models_lack(phrase, flag):
    """A sentence that says a named CNN of notebook 03 has a layer is true of that CNN's
    configuration; no CNN-less sentence claims a layer that neither configuration has."""
    text = _markdown(NB03)
    for sentence, name in _claims(text, phrase):
        assert getattr(DESCRIBED_03[name][0], flag), \
            f"notebook 03 says the {name} has {phrase!r}, but its configuration has {flag}=False: {sentence!r}"
    if re.search(phrase, text, re.I) and not _claims(text, phrase):
        assert any(getattr(cnn, flag) for cnn, _ in DESCRIBED_03.values()), \
            f"notebook 03 mentions {phrase!r} but neither CNN configuration has {flag}=True"


def test_notebook_03_states_no_dropout_its_models_do_not_use():
    stated = {float(x) for x in re.findall(r"dropout (?:of )?(0\.\d+)", _markdown(NB03), re.I)}
    assert stated <= {cnn.dropout for cnn, _ in DESCRIBED_03.values()}


def test_notebook_03_describes_each_architecture_from_its_configuration():
    code = _code(NB03)
    assert "describe_cnn(" in code
    for name in ("SEED_CNN", "LOGMEL_CNN"):
        assert name in code


@pytest.mark.slow
def test_the_executed_notebook_03_prints_the_configurations_description(smoke_runs):
    executed = nbformat.read(smoke_runs[0] / "executed" / NB03.name, as_version=4)
    shown = json.dumps([c.get("outputs", []) for c in executed.cells])
    for cnn, _ in DESCRIBED_03.values():
        sentence = describe_cnn(cnn)  # without sizes: the part that depends on the configuration only
        assert sentence.split(". Adam")[0] in shown


def test_notebook_08_says_its_augmentation_arm_is_cutmix():
    text = _markdown(NB08)
    assert re.search(r"augmentation arm is \*\*CutMix\*\*", text)
    assert "at the setting notebook 04 chose on cross-library validation" in text


@pytest.mark.slow
def test_notebook_08_runs_the_augmentation_its_prose_names(smoke_runs):
    summary = json.loads((smoke_runs[0] / "results" / "summary.json").read_text())
    ablation = summary["ablation"]["08/summary"]
    assert ablation["augmentation"].startswith("CutMix")
    assert any(name.endswith("+ cutmix") for name in ablation["variants"])
