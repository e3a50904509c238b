"""Milliseconds per 128 x 128 input for one model of each ncnn family (and optionally all).

Runs the registry model exactly as the engine does (load_upscaler -> ModelUpscaler.forward, the
family's pre/post-processing included) on a real photo crop, after one warm-up call; prints the
median of --repeat calls. Threads are set deliberately (tiny convolutions on a shared CPU).

    python scripts/bench_families.py [--all] [--threads 1] [--device cpu] [--precision fp32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import skimage.data
import torch

from roundtrip_ml.upscalers import zoo
from roundtrip_ml.upscalers.loading import load_upscaler

ONE_PER_FAMILY = (
    "realcugan-se-x2",
    "realcugan-pro-x3",
    "realcugan-se-x4",
    "waifu2x-cunet-x2",
    "waifu2x-upconv-photo-x2",
    "realsr-df2k-x4",
    "span-x2-ch48",
    "span-x4-ch52",
    "srmd-x2",
    "srmdnf-x4",
    "realesr-animevideov3",
    "realesrgan-x4plus",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="every offline model, not one per family")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    a = skimage.data.astronaut()[100 : 100 + args.size, 150 : 150 + args.size]
    x = torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    names = (
        [e.name for e, _ in zoo.offline_models()]
        if args.all
        else [
            n
            for n in ONE_PER_FAMILY
            if zoo.find_offline(zoo.get_entry(n), check_hash=False) is not None
        ]
    )
    print(
        f"# {args.size} px input, {args.threads} thread(s), {args.device}, {args.precision}, "
        f"median of {args.repeat}"
    )
    print(f"{'model':34s} {'family':11s} {'scale':>5s} {'ms':>9s}")
    for name in names:
        u = load_upscaler(name, device=args.device, precision=args.precision)
        xd = x.to(args.device)
        u.forward(xd)  # warm-up
        times = []
        for _ in range(args.repeat):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            u.forward(xd)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t) * 1000)
        fam = zoo.get_entry(name).family or "realesrgan"
        print(
            f"{name:34s} {fam:11s} {'x' + str(u.scale):>5s} {statistics.median(times):9.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
