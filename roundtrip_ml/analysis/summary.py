"""Collapse statistics per chain, from a run directory alone (`roundtrip summarize RUN`).

Per chain, against the original:

- ``first_<metric><op><value>``: first generation whose value crosses a threshold (NA: never);
- ``final_<key>``: the value at the last recorded generation;
- ``auc_<key>``: area under the drift curve over generations (trapezoid; generation 0 drift 0),
  where drift is the distance from the perfect value (``KeyInfo.drift``; for PSNR the MSE);
- ``half_life_<key>``: first generation whose drift reaches half the final drift;
- ``step_psnr``: PSNR to the previous generation at the last one (+inf once bit-identical);
- ``event``/``event_generation``/``period``/``cycle_start``: fixed point or cycle (events.py);
  for a codec schedule, only repeats a whole schedule period apart count;
- ``fixed_point_generation``: the first generation whose image never changes again (a
  re-compression chain's fixed point; NA for cycles and chains still changing);
- ``attractor`` (fixed_point | cycle | converging | wandering) and ``step_trend`` with its CI:
  how the chain ends (``analysis.attractors``);
- ``late_psnr_to_image``: for a chain started from noise or flat grey, the PSNR between its late
  frames and those of the same recipe started from the photo (``starts``; all pairs of starts
  go to RUN/starts.parquet).

Recipe parts beyond upscaler/downscaler/scale/codec (stabilizer, up/downscale steps, start)
come from chains.parquet and join the identity columns.

A run with replicas also gets its divergence table (``analysis.divergence``: rate and largest
Lyapunov exponent with CIs, and the predictability horizon, per recipe) in
RUN/divergence.parquet, printed after the summary.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import ConfigError, RunStoreError
from ..core.files import atomic_write_bytes, atomic_write_parquet
from ..metrics.registry import key_info
from ..pipeline.store import CHAINS_FILE, RunStore
from .attractors import START_RECIPE, attractor_table, start_distances
from .columns import SUMMARY_HEADERS
from .divergence import RECIPE_COLUMNS, summarize_divergence
from .events import EVENT_COLUMNS, chain_events

SUMMARY_FILE = "summary.parquet"
SUMMARY_CSV = "summary.csv"
DIVERGENCE_FILE = "divergence.parquet"
DIVERGENCE_CSV = "divergence.csv"
STARTS_FILE = "starts.parquet"
STARTS_CSV = "starts.csv"
RECIPE_EXTRAS = ["stabilizer", "up_steps", "downscale_steps", "start"]  # from chains.parquet
DEFAULT_THRESHOLDS = "psnr<20,ssim<0.5,lpips>0.4"
IDENTITY = [
    "chain_id",
    "image",
    "image_name",
    "upscaler",
    "downscaler",
    "scale",
    "codec",
    *RECIPE_EXTRAS,
    "replica",
]

_OPS: dict[str, Callable[[Any, float], Any]] = {  # elementwise on arrays
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float

    @property
    def name(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    def crossed(self, v: np.ndarray) -> np.ndarray:
        return _OPS[self.op](v, self.value)


def parse_thresholds(text: str) -> list[Threshold]:
    """``"psnr<20,ssim<0.5,lpips>0.4"`` -> thresholds (metric names as stored)."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        m = re.fullmatch(r"(.+?)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)", item)
        try:
            value = float(m.group(3)) if m else math.nan
        except ValueError:
            value = math.nan
        if m is None or math.isnan(value):
            raise ConfigError(
                f"threshold {item!r}", "cannot parse", "write METRIC<VALUE or METRIC>VALUE: psnr<20"
            )
        out.append(Threshold(m.group(1), m.group(2), value))
    return out


def _drift_stats(gens: np.ndarray, values: np.ndarray, key: str) -> dict[str, float]:
    info = key_info(key)
    out = {f"final_{key}": float(values[-1])}
    if info is None:
        return out
    drift = np.array([info.drift(v) for v in values], dtype=np.float64)
    if gens[0] != 0:
        gens, drift = np.concatenate([[0], gens]), np.concatenate([[0.0], drift])
    ok = np.isfinite(drift)
    g, d = gens[ok].astype(np.float64), drift[ok]
    out[f"auc_{key}"] = float(np.sum((d[1:] + d[:-1]) / 2 * np.diff(g))) if len(g) > 1 else 0.0
    final = d[-1] if len(d) else math.nan
    half = math.nan
    if final > 0:
        half = float(g[np.argmax(d >= final / 2)])
    out[f"half_life_{key}"] = half
    return out


def summarize(
    metrics: pd.DataFrame, fingerprints: pd.DataFrame, thresholds: list[Threshold]
) -> pd.DataFrame:
    """One row per chain: identity, generations, threshold crossings, drift stats, events."""
    if metrics.empty:
        raise RunStoreError("metrics", "no metric rows yet", "run the experiment first")
    rows = []
    orig = metrics[metrics["reference"] == "original"]
    measured = set(orig["metric"])  # a threshold on an unmeasured metric would be a "-" column
    thresholds = [t for t in thresholds if t.metric in measured]
    for chain_id, chain in metrics.groupby("chain_id", sort=True):
        own = chain[chain["scope"] == "chain"] if "scope" in chain else chain
        own = own if len(own) else chain  # "group" rows are a replica group's, not a member's
        row: dict[str, object] = {c: own[c].iloc[0] for c in IDENTITY if c in own}
        row["generations"] = int(chain["generation"].max())
        mine = orig[orig["chain_id"] == chain_id]
        by_key = {k: g.sort_values("generation") for k, g in mine.groupby("metric", sort=True)}
        for t in thresholds:
            g = by_key.get(t.metric)
            hit = [] if g is None else g["generation"].to_numpy()[t.crossed(g["value"].to_numpy())]
            row[f"first_{t.name}"] = int(hit[0]) if len(hit) else pd.NA
        for key, g in by_key.items():
            row.update(_drift_stats(g["generation"].to_numpy(), g["value"].to_numpy(), key))
        step = chain[(chain["reference"] == "previous") & (chain["metric"] == "psnr")]
        if len(step):
            row["step_psnr"] = float(step.sort_values("generation")["value"].iloc[-1])
        rows.append(row)
    df = pd.DataFrame(rows)
    for t in thresholds:
        df[f"first_{t.name}"] = df[f"first_{t.name}"].astype("Int64")
    events = pd.DataFrame(columns=EVENT_COLUMNS)
    if len(fingerprints):
        codecs = metrics.groupby("chain_id")["codec"].first() if "codec" in metrics else {}
        events = chain_events(fingerprints, dict(codecs))
    df = df.merge(events, on="chain_id", how="left")
    df = df.astype({"event_generation": "Int64", "period": "Int64", "cycle_start": "Int64"})
    df["fixed_point_generation"] = df["cycle_start"].where(df["event"] == "fixed_point")
    return df.merge(attractor_table(metrics, events), on="chain_id", how="left")


def with_recipe_extras(metrics: pd.DataFrame, chains: pd.DataFrame) -> pd.DataFrame:
    """The metrics table with the chains' recipe parts (stabilizer, steps, start) joined on
    chain_id: runs made before these existed have none, and are returned unchanged."""
    extras = [c for c in RECIPE_EXTRAS if c in chains and c not in metrics]
    if not extras or metrics.empty:
        return metrics
    return metrics.merge(
        chains[["chain_id", *extras]].drop_duplicates("chain_id"), on="chain_id", how="left"
    )


def divergence_table(metrics: pd.DataFrame, chains: pd.DataFrame | None = None) -> pd.DataFrame:
    """``summarize_divergence`` per recipe, where a recipe includes its stabiliser, paths and
    start (joined from ``chains`` when the metrics lack them), so they are never pooled."""
    if chains is not None:
        metrics = with_recipe_extras(metrics, chains)
    by = [*RECIPE_COLUMNS, *(c for c in RECIPE_EXTRAS if c in metrics)]
    return summarize_divergence(metrics, by=by)


def _late_psnr_to_image(df: pd.DataFrame, starts: pd.DataFrame) -> pd.DataFrame:
    """Each noise/flat chain's ``late_psnr`` to the photo-started chain of its recipe."""
    pairs = starts[(starts["start_a"] == "image") | (starts["start_b"] == "image")]
    other = pairs["start_b"].where(pairs["start_a"] == "image", pairs["start_a"])
    keys = [c for c in ["image_name", *START_RECIPE] if c in pairs and c in df]
    late = pairs[keys].assign(start=other.to_numpy(), late_psnr_to_image=pairs["late_psnr"])
    out = df.merge(late, on=[*keys, "start"], how="left")
    if "replica" in out:  # the distance is between unperturbed chains: not a replica's own
        out["late_psnr_to_image"] = out["late_psnr_to_image"].where(out["replica"] <= 0)
    return out


def summarize_run(
    run: str | Path, thresholds: str = DEFAULT_THRESHOLDS, csv: bool = False
) -> pd.DataFrame:
    """Summarize a run directory; writes RUN/summary.parquet (and RUN/summary.csv on request).

    With replica rows it also writes RUN/divergence.parquet (and .csv), and hands that table
    to ``render_summary`` as ``df.attrs["divergence"]``.
    """
    store = RunStore(run)
    if not store.root.is_dir():
        raise RunStoreError(str(store.root), "no such run directory", "pass the --output of a run")
    has_chains = (store.root / CHAINS_FILE).is_file()  # tables written by hand may lack it
    chains = store.read_chains() if has_chains else pd.DataFrame(columns=["chain_id"])
    metrics = with_recipe_extras(store.read_metrics(), chains)
    df = summarize(metrics, store.read_fingerprints(), parse_thresholds(thresholds))
    starts = start_distances(store.root, chains)
    if len(starts):
        df = _late_psnr_to_image(df, starts)
        atomic_write_parquet(store.root / STARTS_FILE, starts)
        if csv:
            atomic_write_bytes(store.root / STARTS_CSV, starts.to_csv(index=False).encode())
    atomic_write_parquet(store.root / SUMMARY_FILE, df)
    if csv:
        atomic_write_bytes(store.root / SUMMARY_CSV, df.to_csv(index=False).encode())
    if (metrics["reference"] == "replicas").any():
        div = divergence_table(metrics)
        atomic_write_parquet(store.root / DIVERGENCE_FILE, div)
        if csv:
            atomic_write_bytes(store.root / DIVERGENCE_CSV, div.to_csv(index=False).encode())
        df.attrs["divergence"] = div
    return df


def _fmt(v: object) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.3g}" if abs(v) < 10 else f"{v:.2f}"
    return str(v)


def render_divergence(div: pd.DataFrame):  # -> rich Table
    """Divergence rate (ln MSE and dB of inter-replica PSNR per generation), its 95% CI and the
    predictability horizon, one row per recipe."""
    from rich.table import Table

    table = Table(
        title="divergence of replicas (rate: d ln(pairwise MSE) / generation; "
        "horizon: first generation as far apart as from the original; '-': never)"
    )
    for head in (
        "recipe",
        "images",
        "rate",
        "95% CI",
        "dB/gen",
        "λ /gen",
        "λ 95% CI",
        "points",
        "horizon",
        "gens",
        "final pair dB",
    ):
        table.add_column(head, overflow="fold")
    for _, r in div.iterrows():
        recipe = f"{r['upscaler']} / {r['downscaler']} x{_fmt(float(r['scale']))} {r['codec']}"
        recipe += "".join(
            f" {r[c]}" for c in RECIPE_EXTRAS if c in r and str(r[c]) not in ("", "none", "image")
        )
        ci = "-" if pd.isna(r["ci_low"]) else f"[{r['ci_low']:.3g}, {r['ci_high']:.3g}]"
        lci = (
            "-"
            if pd.isna(r["lyapunov_ci_low"])
            else f"[{r['lyapunov_ci_low']:.3g}, {r['lyapunov_ci_high']:.3g}]"
        )
        table.add_row(
            recipe,
            str(r["images"]),
            _fmt(r["rate"]),
            ci,
            _fmt(r["rate_db_per_gen"]),
            _fmt(r["lyapunov"]),
            lci,
            _fmt(r["n_points"]),
            _fmt(r["horizon"]),
            _fmt(r["generations"]),
            _fmt(r["final_pairwise_psnr"]),
        )
    return table


def render_summary(df: pd.DataFrame, thresholds: str = DEFAULT_THRESHOLDS):  # -> rich renderable
    """The headline columns as a rich table (the parquet file has them all), followed by the
    divergence table when ``summarize_run`` found replicas."""
    from rich.console import Group
    from rich.table import Table

    fmt = _fmt

    # chain_id already reads image.upscaler.downscaler.xscale.codec; the parquet has the rest
    headers = dict(SUMMARY_HEADERS)  # each defined in analysis/columns.py (summarize --help)
    headers.update({f"first_{t.name}": t.name for t in parse_thresholds(thresholds)})
    cols = [c for c in headers if c in df]
    copies = int((df["replica"] > 0).sum()) if "replica" in df else 0
    shown = df[df["replica"] <= 0] if copies else df  # perturbed copies: see the divergence table
    note = f"; {copies} perturbed replicas in the parquet file" if copies else ""
    table = Table(
        title=f"collapse summary ({len(shown)} chains, vs original; '-': never/none{note})",
        caption="columns: roundtrip summarize --help",
    )
    for c in cols:
        table.add_column(headers[c], overflow="fold")
    table.add_column("event", overflow="fold")
    for _, r in shown.iterrows():
        ev = "-"
        if not pd.isna(r.get("event")):
            ev = f"{r['event']} @{r['event_generation']}"
            ev += f" p={r['period']}" if r["period"] > 1 else ""
        table.add_row(*[fmt(r[c]) for c in cols], ev)
    div = df.attrs.get("divergence")
    if isinstance(div, pd.DataFrame) and len(div):
        return Group(table, render_divergence(div))
    return table
