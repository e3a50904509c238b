"""Rich renderings of a sweep plan and a sweep result, for the CLI (which only prints them)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from .grid import SweepPlan
from .probe import Estimate
from .runner import SweepResult

MAX_CELL_ROWS = 40


def _seconds(s: float | None) -> str:
    if s is None:
        return "?"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def render_plan(plan: SweepPlan, estimates: dict[str, Estimate]) -> Any:
    from ..core.info import resolve_device

    device = str(resolve_device(str(plan.config.engine.get("device", "auto"))))
    cells = Table("cell", "unit", title=f"{len(plan.cells)} cells", title_justify="left")
    unit_of = {c.cell_id: u.unit_id for u in plan.units for c in u.cells}
    for c in plan.cells[:MAX_CELL_ROWS]:
        cells.add_row(c.cell_id, unit_of.get(c.cell_id, "[red]unreadable input[/]"))
    if len(plan.cells) > MAX_CELL_ROWS:
        cells.add_row(f"... {len(plan.cells) - MAX_CELL_ROWS} more", "")
    units = Table(
        "unit",
        "upscaler",
        "size",
        "images",
        "cells",
        "chain-gens",
        "output",
        title=f"{len(plan.units)} units",
        title_justify="left",
    )
    for u in plan.units:
        units.add_row(
            u.unit_id,
            u.upscaler,
            f"{u.size[1]}x{u.size[0]}",
            str(len(u.config["images"])),
            str(len(u.cells)),
            str(u.work),
            u.config["output"],
        )
    work = Table(
        "upscaler",
        "cells",
        "units",
        "chain-gens",
        "Mpx-gens",
        "s/Mpx-gen",
        "estimate",
        title=f"estimated work on {device} (probe: compute of "
        "resample + upscale + codec + metrics on a small crop; frame and checkpoint "
        "I/O not included)",
        title_justify="left",
    )
    total = 0.0
    for e in estimates.values():
        r = e.s_per_megapixel_generation
        rate = "-" if r is None else f"{r:.3g}"
        est = f"[red]{e.probe_error}[/]" if e.probe_error else _seconds(e.seconds)
        total += e.seconds or 0.0
        work.add_row(
            e.upscaler,
            str(e.cells),
            str(e.units),
            str(e.chain_generations),
            f"{e.megapixel_generations:.3g}",
            rate,
            est,
        )
    parts: list[Any] = [cells, units, work]
    parts.append(
        f"total estimate on one {device} worker: [bold]{_seconds(total)}[/]; "
        f"results go to [bold]{plan.config.root}[/] (units/, merged/)"
    )
    for src, err in plan.image_errors.items():
        parts.append(f"[red]unreadable input[/] {src}: {err}")
    return Group(*parts)


def render_result(result: SweepResult) -> Any:
    ok = int((result.cells["status"] == "ok").sum())
    lines: list[Any] = [
        f"[bold green]done[/] {ok}/{len(result.cells)} cells ok, "
        f"{result.work_run} chain-generations computed in {result.wall_s:.1f} s -> "
        f"[bold]{result.merged or result.root}[/]"
    ]
    bad = result.cells[result.cells["status"] != "ok"]
    if len(bad):
        t = Table("cell", "status", "error", title="failed or pending cells", title_justify="left")
        for r in bad.itertuples():
            t.add_row(r.cell_id, r.status, r.error or "")
        lines.append(t)
    return Group(*lines)
