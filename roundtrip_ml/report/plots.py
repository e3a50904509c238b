"""Metric-vs-generation figures: one panel per metric, one line per recipe, mean over images;
a seeded 95% bootstrap band where at least three images stand behind a curve (below that, each
image's own curve), collapse thresholds and convergence events marked.

Sizes fit their target: a journal column (3.5 in) or page width (7.16 in) at a height a journal
accepts, 16:9 slides; more metrics than fit a page go on further pages, never a taller figure.
Every function returns matplotlib Figures (for notebooks and a paper's own styles);
``plot_drift`` also writes PDF and SVG with embedded fonts and PNG at 300 dpi.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.summary import DEFAULT_THRESHOLDS, parse_thresholds
from ..core.errors import ConfigError
from .data import (
    Runs,
    aggregate,
    codec_linestyles,
    collapse_summary,
    load_runs,
    measured_thresholds,
    metric_ceiling,
    recipe_label,
    select,
    upscaler_colours,
)
from .labels import HEADLINE, axis_label, display_name, expand, label, threshold_label

# Figure widths in inches: a journal column and a full page width (IEEE/ACM/Elsevier agree
# within a few mm); slides are 16:9 at 10 inches.
WIDTHS = {"single": 3.5, "double": 7.16}
SLIDES_WIDTH = 10.0
# Tallest figure per target, inches (a column figure at most about half a page high).
MAX_HEIGHT = {"single": 4.6, "double": 5.2, "slides": 5.625}
# Panels on one page, and how many a figure shows when no metrics are named.
PAGE_PANELS = {"single": 4, "double": 6, "slides": 6}
DEFAULT_PANELS = {"single": 2, "double": 6, "slides": 3}
MIN_BAND_N = 3  # a band needs at least this many images behind a curve
FORMATS = ("pdf", "svg", "png")
PNG_DPI = 300
BAND_METHOD = "95% percentile bootstrap CI over images"

_BASE_RC: dict[str, Any] = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "path",
    "svg.hashsalt": "roundtrip-ml",  # stable ids: the same run gives the same SVG
    "font.family": "DejaVu Sans",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
STYLES: dict[str, dict[str, Any]] = {
    "paper": {
        "font.size": 7,
        "axes.titlesize": 7,
        "axes.labelsize": 7,
        "legend.fontsize": 6,
        "legend.title_fontsize": 6,
        "xtick.labelsize": 6,
        "ytick.labelsize": 6,
        "lines.linewidth": 1.0,
    },
    "slides": {
        "font.size": 14,
        "axes.titlesize": 14,
        "axes.labelsize": 14,
        "legend.fontsize": 12,
        "legend.title_fontsize": 12,
        "xtick.labelsize": 12,
        "ytick.labelsize": 12,
        "lines.linewidth": 2.0,
    },
}


def metric_label(metric: str) -> str:
    """Display name of a stored metric (see labels.py: the one table of names and units)."""
    return display_name(metric)


def default_metrics(runs: Runs, reference: str = "original", limit: int | None = None) -> list[str]:
    """Every metric stored against ``reference``, the headline ones first (at most ``limit``)."""
    have = set(runs.metrics.loc[runs.metrics["reference"] == reference, "metric"])
    out = [m for m in HEADLINE if m in have] + sorted(have - set(HEADLINE))
    return out[:limit] if limit else out


def _as_runs(run: Runs | str | Path) -> Runs:
    return run if isinstance(run, Runs) else load_runs(run)


def style_context(style: str):
    import matplotlib

    if style not in STYLES:
        raise ConfigError(f"--style {style}", "unknown style", f"use one of {', '.join(STYLES)}")
    rc: Any = {**_BASE_RC, **STYLES[style]}  # plain keys; matplotlib's stubs want literals
    return matplotlib.rc_context(rc)


def save_figure(
    fig: Any, out_dir: str | Path, stem: str, formats: Sequence[str] = FORMATS, dpi: int = PNG_DPI
) -> list[Path]:
    """Write ``fig`` as ``stem.<fmt>`` for each format; no timestamps, so reruns match. Fonts
    are embedded (TrueType in PDF, paths in SVG) whatever the caller's rcParams."""
    import matplotlib

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"pdf": {"CreationDate": None}, "svg": {"Date": None}, "png": {"Software": None}}
    paths = []
    fonts: Any = {k: v for k, v in _BASE_RC.items() if k.split(".")[0] in ("pdf", "ps", "svg")}
    with matplotlib.rc_context(fonts):
        for fmt in formats:
            p = out_dir / f"{stem}.{fmt}"
            fig.savefig(p, dpi=dpi, metadata=meta.get(fmt, {}))
            paths.append(p)
    return paths


def _target(layout: str, style: str) -> str:
    if style == "slides":
        return "slides"
    if layout not in WIDTHS:
        raise ConfigError(f"--layout {layout}", "unknown layout", f"use one of {', '.join(WIDTHS)}")
    return layout


def _grid(n: int, target: str) -> tuple[int, int, float, float]:
    """(rows, cols, width, axes height) in inches for ``n`` panels (n <= PAGE_PANELS)."""
    width = SLIDES_WIDTH if target == "slides" else WIDTHS[target]
    cols = (1 if n <= 2 else 2) if target == "single" else (2 if n == 4 else min(n, 3))
    rows = math.ceil(n / cols)
    aspect = {
        "single": 0.56 if cols == 1 else 0.8,
        "double": 0.62 if cols < 3 else 0.72,
        "slides": 0.55,
    }[target]
    return rows, cols, width, rows * width / cols * aspect


@dataclass
class DriftFigure:
    """What was drawn: the figures (one per page) and their files, each line's colour by
    label, per metric the value where +inf was drawn, and the images behind each curve."""

    paths: list[Path]
    colours: dict[str, str] = field(default_factory=dict)
    ceilings: dict[str, float] = field(default_factory=dict)
    figures: list[Any] = field(default_factory=list)
    n_images: dict[tuple[str, str], int] = field(default_factory=dict)  # (metric, label) -> n

    @property
    def figure(self) -> Any:
        return self.figures[0]


def _check_metrics(
    runs: Runs, metrics: Sequence[str] | None, reference: str, default: int
) -> list[str]:
    have = set(runs.metrics.loc[runs.metrics["reference"] == reference, "metric"])
    if not metrics:
        return default_metrics(runs, reference, default)
    metrics = expand(metrics, sorted(have))
    missing = [m for m in metrics if m not in have]
    if missing or not metrics:
        raise ConfigError(
            f"--metrics {','.join(missing) or '(none)'}",
            f"not stored against {reference!r} in {runs.root}",
            f"use some of {', '.join(sorted(have)) or 'none: run it first'}",
        )
    return metrics


def drift_figures(
    run: Runs | str | Path,
    *,
    metrics: Sequence[str] | None = None,
    by: Sequence[str] = ("upscaler", "codec"),
    reference: str = "original",
    logx: bool = False,
    style: str = "paper",
    layout: str = "double",
    thresholds: str = DEFAULT_THRESHOLDS,
    n_boot: int = 1000,
    seed: int = 0,
    caption: bool = True,
    panel_letters: bool = False,
) -> DriftFigure:
    """Draw metric-vs-generation panels for a run or sweep (no file written).

    ``caption=False`` leaves out the legend's title (what the lines and bands are), for a
    paper that says it in its own caption; ``panel_letters`` labels the panels a, b, c, ...

    ``by`` names the chain columns that make a line (the rest, images included, are averaged).
    Colour follows the upscaler, line style the codec, the same in every figure. With no
    ``metrics``, the headline ones that fit one page; named metrics (``colour`` and
    ``spectral`` expand to what they store) that do not fit one page go on more pages.
    +inf values (identical images) are drawn at a ceiling above every finite value.
    """
    from matplotlib.colors import to_hex

    runs = _as_runs(run)
    target = _target(layout, style)
    by = list(by)
    bad = [c for c in by if c not in ("upscaler", "downscaler", "scale", "codec", "image")]
    if bad:
        raise ConfigError(
            f"--by {','.join(bad)}",
            "not a chain column",
            "use upscaler, downscaler, scale, codec, image (comma-separated)",
        )
    if runs.is_sweep and "run" in runs.recipe_columns and "run" not in by:
        by.append("run")
    metrics = _check_metrics(runs, metrics, reference, DEFAULT_PANELS[target])
    ctx = _Context(runs, by, reference, thresholds, n_boot, seed, logx, caption, panel_letters)
    result = DriftFigure([])
    per_page = PAGE_PANELS[target]
    with style_context(style):
        for start in range(0, len(metrics), per_page):
            fig = _page(ctx, metrics[start : start + per_page], target, style, result)
            result.figures.append(fig)
    result.colours = {k: to_hex(v) for k, v in ctx.used_colours.items()}
    return result


def drift_figure(run: Runs | str | Path, *, path: str | Path | None = None, **options: Any) -> Any:
    """One drift figure (matplotlib Figure) for a notebook or a paper's own styling; options
    as for ``drift_figures``. ``path`` (``x.pdf``, ``x.png``...) also saves it. Metrics that
    need more than one page raise: name fewer, or use ``plot_drift``, which paginates."""
    res = drift_figures(run, **options)
    if len(res.figures) > 1:
        target = _target(options.get("layout", "double"), options.get("style", "paper"))
        raise ConfigError(
            f"{len(options.get('metrics') or [])} metrics",
            f"do not fit one {target} figure (at most {PAGE_PANELS[target]})",
            "name fewer metrics, or use plot_drift (one file per page)",
        )
    fig = res.figures[0]
    if path is not None:
        p = Path(path)
        save_figure(fig, p.parent, p.stem, [p.suffix.lstrip(".") or "png"])
    return fig


def plot_drift(
    run: Runs | str | Path,
    out_dir: str | Path,
    *,
    formats: Sequence[str] = FORMATS,
    stem: str | None = None,
    **options: Any,
) -> DriftFigure:
    """Draw (``drift_figures``) and write ``stem[-pN].<fmt>`` per page into ``out_dir``."""
    res = drift_figures(run, **options)
    style, layout = options.get("style", "paper"), options.get("layout", "double")
    stem = stem or (
        f"drift-{options.get('reference', 'original')}-{layout if style == 'paper' else 'slides'}"
    )
    for i, fig in enumerate(res.figures):
        res.paths += save_figure(
            fig, Path(out_dir), stem if i == 0 else f"{stem}-p{i + 1}", formats
        )
    return res


@dataclass
class _Context:
    """What every page of one drift figure shares (data, colours, events)."""

    runs: Runs
    by: list[str]
    reference: str
    thresholds: str
    n_boot: int
    seed: int
    logx: bool
    caption: bool = True
    panel_letters: bool = False
    colours: dict[str, Any] = field(init=False)
    styles: dict[str, str] = field(init=False)
    parsed: list[Any] = field(init=False)
    events: pd.DataFrame = field(init=False)
    label_cols: list[str] = field(init=False)
    used_colours: dict[str, Any] = field(default_factory=dict)
    panels_drawn: int = 0

    def __post_init__(self) -> None:
        self.colours = upscaler_colours(self.runs.chains["upscaler"])
        self.styles = codec_linestyles(self.runs.chains["codec"])
        # thresholds only for metrics that were measured (and only against the original)
        names = measured_thresholds(self.runs, self.thresholds)
        self.parsed = parse_thresholds(names) if self.reference == "original" else []
        self.events = (
            collapse_summary(self.runs, names) if len(self.runs.fingerprints) else pd.DataFrame()
        )
        self.label_cols = [c for c in self.by if self.runs.metrics[c].nunique() > 1] or self.by[:1]


def _page(ctx: _Context, metrics: list[str], target: str, style: str, result: DriftFigure) -> Any:
    """One figure of up to PAGE_PANELS panels, legend below, height capped for the target."""
    # a bare Figure (no pyplot): no GUI backend, and a notebook's own backend is left alone
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    rows, cols, width, axes_h = _grid(len(metrics), target)
    fig = Figure(figsize=(width, axes_h), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    handles: dict[str, Line2D] = {}
    panel_n: list[set[int]] = []
    for ax, metric in zip(axes.flat, metrics, strict=False):
        ns = _panel(ctx, ax, metric, handles, result)
        panel_n.append(ns)
        if ctx.panel_letters:  # letters run on across pages
            ax.set_title(
                "abcdefghijklmnopqrstuvwxyz"[ctx.panels_drawn % 26], loc="left", fontweight="bold"
            )
        ctx.panels_drawn += 1
        ax.set_ylabel(axis_label(metric))
        ax.set_xlabel("generation")
        if ctx.logx:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.margins(x=0.01)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    every = set().union(*panel_n)
    per_curve: dict[str, set[int]] = {}
    for (m, lab), n in result.n_images.items():
        if m in metrics:
            per_curve.setdefault(lab, set()).add(n)
    if len(every) > 1 and all(len(v) == 1 for v in per_curve.values()):
        # curves rest on different numbers of images, the same in every panel: say so per curve
        handles = {
            (f"{k} (n={min(per_curve[k])})" if k in per_curve else k): h for k, h in handles.items()
        }
    elif len(every) > 1:  # a curve's n differs between panels: say so on each panel
        for ax, ns in zip(axes.flat, panel_n, strict=False):
            text = f"n={min(ns)}" if len(ns) == 1 else f"n={min(ns)}-{max(ns)}"
            ax.text(
                0.99,
                0.02,
                text,
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize="x-small",
                color="0.3",
            )
    title = _legend_title(ctx.reference, every) if ctx.caption else ""
    _legend(fig, handles, title, width)
    # the legend adds height below the axes; cap the total for the target
    height = min(MAX_HEIGHT[target], axes_h + _legend_height(fig, width))
    fig.set_size_inches(width, MAX_HEIGHT[target] if target == "slides" else height)
    return fig


REFERENCE_WORDS = {
    "original": "the original image",
    "previous": "the previous generation",
    "first": "the first generation",
    "lowres": "its low-resolution input",
    "replicas": "the other replicas",
    "unperturbed": "the unperturbed chain",
}


def _legend_title(reference: str, ns: set[int]) -> str:
    """The legend's title in plain words: what is compared with what, and what the lines and
    shaded bands are (a reviewer should be able to keep it as it is)."""
    ref = REFERENCE_WORDS.get(reference, reference)
    n = str(min(ns)) if len(ns) == 1 else f"{min(ns)} to {max(ns)}" if ns else "0"
    if ns == {1}:
        return f"Compared with {ref}; one image."
    images = f"{n} images" + (" (n per curve as marked)" if len(ns) > 1 else "")
    if ns and min(ns) >= MIN_BAND_N:
        how = f"shaded: {BAND_METHOD}"
    elif ns and max(ns) >= MIN_BAND_N:
        how = f"shaded: {BAND_METHOD} (curves over {MIN_BAND_N} or more images)"
    else:
        how = "thin lines: each image"
    return f"Compared with {ref}; mean of {images}; {how}."


def _legend(fig: Any, handles: dict[str, Any], title: str, width: float) -> None:
    """Columns chosen from the measured label widths, so the legend never runs off the page."""
    import matplotlib
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    size = matplotlib.rcParams["legend.fontsize"]
    prop = FontProperties(size=size)
    widths = [TextPath((0, 0), k, prop=prop).get_extents().width / 72 for k in handles]
    entry = max(widths, default=0) + 3.2 * size / 72  # handle, padding, spacing
    ncol = max(1, min(len(handles), int((width - 0.2) / entry) if entry else 1, 4))
    ncol = math.ceil(len(handles) / math.ceil(len(handles) / ncol)) if handles else 1  # balanced
    chars = max(20, int((width - 0.2) / (0.6 * size / 72)))
    fig.legend(
        handles.values(),
        handles.keys(),
        loc="outside lower center",
        ncol=ncol,
        title=textwrap.fill(title, chars),
        frameon=False,
    )


def _legend_height(fig: Any, width: float) -> float:
    """The legend's drawn height in inches (from the renderer)."""
    if not fig.legends:
        return 0.0
    return fig.legends[0].get_window_extent().height / fig.dpi + 0.15


def _panel(
    ctx: _Context, ax: Any, metric: str, handles: dict[str, Any], result: DriftFigure
) -> set[int]:
    """Draw one metric's curves; returns the image counts behind its curves."""
    sel = select(ctx.runs.metrics, metric, ctx.reference)
    ceiling = metric_ceiling(sel["value"], metric)
    agg = aggregate(sel, ctx.by, clip=ceiling, n_boot=ctx.n_boot, seed=ctx.seed)
    ns: set[int] = set()
    for key, g in agg.groupby(ctx.by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(ctx.by, key, strict=True))
        label = recipe_label(row, ctx.label_cols)
        colour = ctx.colours.get(row.get("upscaler", ""), None)
        ls = ctx.styles.get(row.get("codec", ""), "-")
        x = g["generation"].to_numpy()
        n = int(g["n"].max())
        ns.add(n)
        result.n_images[(metric, label)] = n
        (line,) = ax.plot(x, g["mean"], color=colour, linestyle=ls, label=label)
        if n >= MIN_BAND_N and (g["hi"] > g["lo"]).any():
            ax.fill_between(x, g["lo"], g["hi"], color=line.get_color(), alpha=0.18, linewidth=0)
        elif n > 1 and "image" not in ctx.by:
            _each_image(ax, sel, row, ceiling, line)
        handles.setdefault(label, line)
        ctx.used_colours[label] = line.get_color()
        _mark_events(ax, ctx.events, row, g, line.get_color(), handles)
    if ceiling is not None:
        _mark_ceiling(ax, ceiling, metric)
        result.ceilings[metric] = ceiling
    _mark_thresholds(ax, [t for t in ctx.parsed if t.metric == metric])
    return ns


def _each_image(
    ax: Any, sel: pd.DataFrame, row: dict[str, Any], ceiling: float | None, line: Any
) -> None:
    """Thin curves, one per image: what a mean of two images honestly rests on."""
    mine = sel
    for c, v in row.items():
        mine = mine[mine[c] == v]
    vals = mine["value"].astype(float)
    if ceiling is not None:
        vals = vals.clip(upper=ceiling)
    per = mine.assign(value=vals).groupby(["image", "generation"])["value"].mean()
    for _, curve in per.groupby(level="image"):
        gens = curve.index.get_level_values("generation")
        ax.plot(
            gens,
            curve.to_numpy(),
            color=line.get_color(),
            linestyle=line.get_linestyle(),
            linewidth=0.5 * line.get_linewidth(),
            alpha=0.5,
        )


def _mark_thresholds(ax: Any, thresholds: list[Any]) -> None:
    """Collapse thresholds inside the data's range; the axis range never moves for them. The
    label goes in the corner (left or right, above or below the line) with the fewest data
    points under it, so it never sits on the curves when there is free space."""
    lo, hi = ax.get_ylim()
    for t in thresholds:
        if lo <= t.value <= hi:
            x, ha, va = label_spot(ax, t.value)
            ax.axhline(t.value, color="0.35", linestyle=(0, (4, 3)), linewidth=0.8)
            ax.annotate(
                f"threshold {threshold_label(t.metric, t.op, t.value)}",
                (x, t.value),
                xycoords=("axes fraction", "data"),
                ha=ha,
                va=va,
                xytext=(0, 2 if va == "bottom" else -2),
                textcoords="offset points",
                fontsize="x-small",
                color="0.3",
            )
    ax.set_ylim(lo, hi)


def label_spot(
    ax: Any, y: float, width: float = 0.45, height: float = 0.1
) -> tuple[float, str, str]:
    """(x in axes fraction, ha, va) for a label on the horizontal line at ``y``: the corner
    whose box (``width`` x ``height`` of the axes) covers the fewest plotted points."""
    lo, hi = ax.get_ylim()
    x0, x1 = ax.get_xlim()
    pts = [line.get_xydata() for line in ax.get_lines() if len(line.get_xydata())]
    xy = np.concatenate(pts) if pts else np.zeros((0, 2))
    fx = (xy[:, 0] - x0) / ((x1 - x0) or 1)
    fy = (xy[:, 1] - lo) / ((hi - lo) or 1)
    fy0 = (y - lo) / ((hi - lo) or 1)
    best: tuple[int, float, str, str] | None = None
    for x, ha, in_x in ((0.99, "right", fx >= 1 - width), (0.01, "left", fx <= width)):
        for va, in_y in (
            ("bottom", (fy >= fy0) & (fy <= fy0 + height)),
            ("top", (fy <= fy0) & (fy >= fy0 - height)),
        ):
            hits = int((in_x & in_y).sum())
            if best is None or hits < best[0]:
                best = (hits, x, ha, va)
    assert best is not None
    return best[1], best[2], best[3]


def _mark_ceiling(ax: Any, ceiling: float, metric: str) -> None:
    """A dotted line where +inf values are drawn, a tick labelled ∞ and a note saying so."""
    ax.axhline(ceiling, color="0.5", linestyle=":", linewidth=0.8)
    unit = " dB" if label(metric).unit == "dB" else ""
    ax.annotate(
        f"identical images (infinite {label(metric).name}), drawn at {ceiling:g}{unit}",
        (0.01, ceiling),
        xycoords=("axes fraction", "data"),
        xytext=(0, -3),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize="x-small",
        color="0.3",
    )
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, max(hi, ceiling + 0.04 * (ceiling - lo)))
    ticks = [t for t in ax.get_yticks() if lo <= t < ceiling - 0.08 * (ceiling - lo)]
    ax.set_yticks([*ticks, ceiling], [f"{t:g}" for t in ticks] + ["∞"])


def _mark_events(
    ax: Any,
    events: pd.DataFrame,
    row: dict[str, Any],
    line: pd.DataFrame,
    colour: Any,
    handles: dict[str, Any],
) -> None:
    """Mark where chains of this line reached a fixed point (o) or a cycle (D)."""
    from matplotlib.lines import Line2D

    if events.empty or "event" not in events:
        return
    mine = events.dropna(subset=["event"])
    mine = mine[mine["replica"] == 0]
    for c, v in row.items():
        if c in mine:
            mine = mine[mine[c] == v]
    if mine.empty:
        return
    x, y = line["generation"].to_numpy(), line["mean"].to_numpy()
    for kind, marker, name in (("fixed_point", "o", "fixed point"), ("cycle", "D", "cycle")):
        gens = np.unique(mine.loc[mine["event"] == kind, "event_generation"].astype(int))
        gens = gens[(gens >= x.min()) & (gens <= x.max())] if len(x) else gens[:0]
        if len(gens):
            ax.plot(
                gens,
                np.interp(gens, x, y),
                linestyle="none",
                marker=marker,
                markersize=4,
                markerfacecolor="none",
                markeredgecolor=colour,
            )
            handles.setdefault(
                name,
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker=marker,
                    markerfacecolor="none",
                    markeredgecolor="0.2",
                ),
            )
