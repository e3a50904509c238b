"""Figures for a notebook: take a `Trajectory`, a `RunView`, a run directory or a sweep (or a
list of these, to compare them), and return a matplotlib Figure (or a PIL image for contact
sheets). Saving is optional (``path=``); `roundtrip report` writes the same figures as files.
`compare` runs several upscalers (and codecs) on the same images in memory and returns their
tidy table and one figure."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from . import report
from .api import ImageLike, Trajectory, roundtrip
from .imaging.images import save_png
from .pipeline.store import RunStore
from .progress import EngineProgress
from .report.data import Runs, load_runs, merge_runs
from .report.view import RunView

Source = Trajectory | RunView | Runs | str | Path
Sources = Source | Sequence[Source]
ACCEPTED = (
    "a Trajectory (rt.roundtrip), a RunView (rt.run, rt.load_run), a run or sweep "
    "directory (str or Path), or a list of these"
)


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


def _runs(source: Sources, what: str = "this function") -> Runs:
    """One Runs from any accepted source; a list is merged (each source keeps its own run id).
    Anything else is one TypeError saying what is accepted."""
    if isinstance(source, list | tuple):  # a str is a Sequence too: only lists and tuples
        if not source:
            raise TypeError(f"{what} got an empty list; it takes {ACCEPTED}")
        parts = [_runs(s, what) for s in source]
        merged = merge_runs(parts)
        merged._parts = parts  # type: ignore[attr-defined]  # keeps trajectories' frames alive
        return merged
    if isinstance(source, Runs):
        return source
    if isinstance(source, Trajectory):
        return _trajectory_runs(source)
    if isinstance(source, RunView):
        return load_runs(source.path)
    if isinstance(source, str | Path):
        return load_runs(source)
    raise TypeError(f"{what} takes {ACCEPTED}; got {type(source).__name__}")


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


def plot_drift(source: Sources, *, path: str | Path | None = None, **options: Any) -> Any:
    """Metric-vs-generation panels as a matplotlib Figure.

    Args:
        source: A `Trajectory`, a `RunView`, a run or sweep directory, or a list of these (one
            curve per recipe, so ``plot_drift([t1, t2, t3])`` compares three upscalers).
        path: Also save the figure there (PDF, SVG or PNG by the suffix).
        **options: As for `roundtrip_ml.report.drift_figures`: ``metrics``, ``by``,
            ``reference``, ``logx``, ``style`` ("paper" or "slides"), ``layout`` ("single" or
            "double" column), ``thresholds``, ``caption`` (False: no explanatory legend
            title), ``panel_letters`` (a, b, c, ...).

    Returns:
        The matplotlib Figure (it renders inline in a notebook).

    Examples:
        >>> import roundtrip_ml as rt
        >>> t = rt.roundtrip("skimage:astronaut", "lanczos3", generations=3, center_crop=64,
        ...                  progress=False)
        >>> fig = plot_drift(t, metrics=["psnr", "ssim"], layout="single")
        >>> float(fig.get_size_inches()[0])
        3.5
    """
    return report.drift_figure(_runs(source, "plot_drift"), path=path, **options)


def contact_sheet(
    source: Sources, *, path: str | Path | None = None, **options: Any
) -> Image.Image:
    """A contact sheet: rows = recipes, columns = generations.

    Every image of a multi-image run is shown: ``layout="grid"`` (the default) stacks one
    block of rows per image in one sheet, ``layout="pages"`` returns one sheet per image.

    Args:
        source: A `Trajectory`, a `RunView`, a run or sweep directory, or a list of these.
        path: Also save the sheet there (with ``layout="pages"``, ``-IMAGE`` goes before the
            suffix of each page's file).
        **options: ``generations=[0, 1, 5, ...]`` (the columns), ``crop=(x, y, w, h)`` (a
            zoomed inset), ``image="NAME"`` (that image alone), ``layout`` ("grid" or
            "pages"), ``caption`` (False: no caption line).

    Returns:
        The sheet as a PIL image (a list of them, one per image, with ``layout="pages"``).

    Examples:
        >>> import roundtrip_ml as rt
        >>> t = rt.roundtrip("skimage:astronaut", "lanczos3", generations=3, center_crop=64,
        ...                  progress=False)
        >>> contact_sheet(t).mode
        'RGB'
    """
    runs = _runs(source, "contact_sheet")
    if options.get("layout") == "pages" and not options.get("image"):
        names = sorted(runs.chains["image_name"].unique())
        pages = [
            report.contact_sheet(runs, **{**options, "image": n, "layout": "grid"}) for n in names
        ]
        images = [p.to_image() for p in pages]
        if path is not None:
            p = Path(path)
            for n, im in zip(names, images, strict=True):
                im.save(p.with_name(f"{p.stem}-{n}{p.suffix}"))
        return images  # type: ignore[return-value]
    sheet = report.contact_sheet(runs, **options)
    image = sheet.to_image()
    if path is not None:
        image.save(path)
    return image


@dataclass
class Comparison:
    """What `compare` returns; ``table, figure = rt.compare(...)`` unpacks the first two.

    Attributes:
        table: The tidy metric table of every chain (columns as in metrics.parquet).
        figure: One drift figure (colour: upscaler, line style: codec).
        trajectories: The in-memory chains behind them.
    """

    table: pd.DataFrame
    figure: Any
    trajectories: list[Trajectory]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.table, self.figure))

    def _repr_png_(self) -> bytes:  # a notebook cell ending in rt.compare(...) shows the figure
        import io

        from matplotlib.backends.backend_agg import FigureCanvasAgg

        buf = io.BytesIO()
        FigureCanvasAgg(self.figure)
        self.figure.savefig(buf, format="png", dpi=150)
        return buf.getvalue()


def compare(
    images: ImageLike | list[ImageLike],
    upscalers: str | list[str],
    *,
    codecs: str | list[str] = "png",
    generations: int = 10,
    metrics: list[str] | tuple[str, ...] | None = ("psnr", "ssim"),
    progress: bool | EngineProgress | None = True,
    figure: dict[str, Any] | None = None,
    **config: Any,
) -> Comparison:
    """Run every image through every upscaler (and codec) in memory, as `roundtrip` does.

    One progress bar covers the whole comparison.

    Args:
        images: One image or a list (anything `roundtrip` takes).
        upscalers: One upscaler or a list (kernels, registry models, weights paths).
        codecs: One handoff codec or a list.
        generations: Roundtrips per chain.
        metrics: Metric names measured every generation; None takes the default set.
        progress: The bar (a widget in Jupyter); False silences it, a callable receives the
            engine's events.
        figure: Options passed to `plot_drift` for the figure.
        **config: Config keys (``scale``, ``center_crop``, ``device``, ...) for every chain.

    Returns:
        A `Comparison`: one tidy table and one drift figure (colour: upscaler, line style:
        codec), and the trajectories.

    Examples:
        >>> c = compare("skimage:astronaut", ["lanczos3", "bicubic", "bilinear"], generations=2,
        ...             center_crop=48, progress=False)
        >>> sorted(c.table["upscaler"].unique()), len(c.figure.axes) >= 2
        (['bicubic', 'bilinear', 'lanczos3'], True)
    """
    from .core.info import resolve_device
    from .progress import run_progress

    image_list = images if isinstance(images, list) else [images]
    up_list = [upscalers] if isinstance(upscalers, str) else list(upscalers)
    codec_list = [codecs] if isinstance(codecs, str) else list(codecs)
    if not image_list or not up_list or not codec_list:
        raise TypeError("compare needs at least one image, one upscaler and one codec")
    bar = run_progress(progress, str(resolve_device(config.get("device", "auto"))))

    def forward(event: str, **d: Any) -> None:  # one bar: the chains' own start/end dropped
        if bar is not None and event not in ("run_start", "run_end"):
            bar(event, **d)

    if bar is not None:
        bar("run_start", total=len(image_list) * len(up_list) * len(codec_list) * generations)
    try:
        runs = [
            roundtrip(
                im,
                up,
                codec=c,
                generations=generations,
                metrics=metrics,
                progress=forward,
                **config,
            )
            for im in image_list
            for up in up_list
            for c in codec_list
        ]
    finally:
        if bar is not None:
            bar("run_end")
    table = pd.concat([t.metrics for t in runs], ignore_index=True)
    fig = plot_drift(runs, **(figure or {}))
    return Comparison(table, fig, runs)
