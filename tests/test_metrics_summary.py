"""Convergence events and collapse statistics (`roundtrip summarize`)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from roundtrip_ml.analysis.events import detect_events, first_repeat
from roundtrip_ml.analysis.summary import (
    SUMMARY_FILE,
    parse_thresholds,
    summarize_run,
)
from roundtrip_ml.cli.app import app
from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.pipeline.store import (
    FINGERPRINTS_FILE,
    METRICS_FILE,
    RunStore,
    atomic_write_parquet,
    rows_to_frame,
)

BIG = 2**63 + 12345  # fingerprints are unsigned 64-bit


def test_first_repeat_on_constructed_sequences() -> None:
    assert first_repeat(enumerate([5, 6, 7, 8])) is None
    ev = first_repeat(enumerate([5, 6, 6, 6]))
    assert (ev.kind, ev.generation, ev.period, ev.start) == ("fixed_point", 2, 1, 1)
    ev = first_repeat(enumerate([1, 2, 3, 2, 3, 2]))  # two-state alternation from generation 1
    assert (ev.kind, ev.generation, ev.period, ev.start) == ("cycle", 3, 2, 1)
    ev = first_repeat(enumerate([9, 1, 2, 3, 1, 2, 3]))
    assert (ev.kind, ev.period, ev.start) == ("cycle", 3, 1)
    ev = first_repeat([(2, BIG), (0, 4), (1, BIG)])  # any row order
    assert (ev.kind, ev.generation) == ("fixed_point", 2)


def _write_run(root: Path) -> None:
    """A run directory with three chains: steady drift, fixed point, period-2 cycle."""
    rows = []
    ident = {
        "run_id": "r",
        "image": "skimage:astronaut",
        "image_name": "astronaut",
        "upscaler": "lanczos3",
        "downscaler": "lanczos3",
        "scale": 2.0,
        "codec": "png",
        "replica": 0,
        "scope": "chain",
    }
    for g in range(1, 11):
        for cid, p, s in [
            ("drift", 35 - 2 * g, 1 - 0.06 * g),
            ("fixed", 30.0, 0.9),
            ("cycle", 28.0 if g % 2 else 27.0, 0.8),
        ]:
            rows.append(
                {
                    **ident,
                    "chain_id": cid,
                    "generation": g,
                    "metric": "psnr",
                    "reference": "original",
                    "value": float(p),
                }
            )
            rows.append(
                {
                    **ident,
                    "chain_id": cid,
                    "generation": g,
                    "metric": "ssim",
                    "reference": "original",
                    "value": float(s),
                }
            )
            step = float("inf") if cid == "fixed" and g >= 2 else 40.0
            rows.append(
                {
                    **ident,
                    "chain_id": cid,
                    "generation": g,
                    "metric": "psnr",
                    "reference": "previous",
                    "value": step,
                }
            )
    atomic_write_parquet(root / METRICS_FILE, rows_to_frame(rows))
    fps = {
        "drift": list(range(100, 111)),
        "fixed": [1, BIG] + [7] * 9,
        "cycle": [3, 4, BIG, 4, BIG, 4, BIG, 4, BIG, 4, BIG],
    }
    frame = pd.DataFrame(
        [(cid, g, fp) for cid, seq in fps.items() for g, fp in enumerate(seq)],
        columns=["chain_id", "generation", "fingerprint"],
    ).astype({"fingerprint": "uint64"})
    atomic_write_parquet(root / FINGERPRINTS_FILE, frame)


def test_detect_events_from_a_run(tmp_path: Path) -> None:
    _write_run(tmp_path)
    ev = detect_events(RunStore(tmp_path).read_fingerprints()).set_index("chain_id")
    assert set(ev.index) == {"fixed", "cycle"}
    fixed = ev.loc["fixed", ["event", "event_generation", "period"]].tolist()
    assert fixed == ["fixed_point", 3, 1]
    assert ev.loc["cycle", ["event", "event_generation", "period", "cycle_start"]].tolist() == [
        "cycle",
        3,
        2,
        1,
    ]


def test_summarize_statistics(tmp_path: Path) -> None:
    _write_run(tmp_path)
    df = summarize_run(tmp_path, "psnr<20,ssim<0.5,lpips>0.4").set_index("chain_id")
    assert (tmp_path / SUMMARY_FILE).exists()
    assert pd.read_parquet(tmp_path / SUMMARY_FILE).shape == df.reset_index().shape
    d = df.loc["drift"]
    assert d["first_psnr<20"] == 8 and d["first_ssim<0.5"] == 9
    assert "first_lpips>0.4" not in df  # not measured: no column (it would only say "never")
    assert d["final_psnr"] == 15 and d["generations"] == 10
    # drift curves: PSNR -> MSE, SSIM -> 1 - SSIM; trapezoid from generation 0 (drift 0)
    g = np.arange(0, 11)
    mse = np.concatenate([[0.0], 10 ** (-(35 - 2 * g[1:]) / 10)])
    assert d["auc_psnr"] == pytest.approx(np.sum((mse[1:] + mse[:-1]) / 2))
    assert d["auc_ssim"] == pytest.approx(np.sum((0.06 * g[1:] + 0.06 * g[:-1]) / 2))
    assert d["half_life_psnr"] == 9  # MSE reaches half its final value where PSNR <= 18.0 dB
    assert d["half_life_ssim"] == 5
    assert pd.isna(d["event"])
    f = df.loc["fixed"]
    assert pd.isna(f["first_psnr<20"]) and f["step_psnr"] == float("inf")
    assert (f["event"], f["event_generation"], f["period"]) == ("fixed_point", 3, 1)
    c = df.loc["cycle"]
    assert (c["event"], c["event_generation"], c["period"], c["cycle_start"]) == ("cycle", 3, 2, 1)
    assert df.loc["drift", "image_name"] == "astronaut"


def test_thresholds_parse_and_fail_clearly() -> None:
    ts = parse_thresholds("psnr<20, ssim <= 0.5,lpips>0.4,psnr_y:border=4<30")
    assert [(t.metric, t.op, t.value) for t in ts] == [
        ("psnr", "<", 20),
        ("ssim", "<=", 0.5),
        ("lpips", ">", 0.4),
        ("psnr_y:border=4", "<", 30),
    ]
    with pytest.raises(ConfigError, match="psnr~3"):
        parse_thresholds("psnr~3")


def test_cli_summarize(tmp_path: Path) -> None:
    _write_run(tmp_path)
    res = CliRunner().invoke(app, ["summarize", str(tmp_path), "--csv"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "fixed_point @3" in res.output and "cycle @3 p=2" in res.output
    assert pd.read_csv(tmp_path / "summary.csv").shape[0] == 3
    bad = subprocess.run(
        [sys.executable, "-m", "roundtrip_ml.cli", "summarize", str(tmp_path), "--thresholds", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "threshold 'x'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_nearest_block_image_is_a_fixed_point_from_generation_1(tmp_path: Path) -> None:
    """End to end: nearest x2 down/up of a 2x2-block image returns the image itself."""
    from PIL import Image

    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.experiment import run_experiment

    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(blocks.repeat(2, 0).repeat(2, 1)).save(tmp_path / "blocks.png")
    cfg = make_config(
        {
            "images": [str(tmp_path / "blocks.png")],
            "upscalers": ["nearest"],
            "downscalers": ["nearest"],
            "scales": [2.0],
            "codecs": ["png"],
            "generations": 4,
            "metrics": ["psnr", "ssim"],
            "device": "cpu",
            "output": str(tmp_path / "run"),
        }
    )
    result = run_experiment(cfg)
    df = summarize_run(result.run_dir).iloc[0]
    assert (df["event"], df["event_generation"], df["period"]) == ("fixed_point", 1, 1)
    assert df["final_psnr"] == float("inf") and df["step_psnr"] == float("inf")


def test_replica_run_gets_a_divergence_table(tmp_path: Path) -> None:
    """A real tiny replica run: summarize writes and prints the divergence table per recipe."""
    from roundtrip_ml.analysis.summary import DIVERGENCE_FILE
    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.experiment import run_experiment

    out = tmp_path / "run"
    run_experiment(
        make_config(
            {
                "images": ["skimage:astronaut"],
                "upscalers": ["lanczos3"],
                "generations": 6,
                "center_crop": 64,
                "replicas": 2,
                "metrics": ["psnr"],
                "device": "cpu",
                "output": str(out),
            }
        )
    )
    df = summarize_run(out, csv=True)
    assert sorted(df["replica"]) == [0, 1, 2]  # identity comes from the member's own rows
    div = pd.read_parquet(out / DIVERGENCE_FILE)
    assert pd.read_csv(out / "divergence.csv").shape == div.shape
    assert len(div) == 1
    row = div.iloc[0]
    assert (row["upscaler"], row["images"], row["n_chains"]) == ("lanczos3", "astronaut", 1)
    assert row["generations"] == 6
    # lsb replicas start about 1 level apart; Lanczos-3 lets them drift apart slowly (8-bit
    # rounding), far closer to each other than to the original: no horizon in 6 generations
    assert 40 < row["final_pairwise_psnr"] < 60
    assert 0 < row["ci_low"] <= row["rate"] <= row["ci_high"] < 1
    assert row["rate_db_per_gen"] == pytest.approx(row["rate"] * 10 / math.log(10))
    assert pd.isna(row["horizon"]) and row["n_points"] >= 3
    res = CliRunner().invoke(app, ["summarize", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "divergence of replicas" in res.output and "lanczos3 / lanczos3 x4 png" in res.output
    assert df.attrs["divergence"].equals(div)


def test_run_without_replicas_writes_no_divergence_table(tmp_path: Path) -> None:
    _write_run(tmp_path)
    df = summarize_run(tmp_path)
    assert "divergence" not in df.attrs and not (tmp_path / "divergence.parquet").exists()
