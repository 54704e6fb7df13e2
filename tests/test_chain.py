"""The chain runner: parameters per notebook, failures that name the notebook and the cell."""

import ast

import nbformat
import pytest

from helpers.chain import (
    PROFILES,
    ChainError,
    chain_notebooks,
    kernel_log_path,
    notebook_parameters,
    profile_output,
    run_notebook,
)


def _notebook(path, *sources, params="epochs = 30\nmax_folds = None\n"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_a_notebook_gets_the_profiles_values_of_the_parameters_it_declares(tmp_path):
    nb = _notebook(tmp_path / "01_x.ipynb")
    smoke = PROFILES["smoke"]
    assert notebook_parameters(nb, "smoke") == {"epochs": smoke["epochs"], "max_folds": smoke["max_folds"]}
    assert notebook_parameters(nb, "full") == {}  # the parameters cell's own values
    assert notebook_parameters(nb, "smoke", {"dataset": "fsdkaggle2018", "epochs": 1}) == {
        "epochs": 1, "max_folds": smoke["max_folds"]}  # an override wins; undeclared ones stay out
    with pytest.raises(ChainError, match="unknown profile 'fast'"):
        notebook_parameters(nb, "fast")


def _parameters_cell(nb) -> tuple[int, dict]:
    """Index of the cell tagged ``parameters`` and the values it assigns (literals only)."""
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    values = {t.id: ast.literal_eval(node.value) for node in ast.parse(nb.cells[index].source).body
              for t in node.targets}
    return index, values


@pytest.mark.parametrize("path", chain_notebooks(), ids=lambda p: p.name)
def test_the_chain_passes_exactly_the_smoke_knobs_a_notebook_declares(path):
    """No notebook applies a profile itself (no ``profile`` parameter, no ``apply_profile``
    cell): the chain injects the smoke values of exactly the knobs the parameters cell
    declares, each of the kind of the full value it replaces (a list for a list)."""
    nb = nbformat.read(path, as_version=4)
    index, full = _parameters_cell(nb)
    assert "profile" not in full
    assert not any("apply_profile" in c.source for c in nb.cells), "the chain applies the profile"
    injected = notebook_parameters(path, "smoke")
    assert set(injected) == set(PROFILES["smoke"]) & set(full)
    for knob, value in injected.items():
        assert full[knob] is None or type(value) is type(full[knob]), (knob, full[knob], value)
    assert notebook_parameters(path, "full") == {}


def test_a_smoke_run_gets_its_values_and_its_own_output_folder(tmp_path, monkeypatch):
    """End to end through papermill: the kernel sees the injected smoke values and the smoke
    output root; the executed copy lands there and names its profile; the chain's own process
    gets its output root back afterwards."""
    import os

    from helpers import paths

    monkeypatch.delenv("HELPERS_OUTPUT_DIR", raising=False)
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "repo")  # build/smoke under tmp_path
    nb = _notebook(tmp_path / "04_x.ipynb", "import os\nprint(epochs, max_folds, os.environ['HELPERS_OUTPUT_DIR'])")
    run_notebook(nb, "smoke", progress=False)
    smoke, values = tmp_path / "repo" / "build" / "smoke", PROFILES["smoke"]
    executed = nbformat.read(smoke / "executed" / nb.name, as_version=4)
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert injected.source.count("=") == 2 and f"epochs = {values['epochs']}" in injected.source
    printed = executed.cells[-1].outputs[0]["text"].split()
    assert printed == [str(values["epochs"]), str(values["max_folds"]), str(smoke)]
    assert executed.metadata.papermill.parameters == {
        "epochs": values["epochs"], "max_folds": values["max_folds"], "profile": "smoke"}
    assert "HELPERS_OUTPUT_DIR" not in os.environ


def test_a_partial_run_keeps_the_record_of_the_whole_chain(tmp_path, monkeypatch):
    import json

    from helpers import chain
    from helpers.paths import results_dir

    for name in ("01_a.ipynb", "02_b.ipynb", "03_c.ipynb"):
        (tmp_path / name).write_text("{}")
    monkeypatch.setattr(chain, "notebooks_dir", lambda: tmp_path)
    monkeypatch.setattr(chain, "run_notebook", lambda nb, *args: 2.0)
    chain.run_chain("full", progress=False)
    whole = json.loads((results_dir() / "chain_full.json").read_text())
    assert whole["seconds"] == {"01_a": 2.0, "02_b": 2.0, "03_c": 2.0}
    chain.run_chain("full", start="02", stop="02", progress=False)
    assert json.loads((results_dir() / "chain_full.json").read_text()) == whole
    assert json.loads((results_dir() / "chain_full_partial.json").read_text())["seconds"] == {"02_b": 2.0}


def test_a_failing_cell_is_named(tmp_path, monkeypatch):
    nb = _notebook(tmp_path / "07_fails.ipynb", "x = 1", "raise RuntimeError('boom in cell')")
    with pytest.raises(ChainError, match=r"07_fails\.ipynb failed in the cell starting .raise RuntimeError.*RuntimeError: boom in cell"):
        run_notebook(nb, "smoke", progress=False)


def test_the_kernels_own_stderr_goes_to_its_log_not_to_the_chains(tmp_path, capfd):
    # what a kernel writes outside cells (here at exit, like ipykernel's shutdown notices)
    nb = _notebook(tmp_path / "03_exits.ipynb",
                   "import atexit, os\natexit.register(os.write, 2, b'written by the kernel at exit\\n')",
                   "print('a cell prints')")
    run_notebook(nb, "smoke", progress=False)
    assert "written by the kernel at exit" not in capfd.readouterr().err
    assert kernel_log_path(nb).read_text() == "written by the kernel at exit\n"
    run_notebook(_notebook(nb, "x = 1"), "smoke", progress=False)
    assert kernel_log_path(nb).read_text() == ""  # each run starts its log afresh


def test_a_kernel_that_dies_is_named_with_its_log(tmp_path):
    nb = _notebook(tmp_path / "05_dies.ipynb",
                   "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(ChainError, match=r"05_dies\.ipynb: its kernel died while running it .*"
                                         r"05_dies\.kernel\.log"):
        run_notebook(nb, "smoke", progress=False)


def test_from_selects_later_chapters_and_rejects_unknown_ones():
    all_nbs = chain_notebooks()
    assert chain_notebooks("02") == [p for p in all_nbs if p.name[:2] >= "02"]
    assert chain_notebooks("03", "04") == [p for p in all_nbs if "03" <= p.name[:2] <= "04"]
    with pytest.raises(ChainError, match="no notebook numbered 99"):
        chain_notebooks("99")
    with pytest.raises(ChainError, match="a chapter is a number such as 04, not 'abc'"):
        chain_notebooks("abc")
    with pytest.raises(ChainError, match="--from 05 comes after --to 03"):
        chain_notebooks("05", "03")


def test_a_smoke_run_never_writes_over_the_full_runs_outputs(monkeypatch):
    import os

    from helpers.paths import REPO_ROOT, output_dir, profile_output_dir

    monkeypatch.delenv("HELPERS_OUTPUT_DIR", raising=False)
    assert profile_output_dir("full") is None and output_dir() == REPO_ROOT
    with profile_output("smoke") as folder:  # as run_chain does, around every notebook
        assert folder == output_dir() == REPO_ROOT / "build" / "smoke"
        assert os.environ["HELPERS_OUTPUT_DIR"] == str(folder)  # kernels and workers inherit it
        with profile_output("smoke") as inner:  # run_notebook inside run_chain: nothing more
            assert inner is None and output_dir() == folder
    assert output_dir() == REPO_ROOT and "HELPERS_OUTPUT_DIR" not in os.environ
    with profile_output("full") as folder:
        assert folder is None and output_dir() == REPO_ROOT
    monkeypatch.setenv("HELPERS_OUTPUT_DIR", "/somewhere/else")  # a place named by the user wins
    assert profile_output_dir("smoke") is None
    with profile_output("smoke"):
        assert str(output_dir()) == "/somewhere/else"
    assert str(output_dir()) == "/somewhere/else"
