"""Leaderboard figures from its tables: forest plot, trade-off scatter, difference curves.

Each function takes a table (leaderboard.csv's columns, or the per-generation curves) and
returns a matplotlib Figure; nothing here computes a statistic. Design choices a reviewer
asks for: paired differences to the reference (0 = the reference, drawn), intervals only
where n >= 3, group letters beside the names, one panel per scale and codec, axes from the
data, a legend for every colour, and labels that never overlap (a label that cannot be
placed clear of the others is left out; every model is in leaderboard.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from .plots import style_context

__all__ = ["curves_figure", "family", "forest_figure", "tradeoff_figure"]

_FAMILIES = ("realcugan", "waifu2x", "span", "srmd", "realesr", "swinir", "realsr", "hat", "dat")


def family(name: str) -> str:
    """The model family a registry name starts with ("classical" for resamplers, "other"); a
    board's upscale-path entry (``lanczos3 [2x2]``) is in its model's family."""
    from ..imaging.kernels import is_classical

    name = name.split(" [", 1)[0]
    if is_classical(name):
        return "classical"
    low = name.lower()
    return next((f for f in _FAMILIES if low.startswith(f)), "other")


def _colours(names: list[str]) -> dict[str, Any]:
    fams = sorted({family(n) for n in names} - {"classical"})
    out: dict[str, Any] = {f: f"C{i % 10}" for i, f in enumerate(fams)}
    out["classical"] = "k"
    return out


def _conditions(df: pd.DataFrame) -> list[tuple[int, str]]:
    return [
        (int(s), str(c))
        for s, c in df[["scale", "codec"]]
        .drop_duplicates()
        .sort_values(["scale", "codec"])
        .to_numpy()
    ]


def forest_figure(table: pd.DataFrame, *, reference: str, xlabel: str, title: str = "") -> Any:
    """Paired difference to the reference with its 95% CI, one panel per scale and codec,
    sorted by rank, the reference at 0, group letters at the right."""
    from matplotlib.figure import Figure

    conds = _conditions(table)
    rows = max(
        int((table["scale"].astype(int).eq(s) & table["codec"].eq(c)).sum()) for s, c in conds
    )
    colours = _colours(list(table["upscaler"]))
    with style_context("paper"):
        fig = Figure(figsize=(3.4 * len(conds) + 0.6, 0.9 + 0.17 * rows), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(conds), squeeze=False)[0])
        for ax, (scale, codec) in zip(axes, conds, strict=True):
            g = table[(table["scale"].astype(int) == scale) & (table["codec"] == codec)]
            g = g.sort_values(["rank", "upscaler"]).reset_index(drop=True)
            y = np.arange(len(g))[::-1]
            has_ci = np.isfinite(g["ci_low"].to_numpy(dtype=float))
            for yi, (_, r), ci in zip(y, g.iterrows(), has_ci, strict=True):
                col = colours[family(str(r["upscaler"]))]
                if ci:
                    ax.plot([r["ci_low"], r["ci_high"]], [yi, yi], color=col, lw=1.2)
                ax.plot(
                    r["paired_diff"],
                    yi,
                    "D" if r["upscaler"] == reference else "o",
                    color=col,
                    ms=3.5,
                )
            ax.axvline(0, color="0.4", lw=0.8, ls="--", zorder=0)
            ax.set_yticks(
                y,
                [f"{u} (reference)" if u == reference else str(u) for u in g["upscaler"]],
                fontsize=6,
            )
            ax.set_ylim(len(g) - rows - 0.3, len(g) - 0.3)  # one row spacing in every panel
            right = ax.twinx()
            right.set_ylim(ax.get_ylim())
            right.set_yticks(y, [str(v) if v else "" for v in g["group"].fillna("")], fontsize=6)
            right.tick_params(length=0)
            n = int(g["n"].min())
            ax.set_title(
                f"x{scale}, {codec} (n = {n} photos"
                + ("" if has_ci.any() else "; no CI under 3")
                + ")",
                fontsize=8,
            )
            ax.set_xlabel(xlabel, fontsize=7)
            ax.grid(axis="x", lw=0.3, alpha=0.5)
        _family_legend(fig, colours, table["upscaler"])
        fig.suptitle(
            (title + "\n" if title else "") + f"paired difference to {reference} "
            "(95% CI); letters: groups the data cannot tell apart",
            fontsize=8,
        )
    return fig


def _family_legend(fig: Any, colours: dict[str, Any], upscalers: Iterable[Any]) -> None:
    """One legend entry per model family drawn, below the panels."""
    shown = {family(str(u)) for u in upscalers}
    handles = [_handle(c, f) for f, c in colours.items() if f in shown]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 8),
        fontsize=6,
        frameon=False,
    )


def _handle(colour: Any, label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=colour, marker="o", ls="", ms=4, label=label)


def _place_labels(ax: Any, xs: np.ndarray, ys: np.ndarray, labels: list[str]) -> int:
    """Greedy: each label at the first of 8 offsets where it overlaps no label, no point and
    stays inside the axes; a label with no free spot is left out. Returns how many fit."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    taken = []
    pts = ax.transData.transform(np.column_stack([xs, ys]))
    for px, py in pts:
        taken.append((px - 3, py - 3, px + 3, py + 3))
    box = ax.get_window_extent(renderer)
    offsets = [
        (4, 3, "left", "bottom"),
        (4, -3, "left", "top"),
        (-4, 3, "right", "bottom"),
        (-4, -3, "right", "top"),
        (0, 6, "center", "bottom"),
        (0, -6, "center", "top"),
        (8, 0, "left", "center"),
        (-8, 0, "right", "center"),
    ]
    placed = 0
    for x, y, text in zip(xs, ys, labels, strict=True):
        for dx, dy, ha, va in offsets:
            t = ax.annotate(
                text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=5, ha=ha, va=va
            )
            bb = t.get_window_extent(renderer)
            rect = (bb.x0, bb.y0, bb.x1, bb.y1)
            inside = bb.x0 >= box.x0 and bb.x1 <= box.x1 and bb.y0 >= box.y0 and bb.y1 <= box.y1
            if inside and not any(
                rect[0] < o[2] and rect[2] > o[0] and rect[1] < o[3] and rect[3] > o[1]
                for o in taken
            ):
                taken.append(rect)
                placed += 1
                break
            t.remove()
    return placed


def tradeoff_figure(df: pd.DataFrame, *, reference: str, generations: int, title: str = "") -> Any:
    """First-generation PSNR difference (x) against the last generation's (y, 95% CI), both
    paired to the reference; one panel per scale and codec, colour = family."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    conds = _conditions(df)
    colours = _colours(list(df["upscaler"]))
    with style_context("paper"):
        fig = Figure(figsize=(3.6 * len(conds) + 0.4, 3.9), layout="constrained")
        FigureCanvasAgg(fig)  # label placement measures text: it needs a renderer
        axes = np.atleast_1d(fig.subplots(1, len(conds), squeeze=False)[0])
        for ax, (scale, codec) in zip(axes, conds, strict=True):
            g = df[(df["scale"].astype(int) == scale) & (df["codec"] == codec)]
            for _, r in g.iterrows():
                col = colours[family(str(r["upscaler"]))]
                lo, hi = r["ci_low"], r["ci_high"]
                yerr = (
                    [[r["paired_diff"] - lo], [hi - r["paired_diff"]]]
                    if math.isfinite(lo)
                    else None
                )
                ax.errorbar(
                    r["g1_diff"],
                    r["paired_diff"],
                    yerr=yerr,
                    fmt="o",
                    ms=3,
                    color=col,
                    lw=0.6,
                    capsize=1.5,
                    alpha=0.85,
                )
            ax.axhline(0, color="0.5", lw=0.6, ls="--", zorder=0)
            ax.axvline(0, color="0.5", lw=0.6, ls="--", zorder=0)
            ax.margins(0.08)
            ax.set_title(f"x{scale}, {codec} (n = {int(g['n'].min())})", fontsize=8)
            ax.set_xlabel(f"generation 1: PSNR - {reference} (dB)", fontsize=7)
            ax.set_ylabel(f"generation {generations}: PSNR - {reference} (dB)", fontsize=7)
        fig.canvas.draw()  # final limits before labels are placed
        for ax, (scale, codec) in zip(axes, conds, strict=True):
            g = df[(df["scale"].astype(int) == scale) & (df["codec"] == codec)]
            g = g.sort_values("rank")  # the best and worst get their labels placed first
            order = list(g.index[:3]) + list(g.index[-3:]) + list(g.index[3:-3])
            g = g.loc[list(dict.fromkeys(order))]
            _place_labels(
                ax,
                g["g1_diff"].to_numpy(float),
                g["paired_diff"].to_numpy(float),
                [str(u) for u in g["upscaler"]],
            )
        _family_legend(fig, colours, df["upscaler"])
        fig.suptitle(
            (title + "\n" if title else "") + "first-generation fidelity vs "
            "fidelity after the last generation, paired to "
            + reference
            + " (labels where they fit)",
            fontsize=8,
        )
    return fig


def curves_figure(cv: pd.DataFrame, *, reference: str, title: str = "", ncols: int = 8) -> Any:
    """Small multiples: each model's paired PSNR difference to the reference per generation,
    with its 95% CI band; one shared y axis, so panels compare."""
    from matplotlib.figure import Figure

    cv = cv[cv["upscaler"] != reference]
    keys = (
        cv[["scale", "codec", "upscaler"]]
        .drop_duplicates()
        .sort_values(["scale", "codec", "upscaler"])
        .to_numpy()
    )
    n = max(len(keys), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    colours = _colours(list(cv["upscaler"]))
    with style_context("paper"):
        fig = Figure(figsize=(1.6 * ncols + 0.5, 1.0 * nrows + 0.8), layout="constrained")
        axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
        for ax, (scale, codec, up) in zip(axes, keys, strict=False):
            g = cv[(cv["upscaler"] == up) & (cv["scale"] == scale) & (cv["codec"] == codec)]
            g = g.sort_values("generation")
            col = colours[family(str(up))]
            if np.isfinite(g["ci_low"].to_numpy(float)).any():
                ax.fill_between(
                    g["generation"], g["ci_low"], g["ci_high"], color=col, alpha=0.25, lw=0
                )
            ax.plot(g["generation"], g["paired_diff"], color=col, lw=1)
            ax.axhline(0, color="0.4", lw=0.5, ls="--")
            named = f"x{scale}" in str(up)  # most names carry their scale already
            ax.set_title(
                f"{up}" + ("" if named else f" x{scale}") + ("" if codec == "png" else f" {codec}"),
                fontsize=5,
            )
            ax.tick_params(labelsize=5)
        for i, ax in enumerate(axes):
            if i >= len(keys):
                ax.set_visible(False)
            elif i + ncols >= len(keys):  # nothing drawn below: it shows the generations
                ax.xaxis.set_tick_params(labelbottom=True)
        from matplotlib.ticker import MaxNLocator

        axes[0].xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        fig.supxlabel("generation", fontsize=7)
        fig.supylabel(f"PSNR - {reference} (dB)", fontsize=7)
        fig.suptitle(
            (title + "\n" if title else "") + "paired PSNR difference to "
            f"{reference} per generation (band: 95% CI)",
            fontsize=8,
        )
    return fig
