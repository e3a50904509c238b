"""How fast a chain amplifies tiny differences: divergence rate and predictability horizon.

Input is the tidy metrics table (``store.METRIC_COLUMNS``). For a chain run with replicas, the
engine writes, per generation, the mean pairwise distance between its K perturbed replicas
(reference ``replicas``, scope "group", the base chain's chain_id) and each replica's distance to
the original (reference ``original``). Distances are read as MSE; where only PSNR was recorded,
MSE = 10^(-PSNR/10) (data range 1).

Divergence rate: the OLS slope of ln(mean pairwise MSE) per generation over the window where it
grows, with a t-based 95% confidence interval. ``growth_window`` picks that window. Its end: if
growth saturates (a continuous two-segment fit of ln MSE beats one line by BIC and its second
slope is under half the first), the last generation before the MSE comes within 10x of the
plateau (the median after the break), else the last generation; capped at the curve's maximum.
Its start: the lowest point before the end (the perturbation may shrink before it grows). In dB
of inter-replica PSNR lost per generation the rate is 10/ln(10) = 4.34 times larger.

Largest Lyapunov exponent: the same fit in the standard units of dynamical systems, the
growth rate per generation of the natural log of the *distance* between replicas. The distance
is the RMS pixel difference, sqrt(MSE), so lambda = rate / 2 (CI halved likewise): lambda > 0 is
exponential divergence (chaos), e^lambda the factor by which a small difference grows per
generation, and 1/lambda the generations it takes to grow e-fold. Like the rate it is fitted over
the exponential phase only (``growth_window``), before the replicas saturate, and it is a
finite-size estimate: the perturbations start at one 8-bit level, not infinitesimally small.

Predictability horizon: the first generation >= 1 where the replicas are as far from each other
as from the original (mean pairwise MSE >= mean MSE to the original). Generation 0 is skipped:
there, both distances are the perturbation itself, and two independent perturbations are twice
as far from each other as from the original by construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from ..core.errors import ConfigError

RECIPE_COLUMNS = ("upscaler", "downscaler", "scale", "codec")
DB_PER_NEPER = 10.0 / math.log(10.0)
SATURATION_MARGIN = 10.0  # the growth window stops this factor below the plateau
LYAPUNOV_COLUMNS = ("lyapunov", "lyapunov_ci_low", "lyapunov_ci_high")  # per generation, ln
MIN_POINTS = 3  # an OLS slope with a confidence interval needs at least one residual dof


class DivergenceRate(NamedTuple):
    """Slope of ln(mean pairwise MSE) per generation and its 95% confidence interval."""

    rate: float
    ci_low: float
    ci_high: float

    @property
    def lyapunov(self) -> tuple[float, float, float]:
        """(lambda, CI low, CI high): per generation, natural log of the RMS distance's growth."""
        return self.rate / 2, self.ci_low / 2, self.ci_high / 2


def _clean(
    generations: Sequence[float] | np.ndarray, mse: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted generations and ln(MSE), dropping non-finite and non-positive MSE."""
    g = np.asarray(generations, dtype=float)
    y = np.asarray(mse, dtype=float)
    if g.shape != y.shape or g.ndim != 1:
        raise ConfigError("divergence input", "generations and MSE must be 1-D, same length")
    ok = np.isfinite(g) & np.isfinite(y) & (y > 0)
    order = np.argsort(g[ok], kind="stable")
    return g[ok][order], np.log(y[ok][order])


def _sse_line(x: np.ndarray, y: np.ndarray) -> float:
    coef = np.polyfit(x, y, 1)
    return float(((y - np.polyval(coef, x)) ** 2).sum())


def _saturation_index(g: np.ndarray, y: np.ndarray) -> int | None:
    """Index where growth stops: breakpoint of the best continuous two-segment fit, if it earns
    its two extra parameters (BIC) and growth at least halves after it; None if no saturation."""
    n = len(g)
    if n < 2 * MIN_POINTS:
        return None
    sse1 = max(_sse_line(g, y), 1e-300)
    best_sse, best_k, best_slopes = np.inf, n - 1, (0.0, 0.0)
    for k in range(MIN_POINTS - 1, n - MIN_POINTS + 1):
        hinge = np.maximum(g - g[k], 0.0)
        design = np.column_stack([np.ones(n), g - g[k], hinge])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        sse = float(((y - design @ coef) ** 2).sum())
        if sse < best_sse:
            best_sse, best_k, best_slopes = sse, k, (coef[1], coef[1] + coef[2])
    best_sse = max(best_sse, 1e-300)
    bic1 = n * math.log(sse1 / n) + 2 * math.log(n)
    bic2 = n * math.log(best_sse / n) + 4 * math.log(n)
    if bic2 < bic1 and best_slopes[1] < 0.5 * best_slopes[0]:
        return best_k
    return None


def growth_window(
    generations: Sequence[float] | np.ndarray, mean_pairwise_mse: Sequence[float] | np.ndarray
) -> tuple[int, int] | None:
    """(first, last) generation of the window where ln(MSE) grows; None if under 3 usable points.

    With saturation, the window ends before the MSE comes within SATURATION_MARGIN (10x) of the
    plateau (the median after the breakpoint): a two-segment fit puts its break near the middle
    of the bend, where growth has already halved, and would bias the rate low.
    """
    g, y = _clean(generations, mean_pairwise_mse)
    n = len(g)
    if n < MIN_POINTS:
        return None
    end = n - 1
    brk = _saturation_index(g, y)
    if brk is not None:
        end = brk
        near = np.flatnonzero(y[: brk + 1] > np.median(y[brk:]) - math.log(SATURATION_MARGIN))
        if near.size and near[0] > 0 and near[0] - int(np.argmin(y[: near[0]])) >= MIN_POINTS:
            end = int(near[0]) - 1
    end = int(np.argmax(y[: end + 1]))
    start = int(np.argmin(y[: end + 1]))
    if end - start + 1 < MIN_POINTS:
        return None
    return int(g[start]), int(g[end])


def ols_slope(x: np.ndarray, y: np.ndarray) -> DivergenceRate:
    """OLS slope of y on x with its t-based 95% CI (at least 3 points)."""
    n = len(x)
    xm = x - x.mean()
    sxx = float((xm**2).sum())
    slope = float((xm * (y - y.mean())).sum() / sxx)
    resid = y - y.mean() - slope * xm
    se = math.sqrt(float((resid**2).sum()) / (n - 2) / sxx)
    half = float(stats.t.ppf(0.975, n - 2)) * se
    return DivergenceRate(slope, slope - half, slope + half)


def divergence_rate(
    generations: Sequence[float] | np.ndarray, mean_pairwise_mse: Sequence[float] | np.ndarray
) -> DivergenceRate:
    """Slope of ln(mean pairwise MSE) per generation over ``growth_window``, with a 95% CI.
    All NaN when there are fewer than 3 usable points in the window."""
    window = growth_window(generations, mean_pairwise_mse)
    if window is None:
        return DivergenceRate(math.nan, math.nan, math.nan)
    g, y = _clean(generations, mean_pairwise_mse)
    sel = (g >= window[0]) & (g <= window[1])
    return ols_slope(g[sel], y[sel])


def predictability_horizon(
    generations: Sequence[float] | np.ndarray,
    mean_pairwise_mse: Sequence[float] | np.ndarray,
    mse_to_original: Sequence[float] | np.ndarray,
) -> int | None:
    """First generation >= 1 where mean pairwise MSE >= mean MSE to the original; None if the
    run never gets there."""
    g = np.asarray(generations, dtype=float)
    pair = np.asarray(mean_pairwise_mse, dtype=float)
    orig = np.asarray(mse_to_original, dtype=float)
    if not (g.shape == pair.shape == orig.shape):
        raise ConfigError("divergence input", "generations and both MSE series must match")
    order = np.argsort(g, kind="stable")
    for gi, p, o in zip(g[order], pair[order], orig[order], strict=True):
        if gi >= 1 and np.isfinite(p) and np.isfinite(o) and p >= o:
            return int(gi)
    return None


def _mse_rows(metrics: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Rows of one reference as MSE: ``mse`` rows, plus ``psnr`` rows converted where a
    (chain, replica, generation) has no ``mse`` row."""
    rows = metrics[metrics["reference"] == reference]
    mse = rows[rows["metric"] == "mse"]
    psnr = rows[rows["metric"] == "psnr"]
    if len(psnr):
        have = pd.MultiIndex.from_frame(mse[["chain_id", "replica", "generation"]])
        missing = ~pd.MultiIndex.from_frame(psnr[["chain_id", "replica", "generation"]]).isin(have)
        extra = psnr[missing]
        mse = pd.concat([mse, extra.assign(value=10.0 ** (-extra["value"] / 10.0))])
    return mse


def _chain_table(metrics: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """One row per replica group and generation: recipe columns, image, mean pairwise MSE
    (the group's ``replicas`` rows) and mean MSE to the original over all its members.

    Members are matched to their group by run, image and recipe (a run has one chain per image
    and recipe, plus its replicas), not by parsing chain ids.
    """
    keys = [c for c in ("run_id", "image", "image_name", *by) if c in metrics.columns]
    pair = _mse_rows(metrics, "replicas")
    groups = pair.drop_duplicates("chain_id")[["chain_id", *keys]]
    pair = pair.groupby(["chain_id", "generation"], as_index=False)["value"].mean()
    orig = _mse_rows(metrics, "original")
    orig = orig.groupby([*keys, "generation"], as_index=False, dropna=False)["value"].mean()
    table = pair.rename(columns={"value": "pairwise_mse"}).merge(groups, on="chain_id")
    table = table.merge(
        orig.rename(columns={"value": "original_mse"}), on=[*keys, "generation"], how="left"
    )
    return table.sort_values(["chain_id", "generation"]).reset_index(drop=True)


def _pooled_rate(chains: list[tuple[np.ndarray, np.ndarray]]) -> tuple[DivergenceRate, int]:
    """One slope shared by several chains, each with its own intercept (within-chain OLS);
    with a single chain this is that chain's OLS slope and CI."""
    chains = [(x, y) for x, y in chains if len(x) >= 2]
    n = sum(len(x) for x, _ in chains)
    dof = n - len(chains) - 1
    if not chains or dof < 1:
        return DivergenceRate(math.nan, math.nan, math.nan), n
    sxy = sum(float(((x - x.mean()) * (y - y.mean())).sum()) for x, y in chains)
    sxx = sum(float(((x - x.mean()) ** 2).sum()) for x, _ in chains)
    slope = sxy / sxx
    sse = sum(float(((y - y.mean() - slope * (x - x.mean())) ** 2).sum()) for x, y in chains)
    half = float(stats.t.ppf(0.975, dof)) * math.sqrt(sse / dof / sxx)
    return DivergenceRate(slope, slope - half, slope + half), n


def summarize_divergence(
    metrics: pd.DataFrame, *, per: str = "recipe", by: Sequence[str] = RECIPE_COLUMNS
) -> pd.DataFrame:
    """Divergence rate (per generation, ln MSE and dB), the largest Lyapunov exponent (ln RMS
    distance per generation), their CIs and the predictability horizon,
    one row per recipe (``by`` columns; chains of several images share one slope, each with its
    own intercept) or per chain (``per="chain"``). Empty when the run has no replica rows."""
    if per not in ("recipe", "chain"):
        raise ConfigError("per", f"unknown value {per!r}", "use 'recipe' or 'chain'")
    missing = {"chain_id", "generation", "metric", "reference", "value", "image", *by} - set(
        metrics.columns
    )
    if missing:
        raise ConfigError("metrics table", f"missing columns {sorted(missing)}")
    table = _chain_table(metrics, list(by))
    keys = ["chain_id"] if per == "chain" else list(by)
    out = []
    for key, grp in table.groupby(keys, sort=True, dropna=False):
        series = []
        for _, c in grp.groupby("chain_id", sort=True):
            g, y = c["generation"].to_numpy(float), c["pairwise_mse"].to_numpy(float)
            window = growth_window(g, y)
            if window is not None:
                gc, yc = _clean(g, y)
                sel = (gc >= window[0]) & (gc <= window[1])
                series.append((gc[sel], yc[sel]))
        rate, n_points = _pooled_rate(series)
        mean = grp.groupby("generation", as_index=False)[["pairwise_mse", "original_mse"]].mean()
        horizon = predictability_horizon(
            mean["generation"], mean["pairwise_mse"], mean["original_mse"]
        )
        last = mean.iloc[-1]
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        if per == "chain":
            row.update({c: grp[c].iloc[0] for c in ["image", *by] if c in grp})
            if "image_name" in grp:
                row["image_name"] = grp["image_name"].iloc[0]
        else:
            name = "image_name" if "image_name" in grp else "image"
            row.update(
                {
                    "images": ", ".join(sorted(map(str, grp[name].unique()))),
                    "n_chains": grp["chain_id"].nunique(),
                }
            )
        row.update(
            {
                "rate": rate.rate,
                "ci_low": rate.ci_low,
                "ci_high": rate.ci_high,
                "rate_db_per_gen": rate.rate * DB_PER_NEPER,
                **dict(zip(LYAPUNOV_COLUMNS, rate.lyapunov, strict=True)),
                "n_points": n_points,
                "horizon": horizon if horizon is not None else pd.NA,
                "generations": int(last["generation"]),
                "final_pairwise_psnr": -10.0 * math.log10(last["pairwise_mse"])
                if last["pairwise_mse"] > 0
                else math.inf,
            }
        )
        out.append(row)
    df = pd.DataFrame(out)
    if len(df):
        df["horizon"] = df["horizon"].astype("Int64")
    return df
