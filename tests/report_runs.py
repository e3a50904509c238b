"""Real runs for the report tests, made once per pytest session and shared by every
tests/test_report_*.py module (the engine is the slow part; reports only read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.experiment import run_experiment
from roundtrip_ml.pipeline.store import RunStore

# The demo's shape at a tiny size: 2 photos x lanczos3/bicubic x png/jpeg:90, 10 generations.
# Frame stride 3 saves generations 0, 1, 3, 6, 9, 10: some are missing on purpose.
STUDY = {
    "images": ["skimage:astronaut", "skimage:coffee"],
    "upscalers": ["lanczos3", "bicubic"],
    "codecs": ["png", "jpeg:90"],
    "generations": 10,
    "frame_stride": 3,
    "metrics": ["psnr", "ssim", "colour"],
    "max_side": 64,
}
STUDY_SAVED = [0, 1, 3, 6, 9, 10]
# Nearest down + nearest up at x2 reaches a fixed point at generation 2: PSNR to the previous
# generation is +inf from then on (the real case the plots must draw clipped).
FIXED = {
    "images": ["skimage:astronaut"],
    "upscalers": ["nearest"],
    "downscalers": ["nearest"],
    "scales": [2],
    "codecs": ["png"],
    "generations": 4,
    "frame_stride": 1,
    "metrics": ["psnr"],
    "max_side": 32,
}


def _shared(factory: pytest.TempPathFactory, name: str, settings: dict) -> Path:
    out = factory.getbasetemp() / "report-runs" / name
    if not RunStore(out).is_complete():
        run_experiment(make_config({**settings, "output": str(out)}), overwrite=True)
    return out


def study_run(factory: pytest.TempPathFactory) -> Path:
    return _shared(factory, "study", STUDY)


def fixed_point_run(factory: pytest.TempPathFactory) -> Path:
    return _shared(factory, "fixed", FIXED)


def text_outside(fig) -> list[str]:
    """What the renderer draws outside the canvas: the figure's tight bbox (every drawn
    artist: tick labels in view, axis labels, legend) must lie inside the page, and so must
    every other visible text (legend entries, notes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    box = fig.bbox
    tight = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    bad = (
        []
        if box.contains(tight.x0 + 1, tight.y0 + 1) and box.contains(tight.x1 - 1, tight.y1 - 1)
        else [f"drawn extent {tight.bounds} outside {box.bounds}"]
    )
    ticks = {id(t) for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()}
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or id(t) in ticks:
            continue
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 1 or e.y0 < box.y0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1:
            bad.append(f"{t.get_text()!r} at {e.bounds} outside {box.bounds}")
    return bad
