"""docs/notebook.ipynb runs in Jupyter (nbclient): in-process pretraining, an experiment, the curves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "docs" / "notebook.ipynb"


@pytest.mark.slow
def test_docs_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the kernel and its jobs inherit this environment
    monkeypatch.setenv("NEMORUN_HOME", str(home / ".nemo_run"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    outputs = ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in notebook.cells
               if cell.cell_type == "code"]
    assert "['SUCCEEDED', 'SUCCEEDED']" in outputs[1], outputs[1]
    curves = outputs[2]
    for name in ("notebook", "lr_0.001", "lr_0.003"):
        assert f"{name} {{" in curves and "10:" in curves.split(f"{name} {{", 1)[1].split("}")[0], curves
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for o in notebook.cells[-1].outputs)
    assert list((tmp_path / "runs" / "notebook").glob("*/checkpoints/*step=10*-last")), os.listdir(tmp_path)
