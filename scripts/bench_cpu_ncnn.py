"""CPU speed of every path an ML upscaler can take, against the ncnn runtime, from one run.

For Real-ESRGAN x4plus, animevideov3 and one model of each ncnn family (Real-CUGAN, waifu2x,
RealSR, SPAN, SRMD), on the same offline .param/.bin weights, at one input size and one thread
count: PyTorch eager, PyTorch channels_last, and the ncnn runtime (backend = "ncnn", with the
family's own pre/post-processing, as a run uses it). Prints the median time of each path, its
ratio to ncnn, the largest output difference to the torch path, and which path ``backend =
"auto"`` picks on a CPU. Ratios are the robust number: absolute times move with machine load.

    python scripts/bench_cpu_ncnn.py --size 128 --threads 2 --repeats 7     # the full size
    python scripts/bench_cpu_ncnn.py --size 32 --threads 1 --repeats 3      # a loaded machine
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from roundtrip_ml.core.specs import InferenceOptions
from roundtrip_ml.upscalers import create_upscaler

MODELS = (
    "realesrgan-x4plus",
    "realesr-animevideov3",
    "realcugan-se-x2",
    "waifu2x-cunet-x2",
    "realsr-df2k-x4",
    "span-x4-ch48",
    "srmd-x2",
)


def median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (ncnn loads its net for the thread count on the first call)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[repeats // 2]


def bench(model: str, x: torch.Tensor, repeats: int) -> dict[str, object]:
    paths = {
        "torch eager": InferenceOptions(backend="torch"),
        "torch channels_last": InferenceOptions(backend="torch", channels_last=True),
        "ncnn runtime": InferenceOptions(backend="ncnn"),
    }
    times, outs = {}, {}
    for name, opts in paths.items():
        up = create_upscaler(model, "cpu", opts)
        times[name] = median_s(lambda up=up: up.forward(x), repeats)
        outs[name] = up.forward(x)
    auto = create_upscaler(model, "cpu", InferenceOptions())
    ref = outs["torch eager"]
    return {
        "model": model,
        "ms": {k: v * 1e3 for k, v in times.items()},
        "ratio_to_ncnn": {k: v / times["ncnn runtime"] for k, v in times.items()},
        "max_abs_diff_to_torch": {k: float((v - ref).abs().max()) for k, v in outs.items()},
        "auto_picks": auto.describe()["backend"],
    }


def photo_crop(size: int) -> torch.Tensor:
    """A centre crop of a real photo (astronaut, 512 px): what the models see in a study.
    Uniform noise, the input before, drove SPAN's attention to extremes where its backends
    differ by 1e-2, which no photo does."""
    from roundtrip_ml.imaging.images import load_image

    x = load_image("skimage:astronaut")[0]
    if size > min(x.shape[-2:]):
        raise SystemExit(f"--size {size} is larger than the 512 px photo")
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[:, :, top : top + size, left : left + size].contiguous()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma list of registry names")
    ap.add_argument("--size", type=int, default=128, help="input side in pixels")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = photo_crop(args.size)
    load = os.getloadavg()
    print(
        f"{args.size} px input, {args.threads} torch/ncnn threads, median of {args.repeats}; "
        f"load average {load[0]:.1f} on {os.cpu_count()} cores at the start"
    )
    print(f"{'model':24} {'path':20} {'ms':>9} {'x ncnn':>7} {'max |diff|':>10}")
    rows = []
    for model in args.models.split(","):
        r = bench(model.strip(), x, args.repeats)
        rows.append(r)
        for path, ms in r["ms"].items():  # type: ignore[attr-defined]
            print(
                f"{r['model']:24} {path:20} {ms:9.1f} "
                f"{r['ratio_to_ncnn'][path]:6.2f}x "  # type: ignore[index]
                f"{r['max_abs_diff_to_torch'][path]:10.1e}"
            )  # type: ignore[index]
        print(f"{'':24} backend='auto' on a CPU picks: {r['auto_picks']}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
