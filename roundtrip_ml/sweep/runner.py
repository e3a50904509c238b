"""Run a sweep: plan, fetch weights once, skip finished units, schedule the rest on an executor
with bounded retries, record what happened, merge."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import RoundtripError
from ..core.files import atomic_write_json
from ..pipeline.store import RunStore
from .executors import Executor, LocalExecutor, Outcome, make_executor
from .grid import SWEEP_FILE, UNITS_DIR, SweepConfig, SweepPlan, Unit, load_sweep, make_sweep_plan
from .merge import STATUS_FILE, cell_table, merge_sweep
from .progress import SweepTracker


@dataclass
class SweepResult:
    root: Path
    cells: pd.DataFrame  # one row per cell: axes, unit_id, chain_id, status, error
    outcomes: dict[str, Outcome]  # unit_id -> its last outcome ("skipped" when already done)
    attempts: dict[str, int] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)  # model -> where its weights are
    work_run: int = 0  # chain-generations computed by this call
    wall_s: float = 0.0
    merged: Path | None = None

    @property
    def failed(self) -> dict[str, str]:
        bad = self.cells[self.cells["status"] != "ok"]
        return dict(zip(bad["cell_id"], bad["error"].fillna(bad["status"]), strict=True))


def prefetch_weights(upscalers: list[str]) -> dict[str, str]:
    """Make every registry model's weights local before any worker starts (workers then run
    offline, so nothing is downloaded once per worker). Returns model -> source or error; a
    model that cannot be had fails its own cells later, not the sweep."""
    from ..upscalers import is_classical

    out: dict[str, str] = {}
    for spec in dict.fromkeys(upscalers):
        if is_classical(spec):
            continue
        if spec.startswith("ncnn:") or "/" in spec or "\\" in spec or Path(spec).suffix:
            out[spec] = (
                f"file {spec}"
                if Path(spec.removeprefix("ncnn:")).exists()
                else f"error: {spec} does not exist"
            )
            continue
        try:
            from ..upscalers import zoo

            entry = zoo.get_entry(spec)
            if zoo.is_cached(entry):
                out[spec] = f"cache {zoo.cached_path(entry)}"
            elif (found := zoo.find_offline(entry)) is not None:
                out[spec] = f"offline {found.source.package} {found.bin}"
            else:
                out[spec] = f"downloaded {zoo.fetch(entry)}"
        except RoundtripError as e:
            out[spec] = f"error: {e}"
    return out


def _work_before(root: Path, unit: Unit) -> int:
    """Chain-generations of this unit already on disk (the engine will not redo them)."""
    store = RunStore(root / UNITS_DIR / unit.unit_id)
    if not store.exists():
        return 0
    m = store.read_manifest()
    if m.get("status") == "complete":
        return unit.work
    return sum(
        len(b["chains"]) * b.get("generations_done", 0)
        for b in m["batches"].values()
        if b.get("status") != "failed"
    )


def _counts(cells: pd.DataFrame) -> tuple[int, int]:
    return int((cells["status"] == "ok").sum()), int((cells["status"] == "failed").sum())


def run_sweep(
    config: SweepConfig | str | Path,
    *,
    executor: str | Executor = "local",
    address: str | None = None,
    progress: SweepTracker | None = None,
    retries: int | None = None,
    merge: bool = True,
) -> SweepResult:
    """Run every unfinished unit of the sweep and merge; safe to call again after a crash."""
    t0 = time.perf_counter()
    cfg = config if isinstance(config, SweepConfig) else load_sweep(config)
    plan = make_sweep_plan(cfg)
    root = cfg.root
    root.mkdir(parents=True, exist_ok=True)
    plan_json = plan.to_json()
    atomic_write_json(root / SWEEP_FILE, plan_json)
    tracker = progress or SweepTracker()
    retries = cfg.options.retries if retries is None else retries
    weights = prefetch_weights([u.upscaler for u in plan.units])

    before = {u.unit_id: _work_before(root, u) for u in plan.units}
    done = [u for u in plan.units if RunStore(root / UNITS_DIR / u.unit_id).is_complete()]
    done_ids = {u.unit_id for u in done}
    todo = deque(u for u in plan.units if u.unit_id not in done_ids)
    outcomes: dict[str, Outcome] = {u.unit_id: {"status": "skipped", "work": 0} for u in done}
    cells_now = cell_table(root, plan_json)
    finished = cells_now[cells_now["unit_id"].isin(done_ids) | cells_now["unit_id"].isna()]
    ok0, failed0 = _counts(finished)

    device = str(cfg.engine.get("device", "auto"))
    if isinstance(executor, str):

        def on_work(uid: str, n: int) -> None:
            tracker.event("work", unit_id=uid, n=n)

        ex = make_executor(
            executor, device=device, address=address, threads=cfg.options.threads, on_work=on_work
        )
    else:
        ex = executor
    tracker.event(
        "sweep_start",
        cells=len(plan.cells),
        units=len(plan.units),
        units_skipped=len(done),
        work=plan.work,
        work_before=sum(before.values()),
        cells_ok_before=ok0,
        cells_failed_before=failed0,
        executor=ex.name,
        root=str(root),
    )
    attempts: dict[str, int] = {}
    unit_errors: dict[str, str] = {}
    running: dict[str, Unit] = {}
    polled: dict[str, int] = {}
    work_run = 0
    try:
        ex.start(list(todo))
        while todo or running:
            while todo and len(running) < ex.capacity:
                u = todo.popleft()
                attempts[u.unit_id] = attempts.get(u.unit_id, 0) + 1
                ex.submit(u)
                running[u.unit_id] = u
                polled[u.unit_id] = 0
                tracker.event(
                    "unit_start",
                    unit_id=u.unit_id,
                    upscaler=u.upscaler,
                    cells=len(u.cells),
                    attempt=attempts[u.unit_id],
                )
            results = ex.wait(1.0)
            if not isinstance(ex, LocalExecutor):  # other executors: progress from manifests
                for uid, u in running.items():
                    now = _work_before(root, u) - before[uid]
                    if now > polled[uid]:
                        tracker.event("work", unit_id=uid, n=now - polled[uid])
                        polled[uid] = now
            for uid, out in results:
                u = running.pop(uid)
                work_run += out.get("work", 0)
                if out["status"] == "failed" and out.get("retryable") and attempts[uid] <= retries:
                    tracker.event(
                        "unit_retry", unit_id=uid, attempt=attempts[uid], error=out["error"]
                    )
                    before[uid] = _work_before(root, u)
                    todo.append(u)
                    continue
                outcomes[uid] = out
                if out["status"] == "failed":
                    unit_errors[uid] = out["error"]
                    ok, bad = 0, len(u.cells)
                else:
                    one = {
                        "cells": [c.asdict() for c in u.cells],
                        "units": [u.asdict()],
                        "image_errors": {},
                    }
                    ok, bad = _counts(cell_table(root, one))
                tracker.event(
                    "unit_end",
                    unit_id=uid,
                    status=out["status"],
                    cells_ok=ok,
                    cells_failed=bad,
                    work=u.work,
                    work_before=before[uid],
                    work_run=out.get("work", 0),
                    wall_s=round(out.get("wall_s", 0), 3),
                    error=out.get("error"),
                    host=out.get("host"),
                )
    finally:
        ex.close()
        atomic_write_json(
            root / STATUS_FILE,
            {
                "outcomes": outcomes,
                "attempts": attempts,
                "unit_errors": unit_errors,
                "weights": weights,
            },
        )
    merged = merge_sweep(root) if merge else None
    result = SweepResult(
        root,
        cell_table(root, plan_json),
        outcomes,
        attempts,
        weights,
        work_run,
        time.perf_counter() - t0,
        merged,
    )
    ok, bad = _counts(result.cells)
    tracker.event(
        "sweep_end",
        cells_ok=ok,
        cells_failed=bad,
        work_run=work_run,
        wall_s=round(result.wall_s, 3),
        merged=str(merged) if merged else None,
    )
    return result


def plan_sweep(config: SweepConfig | str | Path) -> SweepPlan:
    """The plan alone (cells, units, output paths); runs nothing."""
    return make_sweep_plan(config if isinstance(config, SweepConfig) else load_sweep(config))


def summary_rows(result: SweepResult) -> list[dict[str, Any]]:
    """Failed or pending cells, for printing."""
    bad = result.cells[result.cells["status"] != "ok"]
    return bad[["cell_id", "status", "error"]].to_dict("records")
