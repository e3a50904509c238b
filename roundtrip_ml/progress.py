"""Progress wherever a human waits: runs, in-memory chains, sweeps and the leaderboard.

The engine calls ``progress(event, **data)`` and never prints; this module turns its events
into one bar (rich in a terminal, a tqdm widget in Jupyter), JSON lines for cluster logs, or
nothing. The bar counts *chain-generations* (a batch of 8 chains advancing one generation is
8), and its rate and ETA are that count over the time since the run started, so "80/80 in
40 s" reads "2.0 gen/s". On a CPU a job that will take long gets one line, after its first
generation, with the measured estimate and how to make it smaller.

Sweeps (and the leaderboard, which is two sweeps) take a `SweepTracker`; `sweep_progress`
builds one whose display is chosen the same way.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar

from .sweep.progress import JsonSweepProgress, RichSweepProgress, SweepTracker

LONG_S = 60.0  # a CPU job expected to take longer than this gets the estimate line
SMALL_CROP = 128  # the centre crop the estimate line suggests (the demo's CPU size)

EngineProgress = Callable[..., None]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a terminal bar would print a line per refresh)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except AttributeError:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def format_seconds(s: float) -> str:
    """``3 min 20 s``, ``45 s``, ``1 h 05 min``: how a person says a duration."""
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


class Meter:
    """Counts done out of total since ``start``: the rate and ETA every display shows."""

    def __init__(self, total: int, clock: Callable[[], float] | None = None) -> None:
        self.total, self.done = total, 0
        self.clock = clock or (lambda: time.perf_counter())
        self.t0 = self.clock()

    def advance(self, n: int) -> None:
        self.done += n

    @property
    def elapsed(self) -> float:
        return self.clock() - self.t0

    @property
    def rate(self) -> float:
        """Chain-generations per second since the start (0 before the first)."""
        return self.done / self.elapsed if self.done and self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None


class Display(Protocol):
    """Where a bar is drawn: ``start``, ``update``, ``note`` (one line beside the bar), ``stop``."""

    def start(self, total: int, description: str) -> None: ...
    def update(self, meter: Meter, description: str) -> None: ...
    def note(self, text: str) -> None: ...
    def stop(self) -> None: ...


class RichDisplay:
    """A rich live bar for a terminal: description, bar, done/total, rate, elapsed, ETA."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console,
        )
        self.task: Any = None

    def start(self, total: int, description: str) -> None:
        self.bar.start()
        self.task = self.bar.add_task(description, total=total, stats="timing the first generation")

    def update(self, meter: Meter, description: str) -> None:
        stats = (
            "timing the first generation"
            if meter.eta is None
            else f"{meter.rate:.3g} gen/s, ETA {format_seconds(meter.eta)}"
        )
        self.bar.update(self.task, completed=meter.done, description=description, stats=stats)

    def note(self, text: str) -> None:
        self.bar.console.print(text, highlight=False)

    def stop(self) -> None:
        self.bar.stop()


class NotebookDisplay:
    """A tqdm bar: a widget in Jupyter (with ipywidgets), text on any other stream."""

    def __init__(self, file: Any = None) -> None:
        self.file, self.bar = file, None

    def start(self, total: int, description: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total,
            desc=description,
            unit=" gen",
            file=self.file,
            smoothing=0,
            dynamic_ncols=True,
        )

    def update(self, meter: Meter, description: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(description, refresh=False)
            self.bar.update(meter.done - self.bar.n)

    def note(self, text: str) -> None:
        print(text, file=self.file or sys.stdout, flush=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.close()


def default_display(console: Console | None = None) -> Display:
    return NotebookDisplay() if in_notebook() else RichDisplay(console or Console(stderr=True))


class RunProgress:
    """Engine events -> a `Display`: the batch's recipe, its chains and generation, the
    chain-generations done, their rate and the ETA; on a CPU, the estimate line."""

    def __init__(self, display: Display, *, device: str = "cpu") -> None:
        self.display, self.device = display, device
        self.meter: Meter | None = None
        self.desc = ""
        self.warned = False

    def __call__(self, event: str, **d: Any) -> None:
        if event == "run_start":
            self.meter = Meter(d["total"])
            self.display.start(d["total"], "starting")
        elif self.meter is None:
            return
        elif event == "batch_start":
            b = d["batch"]
            r = b.recipe
            n = len(b.chains)
            self.desc = (
                f"{r.upscaler} {r.codec} x{r.scale:g}, {n} chain{'s' * (n != 1)} "
                f"{b.size[1]}x{b.size[0]}"
            )
            self.display.update(self.meter, f"{self.desc}, gen {d['start']}/{d['generations']}")
            self.generations = d["generations"]
        elif event == "generation":
            b = d["batch"]
            self.meter.advance(len(b.chains))
            self.display.update(
                self.meter, f"{self.desc}, gen {d['generation']}/{self.generations}"
            )
            if not self.warned:
                self.warned = True
                self._estimate(b, float(d["wall_s"]))
        elif event == "batch_failed":
            self.display.note(f"batch {d['batch'].batch_id} failed: {d['error']}")
        elif event == "run_end":
            self.display.stop()

    def _estimate(self, batch: Any, first_s: float) -> None:
        """One line when a CPU job will be long: measured on its first generation."""
        assert self.meter is not None
        if self.device == "auto":
            from .core.info import resolve_device

            self.device = str(resolve_device("auto"))
        if not self.device.startswith("cpu"):
            return
        per = first_s / len(batch.chains)
        total = per * self.meter.total
        if total < LONG_S:
            return
        h, w = batch.size
        text = (
            f"estimated {format_seconds(total)} on the CPU ({first_s:.1f} s per "
            f"generation of {len(batch.chains)} x {w}x{h} px)"
        )
        if min(h, w) > SMALL_CROP:
            small = total * SMALL_CROP**2 / (h * w)
            text += (
                f"; center_crop={SMALL_CROP} would take about {format_seconds(small)} "
                "(or run on a GPU)"
            )
        self.display.note(text)


def skipped_metrics_note(run_dir: str | Path) -> str | None:
    """The console note the README promises: which default metrics a run left out for its
    image size (MS-SSIM needs 161 px), read from the manifest; None when none was."""
    from .metrics.registry import SPECS
    from .pipeline.manifest import Manifest
    from .pipeline.store import MANIFEST_FILE

    path = Path(run_dir) / MANIFEST_FILE
    if not path.is_file():
        return None
    batches = Manifest.read(path).batches.values()
    by_metric: dict[str, set[tuple[int, int]]] = {}
    for b in batches:
        for m in b.metrics_skipped:
            by_metric.setdefault(m, set()).add(tuple(b.size))  # type: ignore[arg-type]
    if not by_metric:
        return None
    parts = []
    for m, sizes in sorted(by_metric.items()):
        shown = ", ".join(f"{w}x{h}" for h, w in sorted(sizes))
        need = SPECS[m].min_size if m in SPECS else "?"
        parts.append(f"{m} left out: it needs images of at least {need} px and these are {shown}")
    return (
        f"note: {'; '.join(parts)}. The other metrics were measured; name "
        f"{'it' if len(parts) == 1 else 'them'} in metrics to make this an error."
    )


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


def make_progress(
    *, quiet: bool, json_lines: bool, console: Console, device: str = "cpu"
) -> EngineProgress | None:
    """The CLI's choice: JSON lines, nothing, or a rich bar on ``console``."""
    if json_lines:
        return JsonProgress()
    if quiet:
        return None
    return RunProgress(RichDisplay(console), device=device)


def run_progress(progress: bool | EngineProgress | None, device: str) -> EngineProgress | None:
    """The API's choice: ``True`` a bar (a widget in Jupyter, rich in a terminal),
    ``False``/``None`` nothing, a callable is used as it is (it receives the engine's events)."""
    if progress is True:
        return RunProgress(default_display(), device=device)
    if not progress:
        return None
    return progress


class NotebookSweepProgress:
    """A sweep's chain-generations as a tqdm bar (a widget in Jupyter), cells in its postfix."""

    wants_work = True

    def __init__(self, file: Any = None) -> None:
        self.file, self.bar = file, None

    def __call__(self, event: str, snap: dict[str, Any], d: dict[str, Any]) -> None:
        if event == "sweep_start":
            from tqdm.auto import tqdm

            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(
                total=snap["work_total"],
                desc="sweep",
                unit=" gen",
                file=self.file,
                smoothing=0,
                dynamic_ncols=True,
                initial=snap["work_done"],
            )
        if self.bar is None:
            return
        self.bar.set_postfix_str(
            f"cells {snap['cells_done']}/{snap['cells_total']}, {snap['cells_failed']} failed",
            refresh=False,
        )
        self.bar.update(snap["work_done"] - self.bar.n)
        if event == "unit_end" and d["status"] == "failed":
            print(f"unit {d['unit_id']} failed: {d['error']}", file=self.file or sys.stdout)
        elif event == "sweep_end":
            self.bar.close()
            self.bar = None


def sweep_progress(
    progress: bool | SweepTracker | None = True,
    *,
    json_lines: bool = False,
    console: Console | None = None,
) -> SweepTracker:
    """The progress display of a sweep or leaderboard (their ``progress=`` argument).

    Args:
        progress: True: a widget in Jupyter, a rich view in a terminal; False: counting only;
            a `SweepTracker` is returned as it is.
        json_lines: One JSON object per event on stdout instead (cluster logs).
        console: The rich console a terminal view writes to (default: stderr).

    Returns:
        A `SweepTracker` to pass as ``progress=``.
    """
    if isinstance(progress, SweepTracker):
        return progress
    if json_lines:
        return SweepTracker([JsonSweepProgress()])
    if not progress:
        return SweepTracker()
    if in_notebook():
        return SweepTracker([NotebookSweepProgress()])
    return SweepTracker([RichSweepProgress(console or Console(stderr=True))])
