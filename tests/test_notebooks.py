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
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    # figures are shown inline (no Agg backend), as PNG display data
    assert any("image/png" in o.get("data", {}) for o in outputs), name
    assert not any("matplotlib.use('Agg')" in c.source for c in nb.cells)
    if name == "quickstart":
        text = "".join(o.get("text", "") for o in outputs)
        assert "Total params" in text and "`Trainer.fit` stopped: `max_steps=60` reached." in text
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
        pngs = [o for o in outputs if "image/png" in o.get("data", {})]
        assert len(pngs) == 2  # the hand-made plot and plot_logs
    if name == "variant_scoring":
        text = "".join(
            o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
            for c in nb.cells
            for o in c.get("outputs", [])
        )
        assert "embed_dist" in text and "auprc" in text
