"""Benchmarks run in CI at tiny sizes, so they cannot rot between GPU sessions."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_bench_gpu_runs_tiny_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "bench_gpu.py"), "--tiny", "--device",
                           "cpu", "--json", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    sections = {r["section"] for r in rows}
    assert sections == {"ceiling", "model", "loop", "memory"}
    assert all(math.isfinite(r["value"]) for r in rows)
    models = [r for r in rows if r["section"] == "model"]
    assert {"realesrgan-x4plus", "realesr-animevideov3"} <= {r["what"].split()[0] for r in models}
    assert all(r["value"] > 0 for r in models)
    assert any("overhead" in r["what"] for r in rows)
    assert "of ceiling" in models[0]["note"]


def test_bench_cpu_ncnn_runs_tiny(tmp_path: Path) -> None:
    """The CPU benchmark (every path vs the ncnn runtime) at a tiny size, two compact models."""
    import pytest

    pytest.importorskip("ncnn", reason="the ncnn extra is not installed")
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "bench_cpu_ncnn.py"), "--models",
                           "realesr-animevideov3,srmd-x2", "--size", "24", "--threads", "1",
                           "--repeats", "1", "--json", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["realesr-animevideov3", "srmd-x2"]
    for r in rows:
        assert set(r["ms"]) == {"torch eager", "torch channels_last", "ncnn runtime"}
        assert all(math.isfinite(v) and v > 0 for v in r["ms"].values())
        assert r["ratio_to_ncnn"]["ncnn runtime"] == 1.0
        assert r["max_abs_diff_to_torch"]["ncnn runtime"] < 1e-4  # the same weights, fp32
        assert r["auto_picks"] == "ncnn"
    assert "x ncnn" in proc.stdout and "load average" in proc.stdout
