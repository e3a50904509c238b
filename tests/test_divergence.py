"""Divergence rate, growth window and predictability horizon on curves with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from roundtrip_ml.analysis.divergence import (
    DB_PER_NEPER,
    divergence_rate,
    growth_window,
    predictability_horizon,
    summarize_divergence,
)
from roundtrip_ml.pipeline.store import METRIC_COLUMNS


def exponential(rate: float, gens: np.ndarray, noise: float, rng) -> np.ndarray:
    return 1e-6 * np.exp(rate * gens + rng.normal(0.0, noise, gens.size))


def logistic(rate: float, gens: np.ndarray, noise: float, rng, plateau=1e-2, start=1e-6):
    clean = plateau / (1 + (plateau / start - 1) * np.exp(-rate * gens))
    return clean * np.exp(rng.normal(0.0, noise, gens.size))


def test_exponential_growth_rate_is_recovered_and_ci_covers_it():
    rng = np.random.default_rng(0)
    gens = np.arange(16)
    fits = [divergence_rate(gens, exponential(0.7, gens, 0.2, rng)) for _ in range(200)]
    rates = np.array([f.rate for f in fits])
    covered = np.mean([f.ci_low <= 0.7 <= f.ci_high for f in fits])
    assert rates.mean() == pytest.approx(0.7, rel=0.02)
    assert 0.90 <= covered <= 0.99  # a 95% interval, checked over 200 noisy curves
    # one noiseless curve: the exact slope, a zero-width interval, the whole run as window
    exact = divergence_rate(gens, 1e-6 * np.exp(0.7 * gens))
    assert exact.rate == pytest.approx(0.7) and exact.ci_high - exact.ci_low < 1e-9
    assert growth_window(gens, 1e-6 * np.exp(0.7 * gens)) == (0, 15)


def test_saturating_curve_window_stops_before_the_plateau():
    rng = np.random.default_rng(1)
    gens = np.arange(31)
    plateau, start, rate = 1e-2, 1e-6, 0.8
    # generation where the clean logistic comes within 10x of its plateau: ~8.8
    g_near = math.log((plateau / start - 1) / 9) / rate
    fits, windows = [], []
    for _ in range(100):
        y = logistic(rate, gens, 0.1, rng, plateau, start)
        windows.append(growth_window(gens, y))
        fits.append(divergence_rate(gens, y))
    assert all(w[0] == 0 and 6 <= w[1] <= g_near + 1 for w in windows)
    assert np.mean([f.rate for f in fits]) == pytest.approx(rate, rel=0.03)
    assert np.mean([f.ci_low <= rate <= f.ci_high for f in fits]) >= 0.85
    # a fit over the whole run, plateau included, would be badly wrong: the window matters
    naive = np.polyfit(gens, np.log(logistic(rate, gens, 0.0, rng, plateau, start)), 1)[0]
    assert naive < 0.5 * rate


def test_window_starts_after_an_initial_dip_and_skips_zero_distance():
    gens = np.arange(12)
    y = np.r_[0.0, 5e-5, 1e-6 * np.exp(0.5 * np.arange(10))]  # identical, then a dip, then growth
    assert growth_window(gens, y) == (2, 11)
    assert divergence_rate(gens, y).rate == pytest.approx(0.5)
    assert math.isnan(divergence_rate([0, 1], [1e-6, 2e-6]).rate)  # too few points for a CI


def test_predictability_horizon_skips_generation_0():
    gens = np.arange(10)
    pairwise = 2e-6 * np.exp(0.9 * gens)  # at g0 twice the distance to the original, by design
    original = 1e-6 + 1e-3 * (gens > 0) * (1 + 0.1 * gens)
    # g7: 2e-6 e^6.3 = 1.09e-3 < 1.70e-3;  g8: 2e-6 e^7.2 = 2.68e-3 >= 1.80e-3
    assert predictability_horizon(gens, pairwise, original) == 8
    assert predictability_horizon(gens, pairwise * 1e-3, original) is None


def _tidy(
    recipe: str,
    image: str,
    pairwise: np.ndarray,
    original: list[np.ndarray],
    psnr_only: bool = False,
) -> list[dict]:
    """Rows as the engine writes them: a group's pairwise row (scope "group", the head's id)
    and each member's (head r0, replicas r1..) MSE to the original under its own chain_id."""
    head = f"{image}.{recipe}"
    base = {
        "run_id": "run",
        "image": f"skimage:{image}",
        "image_name": image,
        "upscaler": recipe,
        "downscaler": "lanczos3",
        "scale": 4.0,
        "codec": "png",
        "scope": "chain",
    }
    rows = []
    for g, v in enumerate(pairwise):
        if psnr_only:
            rows.append(
                base
                | {
                    "chain_id": head,
                    "replica": 0,
                    "scope": "group",
                    "generation": g,
                    "metric": "psnr",
                    "reference": "replicas",
                    "value": -10 * math.log10(v),
                }
            )
        else:
            rows.append(
                base
                | {
                    "chain_id": head,
                    "replica": 0,
                    "scope": "group",
                    "generation": g,
                    "metric": "mse",
                    "reference": "replicas",
                    "value": v,
                }
            )
        for r, series in enumerate(original):
            rows.append(
                base
                | {
                    "chain_id": head if r == 0 else f"{head}.r{r}",
                    "replica": r,
                    "generation": g,
                    "metric": "mse",
                    "reference": "original",
                    "value": series[g],
                }
            )
        rows.append(
            base
            | {
                "chain_id": head,
                "replica": 0,
                "generation": g,
                "metric": "ssim",
                "reference": "original",
                "value": 0.9,
            }
        )  # other metrics are ignored
    return rows


def test_summarize_divergence_per_recipe_and_per_chain():
    rng = np.random.default_rng(2)
    gens = np.arange(13)
    rows = []
    for image in ("astronaut", "coffee"):
        fast = logistic(0.7, gens, 0.1, rng, plateau=3e-3, start=8e-6)
        slow = exponential(0.09, gens, 0.05, rng) * 8
        orig = [5e-4 + 1e-4 * gens + rng.uniform(0, 1e-5, gens.size) for _ in range(3)]
        rows += _tidy("x4plus", image, fast, orig)
        rows += _tidy("lanczos3", image, slow, orig, psnr_only=True)
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)

    per_recipe = summarize_divergence(metrics).set_index("upscaler")
    assert list(per_recipe.index) == ["lanczos3", "x4plus"]
    assert (per_recipe["n_chains"] == 2).all()
    fast, slow = per_recipe.loc["x4plus"], per_recipe.loc["lanczos3"]
    assert fast["rate"] == pytest.approx(0.7, rel=0.1)
    assert slow["rate"] == pytest.approx(0.09, rel=0.2)  # read from PSNR rows
    assert slow["ci_high"] < fast["ci_low"]  # the two recipes are told apart
    assert fast["rate_db_per_gen"] == pytest.approx(fast["rate"] * DB_PER_NEPER)
    # x4plus replicas end as far apart as from the original; Lanczos ones never do
    assert 1 <= fast["horizon"] <= 12 and pd.isna(slow["horizon"])
    assert slow["final_pairwise_psnr"] > fast["final_pairwise_psnr"]

    per_chain = summarize_divergence(metrics, per="chain")
    assert len(per_chain) == 4 and set(per_chain["image_name"]) == {"astronaut", "coffee"}
    for _, row in per_chain.iterrows():
        assert row["ci_low"] <= row["rate"] <= row["ci_high"]

    assert summarize_divergence(metrics[metrics["reference"] != "replicas"]).empty


@pytest.mark.slow
def test_real_x4plus_replicas_diverge_faster_than_lanczos(tmp_path):
    """Real weights (x4plus from the offline ncnn files), 128 px crop, lsb perturbation, 8
    generations: x4plus amplifies 1-level differences faster than Lanczos-3, CIs apart."""
    from roundtrip_ml.core.errors import WeightsError
    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.experiment import run_experiment
    from roundtrip_ml.pipeline.store import RunStore

    cfg = make_config(
        {
            "images": ["skimage:astronaut"],
            "upscalers": ["realesrgan-x4plus", "lanczos3"],
            "generations": 8,
            "center_crop": 128,
            "replicas": 2,
            "perturbation": "lsb",
            "metrics": ["psnr"],
            "device": "cpu",
            "frame_stride": 100,
            "output": str(tmp_path / "r"),
        }
    )
    try:
        res = run_experiment(cfg)
    except WeightsError as e:
        pytest.skip(f"x4plus weights unavailable: {e}")
    metrics = RunStore(res.run_dir).read_metrics()
    pair = metrics.query("reference == 'replicas' and metric == 'psnr'")
    x4 = pair[pair.upscaler == "realesrgan-x4plus"].sort_values("generation")["value"].to_numpy()
    assert len(x4) == 8 and x4[-1] < x4[0] - 8  # replicas drift apart by > 8 dB in 8 generations
    summary = summarize_divergence(metrics).set_index("upscaler")
    fast, slow = summary.loc["realesrgan-x4plus"], summary.loc["lanczos3"]
    assert slow["rate"] > 0  # 8-bit rounding alone separates Lanczos replicas, slowly
    assert fast["ci_low"] > slow["ci_high"]
    # the largest Lyapunov exponent: ln of the RMS distance's growth per generation = rate / 2
    for r in (fast, slow):
        assert r["lyapunov"] == pytest.approx(r["rate"] / 2)
        assert (r["lyapunov_ci_low"], r["lyapunov_ci_high"]) == pytest.approx(
            (r["ci_low"] / 2, r["ci_high"] / 2)
        )
    assert fast["lyapunov_ci_low"] > 0
