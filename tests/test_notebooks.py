"""The notebooks: committed without outputs, and each runs top to bottom (smoke budget)."""

from __future__ import annotations

import os
import re

import nbformat
import pytest
from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def read(path):
    return nbformat.read(path, as_version=4)


def test_the_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "compare_algorithms"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(path):
    notebook = read(path)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear the outputs"
    first_code = next(c for c in notebook.cells if c.cell_type == "code")
    assert '"google.colab" in sys.modules' in first_code.source  # the guarded Colab install
    assert "AMLA_NOTEBOOK_BUDGET" in "".join(c.source for c in notebook.cells)
    assert "**Runtime.**" in notebook.cells[0].source  # expected runtime on CPU and GPU


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_install_cell_reads_the_one_repository_location(path):
    """The Colab install cell falls back to pyproject.toml's Repository URL, keeps the
    runtime's JAX (pinned) and says which accelerator it found."""
    # (tomllib is Python 3.11+; the project supports 3.10)
    url = re.search(r'^Repository = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    first_code = next(c for c in read(path).cells if c.cell_type == "code").source
    assert f'os.environ.get("AMLA_JAX_REPO", "{url}")' in first_code
    assert '"-c", str(pins)' in first_code and "jax.default_backend()" in first_code


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    # The kernel inherits this environment: the tiny budget, the package from this
    # checkout, and the suite's compilation cache ($AMLA_JAX_CACHE, see conftest.py).
    monkeypatch.setenv("AMLA_NOTEBOOK_BUDGET", "smoke")
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    notebook = read(path)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) >= 2
    assert (tmp_path / "runs").is_dir()
