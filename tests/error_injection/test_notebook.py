"""notebooks/error_injection.ipynb runs from top to bottom and shows every error type."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from error_injection import errors
from mlsys.config import ROOT

NOTEBOOK = ROOT / "notebooks" / "error_injection.ipynb"
KERNEL = "mlsys-app-test"


def test_the_notebook_has_a_section_per_error_type_and_no_stored_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for name in errors.REGISTRY:
        assert f'show("{name}"' in sources, f"the notebook does not show {name}"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_the_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    """With a kernel of this interpreter (the app environment), declared in a temporary
    folder: nothing is registered in the user's home, nothing written outside tmp_path."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "mlsys app (test)",
            "language": "python",
        })
    )  # fmt: skip
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name=KERNEL, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs
    )
    for name in errors.REGISTRY:
        assert f"{name} ({errors.REGISTRY[name].level}-level)" in text
    assert not Path(tmp_path / "data").exists()  # the notebook wrote only to its temp folder
