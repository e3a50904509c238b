"""Photos of different sizes on one device: which way of sharing it is fastest, and exact?

One generation of every photo (down -> PNG handoff -> up -> PNG handoff) under three strategies:

- ``buckets``: one batch per size, one after another (what the engine does);
- ``concurrent``: the same buckets at once, one host thread each (on CUDA each on its own
  stream, so kernels of different buckets may overlap on the device);
- ``pad``: ML models only: every low-res image padded (edge-replicated) to the largest size, one
  forward pass for all, each output cropped back. Fewest launches, but a convolutional model's
  output near a padded edge depends on what the padding put there, so it is checked against
  ``buckets`` pixel by pixel and reported as exact or not.

Prints ms per generation for the whole set, launches (forward passes) per generation, and the
largest difference from ``buckets`` in 8-bit levels.

    python scripts/bench_mixed_sizes.py --tiny            # CPU, seconds (CI runs this)
    python scripts/bench_mixed_sizes.py --device cuda     # the shipped photos at 500 px max side
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from roundtrip_ml.core.determinism import deterministic
from roundtrip_ml.core.info import resolve_device
from roundtrip_ml.imaging.codecs import parse_codec
from roundtrip_ml.imaging.images import to_uint8
from roundtrip_ml.imaging.resample import lowres_size, resize
from roundtrip_ml.pipeline.step import generation_step, handoff
from roundtrip_ml.upscalers import Upscaler, create_upscaler, is_classical

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina", "camera"]


def photos(n: int, max_side: int) -> list[Tensor]:
    """Real photos at their own aspect ratios, longest side ``max_side``: all sizes differ."""
    import skimage.data

    out = []
    for i in range(n):
        im = Image.fromarray(getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()).convert("RGB")
        side = max_side - 4 * (i // len(PHOTOS))  # a repeated photo gets another size
        f = side / max(im.size)
        im = im.resize(
            (max(8, round(im.width * f)), max(8, round(im.height * f))), Image.Resampling.LANCZOS
        )
        out.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 255)
    return out


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _time(fn: Callable[[], Any], dev: torch.device, reps: int) -> float:
    fn()
    _sync(dev)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        _sync(dev)
        best = min(best, time.perf_counter() - t)
    return best


def buckets_of(images: list[Tensor]) -> dict[tuple[int, int], Tensor]:
    groups: dict[tuple[int, int], list[Tensor]] = defaultdict(list)
    for x in images:
        groups[(x.shape[-2], x.shape[-1])].append(x)
    return {k: torch.cat(v) for k, v in groups.items()}


def run_buckets(up: Upscaler, buckets: dict[tuple[int, int], Tensor]) -> dict[Any, Tensor]:
    png = parse_codec("png")
    return {k: generation_step(x, up, "lanczos3", 4, png).state for k, x in buckets.items()}


def run_concurrent(
    up: Upscaler,
    buckets: dict[tuple[int, int], Tensor],
    pool: ThreadPoolExecutor,
    dev: torch.device,
) -> dict[Any, Tensor]:
    png = parse_codec("png")

    def one(x: Tensor) -> Tensor:
        ctx = torch.cuda.stream(torch.cuda.Stream(dev)) if dev.type == "cuda" else nullcontext()
        with ctx, torch.no_grad():
            y = generation_step(x, up, "lanczos3", 4, png).state
            _sync(dev)
            return y

    futures = {k: pool.submit(one, x) for k, x in buckets.items()}
    return {k: f.result() for k, f in futures.items()}


def run_padded(up: Upscaler, buckets: dict[tuple[int, int], Tensor]) -> dict[Any, Tensor]:
    """Down and handoff per bucket (cheap), then ONE forward over all low-res images padded to
    the largest low-res size, each output cropped and fitted back."""
    png = parse_codec("png")
    lows = {
        k: handoff(png, resize(x, lowres_size(k, 4), "lanczos3", True)) for k, x in buckets.items()
    }
    hh = max(v.shape[-2] for v in lows.values())
    ww = max(v.shape[-1] for v in lows.values())
    padded = torch.cat(
        [
            torch.nn.functional.pad(v, (0, ww - v.shape[-1], 0, hh - v.shape[-2]), mode="replicate")
            for v in lows.values()
        ]
    )
    y = up.forward(padded)
    s = up.scale or 4
    out, i = {}, 0
    for k, v in lows.items():
        n, h, w = v.shape[0], v.shape[-2], v.shape[-1]
        crop = y[i : i + n, :, : h * s, : w * s]
        out[k] = handoff(png, resize(crop, k, "lanczos3", True))
        i += n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="CPU-sized photos (seconds)")
    ap.add_argument("--max-side", type=int, help="longest side of each photo")
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--upscalers", default="lanczos3,realesr-animevideov3,realesrgan-x4plus")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("OMP_NUM_THREADS", 2)),
        help="torch intra-op threads (default: OMP_NUM_THREADS, else 2)",
    )
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    side = args.max_side or (48 if args.tiny else 500)
    images = [x.to(dev) for x in photos(args.images, side)]
    buckets = buckets_of(images)
    print(
        f"# {len(images)} photos, {len(buckets)} sizes (max side {side}) on {dev}, "
        f"torch threads {args.threads}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    pool = ThreadPoolExecutor(max_workers=len(buckets))
    with deterministic(dev, True), torch.no_grad():
        for name in args.upscalers.split(","):
            up = create_upscaler(name, dev)
            ref = run_buckets(up, buckets)
            strategies: dict[str, Callable[[], dict[Any, Tensor]]] = {
                "buckets": lambda up=up: run_buckets(up, buckets),
                "concurrent": lambda up=up: run_concurrent(up, buckets, pool, dev),
            }
            if not is_classical(name):
                strategies["pad"] = lambda up=up: run_padded(up, buckets)
            for strategy, fn in strategies.items():
                s = _time(fn, dev, args.reps)
                got = fn()
                diff = max(
                    int((to_uint8(got[k]).int() - to_uint8(ref[k]).int()).abs().max()) for k in ref
                )
                launches = 1 if strategy == "pad" else len(buckets)
                row = {
                    "upscaler": name,
                    "strategy": strategy,
                    "ms_per_generation": 1e3 * s,
                    "launches": launches,
                    "max_diff_levels": diff,
                    "exact": diff == 0,
                }
                rows.append(row)
                print(
                    f"{name:24} {strategy:11} {1e3 * s:10.1f} ms/gen  {launches:2d} launches  "
                    f"max diff {diff:3d} levels  {'exact' if diff == 0 else 'NOT exact'}",
                    flush=True,
                )
    pool.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
