"""Benchmark the engine against its floor and against the naive loop, in one run.

(a) engine: ``pipeline.experiment.run_experiment`` per generation (batched, device-resident,
    fingerprints, frames at the stride, metrics at stride 1 with --metrics), from the manifest;
(b) floor: the bare upscaler forward alone on the same batch (what no loop can beat);
(c) naive: what the published experiment did, one image at a time: Pillow resize down, save
    and reload (PNG or JPEG), upscale, save and reload.

Prints engine/floor and naive/engine ratios, generations/s and peak memory.

    python scripts/bench_loop.py --size 256 --images 4 --generations 10
    python scripts/bench_loop.py --upscaler realesrgan-x4plus --size 128 --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from roundtrip_ml.core.info import resolve_device
from roundtrip_ml.imaging.codecs import parse_codec
from roundtrip_ml.imaging.kernels import PILLOW_FILTERS
from roundtrip_ml.imaging.resample import lowres_size
from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.experiment import run_experiment
from roundtrip_ml.upscalers import create_upscaler, is_classical

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina"]


def photos(n: int, size: int) -> list[np.ndarray]:
    import skimage.data

    out = []
    for i in range(n):
        a = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()
        im = Image.fromarray(a).convert("RGB")
        scale = size / min(im.size)
        im = im.resize(
            (max(size, round(im.width * scale)), max(size, round(im.height * scale))),
            Image.Resampling.LANCZOS,
        )
        left, top = (im.width - size) // 2, (im.height - size) // 2
        out.append(np.asarray(im.crop((left, top, left + size, top + size))))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_floor(
    upscaler_spec: str, batch: torch.Tensor, scale: float, device: torch.device, reps: int
) -> float:
    """Seconds per generation for the upscaler forward alone on the whole batch."""
    up = create_upscaler(upscaler_spec, device)
    size = (batch.shape[-2], batch.shape[-1])
    lo = torch.nn.functional.interpolate(batch, size=lowres_size(size, scale), mode="area")
    with torch.inference_mode():
        up.upscale(lo, size)  # warm-up (weights, caches)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            up.upscale(lo, size)
        sync(device)
    return (time.perf_counter() - t0) / reps


def bench_naive(
    arrays: list[np.ndarray],
    upscaler_spec: str,
    scale: float,
    codec: str,
    generations: int,
    device: torch.device,
) -> float:
    """Seconds per generation (all images) for the file-based, one-image-at-a-time loop."""
    fmt, params = ("PNG", {}) if codec == "png" else ("JPEG", {"quality": int(codec.split(":")[1])})
    up = None if is_classical(upscaler_spec) else create_upscaler(upscaler_spec, device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"img.{fmt.lower()}"
        t0 = time.perf_counter()
        for a in arrays:
            im = Image.fromarray(a)
            w, h = im.size
            lw, lh = lowres_size((h, w), scale)[::-1]
            for _ in range(generations):
                im.resize((lw, lh), PILLOW_FILTERS["lanczos3"]).save(path, fmt, **params)
                lo = Image.open(path).convert("RGB")
                if up is None:
                    big = lo.resize((w, h), PILLOW_FILTERS.get(upscaler_spec, 1))
                else:
                    x = torch.from_numpy(np.asarray(lo)).permute(2, 0, 1)[None].float() / 255
                    with torch.inference_mode():
                        y = up.upscale(x.to(device), (h, w)).clamp(0, 1)
                    big = Image.fromarray((y[0] * 255 + 0.5).byte().permute(1, 2, 0).cpu().numpy())
                big.save(path, fmt, **params)
                im = Image.open(path).convert("RGB")
        return (time.perf_counter() - t0) / generations


def bench_engine(arrays: list[np.ndarray], args: argparse.Namespace) -> tuple[float, float]:
    """(seconds per generation from the manifest, whole run wall time) for the real engine."""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, a in enumerate(arrays):
            f = Path(tmp) / f"img{i}.png"
            Image.fromarray(a).save(f)
            files.append(str(f))
        cfg = make_config(
            {
                "images": files,
                "upscalers": [args.upscaler],
                "codecs": [args.codec],
                "scales": [args.scale],
                "generations": args.generations,
                "frame_stride": 10,
                "checkpoint_stride": 10,
                "metrics": args.metrics.split(",") if args.metrics else [],
                "lowres_consistency": bool(args.metrics),
                "device": args.device,
                "output": str(Path(tmp) / "run"),
                "max_batch": len(files),
            }
        )
        t0 = time.perf_counter()
        res = run_experiment(cfg)
        wall = time.perf_counter() - t0
        man = json.loads((res.run_dir / "manifest.json").read_text())
        times = [t for b in man["batches"].values() for t in b["wall_s_per_generation"][1:]]
        per_gen = float(np.median(times)) * len(man["batches"])
        return per_gen, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upscaler", default="lanczos3")
    p.add_argument("--codec", default="png")
    p.add_argument("--scale", type=float, default=4)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--metrics", default="", help="metrics for the engine run ('' = none)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    args.device = str(device)
    arrays = photos(args.images, args.size)
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255).to(device)
    parse_codec(args.codec)

    engine, wall = bench_engine(arrays, args)
    reps = max(3, args.generations // 2)
    floor = bench_floor(args.upscaler, batch, args.scale, device, reps=reps)
    naive = bench_naive(
        arrays, args.upscaler, args.scale, args.codec, max(2, args.generations // 2), device
    )
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu_peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0

    n = args.images
    print(
        f"device={device} threads={torch.get_num_threads()} upscaler={args.upscaler} "
        f"codec={args.codec} images={n}x{args.size}px scale=x{args.scale:g} "
        f"metrics={args.metrics or 'none'}"
    )
    print(f"engine : {engine * 1e3:9.1f} ms/generation  {n / engine:8.1f} image-generations/s")
    print(f"floor  : {floor * 1e3:9.1f} ms/generation  (upscaler forward alone, batch of {n})")
    print(f"naive  : {naive * 1e3:9.1f} ms/generation  (Pillow + files, one image at a time)")
    print(f"engine/floor = {engine / floor:.2f}   naive/engine = {naive / engine:.2f}")
    print(
        f"engine run wall time {wall:.1f} s for {args.generations} generations; "
        f"peak RSS {peak_rss:.0f} MiB; peak GPU {gpu_peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
