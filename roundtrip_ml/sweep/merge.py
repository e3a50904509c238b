"""Merge a sweep's unit run directories into one dataset, and say what became of every cell.

Layout of ``SWEEP/merged/`` (replaced atomically as a whole)::

    metrics/upscaler_part=<slug>/codec_part=<slug>/part-0.parquet   hive-partitioned tidy rows
    chains.parquet     every unit's chains, with unit_id
    cells.parquet      one row per grid cell: its axes, unit_id, chain_id, status, error
    manifests.json     unit_id -> that unit's manifest

The partition columns are file-name-safe slugs of the upscaler and codec (a model path or
``jpeg:90`` is not a portable directory name); the exact values stay in the ``upscaler`` and
``codec`` columns, so pandas, polars, DuckDB and Spark all read the same rows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import RunStoreError
from ..core.files import read_json, read_parquet
from ..pipeline.store import METRIC_COLUMNS, RunStore
from .grid import CELL_KEYS, SWEEP_FILE, UNITS_DIR

MERGED_DIR = "merged"
STATUS_FILE = "status.json"  # the runner's last word on each unit (whole-unit errors)
PARTITIONS = ("upscaler_part", "codec_part")
MERGED_COLUMNS = [*METRIC_COLUMNS, "unit_id", "seed", "generations_total"]
DONE = ("complete", "complete_with_failures")


def partition_slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(value)).strip("_") or "_"


def read_plan(root: Path) -> dict[str, Any]:
    path = root / SWEEP_FILE
    if not path.is_file():
        raise RunStoreError(
            str(root),
            f"no {SWEEP_FILE}: not a sweep directory",
            "pass the directory `roundtrip sweep run` wrote",
        )
    return read_json(path)


def cell_table(root: Path, plan: dict[str, Any]) -> pd.DataFrame:
    """Every cell's status from what is on disk: ok, failed (with the error) or pending."""
    status_path = root / STATUS_FILE
    unit_errors = read_json(status_path).get("unit_errors", {}) if status_path.is_file() else {}
    cells = {c["cell_id"]: c for c in plan["cells"]}
    rows: dict[str, dict[str, Any]] = {}
    for src, err in plan["image_errors"].items():
        for c in cells.values():
            if c["image"] == src:
                rows[c["cell_id"]] = {
                    **c,
                    "unit_id": None,
                    "chain_id": None,
                    "status": "failed",
                    "error": err,
                }
    for unit in plan["units"]:
        uid = unit["unit_id"]
        store = RunStore(root / UNITS_DIR / uid)
        manifest = store.read_manifest() if store.exists() else {}
        done = manifest.get("status") in DONE
        chain_of: dict[tuple[Any, ...], str] = {}
        if done:
            ch = store.read_chains()
            for r in ch[ch["replica"] == 0].itertuples():
                chain_of[(r.image, r.downscaler, float(r.scale), r.codec)] = r.chain_id
        failed = manifest.get("failed", {})
        input_errors = manifest.get("input_errors", {})
        for cid in unit["cells"]:
            c = cells[cid]
            chain = chain_of.get((c["image"], c["downscaler"], float(c["scale"]), c["codec"]))
            if not done:
                err = unit_errors.get(uid)
                status = "failed" if err else "pending"
            elif c["image"] in input_errors:
                status, err = "failed", input_errors[c["image"]]
            elif chain is None:
                status, err = "failed", "the unit finished without this cell's chain"
            elif chain in failed:
                status, err = "failed", failed[chain]
            else:
                status, err = "ok", None
            rows[cid] = {**c, "unit_id": uid, "chain_id": chain, "status": status, "error": err}
    order = [c["cell_id"] for c in plan["cells"]]
    cols = ["cell_id", *CELL_KEYS, "unit_id", "chain_id", "status", "error"]
    return pd.DataFrame([rows[c] for c in order], columns=cols)


def merge_sweep(root: str | Path) -> Path:
    """Gather every finished unit into SWEEP/merged/ (see the module doc); returns that path.
    Units that have not finished are left out and show as pending in cells.parquet."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    root = Path(root)
    plan = read_plan(root)
    metrics, chains, manifests = [], [], {}
    for unit in plan["units"]:
        uid = unit["unit_id"]
        store = RunStore(root / UNITS_DIR / uid)
        if not store.exists():
            continue
        manifest = store.read_manifest()
        if manifest.get("status") not in DONE:
            continue
        manifests[uid] = manifest
        m = store.read_metrics()
        m["unit_id"] = uid
        m["seed"] = int(unit["config"]["seed"])
        m["generations_total"] = int(unit["config"]["generations"])
        metrics.append(m[MERGED_COLUMNS])
        c = store.read_chains()
        c.insert(0, "unit_id", uid)
        chains.append(c)
    table = (
        pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame(columns=MERGED_COLUMNS)
    )
    table = table.astype(
        {
            "generation": "int64",
            "value": "float64",
            "scale": "float64",
            "replica": "int64",
            "seed": "int64",
            "generations_total": "int64",
        }
    )
    table = table.sort_values(
        ["upscaler", "codec", "unit_id", "chain_id", "generation", "reference", "metric"],
        kind="stable",
    ).reset_index(drop=True)
    table["upscaler_part"] = table["upscaler"].map(partition_slug)
    table["codec_part"] = table["codec"].map(partition_slug)

    tmp = root / f".merged.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "metrics").mkdir(parents=True)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if len(table):
        ds.write_dataset(
            arrow,
            tmp / "metrics",
            format="parquet",
            partitioning=ds.partitioning(
                pa.schema([(p, pa.string()) for p in PARTITIONS]), flavor="hive"
            ),
            basename_template="part-{i}.parquet",
            use_threads=False,  # keeps the sorted row order inside each file
        )
    else:  # an empty sweep still has a readable schema
        import pyarrow.parquet as pq

        pq.write_table(arrow.drop_columns(list(PARTITIONS)), tmp / "metrics" / "part-0.parquet")
    all_chains = pd.concat(chains, ignore_index=True) if chains else pd.DataFrame()
    all_chains.to_parquet(tmp / "chains.parquet", index=False)
    cell_table(root, plan).to_parquet(tmp / "cells.parquet", index=False)
    (tmp / "manifests.json").write_text(
        json.dumps(manifests, indent=2, sort_keys=True, default=str) + "\n"
    )
    final, old = root / MERGED_DIR, root / f".merged.old-{os.getpid()}"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def read_merged(root: str | Path) -> pd.DataFrame:
    """The merged metrics as one DataFrame (partition columns dropped: they repeat
    ``upscaler`` and ``codec``)."""
    path = Path(root) / MERGED_DIR / "metrics"
    if not path.is_dir():
        raise RunStoreError(str(root), "has no merged results", "run `roundtrip sweep merge DIR`")
    df = read_parquet(path, fix="rebuild it with `roundtrip sweep merge DIR`")
    return df.drop(columns=[c for c in PARTITIONS if c in df.columns])
