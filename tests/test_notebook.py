"""The worked notebook runs top to bottom (at a small size) and is committed without outputs."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "collapse_study.ipynb"


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 6
    assert all(not c.outputs and c.execution_count is None for c in code)


def test_readme_notebook_command_runs_it_top_to_bottom(tmp_path):
    """The README's own command (`jupyter nbconvert ... --execute`, from the `notebook` extra)
    runs the notebook at a small size; its runs show a live progress widget."""
    pytest.importorskip("nbconvert", reason="needs nbconvert (notebook extra)")
    pytest.importorskip("ipywidgets", reason="needs ipywidgets (notebook extra)")
    readme = (NOTEBOOK.parents[1] / "README.md").read_text()
    line = next(
        ln.strip() for ln in readme.splitlines() if ln.strip().startswith("jupyter nbconvert")
    )
    args = shlex.split(line)
    assert "--execute" in args and "notebooks/collapse_study.ipynb" in args
    args[args.index("--output-dir") + 1] = str(tmp_path / "executed")
    # the kernel must be this interpreter, wherever the python3 kernelspec points
    from ipykernel.kernelspec import write_kernel_spec

    spec_dir = write_kernel_spec(str(tmp_path / "kernels" / "python3"))
    assert Path(spec_dir).joinpath("kernel.json").read_text().count(sys.executable) == 1
    env = {
        **os.environ,
        "ROUNDTRIP_NOTEBOOK_SMALL": "1",
        "ROUNDTRIP_NOTEBOOK_OUT": str(tmp_path),
        "JUPYTER_PATH": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", *args[1:]],
        cwd=NOTEBOOK.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    nb = nbformat.read(tmp_path / "executed" / NOTEBOOK.name, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "\n".join(o.get("text", "") for o in outputs)
    assert "8 chains in" in text
    images = [o for o in outputs if {"image/png", "image/jpeg"} & set(o.get("data", {}))]
    assert len(images) >= 5  # in-memory drift, comparison, run drift, step, sheet: inline
    # tqdm's notebook bar (a widget) for the chain, the comparison and the run
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(widgets) >= 3
    assert "ms_ssim" not in text  # metrics named: nothing skipped, no note
    for sub in (
        "run/metrics.parquet",
        "figures/drift-original-double.pdf",
        "sheet/sheet.png",
        "tables/metrics.tex",
        "video/collapse.mp4",
    ):
        assert (tmp_path / sub).is_file(), sub


def test_notebook_uses_the_public_api_only():
    """Researchers copy from the notebook: it imports `roundtrip_ml` and nothing below it."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "import roundtrip_ml as rt" in source
    assert "roundtrip_ml." not in source and "from roundtrip_ml" not in source
