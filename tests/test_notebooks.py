"""The notebooks under notebooks/ execute top to bottom (nbclient, the venv's kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason="notebook tests need nbformat, nbclient, ipykernel"
)
nbclient = pytest.importorskip(
    "nbclient", reason="notebook tests need nbformat, nbclient, ipykernel"
)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.parametrize("name", ["quickstart", "variant_scoring"])
def test_notebook_executes(name, monkeypatch):
    monkeypatch.setenv("GLMX_CONFIGS", str(NOTEBOOKS.parent / "configs"))
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    if name == "variant_scoring":
        text = "".join(
            o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
            for c in nb.cells
            for o in c.get("outputs", [])
        )
        assert "embed_dist" in text and "auprc" in text
