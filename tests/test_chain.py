"""The chain runner: parameters per notebook, failures that name the notebook and the cell."""

import nbformat
import pytest

from helpers.chain import PROFILES, ChainError, chain_notebooks, notebook_parameters, run_notebook


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
    assert notebook_parameters(nb, "smoke") == {"profile": "smoke", "epochs": PROFILES["smoke"]["epochs"]}
    assert notebook_parameters(nb, "full", {"dataset": "fsdkaggle2018"}) == {"profile": "full"}


def test_a_failing_cell_is_named(tmp_path, monkeypatch):
    nb = _notebook(tmp_path / "07_fails.ipynb", "x = 1", "raise RuntimeError('boom in cell')")
    with pytest.raises(ChainError, match=r"07_fails\.ipynb failed in the cell starting .raise RuntimeError.*RuntimeError: boom in cell"):
        run_notebook(nb, "smoke", progress=False)


def test_from_selects_later_chapters_and_rejects_unknown_ones():
    all_nbs = chain_notebooks()
    assert chain_notebooks("02") == [p for p in all_nbs if p.name[:2] >= "02"]
    with pytest.raises(ChainError, match="no notebook numbered 99"):
        chain_notebooks("99")
