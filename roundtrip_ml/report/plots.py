"""Metric-vs-generation figures: one panel per metric, one line per recipe, mean over images
with a seeded 95% bootstrap band, collapse thresholds and convergence events marked.

Written as PDF and SVG with embedded fonts (TrueType in PDF, glyph paths in SVG, so journals'
checkers and other machines see the same text) and PNG at 300 dpi.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..metrics.summary import DEFAULT_THRESHOLDS, parse_thresholds
from .data import (
    Runs,
    aggregate,
    codec_linestyles,
    collapse_summary,
    load_runs,
    metric_ceiling,
    recipe_label,
    select,
    upscaler_colours,
)

# Figure widths in inches: a journal column and a full page width (IEEE/ACM/Elsevier agree
# within a few mm); slides are 16:9 at 10 inches.
WIDTHS = {"single": 3.5, "double": 7.16}
SLIDES_WIDTH = 10.0
FORMATS = ("pdf", "svg", "png")
PNG_DPI = 300

LABELS = {
    "psnr": "PSNR (dB)",
    "psnr_y": "PSNR-Y (dB)",
    "ssim": "SSIM",
    "ssim_y": "SSIM-Y",
    "ms_ssim": "MS-SSIM",
    "haarpsi": "HaarPSI",
    "gmsd": "GMSD",
    "lpips": "LPIPS",
    "lpips_vgg": "LPIPS (VGG)",
    "dists": "DISTS",
    "de2000_mean": "ΔE00 mean",
    "de2000_p95": "ΔE00 p95",
    "mse": "MSE",
}
PREFERRED = ["psnr", "psnr_y", "ssim", "ssim_y", "ms_ssim", "lpips", "dists", "haarpsi", "gmsd"]

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
    "paper": {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "legend.fontsize": 6,
              "xtick.labelsize": 6, "ytick.labelsize": 6, "lines.linewidth": 1.0},
    "slides": {"font.size": 14, "axes.titlesize": 14, "axes.labelsize": 14,
               "legend.fontsize": 12, "xtick.labelsize": 12, "ytick.labelsize": 12,
               "lines.linewidth": 2.0},
}


def metric_label(metric: str) -> str:
    return LABELS.get(metric, metric)


def default_metrics(runs: Runs, reference: str = "original") -> list[str]:
    """Every metric stored against ``reference``, the usual ones first."""
    have = set(runs.metrics.loc[runs.metrics["reference"] == reference, "metric"])
    return [m for m in PREFERRED if m in have] + sorted(have - set(PREFERRED))


def _as_runs(run: Runs | str | Path) -> Runs:
    return run if isinstance(run, Runs) else load_runs(run)


def style_context(style: str):
    import matplotlib

    if style not in STYLES:
        raise ConfigError(f"--style {style}", "unknown style", f"use one of {', '.join(STYLES)}")
    return matplotlib.rc_context({**_BASE_RC, **STYLES[style]})


def save_figure(fig: Any, out_dir: Path, stem: str, formats: Sequence[str] = FORMATS,
                dpi: int = PNG_DPI) -> list[Path]:
    """Write ``fig`` as ``stem.<fmt>`` for each format; no timestamps, so reruns match."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"pdf": {"CreationDate": None}, "svg": {"Date": None}, "png": {"Software": None}}
    paths = []
    for fmt in formats:
        p = out_dir / f"{stem}.{fmt}"
        fig.savefig(p, dpi=dpi, metadata=meta.get(fmt, {}))
        paths.append(p)
    return paths


def _grid(n: int, layout: str, style: str) -> tuple[int, int, float, float]:
    """(rows, cols, width, height) in inches for ``n`` panels."""
    if style == "slides":
        width, cols = SLIDES_WIDTH, min(n, 3)
    elif layout in WIDTHS:
        width, cols = WIDTHS[layout], (1 if n <= 2 else 2) if layout == "single" else min(n, 3)
    else:
        raise ConfigError(f"layout {layout!r}", "unknown", f"use one of {', '.join(WIDTHS)}")
    rows = math.ceil(n / cols)
    panel_h = width / cols * (0.62 if style == "slides" or cols == 1 else 0.7)
    legend_h = 0.5 if style == "paper" else 1.0
    return rows, cols, width, rows * panel_h + legend_h


@dataclass
class DriftFigure:
    """What was drawn: the files, each line's colour by label, and per metric the value where
    +inf was drawn (absent when the metric had no +inf)."""

    paths: list[Path]
    colours: dict[str, str] = field(default_factory=dict)
    ceilings: dict[str, float] = field(default_factory=dict)


def plot_drift(
    run: Runs | str | Path,
    out_dir: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    by: Sequence[str] = ("upscaler", "codec"),
    reference: str = "original",
    logx: bool = False,
    style: str = "paper",
    layout: str = "double",
    thresholds: str = DEFAULT_THRESHOLDS,
    formats: Sequence[str] = FORMATS,
    n_boot: int = 1000,
    seed: int = 0,
    stem: str | None = None,
) -> DriftFigure:
    """Draw metric-vs-generation panels for a run or sweep; returns the files written.

    ``by`` names the chain columns that make a line (the rest, images included, are averaged).
    Colour follows the upscaler (the same upscaler has the same colour in every figure of a
    run), line style the codec. +inf values (identical images) are drawn at a ceiling above
    every finite value and labelled as such.
    """
    # a bare Figure (no pyplot): no GUI backend, and a notebook's own backend is left alone
    from matplotlib.colors import to_hex
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    runs = _as_runs(run)
    by = list(by)
    bad = [c for c in by if c not in ("upscaler", "downscaler", "scale", "codec", "image")]
    if bad:
        raise ConfigError(f"--by {','.join(bad)}", "not a chain column",
                          "use upscaler, downscaler, scale, codec, image (comma-separated)")
    if runs.is_sweep and "run" in runs.recipe_columns and "run" not in by:
        by.append("run")
    metrics = list(metrics) if metrics else default_metrics(runs, reference)
    have = set(runs.metrics.loc[runs.metrics["reference"] == reference, "metric"])
    missing = [m for m in metrics if m not in have]
    if missing or not metrics:
        raise ConfigError(f"--metrics {','.join(missing) or '(none)'}",
                          f"not stored against {reference!r} in {runs.root}",
                          f"use some of {', '.join(sorted(have)) or 'none: run it first'}")
    colours = upscaler_colours(runs.chains["upscaler"])
    styles = codec_linestyles(runs.chains["codec"])
    parsed = parse_thresholds(thresholds) if reference == "original" else []
    events = collapse_summary(runs, thresholds) if len(runs.fingerprints) else pd.DataFrame()
    label_cols = [c for c in by if runs.metrics[c].nunique() > 1] or by[:1]
    n_images = runs.chains["image_name"].nunique()

    with style_context(style):
        rows, cols, width, height = _grid(len(metrics), layout, style)
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        handles: dict[str, Line2D] = {}
        result = DriftFigure([])
        for ax, metric in zip(axes.flat, metrics, strict=False):
            sel = select(runs.metrics, metric, reference)
            ceiling = metric_ceiling(sel["value"], metric)
            agg = aggregate(sel, by, clip=ceiling, n_boot=n_boot, seed=seed)
            for key, g in agg.groupby(by, sort=True):
                key = key if isinstance(key, tuple) else (key,)
                row = dict(zip(by, key, strict=True))
                label = recipe_label(row, label_cols)
                colour = colours.get(row.get("upscaler", ""), None)
                ls = styles.get(row.get("codec", ""), "-")
                x = g["generation"].to_numpy()
                (line,) = ax.plot(x, g["mean"], color=colour, linestyle=ls, label=label)
                if (g["hi"] > g["lo"]).any():
                    ax.fill_between(x, g["lo"], g["hi"], color=line.get_color(), alpha=0.18,
                                    linewidth=0)
                handles.setdefault(label, line)
                result.colours[label] = to_hex(line.get_color())
                _mark_events(ax, events, row, g, line.get_color(), handles)
            for t in parsed:
                if t.metric == metric:
                    ax.axhline(t.value, color="0.35", linestyle=(0, (4, 3)), linewidth=0.8)
                    ax.annotate(f"collapse: {t.name}", (0.99, t.value),
                                xycoords=("axes fraction", "data"), ha="right", va="bottom",
                                fontsize="x-small", color="0.3")
            if ceiling is not None:
                _mark_ceiling(ax, ceiling, metric)
                result.ceilings[metric] = ceiling
            ax.set_title(f"{metric_label(metric)} vs {reference}")
            ax.set_xlabel("generation")
            if logx:
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(ScalarFormatter())
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.margins(x=0.01)
        for ax in axes.flat[len(metrics):]:
            ax.set_visible(False)
        band = "95% bootstrap CI" if n_images > 1 else "1 image: no CI"
        fig.legend(handles.values(), handles.keys(), loc="outside lower center",
                   ncol=min(len(handles), 2 if style == "paper" and layout == "single" else 4),
                   title=f"mean over {n_images} image{'s' * (n_images != 1)} ({band})",
                   frameon=False)
        stem = stem or f"drift-{reference}-{layout if style == 'paper' else 'slides'}"
        result.paths = save_figure(fig, Path(out_dir), stem, formats)
    return result


def _mark_ceiling(ax: Any, ceiling: float, metric: str) -> None:
    """A dotted line where +inf values are drawn, a tick labelled ∞ and a note saying so."""
    ax.axhline(ceiling, color="0.5", linestyle=":", linewidth=0.8)
    unit = " dB" if metric.startswith("psnr") else ""
    ax.annotate(f"+inf (identical images) drawn at {ceiling:g}{unit}", (0.01, ceiling),
                xycoords=("axes fraction", "data"), xytext=(0, -3), textcoords="offset points",
                ha="left", va="top", fontsize="x-small", color="0.3")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, max(hi, ceiling + 0.04 * (ceiling - lo)))
    ticks = [t for t in ax.get_yticks() if lo <= t < ceiling - 0.08 * (ceiling - lo)]
    ax.set_yticks([*ticks, ceiling], [f"{t:g}" for t in ticks] + ["∞"])


def _mark_events(ax: Any, events: pd.DataFrame, row: dict[str, Any], line: pd.DataFrame,
                 colour: Any, handles: dict[str, Any]) -> None:
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
            ax.plot(gens, np.interp(gens, x, y), linestyle="none", marker=marker,
                    markersize=4, markerfacecolor="none", markeredgecolor=colour)
            handles.setdefault(name, Line2D([], [], linestyle="none", marker=marker,
                                            markerfacecolor="none", markeredgecolor="0.2"))
