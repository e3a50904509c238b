"""Sweeps: one config describes a grid of experiments; the same call runs it in-process, on
every local GPU or on a Ray cluster, keeps each finished unit across crashes, and merges all
results into one Parquet dataset.

    SWEEP/sweep.json            the plan: config, cells, units
    SWEEP/status.json           the last run's outcome per unit (errors, attempts, weights)
    SWEEP/units/<unit_id>/      one standard run directory per unit (pipeline/store.py)
    SWEEP/merged/               metrics dataset, chains, cells, manifests (see .merge)
"""

from __future__ import annotations

from .executors import Executor, LocalExecutor, ProcessesExecutor, RayExecutor, make_executor
from .grid import (
    Cell,
    SweepConfig,
    SweepOptions,
    SweepPlan,
    Unit,
    expand_cells,
    load_sweep,
    make_sweep_plan,
    parse_sweep,
)
from .merge import cell_table, merge_sweep, read_merged
from .probe import Estimate, estimate_work, probe
from .progress import JsonSweepProgress, RichSweepProgress, SweepTracker
from .runner import SweepResult, plan_sweep, prefetch_weights, run_sweep
from .worker import run_unit

__all__ = [
    "Cell",
    "Estimate",
    "Executor",
    "JsonSweepProgress",
    "LocalExecutor",
    "ProcessesExecutor",
    "RayExecutor",
    "RichSweepProgress",
    "SweepConfig",
    "SweepOptions",
    "SweepPlan",
    "SweepResult",
    "SweepTracker",
    "Unit",
    "cell_table",
    "estimate_work",
    "expand_cells",
    "load_sweep",
    "make_executor",
    "make_sweep_plan",
    "merge_sweep",
    "parse_sweep",
    "plan_sweep",
    "prefetch_weights",
    "probe",
    "read_merged",
    "run_sweep",
    "run_unit",
]
