"""Figures for a notebook: take a `Trajectory`, a `RunView`, a run directory or a sweep, and
return a matplotlib Figure (or a PIL image for contact sheets). Saving is optional (``path=``);
`roundtrip report` writes the same figures as files."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from . import report
from .api import RunView, Trajectory
from .imaging.images import save_png
from .pipeline.store import RunStore
from .report.data import Runs, load_runs

Source = Trajectory | RunView | Runs | str | Path


def _show_figures_inline() -> None:
    """Our figures are bare matplotlib Figures (no pyplot, no GUI backend): tell a running
    IPython how to show them, as matplotlib's inline backend does for pyplot figures."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib.figure import Figure

    def png(fig: Figure) -> bytes:
        import io

        from matplotlib.backends.backend_agg import FigureCanvasAgg

        buf = io.BytesIO()
        FigureCanvasAgg(fig)
        fig.savefig(buf, format="png", dpi=150)
        return buf.getvalue()

    shell.display_formatter.formatters["image/png"].for_type(Figure, png)


_show_figures_inline()


def _runs(source: Source) -> Runs:
    if isinstance(source, Runs):
        return source
    if isinstance(source, Trajectory):
        return _trajectory_runs(source)
    if isinstance(source, RunView):
        return load_runs(source.path)
    return load_runs(source)


def _trajectory_runs(t: Trajectory) -> Runs:
    """A trajectory's frames live in memory; the sheet code reads frame files, so they are
    written once to a temporary run layout (kept as long as the Runs object)."""
    runs = t.to_runs()
    tmp = tempfile.TemporaryDirectory(prefix="roundtrip-trajectory-")
    store = RunStore(tmp.name)
    for g, frame in t.frames.items():
        save_png(frame, store.frame_path(t.chain.chain_id, g))
    runs.stores = {next(iter(runs.manifests)): store}
    runs.root = Path(tmp.name)
    runs._tmp = tmp  # type: ignore[attr-defined]  # lives as long as the Runs
    return runs


def plot_drift(source: Source, *, path: str | Path | None = None, **options: Any) -> Any:
    """Metric-vs-generation panels as a matplotlib Figure.

    Args:
        source: A `Trajectory`, a `RunView`, or a run or sweep directory.
        path: Also save the figure there (PDF, SVG or PNG by the suffix).
        **options: As for `roundtrip_ml.report.drift_figures`: ``metrics``, ``by``,
            ``reference``, ``logx``, ``style`` ("paper" or "slides"), ``layout`` ("single" or
            "double" column), ``thresholds``.

    Returns:
        The matplotlib Figure (it renders inline in a notebook).

    Examples:
        >>> import roundtrip_ml as rt
        >>> t = rt.roundtrip("skimage:astronaut", "lanczos3", generations=3, center_crop=64)
        >>> fig = plot_drift(t, metrics=["psnr", "ssim"], layout="single")
        >>> float(fig.get_size_inches()[0])
        3.5
    """
    return report.drift_figure(_runs(source), path=path, **options)


def contact_sheet(source: Source, *, path: str | Path | None = None,
                  **options: Any) -> Image.Image:
    """A contact sheet: rows = recipes, columns = generations.

    Args:
        source: A `Trajectory`, a `RunView`, or a run or sweep directory.
        path: Also save the sheet there.
        **options: ``generations=[0, 1, 5, ...]`` (the columns), ``crop=(x, y, w, h)`` (a
            zoomed inset), ``image`` (which image's chains).

    Returns:
        The sheet as a PIL image.

    Examples:
        >>> import roundtrip_ml as rt
        >>> t = rt.roundtrip("skimage:astronaut", "lanczos3", generations=3, center_crop=64)
        >>> contact_sheet(t).mode
        'RGB'
    """
    sheet = report.contact_sheet(_runs(source), **options)
    image = sheet.to_image()
    if path is not None:
        image.save(path)
    return image
