"""How chains end (fixed point, cycle, converging, wandering) and where different starts go,
on real chains run from a photo, seeded noise and flat grey."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from roundtrip_ml.analysis.attractors import classify, start_distances, step_trend
from roundtrip_ml.analysis.summary import summarize_run
from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.experiment import run_experiment


@pytest.fixture(scope="module")
def three_starts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bicubic x4 on a 32 px crop for 16 generations from each of the three starts."""
    out = tmp_path_factory.mktemp("starts") / "run"
    cfg = make_config(
        {
            "images": ["skimage:astronaut"],
            "upscalers": ["bicubic"],
            "center_crop": 32,
            "generations": 16,
            "frame_stride": 4,
            "metrics": ["psnr"],
            "starts": ["image", "noise", "flat"],
            "device": "cpu",
            "output": str(out),
        }
    )
    assert not run_experiment(cfg).failed
    return out


def test_each_chain_gets_how_it_ends(three_starts: Path) -> None:
    df = summarize_run(three_starts).set_index("start")
    print(df[["attractor", "step_trend", "step_trend_ci_high", "late_psnr_to_image"]])
    assert df.loc["flat", "attractor"] == "fixed_point"  # grey through bicubic stays grey
    assert df.loc["image", "attractor"] == "converging"  # blur: every step smaller
    assert df.loc["image", "step_trend_ci_high"] < 0
    assert pd.isna(df.loc["image", "late_psnr_to_image"])
    assert df.loc["noise", "late_psnr_to_image"] < 15  # noise does not end at the photo


def test_start_distances_pair_every_start(three_starts: Path) -> None:
    d = start_distances(three_starts)
    pairs = {(r.start_a, r.start_b): r.late_psnr for r in d.itertuples()}
    print(pairs)
    assert set(pairs) == {("flat", "image"), ("flat", "noise"), ("image", "noise")}
    assert pairs[("flat", "noise")] > 20  # blurred noise ends near flat grey
    assert pairs[("flat", "noise")] > pairs[("image", "noise")] + 10
    assert all(r.generations == "12-16" for r in d.itertuples())


def test_trend_and_type_rules() -> None:
    g = np.arange(1, 21, dtype=float)
    falling = step_trend(g, 1e-3 * np.exp(-0.3 * g) * (1 + 0.05 * np.sin(g)))
    assert falling[2] < 0 and classify(None, falling[2]) == "converging"
    steady = step_trend(g, 1e-3 * (1 + 0.3 * np.sin(g)))
    assert steady[1] < 0 < steady[2] and classify(None, steady[2]) == "wandering"
    assert classify("cycle", steady[2]) == "cycle"
    assert math.isnan(step_trend(g[:5], np.ones(5))[0])  # too few late points: no type
    assert classify(None, math.nan) is None
