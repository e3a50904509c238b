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
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "bench_gpu.py"),
            "--tiny",
            "--device",
            "cpu",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    sections = {r["section"] for r in rows}
    assert sections == {"ceiling", "model", "loop", "memory", "target"}
    assert all(math.isfinite(r["value"]) for r in rows if r["section"] != "target")
    targets = {r["what"].strip(): r for r in rows if r["section"] == "target"}
    assert len(targets) == 5  # issue 23's targets, each beside its measured value
    assert all(r["note"] in ("MET", "missed", "not measured", "") for r in targets.values())
    lanczos = targets["Lanczos-3 128 px batch 1 (gen/s)"]
    assert lanczos["value"] > 0 and lanczos["unit"] == ">= 500"
    models = [r for r in rows if r["section"] == "model"]
    assert {"realesrgan-x4plus", "realesr-animevideov3"} <= {r["what"].split()[0] for r in models}
    assert all(r["value"] > 0 for r in models)
    assert any("overhead" in r["what"] for r in rows)
    assert "of ceiling" in models[0]["note"]


def test_mixed_sizes_bench_shows_buckets_exact_and_padding_not(tmp_path: Path) -> None:
    """Why mixed sizes run in size buckets: padding low-res images to one size changes a
    convolutional model's output near the padded edges (so the engine never does it), while
    buckets, one after another or concurrently, give the same pixels."""
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "bench_mixed_sizes.py"),
            "--tiny",
            "--device",
            "cpu",
            "--images",
            "3",
            "--reps",
            "1",
            "--upscalers",
            "lanczos3,realesr-animevideov3",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {(r["upscaler"], r["strategy"]): r for r in json.loads(out.read_text())}
    ml = "realesr-animevideov3"
    assert rows[(ml, "pad")]["launches"] == 1 < rows[(ml, "buckets")]["launches"]
    assert rows[(ml, "pad")]["max_diff_levels"] > 0
    assert all(r["exact"] for (_, s), r in rows.items() if s != "pad")
    assert all(r["ms_per_generation"] > 0 for r in rows.values())


def test_bench_cpu_ncnn_runs_tiny(tmp_path: Path) -> None:
    """The CPU benchmark (every path vs the ncnn runtime) at a tiny size, two compact models."""
    import pytest

    pytest.importorskip("ncnn", reason="the ncnn extra is not installed")
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "bench_cpu_ncnn.py"),
            "--models",
            "realesr-animevideov3,srmd-x2",
            "--size",
            "24",
            "--threads",
            "1",
            "--repeats",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
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
