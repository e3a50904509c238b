"""A generated test chart whose ground truth is known exactly, like a camera-testing target.

The chart is square (``size`` x ``size``) and holds: a sinusoidal Siemens star, a zone plate,
two slanted edges (5 degrees, for MTF50), text lines in DejaVu Sans from 6 to 48 px with their
strings, colour patches with known sRGB values and smooth gradients. Regions are laid out in
percent of the size, so any size from about 256 up works; text keeps its pixel size (legibility
depends on it), and a line that no longer fits is left out of both the image and the metadata.

Every region's ``box`` (x, y, w, h in whole pixels) is the area to *measure*: for edges and
patches it is inset from the drawn pattern (``truth["drawn_box"]``) so that blur leaking in from
the surroundings does not bias the measurement. Continuous coordinates in the truth (centres)
take pixel i to span [i, i+1).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from ..core.errors import ConfigError, ImageError

MIN_SIZE = 256
FONT_NAME = "DejaVu Sans"
FONT_FILE = "DejaVuSans.ttf"
EDGE_ANGLE_DEG = 5.0
EDGE_LEVELS = (64, 191)  # 8-bit; reduced contrast as ISO 12233 advises: no clipping on overshoot
STAR_CYCLES = 36

# Text lines: pixel size -> string. Pangrams exercise most glyphs; the 32 px line is the sign
# from the published experiment.
TEXT_LINES: dict[int, str] = {
    6: "Sphinx of black quartz, judge my vow",
    8: "Pack my box with five dozen liquor jugs",
    10: "How vexingly quick daft zebras jump",
    12: "The five boxing wizards jump quickly",
    14: "Jackdaws love my big sphinx of quartz",
    16: "Quick zephyrs blow, vexing daft Jim",
    20: "Bright vixens jump; dozy fowl quack",
    24: "Waltz, bad nymph, for quick jigs vex",
    32: "NO CASH LEFT ON PREMISES",
    40: "Glib jocks quiz nymph",
    48: "Fjord vex",
}

# Colour patches: name -> 8-bit sRGB. Neutrals, primaries/secondaries, and common natural colours.
PATCHES: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "gray20": (51, 51, 51),
    "gray40": (102, 102, 102),
    "gray60": (153, 153, 153),
    "gray80": (204, 204, 204),
    "white": (255, 255, 255),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "yellow": (255, 255, 0),
    "dark_skin": (115, 82, 68),
    "light_skin": (194, 150, 130),
    "sky": (98, 122, 157),
    "foliage": (87, 108, 67),
    "violet": (133, 128, 177),
    "teal": (103, 189, 170),
    "orange": (214, 126, 44),
    "indigo": (80, 91, 166),
    "rose": (193, 90, 99),
    "plum": (94, 60, 108),
    "lime": (157, 188, 64),
    "amber": (224, 163, 46),
}
PATCH_COLUMNS = 12

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Region:
    """One measurable area of the chart: ``box`` is (x, y, w, h) in pixels."""

    name: str
    kind: str  # star | zone_plate | edge | text | patch | gradient
    box: Box
    truth: dict[str, Any] = field(default_factory=dict)

    def crop(self, img: Tensor) -> Tensor:
        """The region of an (N x) 3 x H x W tensor."""
        x, y, w, h = self.box
        return img[..., y : y + h, x : x + w]


@dataclass
class Chart:
    """The chart image (1 x 3 x S x S float32, exactly what the PNG holds) and its regions."""

    image: Tensor
    regions: list[Region]

    @property
    def size(self) -> int:
        return int(self.image.shape[-1])

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise ConfigError(
            f"chart region {name!r}", "not on this chart", f"use one of {self.names()}"
        )

    def names(self, kind: str | None = None) -> list[str]:
        return [r.name for r in self.regions if kind is None or r.kind == kind]

    def metadata(self) -> dict[str, Any]:
        return {
            "generator": "roundtrip_ml.imaging.chart",
            "version": 1,
            "size": [self.size, self.size],
            "font": {"name": FONT_NAME, "file": FONT_FILE},
            "regions": [asdict(r) | {"box": list(r.box)} for r in self.regions],
        }


def _px(size: int, pct: float) -> int:
    return round(size * pct / 100.0)


def _box(size: int, x: float, y: float, w: float, h: float) -> Box:
    """A box given in percent of the chart size, in whole pixels."""
    x0, y0 = _px(size, x), _px(size, y)
    return x0, y0, _px(size, x + w) - x0, _px(size, y + h) - y0


def _inset(box: Box, frac: float) -> Box:
    x, y, w, h = box
    dx, dy = round(w * frac), round(h * frac)
    return x + dx, y + dy, w - 2 * dx, h - 2 * dy


def font_path() -> Path:
    """DejaVu Sans as shipped inside matplotlib (a dependency): same glyphs everywhere."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONT_FILE
    if not path.exists():
        raise ConfigError(
            FONT_FILE, f"not found at {path}", "reinstall matplotlib (it ships DejaVu Sans)"
        )
    return path


def _pixel_grid(w: int, h: int, ss: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sample positions (pixel centres, or ss x ss sub-pixel centres) relative to the box centre."""
    xs = (np.arange(w * ss) + 0.5) / ss - w / 2
    ys = (np.arange(h * ss) + 0.5) / ss - h / 2
    return np.meshgrid(xs, ys)


def _star(w: int, h: int, ss: int = 4) -> np.ndarray:
    """Sinusoidal Siemens star, box-filtered from ss x ss sub-samples to tame centre aliasing."""
    x, y = _pixel_grid(w, h, ss)
    r = np.hypot(x, y)
    v = 0.5 + 0.4 * np.sin(STAR_CYCLES * np.arctan2(y, x))
    v[r > min(w, h) / 2] = 0.5
    return v.reshape(h, ss, w, ss).mean(axis=(1, 3))


def _zone_plate(w: int, h: int) -> np.ndarray:
    """Circular zone plate: local frequency f_max * r / R, reaching 0.5 cycles/px at the rim."""
    x, y = _pixel_grid(w, h)
    r = np.hypot(x, y)
    radius = min(w, h) / 2
    v = 0.5 + 0.4 * np.cos(np.pi * 0.5 * r**2 / radius)
    v[r > radius] = 0.5
    return v


def _edge(w: int, h: int, vertical: bool) -> np.ndarray:
    """An ideal step through the box centre, tilted EDGE_ANGLE_DEG, sampled at pixel centres.

    Point sampling (no anti-aliasing) makes the chart's own edge an exact step, so any
    measured MTF loss belongs to the processing, not to the chart.
    """
    x, y = _pixel_grid(w, h)
    t = math.tan(math.radians(EDGE_ANGLE_DEG))
    d = (x - y * t) if vertical else (y - x * t)
    return np.where(d > 0, EDGE_LEVELS[1], EDGE_LEVELS[0]) / 255.0


def _hue_ramp(w: int, h: int) -> np.ndarray:
    """Fully saturated hue sweep 0..1 (HSV, V=1) left to right."""
    hue = np.linspace(0.0, 1.0, w)
    k = (np.array([5.0, 3.0, 1.0])[:, None] + hue[None, :] * 6.0) % 6.0
    rgb = 1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)  # HSV->RGB with S = V = 1
    return np.broadcast_to(rgb[:, None, :], (3, h, w))


def _text_lines(panel: Box, sizes: tuple[int, ...]) -> tuple[np.ndarray, list[Region]]:
    """Render the text lines that fit in ``panel`` (black on white); skip the ones that don't."""
    px, py, pw, ph = panel
    canvas = Image.new("L", (pw, ph), 255)
    draw = ImageDraw.Draw(canvas)
    path = font_path()
    regions: list[Region] = []
    y = 0
    for size in sizes:
        text = TEXT_LINES[size]
        font = ImageFont.truetype(str(path), size)
        ascent, descent = font.getmetrics()
        pad = max(2, size // 3)
        left, _, right, _ = font.getbbox(text, anchor="ls")
        line_w, line_h = right - min(left, 0), ascent + descent
        if line_w + 2 * pad > pw:
            continue  # too wide at this chart size: leave it out, record only what's drawn
        if y + line_h + 2 * pad > ph:
            break  # no vertical room for this or any larger line
        draw.text((pad - min(left, 0), y + pad + ascent), text, font=font, fill=0, anchor="ls")
        box = (px, py + y, int(line_w) + 2 * pad, int(line_h) + 2 * pad)
        truth = {"text": text, "size_px": size, "font": FONT_NAME}
        regions.append(Region(f"text_{size}px", "text", box, truth))
        y += line_h + 2 * pad
    return np.asarray(canvas, dtype=np.float64) / 255.0, regions


def make_chart(size: int = 2000) -> Chart:
    """Build the chart at ``size`` x ``size``; the image is 8-bit quantized like the PNG."""
    if size < MIN_SIZE:
        raise ConfigError("--size", f"{size} is too small for the chart", f"use {MIN_SIZE} or more")
    img = np.ones((3, size, size))
    regions: list[Region] = []

    def paint(box: Box, values: np.ndarray) -> None:
        x, y, w, h = box
        img[:, y : y + h, x : x + w] = values

    star = _box(size, 2, 2, 38, 38)
    paint(star, _star(star[2], star[3]))
    sx, sy, sw, sh = star
    regions.append(
        Region(
            "star",
            "star",
            star,
            {
                "cycles": STAR_CYCLES,
                "center": [sx + sw / 2, sy + sh / 2],
                "radius_px": min(sw, sh) / 2,
                "profile": "0.5 + 0.4 sin(cycles * angle)",
                "frequency": "cycles / (2 pi r) cycles/px at radius r",
            },
        )
    )

    zone = _box(size, 42, 2, 38, 38)
    paint(zone, _zone_plate(zone[2], zone[3]))
    zx, zy, zw, zh = zone
    regions.append(
        Region(
            "zone_plate",
            "zone_plate",
            zone,
            {
                "center": [zx + zw / 2, zy + zh / 2],
                "radius_px": min(zw, zh) / 2,
                "f_max_cycles_per_px": 0.5,
                "profile": "0.5 + 0.4 cos(pi f_max r^2 / radius)",
                "frequency": "f_max * r / radius cycles/px at radius r",
            },
        )
    )

    for name, vertical, box in (
        ("edge_v", True, _box(size, 82, 2, 16, 18)),
        ("edge_h", False, _box(size, 82, 22, 16, 18)),
    ):
        paint(box, _edge(box[2], box[3], vertical))
        regions.append(
            Region(
                name,
                "edge",
                _inset(box, 0.1),
                {
                    "angle_deg": EDGE_ANGLE_DEG,
                    "orientation": "vertical" if vertical else "horizontal",
                    "low_srgb8": EDGE_LEVELS[0],
                    "high_srgb8": EDGE_LEVELS[1],
                    "profile": "ideal step sampled at pixel centres (MTF 1 at all frequencies)",
                    "drawn_box": list(box),
                },
            )
        )

    px, py, pw, ph = _box(size, 2, 42, 96, 12)
    rows = math.ceil(len(PATCHES) / PATCH_COLUMNS)
    for i, (name, rgb) in enumerate(PATCHES.items()):
        r, c = divmod(i, PATCH_COLUMNS)
        x0, x1 = px + c * pw // PATCH_COLUMNS, px + (c + 1) * pw // PATCH_COLUMNS
        y0, y1 = py + r * ph // rows, py + (r + 1) * ph // rows
        drawn = (x0, y0, x1 - x0, y1 - y0)
        paint(drawn, np.array(rgb, dtype=np.float64)[:, None, None] / 255.0)
        regions.append(
            Region(
                f"patch_{name}",
                "patch",
                _inset(drawn, 0.2),
                {
                    "srgb8": list(rgb),
                    "drawn_box": list(drawn),
                },
            )
        )

    gray = _box(size, 2, 56, 96, 5)
    paint(gray, np.broadcast_to(np.linspace(0.0, 1.0, gray[2]), (3, gray[3], gray[2])))
    regions.append(
        Region(
            "gradient_gray",
            "gradient",
            gray,
            {
                "start": 0.0,
                "end": 1.0,
                "direction": "left to right",
                "profile": "linear in sRGB value",
            },
        )
    )
    hue = _box(size, 2, 62, 96, 5)
    paint(hue, _hue_ramp(hue[2], hue[3]))
    regions.append(
        Region(
            "gradient_hue",
            "gradient",
            hue,
            {
                "start": 0.0,
                "end": 1.0,
                "direction": "left to right",
                "profile": "HSV hue 0..1 at S = V = 1",
            },
        )
    )

    panel = _box(size, 2, 69, 96, 29)
    text, text_regions = _text_lines(panel, tuple(sorted(TEXT_LINES)))
    paint(panel, text[None])
    regions.extend(text_regions)

    q = np.round(np.clip(img, 0.0, 1.0) * 255.0) / 255.0
    return Chart(torch.from_numpy(q.astype(np.float32))[None], regions)


def write_chart(path: str | Path, size: int = 2000) -> tuple[Path, Path]:
    """Write the chart PNG (8-bit RGB) and its metadata JSON beside it (same stem)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(str(path), "the chart is written as PNG", "give a path ending in .png")
    chart = make_chart(size)
    arr = (chart.image[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    meta_path = path.with_suffix(".json")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr, "RGB").save(path)
        meta_path.write_text(json.dumps(chart.metadata(), indent=2) + "\n")
    except OSError as e:
        raise ImageError(str(path), f"cannot write ({e.strerror or e})", "pick another path") from e
    return path, meta_path


def read_regions(meta_path: str | Path) -> list[Region]:
    """The regions recorded in a chart's metadata JSON."""
    meta_path = Path(meta_path)
    try:
        meta = json.loads(meta_path.read_text())
        return [
            Region(r["name"], r["kind"], tuple(r["box"]), r.get("truth", {}))  # type: ignore[arg-type]
            for r in meta["regions"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            str(meta_path),
            f"not a readable chart metadata file ({e})",
            "regenerate it with `roundtrip chart OUT.png`",
        ) from e
