"""Progress as a researcher meets it: a bar with a true rate and ETA, the CPU estimate line,
the skipped-metric note, and silence when asked."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

import roundtrip_ml as rt
from roundtrip_ml.pipeline.plan import Batch, Chain
from roundtrip_ml.progress import (
    Meter,
    NotebookDisplay,
    RichDisplay,
    RunProgress,
    format_seconds,
    skipped_metrics_note,
)


class Recorder:
    """A display that keeps what it was told."""

    def __init__(self) -> None:
        self.updates: list[tuple[int, float, float | None, str]] = []
        self.notes: list[str] = []

    def start(self, total: int, description: str) -> None:
        self.total = total

    def update(self, meter: Meter, description: str) -> None:
        self.updates.append((meter.done, meter.rate, meter.eta, description))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def stop(self) -> None:
        self.stopped = True


def _batch(n: int, size: tuple[int, int] = (512, 512)) -> Batch:
    chains = [
        Chain(f"c{i}", "x.png", "x", "realesrgan-x4plus", "lanczos3", 4.0, "png", 0, f"c{i}")
        for i in range(n)
    ]
    return Batch("b0000", chains, size)


def _drive(
    progress: RunProgress, batch: Batch, generations: int, step_s: float, clock: list[float]
) -> None:
    progress("run_start", total=len(batch.chains) * generations)
    progress("batch_start", batch=batch, start=0, generations=generations)
    for g in range(1, generations + 1):
        clock[0] += step_s
        progress("generation", batch=batch, generation=g, wall_s=step_s)
    progress("run_end")


def test_rate_is_chain_generations_over_elapsed_time(monkeypatch):
    """The CLI bar once showed 0.2 gen/s on a bar that went 80/80 in 31 s: the rate must be
    what the bar counts (chain-generations) over the time taken."""
    clock = [100.0]
    monkeypatch.setattr("roundtrip_ml.progress.time.perf_counter", lambda: clock[0])
    rec = Recorder()
    _drive(RunProgress(rec, device="cuda"), _batch(8), 10, 3.1, clock)
    done, rate, eta, desc = rec.updates[-1]
    assert done == 80
    assert rate == pytest.approx(80 / 31.0)
    assert eta == pytest.approx(0.0)
    assert "8 chains" in desc and "gen 10/10" in desc and "realesrgan-x4plus" in desc
    # halfway: 40 done in 15.5 s, 40 left at the same rate
    assert rec.updates[5][2] == pytest.approx(15.5)
    assert rec.notes == []  # on a GPU: no CPU estimate line
    assert rec.stopped


def test_a_long_cpu_job_gets_one_estimate_line_with_center_crop(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("roundtrip_ml.progress.time.perf_counter", lambda: clock[0])
    rec = Recorder()
    _drive(RunProgress(rec, device="cpu"), _batch(1), 50, 4.0, clock)
    assert len(rec.notes) == 1
    # 4 s per generation x 50: 200 s; a 128 px crop has 1/16 of the pixels
    assert rec.notes[0].startswith("estimated 3 min 20 s on the CPU")
    assert "center_crop=128 would take about 12 s" in rec.notes[0]
    short = Recorder()
    _drive(RunProgress(short, device="cpu"), _batch(1, (64, 64)), 5, 0.05, clock)
    assert short.notes == []  # a short job gets no line


def test_format_seconds_reads_like_speech():
    assert [format_seconds(s) for s in (3.25, 45, 200, 3725)] == [
        "3.2 s",
        "45 s",
        "3 min 20 s",
        "1 h 02 min",
    ]


def test_run_shows_bar_eta_and_the_skipped_metric_note(tmp_path: Path, capsys):
    buf = io.StringIO()
    bar = RunProgress(RichDisplay(Console(file=buf, width=200)), device="cpu")
    r = rt.run(
        {
            "images": ["skimage:astronaut"],
            "generations": 3,
            "center_crop": 32,
            "output": str(tmp_path / "r"),
        },
        progress=bar,
    )
    text = buf.getvalue()
    assert "3/3" in text and "gen/s" in text and "ETA" in text and "gen 3/3" in text
    assert r.manifest.status == "complete"
    note = skipped_metrics_note(r.path)
    assert note is not None and "ms_ssim left out" in note and "161 px" in note
    assert "32x32" in note
    # the default (progress=True) prints the note; progress=False prints nothing at all
    rt.run(
        {
            "images": ["skimage:astronaut"],
            "generations": 2,
            "center_crop": 32,
            "output": str(tmp_path / "r2"),
        }
    )
    out = capsys.readouterr()
    assert "ms_ssim left out" in out.out and "ETA" in out.err
    rt.run(
        {
            "images": ["skimage:astronaut"],
            "generations": 2,
            "center_crop": 32,
            "output": str(tmp_path / "r3"),
        },
        progress=False,
    )
    rt.roundtrip("skimage:astronaut", "lanczos3", generations=2, center_crop=32, progress=False)
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""


def test_roundtrip_sends_engine_events_to_a_callable():
    events: list[tuple[str, dict]] = []
    rt.roundtrip(
        "skimage:astronaut",
        "lanczos3",
        generations=3,
        center_crop=32,
        progress=lambda e, **d: events.append((e, d)),
    )
    names = [e for e, _ in events]
    assert names == [
        "run_start",
        "batch_start",
        "generation",
        "generation",
        "generation",
        "run_end",
    ]
    assert events[0][1]["total"] == 3
    assert [d["generation"] for e, d in events if e == "generation"] == [1, 2, 3]


def test_notebook_display_is_a_tqdm_bar_with_rate():
    buf = io.StringIO()
    disp = NotebookDisplay(file=buf)
    meter = SimpleNamespace(done=0)
    disp.start(10, "lanczos3 png x4")
    for i in range(1, 11):
        meter.done = i
        disp.update(meter, f"lanczos3 png x4, gen {i}/10")  # type: ignore[arg-type]
    disp.stop()
    text = buf.getvalue()
    assert "10/10" in text and "gen/s" in text and "gen 10/10" in text


def test_sweep_from_python_shows_cells_rate_and_eta(tmp_path: Path, capsys):
    """rt.run_sweep (and run_leaderboard, which takes the same ``progress=sweep_progress()``)
    draws one bar; its rate is chain-generations per second of the work done."""
    cfg = {
        "name": "s",
        "output": str(tmp_path / "s"),
        "images": ["skimage:astronaut"],
        "upscalers": ["lanczos3", "bicubic"],
        "generations": 2,
        "center_crop": 32,
        "metrics": ["psnr"],
        "device": "cpu",
    }
    result = rt.run_sweep(cfg)
    err = capsys.readouterr().err
    assert not result.failed and result.work_run == 4  # 2 cells x 2 generations
    assert "4/4" in err and "gen/s" in err and "cells 2/2 done" in err
    tracker = rt.sweep_progress(False)
    again = rt.run_sweep(cfg, progress=tracker)
    assert again.work_run == 0 and tracker.snapshot()["cells_done"] == 2
    assert capsys.readouterr().err == ""
