"""The worked notebook runs top to bottom (at a small size) and is committed without outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "collapse_study.ipynb"


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 6
    assert all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    pytest.importorskip("ipykernel", reason="needs ipykernel (test extra)")
    monkeypatch.setenv("ROUNDTRIP_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("ROUNDTRIP_NOTEBOOK_OUT", str(tmp_path))
    # the kernel must be this interpreter, wherever the python3 kernelspec points
    from ipykernel.kernelspec import write_kernel_spec

    spec_dir = write_kernel_spec(str(tmp_path / "kernels" / "roundtrip-test"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    assert Path(spec_dir).joinpath("kernel.json").read_text().count(sys.executable) == 1
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="roundtrip-test",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs)
    assert "8 chains in" in text
    images = [o for c in nb.cells for o in c.get("outputs", [])
              if {"image/png", "image/jpeg"} & set(o.get("data", {}))]
    assert len(images) >= 4  # in-memory drift, run drift, step, sheet: figures render inline
    for sub in ("run/metrics.parquet", "figures/drift-original-double.pdf", "sheet/sheet.png",
                "tables/metrics.tex", "video/collapse.mp4"):
        assert (tmp_path / sub).is_file(), sub


def test_notebook_uses_the_public_api_only():
    """Researchers copy from the notebook: it imports `roundtrip_ml` and nothing below it."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "import roundtrip_ml as rt" in source
    assert "roundtrip_ml." not in source and "from roundtrip_ml" not in source
