"""Re-compression studies: codec-only chains (scale 1), driven through the same schedule
objects the engine calls (``CodecSchedule.apply(x, g, seeds)``), in a plain loop.

(a) ``jpeg``: JPEG quality 75 re-encoded 50 times on real photos (skimage) at small centre
    crops: the generation from which each chain is a fixed point (fingerprint repeats, as
    ``roundtrip summarize`` finds them), PSNR lost in round 1 vs rounds 2-50; the same with a
    cycling (``jpeg:[70,75,80]``) and a seeded random (``jpeg:70-80``) quality schedule.
(b) ``codecs``: JPEG, WebP, AVIF, JPEG XL at matched file sizes (per image and codec, the
    integer quality whose first encode is closest to ``--bpp`` bits per pixel, found by
    bisection: file size grows with quality), 100 generations without and with a 1 px grid
    shift per generation (``+shift``), PSNR and SSIMULACRA 2 per generation.

Prints a markdown table and writes a small PNG figure (``--figure``), e.g.:

    python scripts/recompression_study.py jpeg --figure docs/figures/recompression_jpeg.png
    python scripts/recompression_study.py codecs --figure docs/figures/generation_loss.png
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import torch

from roundtrip_ml.analysis.events import first_repeat
from roundtrip_ml.imaging.codecs import FileCodec, parse_codec
from roundtrip_ml.imaging.schedule import chain_seed, parse_schedule
from roundtrip_ml.metrics.full_reference import psnr
from roundtrip_ml.metrics.ssimulacra2 import ssimulacra2

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina"]


def crop(name: str, size: int) -> np.ndarray:
    """Centre ``size`` x ``size`` crop of a skimage photo (H x W x 3 uint8)."""
    import skimage.data

    a = getattr(skimage.data, name)()[..., :3]
    h, w = a.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(a[top : top + size, left : left + size])


def to_batch(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


@dataclass
class Chains:
    """Per-generation curves of a batch of chains run through one schedule."""

    spec: str
    labels: list[str]
    psnr: list[list[float]] = field(default_factory=list)  # [generation-1][chain]
    ssimulacra2: list[list[float]] = field(default_factory=list)
    fixed_from: list[int | None] = field(default_factory=list)  # per chain
    event: list[str] = field(default_factory=list)


def run_chains(
    spec: str, x0: torch.Tensor, labels: list[str], generations: int, perceptual: bool = False
) -> Chains:
    """Re-encode ``x0`` (one chain per image) ``generations`` times with schedule ``spec``."""
    schedule = parse_schedule(spec)
    seeds = [chain_seed(0, f"{lab}-{spec}") for lab in labels]
    out = Chains(spec, labels)
    states: list[list[tuple[int, int]]] = [[(0, _fp(x0[i]))] for i in range(len(labels))]
    x = x0
    for g in range(1, generations + 1):
        x = schedule.apply(x, g, seeds)
        out.psnr.append(psnr(x, x0).tolist())
        if perceptual:
            out.ssimulacra2.append(ssimulacra2(x, x0).tolist())
        for i in range(len(labels)):
            states[i].append((g, _fp(x[i])))
    for s in states:
        ev = first_repeat(s, schedule.period)
        kind = "-" if ev is None else "fixed" if ev.period == 1 else f"p={ev.period} @{ev.start}"
        out.event.append(kind)
        out.fixed_from.append(ev.start if ev is not None and ev.period == 1 else None)
    return out


def _fp(x: torch.Tensor) -> int:
    u8 = (x * 255).round().to(torch.uint8).numpy().tobytes()
    return int.from_bytes(hashlib.blake2b(u8, digest_size=8).digest(), "little")


def _fmt(v: float | None, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "inf" if math.isinf(v) else f"{v:.{nd}f}"


def save_small(fig: object, path: str) -> None:
    """A README-sized PNG: the figure with its colours reduced to a 64-entry palette."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # type: ignore[attr-defined]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.open(buf).convert("RGB").quantize(64).save(path, optimize=True)
    print(f"figure: {path} ({Path(path).stat().st_size // 1024} KB)")


# ---- (a) JPEG q75 fixed points -----------------------------------------------------------------


def study_jpeg(args: argparse.Namespace) -> None:
    specs = ["jpeg:75", "jpeg:[70,75,80]", "jpeg:70-80"]
    G = args.generations
    names = PHOTOS[: args.images]
    labels = [f"{n}@{size}" for size in args.sizes for n in names]
    results = []
    for spec in specs:  # one batch per crop size, joined chain-wise
        parts = [
            run_chains(
                spec, to_batch([crop(n, size) for n in names]), [f"{n}@{size}" for n in names], G
            )
            for size in args.sizes
        ]
        results.append(
            Chains(
                spec,
                labels,
                [list(chain.from_iterable(pt.psnr[g] for pt in parts)) for g in range(G)],
                [],
                list(chain.from_iterable(pt.fixed_from for pt in parts)),
                list(chain.from_iterable(pt.event for pt in parts)),
            )
        )
    print(
        f"JPEG re-compression, {G} generations, libjpeg-turbo (torchvision = Pillow), 4:2:0;"
        " PSNR vs the original in dB; 'lost 2-G' = PSNR(g1) - PSNR(gG); 'fixed from': first"
        " generation of the fixed point ('p=3 @g': a 3-cycle from g; '-': still changing)\n"
    )
    head = (
        "| chain | " + " | ".join(f"{s}: fixed from | PSNR g1 | lost 2-{G}" for s in specs) + " |"
    )
    print(head)
    print("|" + "---|" * (1 + 3 * len(specs)))
    for i, lab in enumerate(labels):
        cells = []
        for r in results:
            p1, pg = r.psnr[0][i], r.psnr[-1][i]
            fixed = r.fixed_from[i]
            cells += [str(fixed) if fixed is not None else r.event[i], _fmt(p1), _fmt(p1 - pg)]
        print(f"| {lab} | " + " | ".join(cells) + " |")
    print()
    for r in results:
        p1 = np.array([row for row in r.psnr[0]])
        lost = p1 - np.array(r.psnr[-1])
        fixed = [f for f in r.fixed_from if f is not None]
        print(
            f"{r.spec}: mean PSNR g1 {p1.mean():.2f} dB, mean lost in rounds 2-{G} "
            f"{lost.mean():.3f} dB (max {lost.max():.3f}); fixed points: {len(fixed)}/"
            f"{len(labels)} chains, median from generation "
            f"{np.median(fixed) if fixed else float('nan'):.0f}"
        )
    if args.figure:
        _plot_jpeg(results, G, args.figure)


def _plot_jpeg(results: list[Chains], G: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    colours = ["tab:blue", "tab:orange", "tab:red"]
    gens = np.arange(1, G + 1)
    for r, c in zip(results, colours, strict=True):
        p = np.array(r.psnr)  # G x chains
        drop = p - p[0]  # dB relative to generation 1
        for i in range(p.shape[1]):
            ax.plot(gens, drop[:, i], color=c, alpha=0.35, lw=0.8)
        ax.plot(gens, drop.mean(axis=1), color=c, lw=2.2, label=f"{r.spec} (mean)")
    ax.set_xlabel("generation")
    ax.set_ylabel("PSNR change since generation 1 (dB)")
    ax.set_title(
        "JPEG re-compression: q75 reaches a fixed point, a quality cycle a cycle, "
        "random quality keeps losing",
        fontsize=8,
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_small(fig, path)


# ---- (b) codec comparison at matched file sizes ------------------------------------------------


KINDS = {
    "jpeg": "jpeg:{q}:420:imagecodecs",
    "webp": "webp:{q}",
    "avif": "avif:{q}",
    "jxl": "jxl:{q}",
}


def match_quality(kind: str, a: np.ndarray, bpp: float) -> tuple[int, float]:
    """The integer quality whose first encode of ``a`` is closest to ``bpp`` (bisection on the
    monotone size-quality curve), and the bpp it gives."""
    pixels = a.shape[0] * a.shape[1]
    top = 99 if kind == "avif" else 100

    def size(q: int) -> float:
        codec = parse_codec(KINDS[kind].format(q=q))
        assert isinstance(codec, FileCodec)
        return 8 * codec.roundtrip(a)[1] / pixels

    lo, hi = 1, top
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if size(mid) < bpp else (lo, mid)
    q = min((lo, hi), key=lambda v: abs(size(v) - bpp))
    return q, size(q)


def study_codecs(args: argparse.Namespace) -> None:
    G = args.generations
    arrays = [crop(n, args.size) for n in PHOTOS[: args.images]]
    labels = [f"{n}@{args.size}" for n in PHOTOS[: args.images]]
    rows, curves = [], {}
    for kind in KINDS:
        matched = [match_quality(kind, a, args.bpp) for a in arrays]
        for shift in ("", "+shift"):
            # one chain per image, each at its own matched quality
            per_image = [
                run_chains(
                    KINDS[kind].format(q=q) + shift, to_batch([a]), [lab], G, perceptual=True
                )
                for (q, _), a, lab in zip(matched, arrays, labels, strict=True)
            ]
            p = np.array([[c.psnr[g][0] for c in per_image] for g in range(G)])
            s = np.array([[c.ssimulacra2[g][0] for c in per_image] for g in range(G)])
            curves[(kind, shift)] = (p.mean(axis=1), s.mean(axis=1))
            fixed = [c.fixed_from[0] for c in per_image]
            rows.append(
                (
                    kind,
                    shift or "none",
                    [q for q, _ in matched],
                    np.mean([b for _, b in matched]),
                    p,
                    s,
                    fixed,
                )
            )
    print(
        f"Codec generation loss, {len(arrays)} photos ({', '.join(labels)}), {G} generations,"
        f" quality matched per image to {args.bpp} bpp on the first encode; means over photos\n"
    )
    print(
        "| codec | shift | qualities | bpp | PSNR g1 | PSNR g10 | PSNR g100 | SSIMULACRA2 g1 | "
        "g10 | g100 | fixed from |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    last = G - 1
    for kind, shift, qs, bpp, p, s, fixed in rows:
        fx = ",".join("-" if f is None else str(f) for f in fixed)
        print(
            f"| {kind} | {shift} | {','.join(map(str, qs))} | {bpp:.2f} | "
            f"{_fmt(p[0].mean())} | {_fmt(p[min(9, last)].mean())} | {_fmt(p[last].mean())} | "
            f"{_fmt(s[0].mean())} | {_fmt(s[min(9, last)].mean())} | {_fmt(s[last].mean())} | "
            f"{fx} |"
        )
    if args.figure:
        _plot_codecs(curves, G, args)


def _plot_codecs(curves: dict, G: int, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.3), dpi=100)
    colours = {"jpeg": "tab:blue", "webp": "tab:green", "avif": "tab:red", "jxl": "tab:purple"}
    gens = np.arange(1, G + 1)
    for (kind, shift), (p, s) in curves.items():
        style = dict(
            color=colours[kind],
            ls="--" if shift else "-",
            lw=1.4,
            label=f"{kind}{' +1px shift' if shift else ''}",
        )
        axes[0].plot(gens, p, **style)
        axes[1].plot(gens, s, **style)
    axes[0].set_ylabel("PSNR vs original (dB)")
    axes[1].set_ylabel("SSIMULACRA 2 vs original")
    for ax in axes:
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(
        f"Generation loss at {args.bpp} bpp (first encode), {args.images} photos {args.size} px",
        fontsize=9,
    )
    fig.tight_layout()
    save_small(fig, args.figure)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="study", required=True)
    a = sub.add_parser("jpeg", help="(a) JPEG q75 fixed points vs varying quality")
    a.add_argument("--images", type=int, default=6)
    a.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    a.add_argument("--generations", type=int, default=50)
    a.add_argument("--figure", default=None)
    b = sub.add_parser("codecs", help="(b) JPEG/WebP/AVIF/JPEG XL generation loss")
    b.add_argument("--images", type=int, default=4)
    b.add_argument("--size", type=int, default=128)
    b.add_argument("--bpp", type=float, default=1.0)
    b.add_argument("--generations", type=int, default=100)
    b.add_argument("--figure", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    (study_jpeg if args.study == "jpeg" else study_codecs)(args)


if __name__ == "__main__":
    main()
