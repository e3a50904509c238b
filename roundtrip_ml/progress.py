"""Progress reporting for the engine: a rich live bar, JSON lines for batch logs, or nothing.

The engine calls ``progress(event, **data)``; this module turns events into output, so the
engine never prints.
"""

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
    TimeRemainingColumn,
)


class RichProgress:
    """One bar over all chain-generations, with the current batch, generations/s and ETA."""

    def __init__(self, console: Console) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: Any = None
        self.t_last = time.perf_counter()

    def __call__(self, event: str, **d: Any) -> None:
        if event == "run_start":
            self.bar.start()
            self.task = self.bar.add_task("starting", total=d["total"], rate="")
        elif event == "batch_start" and self.task is not None:
            b = d["batch"]
            r = b.recipe
            self.desc = (
                f"{b.batch_id} {r.upscaler} {r.codec} x{r.scale:g} "
                f"[{len(b.chains)} chains {b.size[1]}x{b.size[0]}]"
            )
            self.bar.update(self.task, description=f"{self.desc} g{d['start']}/{d['generations']}")
        elif event == "generation" and self.task is not None:
            b = d["batch"]
            self.bar.update(
                self.task,
                advance=len(b.chains),
                description=f"{self.desc} g{d['generation']}",
                rate=f"{1.0 / max(d['wall_s'], 1e-9):.1f} gen/s",
            )
        elif event == "batch_failed":
            self.bar.console.print(
                f"[red]batch {d['batch'].batch_id} failed:[/] {d['error']}", highlight=False
            )
        elif event == "run_end":
            self.bar.stop()


class JsonProgress:
    """One JSON object per line on stdout, for cluster logs."""

    def __call__(self, event: str, **d: Any) -> None:
        rec: dict[str, Any] = {"event": event, "time": round(time.time(), 3)}
        for k, v in d.items():
            if k == "batch":
                rec["batch_id"] = v.batch_id
                rec["chains"] = [c.chain_id for c in v.chains]
            else:
                rec[k] = v
        if event == "generation":
            rec.pop("chains", None)
        sys.stdout.write(json.dumps(rec, default=str) + "\n")
        sys.stdout.flush()


def make_progress(*, quiet: bool, json_lines: bool, console: Console) -> Any:
    if json_lines:
        return JsonProgress()
    if quiet:
        return None
    return RichProgress(console)
