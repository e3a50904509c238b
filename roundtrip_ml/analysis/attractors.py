"""Where chains go: how each one ends, and whether different starts end in the same place.

How a chain ends (``attractor`` column of the summary), from the run's own tables:

- ``fixed_point``: its 8-bit state repeats bit for bit from one generation to the next;
- ``cycle``: its state repeats with period k >= 2 (``period``); both come from the
  fingerprints (``events.detect_events``) and are exact;
- ``converging``: no repeat yet, but the step size (MSE to the previous generation) keeps
  falling: the OLS slope of ln(step MSE) per generation over the second half of the run has a
  95% CI entirely below 0 (``step_trend``, with ``step_trend_ci_low``/``_high``);
- ``wandering``: none of these (the step size holds steady or grows).

A chain with too few step measurements (under 4 in its second half) gets no type.
``chain_end`` applies the same rule to what a table keeps per chain (its PSNR to the previous
generation and its repeat period): the leaderboard classifies its per-photo rows with it.

Starts (``starts = ["image", "noise", "flat"]``): the same recipe run from the photo, from
seeded noise and from flat grey. ``start_distances`` compares the starts' late frames (saved
frames at or after three quarters of the run, the last included): the PSNR between two starts'
states, averaged as MSE over those generations. High PSNR: the starts ended in the same place.
"""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..pipeline.store import RunStore
from .divergence import ols_slope

ATTRACTOR_KINDS = ("fixed_point", "cycle", "converging", "wandering")
TREND_COLUMNS = ["step_trend", "step_trend_ci_low", "step_trend_ci_high"]
MIN_TREND_POINTS = 4
LATE_FRACTION = 0.75  # "late" generations: at or after this fraction of the run
START_RECIPE = [
    "upscaler",
    "downscaler",
    "scale",
    "codec",
    "stabilizer",
    "up_steps",
    "downscale_steps",
]


def step_trend(generations: np.ndarray, step_mse: np.ndarray) -> tuple[float, float, float]:
    """Slope of ln(step MSE) per generation over the second half of the run, with its 95% CI;
    NaN when fewer than MIN_TREND_POINTS positive, finite steps lie there."""
    g = np.asarray(generations, dtype=float)
    y = np.asarray(step_mse, dtype=float)
    ok = np.isfinite(y) & (y > 0) & (g > g.max() / 2) if len(g) else np.zeros(0, bool)
    if ok.sum() < MIN_TREND_POINTS:
        return math.nan, math.nan, math.nan
    fit = ols_slope(g[ok], np.log(y[ok]))
    return fit.rate, fit.ci_low, fit.ci_high


def classify(event: object, trend_ci_high: float) -> str | None:
    """The attractor type from a fingerprint event (or none) and the step trend's upper CI."""
    if isinstance(event, str) and event in ("fixed_point", "cycle"):
        return event
    if math.isnan(trend_ci_high):
        return None
    return "converging" if trend_ci_high < 0 else "wandering"


def step_mse(step_psnr: np.ndarray) -> np.ndarray:
    """MSE to the previous generation from its PSNR (data range 1; +inf dB -> 0: no step)."""
    return np.power(10.0, -np.asarray(step_psnr, dtype=float) / 10.0)


def chain_end(generations: np.ndarray, step_psnr: np.ndarray, period: int) -> str | None:
    """The attractor type of one chain from its PSNR to the previous generation per generation
    and the period of its first exact repeat (``events``: 1 a fixed point, k >= 2 a cycle, 0
    none); None when it has too few step measurements."""
    event = "fixed_point" if period == 1 else "cycle" if period >= 2 else None
    return classify(event, step_trend(generations, step_mse(step_psnr))[2])


def attractor_table(metrics: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """One row per chain: ``attractor`` and the step trend (TREND_COLUMNS). ``events`` has
    ``events.EVENT_COLUMNS`` (chains without an event are absent from it)."""
    prev = metrics[(metrics["reference"] == "previous") & (metrics["metric"] == "psnr")]
    ev = dict(zip(events["chain_id"], events["event"], strict=True)) if len(events) else {}
    rows = []
    for chain_id in sorted(metrics["chain_id"].unique()):
        p = prev[prev["chain_id"] == chain_id].sort_values("generation")
        trend = step_trend(p["generation"].to_numpy(float), step_mse(p["value"].to_numpy(float)))
        rows.append(
            {
                "chain_id": chain_id,
                "attractor": classify(ev.get(chain_id), trend[2]),
                **dict(zip(TREND_COLUMNS, trend, strict=True)),
            }
        )
    return pd.DataFrame(rows, columns=["chain_id", "attractor", *TREND_COLUMNS])


def _frame(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0


def start_distances(run: str | Path, chains: pd.DataFrame | None = None) -> pd.DataFrame:
    """Pairwise distance between the starts of each (image, recipe): one row per pair, with
    ``late_psnr`` (dB, +inf when identical), ``late_rmse`` and the ``generations`` compared.
    Empty when the run has a single start."""
    store = RunStore(run)
    chains = store.read_chains() if chains is None else chains
    if "start" not in chains or chains["start"].nunique() < 2:
        return pd.DataFrame()
    base = chains[chains["replica"] == 0]
    keys = ["image_name", *[c for c in START_RECIPE if c in base]]
    rows = []
    for key, grp in base.groupby(keys, sort=True, dropna=False):
        frames = {r.start: store.list_frames(r.chain_id) for r in grp.itertuples()}
        for a, b in combinations(sorted(frames), 2):
            common = sorted(set(frames[a]) & set(frames[b]))
            if not common:
                continue
            late = [g for g in common if g >= LATE_FRACTION * common[-1]]
            mse = float(
                np.mean([np.mean((_frame(frames[a][g]) - _frame(frames[b][g])) ** 2) for g in late])
            )
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "start_a": a,
                    "start_b": b,
                    "generations": f"{late[0]}-{late[-1]}" if len(late) > 1 else str(late[0]),
                    "late_rmse": math.sqrt(mse),
                    "late_psnr": -10 * math.log10(mse) if mse > 0 else math.inf,
                }
            )
    return pd.DataFrame(rows)
