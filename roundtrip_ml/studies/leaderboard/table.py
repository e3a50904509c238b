"""From per_photo.csv to the ranked table: criteria per chain, then paired statistics.

Everything here reads the tidy per-photo table only (pandas + analysis/paired.py), so every
number in leaderboard.csv can be recomputed from per_photo.csv by anyone
(tests/test_leaderboard.py does it with pandas and scipy alone).

A *condition* is one (scale, codec): rankings never mix them, since an x4 roundtrip discards
4x more pixels than an x2 one. Within a condition each model is paired by photo with the
reference baseline (the protocol's first baseline, Lanczos-3) and with every other model.
An upscale path's entries (``lanczos3 [2x2]``, ``path`` 2x2) rank in the condition of their
total scale, paired with the one-step reference there.

How each chain ends (``ends``: fixed_point, cycle, converging, wandering; analysis/attractors.py
decides, from the ``step_psnr`` rows and the last generation's ``period``) is counted per entry
(``ends_<type>`` columns; ``ends_untyped``: too few generations to tell). A board written
before these rows existed has no such columns until its rows are read back from its runs
(board.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...analysis.attractors import ATTRACTOR_KINDS, chain_end
from ...analysis.divergence import divergence_rate
from ...analysis.paired import (
    MIN_N,
    bootstrap_ci,
    holm,
    km_median,
    letter_groups,
    paired_t,
    wins_ties_losses,
)
from ...core.errors import ConfigError, MeasurementError
from .protocol import Protocol

__all__ = ["ALPHA", "CRITERIA", "ENDS", "Criterion", "chain_values", "rank"]

ALPHA = 0.05  # family-wise error rate of the between-model tests (Holm) per condition
PER_PHOTO_COLUMNS = [
    "upscaler",
    "path",
    "scale",
    "codec",
    "photo",
    "metric",
    "generation",
    "value",
]
ATTRACTOR_ROWS = ("step_psnr", "period")  # what `ends` is decided from (board.py writes them)
ENDS = (*ATTRACTOR_KINDS, "untyped")  # the ends_<type> count columns, in this order
REPLICA_PSNR_CAP = 100.0  # dB: replicas that became identical (PSNR +inf) count as this


@dataclass(frozen=True)
class Criterion:
    """One ranking column: what is measured per chain, which way is better, what ties."""

    name: str
    label: str
    unit: str
    higher_is_better: bool
    tie: float  # |paired difference| up to this counts as a tie


CRITERIA = {
    c.name: c
    for c in (
        Criterion("psnr", "PSNR to the original, last generation", "dB", True, 0.05),
        Criterion("ssim", "SSIM to the original, last generation", "", True, 0.001),
        Criterion(
            "ssimulacra2",
            "SSIMULACRA 2 to the original, last generation (100: identical)",
            "",
            True,
            0.5,
        ),
        Criterion(
            "colour",
            "mean CIEDE2000 to the original, last generation (colour shift)",
            "dE00",
            False,
            0.05,
        ),
        Criterion(
            "divergence",
            "PSNR between the chain and its 1-LSB-perturbed replica, last "
            f"generation (identical: {REPLICA_PSNR_CAP:g} dB)",
            "dB",
            True,
            0.05,
        ),
        Criterion(
            "lyapunov",
            "largest Lyapunov exponent: per generation, the slope of ln(RMS distance) between "
            "the chain and its perturbed replica over their growth phase (all generations when "
            "they never grow apart; lower: more stable)",
            "1/gen",
            False,
            0.005,
        ),
        Criterion(
            "collapse",
            "generations until PSNR falls collapse_drop_db below generation 1's "
            "(censored at the last generation: restricted mean; Kaplan-Meier median shown)",
            "gen",
            True,
            0.0,
        ),
    )
}
_METRIC_OF = {
    "psnr": "psnr",
    "ssim": "ssim",
    "ssimulacra2": "ssimulacra2",
    "colour": "de2000_mean",
    "divergence": "replica_psnr",
}


def _ends(per_photo: pd.DataFrame, keys: list[str], last: pd.DataFrame) -> pd.Series:
    """Per chain: its attractor type (``ENDS``; NaN where its rows are missing)."""
    step = per_photo[per_photo["metric"] == "step_psnr"].pivot_table(
        index=keys, columns="generation", values="value", aggfunc="first"
    )
    period = last[last["metric"] == "period"].set_index(keys)["value"]
    gens = np.asarray(step.columns, dtype=float)
    out = {}
    for key, row in step.iterrows():
        if key in period.index:
            ok = row.notna().to_numpy()
            kind = chain_end(gens[ok], row.to_numpy(dtype=float)[ok], int(period[key]))
            out[key] = kind or "untyped"
    return pd.Series(out, dtype=object)


def _lyapunov(gens: np.ndarray, replica_psnr: np.ndarray) -> float:
    """lambda of one chain: ``divergence_rate`` of its replica MSE (10^(-PSNR/10), data range
    1), the growth-phase fit ``summarize`` uses, in Lyapunov units; so a plateau after the
    replicas saturate does not dilute it. Without a growth phase (replicas that never drift
    apart) the OLS slope of ln RMS distance (-ln(10)/20 * PSNR) over every generation."""
    lam = divergence_rate(gens, 10 ** (-replica_psnr / 10)).lyapunov[0]
    if not math.isnan(lam):
        return lam
    ln_d = -np.log(10) / 20 * replica_psnr
    g = gens - gens.mean()
    return float((ln_d - ln_d.mean()) @ g / float(g @ g))


def chain_values(per_photo: pd.DataFrame, p: Protocol) -> pd.DataFrame:
    """One row per chain (upscaler, scale, codec, photo): every criterion's value, plus
    ``collapse_censored`` (the chain never crossed the collapse threshold) and ``ends`` (how
    it ends: ``ENDS``, NaN where the board lacks its rows)."""
    keys = ["upscaler", "scale", "codec", "photo"]
    last = per_photo[per_photo["generation"] == p.generations]
    wide = last.pivot_table(index=keys, columns="metric", values="value", aggfunc="first")
    out = pd.DataFrame(index=wide.index)
    for crit, metric in _METRIC_OF.items():
        if metric in wide:
            v = wide[metric].astype(float)
            out[crit] = v.clip(upper=REPLICA_PSNR_CAP) if crit == "divergence" else v
    rep = per_photo[per_photo["metric"] == "replica_psnr"].pivot_table(
        index=keys, columns="generation", values="value", aggfunc="first"
    )
    if rep.shape[1] >= 2:
        gens = np.asarray(rep.columns, dtype=float)
        psnr_rep = rep.clip(upper=REPLICA_PSNR_CAP).to_numpy(dtype=float)
        lam = [_lyapunov(gens, row) for row in psnr_rep]
        out["lyapunov"] = pd.Series(lam, index=rep.index).reindex(out.index)
    psnr = per_photo[per_photo["metric"] == "psnr"].pivot_table(
        index=keys, columns="generation", values="value", aggfunc="first"
    )
    below = psnr.lt(psnr[1] - p.collapse_drop_db, axis=0)
    crossed = below.any(axis=1)
    first = below.idxmax(axis=1).where(crossed, p.generations)
    out["collapse"] = first.reindex(out.index).astype(float)
    out["collapse_censored"] = (~crossed).reindex(out.index)
    if set(ATTRACTOR_ROWS) <= set(per_photo["metric"]):
        out["ends"] = _ends(per_photo, keys, last).reindex(out.index)
    return out.reset_index()


def _pairs(cond: pd.DataFrame, crit: str) -> pd.DataFrame:
    """Models as columns, photos as rows (the pairing), for one criterion."""
    return cond.pivot(index="photo", columns="upscaler", values=crit)


def _group_letters(wide: pd.DataFrame, order: list[str], n: int) -> dict[str, str]:
    if n < MIN_N or len(order) < 2:
        return dict.fromkeys(order, "")
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1 :]]
    pvals = [paired_t(wide[a] - wide[b]).p for a, b in pairs]
    adj = holm(pvals)
    return {
        str(k): v
        for k, v in letter_groups(
            order, [pr for pr, q in zip(pairs, adj, strict=True) if q <= ALPHA]
        ).items()
    }


def rank(
    per_photo: pd.DataFrame,
    p: Protocol,
    rank_by: str = "psnr",
    ci: str = "t",
    resamples: int = 10_000,
) -> pd.DataFrame:
    """The ranked table: one row per (scale, codec, upscaler). ``ci`` is "t" (Student) or
    "bootstrap" (percentile, seeded with the protocol's seed)."""
    if rank_by not in CRITERIA:
        raise ConfigError(
            f"--rank-by {rank_by}", "is not a criterion", f"use one of: {', '.join(CRITERIA)}"
        )
    if ci not in ("t", "bootstrap"):
        raise ConfigError(f"--ci {ci}", "is not a CI method", "use t or bootstrap")
    chains = chain_values(per_photo, p)
    crits = [c for c in CRITERIA if c in chains]
    if rank_by not in crits:
        raise ConfigError(
            f"--rank-by {rank_by}",
            "was not measured under this protocol",
            f"use one of: {', '.join(crits)}",
        )
    bad = chains[~np.isfinite(chains[crits].to_numpy(dtype=float)).all(axis=1)]
    if len(bad):
        r = bad.iloc[0]
        raise MeasurementError(
            f"{r['upscaler']} x{r['scale']} {r['codec']} {r['photo']}",
            "has a NaN or missing measurement",
            "rerun that model",
        )
    c = CRITERIA[rank_by]
    sign = 1.0 if c.higher_is_better else -1.0
    path_of = (
        per_photo.drop_duplicates("upscaler").set_index("upscaler")["path"]
        if "path" in per_photo
        else pd.Series("", index=per_photo["upscaler"].unique())
    )
    rows: list[dict[str, Any]] = []
    for (scale, codec), cond in chains.groupby(["scale", "codec"], sort=True):
        wides = {k: _pairs(cond, k) for k in crits}
        ref_missing = p.reference not in wides[rank_by]
        if ref_missing:
            raise MeasurementError(
                f"x{scale} {codec}",
                f"has no {p.reference} chains (the reference)",
                "rerun the board",
            )
        wide = wides[rank_by]
        if wide.isna().any().any():
            raise MeasurementError(
                f"x{scale} {codec}", "not every model has every photo", "rerun the board"
            )
        n = len(wide)
        cens = _pairs(cond, "collapse_censored")
        part = []
        for up in wide.columns:
            d = wide[up] - wide[p.reference]
            st = paired_t(d)
            is_ref = up == p.reference
            lo, hi = (
                bootstrap_ci(d, resamples=resamples, seed=p.seed)
                if ci == "bootstrap"
                else (st.ci_low, st.ci_high)
            )
            w, t, lo_ = wins_ties_losses(d, c.tie, higher_is_better=c.higher_is_better)
            row: dict[str, Any] = {
                "scale": int(scale),
                "codec": codec,
                "upscaler": up,
                "path": path_of[up],
                "n": n,
                "criterion": rank_by,
                "ci_method": ci,
                "model_mean": float(wide[up].mean()),
                "baseline_mean": float(wide[p.reference].mean()),
                "paired_diff": st.mean,
                "ci_low": math.nan if is_ref else lo,
                "ci_high": math.nan if is_ref else hi,
                "sd": st.sd,
                "dz": st.dz,
                "p_baseline": st.p,
                "wins": math.nan if is_ref else w,
                "ties": math.nan if is_ref else t,
                "losses": math.nan if is_ref else lo_,
            }
            for k in crits:
                row[f"{k}_mean"] = float(wides[k][up].mean())
                row[f"{k}_diff"] = float((wides[k][up] - wides[k][p.reference]).mean())
            row["collapse_km_median"] = km_median(wides["collapse"][up], cens[up].astype(bool))
            row["collapse_censored"] = int(cens[up].astype(bool).sum())
            if "ends" in cond:
                ends = cond.loc[cond["upscaler"] == up, "ends"]
                for kind in ENDS:  # NA when some chain's rows are missing: no partial counts
                    row[f"ends_{kind}"] = int((ends == kind).sum()) if ends.notna().all() else None
            part.append(row)
        df = pd.DataFrame(part)
        for k in ("dz", "p_baseline", "sd"):
            df.loc[df["upscaler"] == p.reference, k] = math.nan
        df["p_holm"] = holm(df["p_baseline"].to_numpy())
        df["_key"] = sign * df["paired_diff"]
        df = df.sort_values(["_key", "upscaler"], ascending=[False, True])
        df["rank"] = df["_key"].rank(ascending=False, method="min").astype(int)
        groups = _group_letters(wide, list(df["upscaler"]), n)
        df["group"] = df["upscaler"].map(groups)
        rows += df.drop(columns="_key").to_dict("records")
    cols = [
        "scale",
        "codec",
        "rank",
        "group",
        "upscaler",
        "path",
        "n",
        "criterion",
        "ci_method",
        "model_mean",
        "baseline_mean",
        "paired_diff",
        "ci_low",
        "ci_high",
        "sd",
        "dz",
        "p_baseline",
        "p_holm",
        "wins",
        "ties",
        "losses",
    ]
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=cols)
    for k in ("wins", "ties", "losses", *(f"ends_{e}" for e in ENDS if f"ends_{e}" in out)):
        out[k] = out[k].astype("Int64")
    return out[cols + [k for k in out.columns if k not in cols]].reset_index(drop=True)


def curves(per_photo: pd.DataFrame, p: Protocol, metric: str = "psnr") -> pd.DataFrame:
    """Per generation: each model's paired difference to the reference with its t-interval
    (the small-multiples figure)."""
    keys = ["scale", "codec", "photo", "generation"]
    m = per_photo[per_photo["metric"] == metric]
    ref = m[m["upscaler"] == p.reference].set_index(keys)["value"]
    rows = []
    for (up, scale, codec), g in m.groupby(["upscaler", "scale", "codec"], sort=True):
        d = g.set_index(keys)["value"] - ref.reindex(g.set_index(keys).index)
        for gen, dg in d.groupby(level="generation"):
            st = paired_t(dg.dropna().to_numpy())
            rows.append(
                {
                    "upscaler": up,
                    "scale": int(scale),
                    "codec": codec,
                    "generation": int(gen),
                    "paired_diff": st.mean,
                    "ci_low": st.ci_low,
                    "ci_high": st.ci_high,
                    "n": st.n,
                }
            )
    return pd.DataFrame(rows)
