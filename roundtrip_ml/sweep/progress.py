"""Sweep progress: one tracker of cells and chain-generations, shown as a rich live view or as
JSON lines (one object per event, for cluster logs). The runner only calls ``tracker.event``."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)


class SweepTracker:
    """Counts cells (done / running / failed) and work (chain-generations) for throughput and
    ETA; ``sinks`` receive (event, snapshot, data) after each update."""

    def __init__(self, sinks: list[Any] | None = None) -> None:
        self.sinks = sinks or []
        self.t0 = time.perf_counter()
        self.cells_total = self.cells_done = self.cells_failed = self.cells_running = 0
        self.work_total = self.work_done = self.work_run = 0  # work_run: computed in this run
        self._unit_work: dict[str, int] = {}
        self._unit_cells: dict[str, int] = {}

    def snapshot(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.t0
        rate = self.work_run / elapsed if elapsed > 0 else 0.0
        left = self.work_total - self.work_done
        return {
            "cells_total": self.cells_total,
            "cells_done": self.cells_done,
            "cells_failed": self.cells_failed,
            "cells_running": self.cells_running,
            "work_done": self.work_done,
            "work_total": self.work_total,
            "elapsed_s": round(elapsed, 3),
            "cells_per_s": round(self.cells_done / elapsed, 4) if elapsed > 0 else 0.0,
            "chain_generations_per_s": round(rate, 3),
            "eta_s": round(left / rate, 1) if rate > 0 else None,
        }

    def event(self, event: str, **d: Any) -> None:
        if event == "sweep_start":
            self.cells_total, self.work_total = d["cells"], d["work"]
            self.work_done = d["work_before"]
            self.cells_done, self.cells_failed = d["cells_ok_before"], d["cells_failed_before"]
        elif event == "unit_start":
            self.cells_running += d["cells"]
            self._unit_cells[d["unit_id"]] = d["cells"]
            self._unit_work[d["unit_id"]] = 0
        elif event == "work":
            self._unit_work[d["unit_id"]] = self._unit_work.get(d["unit_id"], 0) + d["n"]
            self.work_done += d["n"]
            self.work_run += d["n"]
            if not any(s.wants_work for s in self.sinks):
                return
        elif event in ("unit_end", "unit_retry"):
            self.cells_running -= self._unit_cells.pop(d["unit_id"], 0)
            seen = self._unit_work.pop(d["unit_id"], 0)
            if event == "unit_end":
                self.cells_done += d["cells_ok"]
                self.cells_failed += d["cells_failed"]
                self.work_run += max(0, d["work_run"] - seen)
                if d["status"] != "failed":  # all of the unit's work is done now
                    self.work_done += d["work"] - d["work_before"] - seen
        snap = self.snapshot()
        for s in self.sinks:
            s(event, snap, d)


class JsonSweepProgress:
    """One JSON object per line on stdout; ``work`` events are left out (too many)."""

    wants_work = False

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: str, snap: dict[str, Any], d: dict[str, Any]) -> None:
        rec = {"event": event, "time": round(time.time(), 3), **d, **snap}
        self.stream.write(json.dumps(rec, default=str) + "\n")
        self.stream.flush()


class RichSweepProgress:
    """A live bar over chain-generations, with cell counts, throughput and ETA."""

    wants_work = True

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(
            TextColumn("[bold]sweep[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[cells]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
        )
        self.task: Any = None

    def __call__(self, event: str, snap: dict[str, Any], d: dict[str, Any]) -> None:
        if event == "sweep_start":
            self.console.print(
                f"sweep: {d['cells']} cells in {d['units']} units ({d['units_skipped']} "
                f"already complete) on executor [bold]{d['executor']}[/]",
                highlight=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(
                "sweep", total=snap["work_total"], cells="", rate="", eta="?"
            )
        if self.task is None:
            return
        eta = snap["eta_s"]
        self.bar.update(
            self.task,
            completed=snap["work_done"],
            cells=(
                f"cells {snap['cells_done']}/{snap['cells_total']} done, "
                f"{snap['cells_running']} running, {snap['cells_failed']} failed"
            ),
            rate=f"{snap['chain_generations_per_s']:.1f} gen/s",
            eta="-" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta)),
        )
        if event == "unit_retry":
            self.console.print(
                f"[yellow]retrying[/] unit {d['unit_id']} (attempt {d['attempt']}): {d['error']}",
                highlight=False,
            )
        elif event == "unit_end" and d["status"] == "failed":
            self.console.print(f"[red]unit {d['unit_id']} failed:[/] {d['error']}", highlight=False)
        elif event == "sweep_end":
            self.bar.stop()
