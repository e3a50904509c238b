"""Contact sheets: rows = recipes, columns = generations, from the saved frames, with an
optional zoomed inset of one region (the published sign) beside each tile.

Tiles are drawn pixel for pixel (nearest neighbour when enlarged) so what the sheet shows is
what the chain stored; the scale note under the sheet says how much each tile was scaled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..core.errors import ConfigError
from .data import Runs, format_ranges, load_runs, pick_chains

DEFAULT_GENERATIONS = (0, 1, 2, 5, 10, 20, 50, 100, 200)
DPI = 200
TILE_IN = (1.0, 1.8)  # smallest and largest tile side shown, inches


@dataclass
class SheetResult:
    paths: list[Path]
    generations: list[int]  # the columns drawn
    missing: list[int] = field(default_factory=list)  # asked for, but no frame saved
    image: str = ""
    note: str = ""
    # where each tile lies in the PNG: (chain_id, generation) -> (left, top, right, bottom) px
    tiles: dict[tuple[str, int], tuple[int, int, int, int]] = field(default_factory=dict)
    figure: Any = None  # the matplotlib Figure, to restyle or save elsewhere
    pages: list[SheetResult] = field(default_factory=list)  # layout="pages": one per image

    def to_image(self) -> Image.Image:
        """The sheet as a PIL image at the sheet's dpi (what the PNG holds), e.g. for a
        notebook cell or to paste into another figure."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(self.figure)
        self.figure.set_dpi(DPI)
        canvas.draw()
        return Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")


def parse_crop(text: str | None) -> tuple[int, int, int, int] | None:
    """``"x,y,w,h"`` in pixels of the original image -> a tuple."""
    if not text:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--crop {text}", "not four integers", "write x,y,w,h: 10,20,64,32"
        ) from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise ConfigError(f"--crop {text}", "needs x, y >= 0 and w, h > 0", "e.g. 10,20,64,32")
    return x, y, w, h


def check_crop(crop: tuple[int, int, int, int] | None, h: int, w: int) -> None:
    if crop and (crop[0] + crop[2] > w or crop[1] + crop[3] > h):
        raise ConfigError(
            f"--crop {','.join(map(str, crop))}",
            f"outside the {w}x{h} (WxH) frames",
            "pick a region inside the image",
        )


def choose_generations(
    saved: set[int], last: int, asked: Sequence[int] | None
) -> tuple[list[int], list[int]]:
    """(columns to draw, generations asked for that have no saved frame).

    By default: the usual 0, 1, 2, 5, 10, ... up to the last generation, plus the last one.
    Generations past the last are dropped and the last one shown instead (as the tables do).
    """
    add_last = asked is None or any(g > last for g in asked)
    asked = DEFAULT_GENERATIONS if asked is None else asked
    asked = sorted({g for g in asked if g <= last} | ({last} if add_last else set()))
    return [g for g in asked if g in saved], [g for g in asked if g not in saved]


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def contact_sheet(
    run: Runs | str | Path,
    out_dir: str | Path | None = None,
    *,
    generations: Sequence[int] | None = None,
    crop: tuple[int, int, int, int] | None = None,
    image: str | None = None,
    chains: list[str] | None = None,
    formats: Sequence[str] = ("png", "pdf"),
    stem: str = "sheet",
    layout: str = "grid",
    caption: bool = True,
) -> SheetResult:
    """Draw the sheet of every recipe for every image, written to ``out_dir`` when given.

    ``layout="grid"``: one sheet, a block of rows per image; ``layout="pages"``: one sheet
    per image (``STEM-IMAGE.png``), returned in ``pages`` (the first is the result itself);
    ``image="NAME"``: that image alone. ``caption=False`` leaves out the line under the
    sheet that gives the tile size. The result holds the Figure and ``to_image()``."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from .plots import save_figure, style_context

    if layout not in ("grid", "pages"):
        raise ConfigError(
            f"layout {layout!r}",
            "unknown sheet layout",
            "use 'grid' (one sheet) or 'pages' (one sheet per image)",
        )
    runs = run if isinstance(run, Runs) else load_runs(run)
    if layout == "pages" and image is None and chains is None:
        names = sorted(runs.chains["image_name"].unique())
        pages = [
            contact_sheet(
                runs,
                out_dir,
                generations=generations,
                crop=crop,
                image=n,
                formats=formats,
                stem=f"{stem}-{n}",
                caption=caption,
            )
            for n in names
        ]
        first = pages[0]
        first.paths = [p for page in pages for p in page.paths]
        first.pages = pages
        return first
    rows = pick_chains(runs, image, chains, every_image=True)
    frames = [runs.frames(r.run_id, r.chain_id) for r in rows.itertuples()]
    saved = set().union(*(f.keys() for f in frames))
    if not saved:
        raise ConfigError(
            str(runs.root),
            "has no saved frames",
            "run with --frame-stride N (N >= 1) to keep frames",
        )
    cols, missing = choose_generations(saved, runs.generations(), generations)
    if not cols:
        raise ConfigError(
            f"--generations {','.join(map(str, missing))}",
            "none saved",
            f"saved generations: {format_ranges(sorted(saved))}",
        )
    h, w = int(rows["height"].max()), int(rows["width"].max())
    check_crop(crop, h, w)

    # a whole-number zoom when enlarging keeps every stored pixel a square block
    zoom = max(1, int(np.ceil(TILE_IN[0] * DPI / w)))
    tile_w = min(w * zoom / DPI, TILE_IN[1])
    tile_h = tile_w * h / w
    inset_w = tile_h * crop[2] / crop[3] if crop else 0.0
    gap, label_w, top, bottom = 0.06, 1.35, 0.3, 0.45
    cell_w = tile_w + (inset_w + gap if crop else 0.0)
    fig_w = label_w + len(cols) * (cell_w + gap)
    fig_h = top + len(rows) * (tile_h + gap) + bottom
    shown = tile_w * DPI / w
    tiles: dict[tuple[str, int], tuple[int, int, int, int]] = {}

    with style_context("paper"):
        fig = Figure(figsize=(fig_w, fig_h))
        for i, (row, fr) in enumerate(zip(rows.itertuples(), frames, strict=True)):
            y0 = fig_h - top - (i + 1) * (tile_h + gap)
            fig.text(
                0.08 / fig_w,
                (y0 + tile_h / 2) / fig_h,
                _wrap(row.label),
                ha="left",
                va="center",
                fontsize=7,
            )
            for j, g in enumerate(cols):
                x0 = label_w + j * (cell_w + gap)
                ax = fig.add_axes((x0 / fig_w, y0 / fig_h, tile_w / fig_w, tile_h / fig_h))
                top_px = round((fig_h - y0 - tile_h) * DPI)
                tiles[(row.chain_id, g)] = (
                    round(x0 * DPI),
                    top_px,
                    round((x0 + tile_w) * DPI),
                    round((fig_h - y0) * DPI),
                )
                _clean(ax)
                if i == 0:
                    fig.text(
                        (x0 + cell_w / 2) / fig_w,
                        (y0 + tile_h + 0.06) / fig_h,
                        f"generation {g}",
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
                if g not in fr:
                    ax.set_facecolor("0.85")
                    ax.text(
                        0.5,
                        0.5,
                        "not kept",
                        ha="center",
                        va="center",
                        fontsize=6,
                        transform=ax.transAxes,
                    )
                    continue
                a = _read(fr[g])
                ax.imshow(a, interpolation="nearest" if shown >= 1 else "antialiased")
                if crop:
                    cx, cy, cw, ch = crop
                    ax.add_patch(
                        Rectangle(
                            (cx - 0.5, cy - 0.5),
                            cw,
                            ch,
                            fill=False,
                            edgecolor="#ff2d2d",
                            linewidth=0.8,
                        )
                    )
                    ins = fig.add_axes(
                        (
                            (x0 + tile_w + gap / 2) / fig_w,
                            y0 / fig_h,
                            inset_w / fig_w,
                            tile_h / fig_h,
                        )
                    )
                    _clean(ins, edge="#ff2d2d")
                    ins.imshow(a[cy : cy + ch, cx : cx + cw], interpolation="nearest")
        note = _note(rows, h, w, shown, crop, tile_h, missing, saved)
        if caption:
            fig.text(
                0.08 / fig_w, 0.12 / fig_h, note, ha="left", va="bottom", fontsize=6, color="0.25"
            )
        paths = save_figure(fig, Path(out_dir), stem, formats, dpi=DPI) if out_dir else []
    image_name = str(rows["image_name"].iloc[0])
    return SheetResult(paths, cols, missing, image_name, note, tiles, fig)


def _note(rows, h, w, shown, crop, tile_h, missing, saved) -> str:
    """The caption: plain words a reviewer can keep (what is shown, at what size)."""
    sizes = rows.groupby("image_name", sort=True)[["width", "height"]].max()
    img = ", ".join(f"{n} {int(r.width)}x{int(r.height)}" for n, r in sizes.iterrows())
    parts = [f"{img} pixels, shown at {shown:.2g}x"]
    if crop:
        zoom = tile_h * DPI / crop[3]
        parts.append(
            f"inset: region at ({crop[0]}, {crop[1]}), {crop[2]}x{crop[3]} pixels, "
            f"enlarged {zoom:.2g}x"
        )
    if missing:
        parts.append(
            f"no image kept for generation {format_ranges(missing)} (kept: "
            f"{format_ranges(sorted(saved))})"
        )
    return "; ".join(parts) + "."


def _wrap(label: str, width: int = 22) -> str:
    parts, line = [], ""
    for word in label.split(" "):
        if line and len(line) + len(word) + 1 > width:
            parts.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*parts, line])


def _clean(ax, edge: str | None = None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for s in ax.spines.values():
        s.set_visible(edge is not None)
        if edge:
            s.set_edgecolor(edge)
            s.set_linewidth(0.8)
