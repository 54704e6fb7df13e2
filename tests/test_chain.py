"""The chain runner: parameters per notebook, failures that name the notebook and the cell."""

import nbformat
import pytest

from helpers.chain import (
    PROFILES,
    ChainError,
    apply_profile,
    chain_notebooks,
    kernel_log_path,
    notebook_parameters,
    run_notebook,
)


def _notebook(path, *sources, params="profile = 'full'\nepochs = 30\n"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_a_notebook_gets_only_the_parameters_it_declares(tmp_path):
    nb = _notebook(tmp_path / "01_x.ipynb")
    assert notebook_parameters(nb, "smoke") == {"profile": "smoke"}  # the values: apply_profile
    assert notebook_parameters(nb, "full", {"dataset": "fsdkaggle2018"}) == {"profile": "full"}


def test_a_profile_sets_only_the_knobs_a_notebook_defines(capsys):
    namespace = {"epochs": 30, "seeds": [0, 1, 2], "unrelated": 1}
    apply_profile("smoke", namespace)
    assert namespace == {"epochs": PROFILES["smoke"]["epochs"], "seeds": PROFILES["smoke"]["seeds"], "unrelated": 1}
    assert "epochs 30 -> 3" in capsys.readouterr().out
    before = dict(namespace)
    apply_profile("full", namespace)
    assert namespace == before
    with pytest.raises(ValueError, match="unknown profile"):
        apply_profile("fast", namespace)


@pytest.mark.parametrize("path", chain_notebooks(), ids=lambda p: p.name)
def test_profile_typed_by_hand_means_what_the_chain_means(path):
    """A student who sets profile = "smoke" in the parameters cell gets the same values the
    chain's smoke run gets: the cell after the parameters applies helpers.chain.PROFILES."""
    nb = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(nb.cells[index].source.replace('profile = "full"', 'profile = "smoke"'), namespace)
    exec(nb.cells[index + 1].source, namespace)
    for knob, value in PROFILES["smoke"].items():
        if knob in namespace:
            assert namespace[knob] == value, (path.name, knob)
    assert "apply_profile(profile, globals())" in nb.cells[index + 1].source


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


def test_a_smoke_run_never_writes_over_the_full_runs_outputs(monkeypatch, capsys):
    import os

    from helpers.paths import REPO_ROOT, output_dir, use_profile_output

    monkeypatch.delenv("HELPERS_OUTPUT_DIR", raising=False)
    assert use_profile_output("full") is None and output_dir() == REPO_ROOT
    apply_profile("smoke", {"epochs": 30})  # as a student's notebook does
    assert output_dir() == REPO_ROOT / "build" / "smoke"
    assert os.environ["HELPERS_OUTPUT_DIR"] == str(REPO_ROOT / "build" / "smoke")  # workers inherit it
    assert "go to" in capsys.readouterr().out
    apply_profile("full", {"epochs": 30})  # the student switches back in the same kernel
    assert output_dir() == REPO_ROOT and "HELPERS_OUTPUT_DIR" not in os.environ
    monkeypatch.setenv("HELPERS_OUTPUT_DIR", "/somewhere/else")  # a place named by the user wins
    assert use_profile_output("smoke") is None and str(output_dir()) == "/somewhere/else"
    assert use_profile_output("full") is None and str(output_dir()) == "/somewhere/else"
