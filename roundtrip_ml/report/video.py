"""Videos of a collapse from the saved frames: MP4 (H.264 through PyAV) and a GIF for slides.

Each video frame shows one saved generation of every chosen chain side by side (or the chains
one after another), with the chain names and a generation counter drawn on it. Generations
the frame stride skipped are reported and left out, never interpolated; a chain that lacks a
generation another has gets a grey "not kept" tile. Every image of a run is shown: tiled in one
video (``layout="tiled"``, the default) or one video per image (``layout="per-image"``).

``lossless=True`` writes RGB H.264 at qp 0 (libx264rgb): decoded frames equal the composed
frames bit for bit, for frame-exact review (most browsers cannot play it; the default can).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..core.errors import ConfigError
from .data import Runs, format_ranges, load_runs, pick_chains
from .sheets import check_crop

BANNER = 30  # px: generation counter band at the top
LABEL = 22  # px: chain name band above each tile
GUTTER = 4  # px between tiles
GIF_MAX_WIDTH = 1280
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
TARGET_SECONDS = 6.0  # default length: long enough to watch, whatever the frame count
MAX_AUTO_FPS = 12  # above this a long run plays faster than the eye follows a collapse
MIN_AUTO_FPS = 1


def auto_fps(frames: int) -> Fraction:
    """Frames per second that make ``frames`` last about TARGET_SECONDS (1 to 12 fps): 8 saved
    generations play for 6 s, not 0.67 s; 200 play at 12 fps."""
    fps = min(MAX_AUTO_FPS, max(MIN_AUTO_FPS, frames / TARGET_SECONDS))
    return Fraction(fps).limit_denominator(100)


@dataclass
class VideoResult:
    mp4: Path
    gif: Path | None
    frames: int  # video frames written
    size: tuple[int, int]  # width, height
    generations: list[int]  # generation shown by each video frame, in order
    chains: list[str]
    missing: list[int] = field(default_factory=list)  # 0..last with no saved frame
    lossless: bool = False
    fps: float = 12.0
    videos: list[VideoResult] = field(default_factory=list)  # layout="per-image": one each

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    @property
    def note(self) -> str:
        if not self.missing:
            return "every generation saved"
        return (
            f"images kept for {len(set(self.generations))} generations; not shown (no "
            f"image kept): {format_ranges(self.missing)}"
        )


def _font(size: int) -> ImageFont.FreeTypeFont:
    from ..imaging.chart import font_path

    return ImageFont.truetype(str(font_path()), size)


def _read(path: Path, crop: tuple[int, int, int, int] | None) -> Image.Image:
    with Image.open(path) as opened:
        im = opened.convert("RGB")
        if crop:
            x, y, w, h = crop
            im = im.crop((x, y, x + w, y + h))
        return im


@dataclass
class _Layout:
    cols: int
    rows: int
    tile: tuple[int, int]  # shown tile width, height
    size: tuple[int, int]  # frame width, height (even)


def _layout(n: int, w: int, h: int, side_by_side: bool, max_width: int, min_tile: int) -> _Layout:
    cols = min(n, 4) if side_by_side else 1
    rows = math.ceil(n / cols) if side_by_side else 1
    k = max(1, math.ceil(min_tile / max(w, h)))  # whole-number zoom keeps pixels square
    s = min(float(k), (max_width - GUTTER * (cols - 1)) / (cols * w))
    tw, th = max(2, round(w * s)), max(2, round(h * s))
    fw, fh = cols * (tw + GUTTER) - GUTTER, BANNER + rows * (LABEL + th)
    return _Layout(cols, rows, (tw, th), (fw + fw % 2, fh + fh % 2))


def _scale(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    if im.size == size:
        return im
    up = size[0] >= im.size[0]
    return im.resize(size, Image.Resampling.NEAREST if up else Image.Resampling.LANCZOS)


def compose(
    tiles: Sequence[Image.Image | None], labels: Sequence[str], counter: str, lay: _Layout
) -> np.ndarray:
    """One video frame (H x W x 3 uint8): banner with ``counter``, then labelled tiles."""
    canvas = Image.new("RGB", lay.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((8, BANNER // 2), counter, font=_font(16), fill=INK, anchor="lm")
    tw, th = lay.tile
    small = _font(12)
    for i, (tile, label) in enumerate(zip(tiles, labels, strict=True)):
        x, y = (i % lay.cols) * (tw + GUTTER), BANNER + (i // lay.cols) * (LABEL + th)
        draw.text(
            (x + 4, y + LABEL // 2),
            _fit(draw, label, small, tw - 8),
            font=small,
            fill=INK,
            anchor="lm",
        )
        if tile is None:
            draw.rectangle((x, y + LABEL, x + tw - 1, y + LABEL + th - 1), fill=(200, 200, 200))
            draw.text(
                (x + tw // 2, y + LABEL + th // 2), "not kept", font=small, fill=INK, anchor="mm"
            )
        else:  # images of another size keep their aspect ratio, centred in the tile
            f = min(tw / tile.width, th / tile.height)
            size = (max(1, round(tile.width * f)), max(1, round(tile.height * f)))
            canvas.paste(
                _scale(tile, size), (x + (tw - size[0]) // 2, y + LABEL + (th - size[1]) // 2)
            )
    return np.asarray(canvas)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def make_video(
    run: Runs | str | Path,
    out_dir: str | Path,
    *,
    chains: list[str] | None = None,
    image: str | None = None,
    fps: float | None = None,
    side_by_side: bool = True,
    lossless: bool = False,
    crop: tuple[int, int, int, int] | None = None,
    gif: bool = True,
    stem: str = "collapse",
    max_width: int = 1920,
    min_tile: int = 256,
    layout: str = "tiled",
) -> VideoResult:
    """Write ``stem.mp4`` (and ``stem.gif``) from the saved frames of the chosen chains.

    Every image of the run is shown: ``layout="tiled"`` puts every image's chains in one
    video, ``layout="per-image"`` writes ``stem-IMAGE.mp4`` for each image (in ``videos``; the
    first is the result itself).

    Args:
        run: A run or sweep directory (or its loaded tables).
        out_dir: Where the files go.
        chains: Chain ids or globs; None takes every recipe.
        image: Show that image alone (None: every image, as ``layout`` says).
        fps: Frame rate; None makes the video about TARGET_SECONDS long (auto_fps).
        side_by_side: Chains side by side (True) or one after another.
        lossless: RGB H.264 at qp 0: frame-exact, for review (few browsers play it).
        crop: A zoom region (x, y, w, h) in pixels of the frames.
        gif: Also write a GIF for slides.
        stem: The file name without suffix.
        max_width: The widest the video may be, in pixels.
        min_tile: The smallest a chain's tile may be shown, in pixels.
        layout: "tiled" (every image in one video) or "per-image".

    Returns:
        The paths, frame count, frame rate, duration and size written.
    """
    if fps is not None and fps < 1:
        raise ConfigError(
            f"--fps {fps:g}",
            "must be at least 1",
            "e.g. --fps 12, or leave it out for a video of about 6 s",
        )
    if layout not in ("tiled", "per-image"):
        raise ConfigError(
            f"layout {layout!r}", "unknown video layout", "use 'tiled' (one video) or 'per-image'"
        )
    runs = run if isinstance(run, Runs) else load_runs(run)
    if layout == "per-image" and image is None and chains is None:
        videos = [
            make_video(
                runs,
                out_dir,
                image=n,
                fps=fps,
                side_by_side=side_by_side,
                lossless=lossless,
                crop=crop,
                gif=gif,
                stem=f"{stem}-{n}",
                max_width=max_width,
                min_tile=min_tile,
            )
            for n in sorted(runs.chains["image_name"].unique())
        ]
        videos[0].videos = videos
        return videos[0]
    rows = pick_chains(runs, image, chains, every_image=True)
    frames = [runs.frames(r.run_id, r.chain_id) for r in rows.itertuples()]
    saved = sorted(set().union(*(f.keys() for f in frames)))
    if not saved:
        raise ConfigError(
            str(runs.root),
            "has no saved frames",
            "run with --frame-stride N (N >= 1) to keep frames",
        )
    last = runs.generations()
    h, w = int(rows["height"].max()), int(rows["width"].max())
    check_crop(crop, h, w)
    if crop:
        w, h = crop[2], crop[3]
    labels = list(rows["label"])
    lay = _layout(len(rows), w, h, side_by_side, max_width, min_tile)
    gap = " (kept images only)" if len(saved) < last + 1 else ""
    crop_note = f" · crop {crop[2]}x{crop[3]} at ({crop[0]},{crop[1]})" if crop else ""

    def counter(g: int) -> str:
        return f"generation {g} / {last}{gap}{crop_note}"

    if side_by_side:
        plan = [(g, [_read(f[g], crop) if g in f else None for f in frames], labels) for g in saved]
    else:
        plan = [
            (g, [_read(f[g], crop)], [label])
            for f, label in zip(frames, labels, strict=True)
            for g in sorted(f)
        ]

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mp4 = out / f"{stem}.mp4"
    images = [compose(t, lab, counter(g), lay) for g, t, lab in plan]
    rate = auto_fps(len(images)) if fps is None else Fraction(fps).limit_denominator(100)
    write_mp4(mp4, images, rate, lossless)
    gif_path = out / f"{stem}.gif" if gif else None
    if gif_path:
        write_gif(gif_path, images, rate)
    missing = sorted(set(range(last + 1)) - set(saved))
    return VideoResult(
        mp4,
        gif_path,
        len(images),
        lay.size,
        [g for g, _, _ in plan],
        list(rows["chain_id"]),
        missing,
        lossless,
        float(rate),
    )


def write_mp4(
    path: Path, images: Sequence[np.ndarray], fps: Fraction | int, lossless: bool
) -> None:
    """H.264 in MP4: yuv420p (plays everywhere) or, lossless, RGB at qp 0."""
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    h, w = images[0].shape[:2]
    try:
        _encode(tmp, images, fps, lossless, h, w)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def _encode(
    tmp: Path, images: Sequence[np.ndarray], fps: Fraction | int, lossless: bool, h: int, w: int
) -> None:
    import av

    with av.open(str(tmp), "w", options={"movflags": "+faststart"}) as container:
        if lossless:
            stream = container.add_stream("libx264rgb", rate=fps, options={"qp": "0"})
            stream.pix_fmt = "rgb24"
        else:
            stream = container.add_stream("libx264", rate=fps, options={"crf": "18"})
            stream.pix_fmt = "yuv420p"
        stream.width, stream.height = w, h
        for a in images:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_gif(path: Path, images: Sequence[np.ndarray], fps: Fraction | int) -> None:
    """A looping GIF for slides, at most GIF_MAX_WIDTH wide."""
    pil = [Image.fromarray(a) for a in images]
    if pil[0].width > GIF_MAX_WIDTH:
        size = (GIF_MAX_WIDTH, round(pil[0].height * GIF_MAX_WIDTH / pil[0].width))
        pil = [p.resize(size, Image.Resampling.LANCZOS) for p in pil]
    ms = max(20, round(1000 / float(fps)))
    pil[0].save(path, save_all=True, append_images=pil[1:], duration=ms, loop=0)


def read_video(path: str | Path) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Decode a video back to RGB frames: (frames, (width, height)). Used to check output."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return frames, (s.codec_context.width, s.codec_context.height)
