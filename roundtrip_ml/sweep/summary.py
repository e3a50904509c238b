"""Collapse statistics of a whole sweep (`roundtrip summarize SWEEP`, `rt.summarize(SWEEP)`).

A sweep's units are ordinary run directories, so each is summarized as a run is
(``analysis.summary.summarize_run``: threshold crossings, events, how each chain ends, start
distances; written to the unit's own summary.parquet) and the rows are stacked with their
``unit_id``. With replicas, the divergence table (rate and largest Lyapunov exponent per
recipe) is pooled over all units, so a recipe whose photos were split over several units
still gets one slope over all of them; chain ids are qualified by unit for that, since two
units (another seed) may hold the same chain id.

Written beside sweep.json: summary.parquet (+ .csv) and, with replicas, divergence.parquet.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analysis.summary import (
    DEFAULT_THRESHOLDS,
    DIVERGENCE_CSV,
    DIVERGENCE_FILE,
    SUMMARY_CSV,
    SUMMARY_FILE,
    divergence_table,
    summarize_run,
    with_recipe_extras,
)
from ..core.errors import RunStoreError
from ..core.files import atomic_write_bytes, atomic_write_parquet
from ..pipeline.store import CHAINS_FILE, RunStore
from .grid import SWEEP_FILE, UNITS_DIR

__all__ = ["is_sweep", "summarize_sweep"]


def is_sweep(path: str | Path) -> bool:
    """A sweep directory (``roundtrip sweep run`` wrote its sweep.json)."""
    return (Path(path).expanduser() / SWEEP_FILE).is_file()


def summarize_sweep(
    root: str | Path, thresholds: str = DEFAULT_THRESHOLDS, csv: bool = False
) -> pd.DataFrame:
    """One row per chain of every finished unit (``unit_id`` added); the pooled divergence
    table, when there are replicas, in ``df.attrs["divergence"]`` (as ``summarize_run``)."""
    root = Path(root).expanduser()
    units = sorted(
        d for d in (root / UNITS_DIR).glob("*") if d.is_dir() and (d / CHAINS_FILE).is_file()
    )
    if not units:
        raise RunStoreError(str(root), "has no finished unit yet", "run the sweep first")
    parts, metrics = [], []
    for d in units:
        unit = summarize_run(d, thresholds, csv=csv).assign(unit_id=d.name)
        unit.attrs = {}  # the unit's own divergence: the sweep's is pooled below
        parts.append(unit)
        store = RunStore(d)
        m = with_recipe_extras(store.read_metrics(), store.read_chains())
        metrics.append(m.assign(chain_id=d.name + "/" + m["chain_id"].astype(str)))
    df = pd.concat(parts, ignore_index=True)
    atomic_write_parquet(root / SUMMARY_FILE, df)
    if csv:
        atomic_write_bytes(root / SUMMARY_CSV, df.to_csv(index=False).encode())
    table = pd.concat(metrics, ignore_index=True)
    if (table["reference"] == "replicas").any():
        div = divergence_table(table)
        atomic_write_parquet(root / DIVERGENCE_FILE, div)
        if csv:
            atomic_write_bytes(root / DIVERGENCE_CSV, div.to_csv(index=False).encode())
        df.attrs["divergence"] = div
    return df
