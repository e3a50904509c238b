"""CPU speed of the compact models in PyTorch (eager, channels_last) against the ncnn runtime
on the same .param/.bin, at one input size, with the same thread count; prints the ratios.

    python scripts/bench_cpu_ncnn.py --size 128 --threads 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import ncnn
import numpy as np
import torch

from roundtrip_ml.core.specs import InferenceOptions
from roundtrip_ml.upscalers import create_upscaler, zoo


def median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[repeats // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="realesr-animevideov3")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    found = zoo.find_offline(zoo.get_entry(args.model))
    if found is None:
        raise SystemExit(f"{args.model}: no offline ncnn files installed")
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    net = ncnn.Net()
    net.opt.num_threads = args.threads
    net.opt.use_vulkan_compute = False
    net.load_param(str(found.param))
    net.load_model(str(found.bin))
    arr = x[0].numpy().astype(np.float32)

    def run_ncnn() -> object:
        ex = net.create_extractor()
        ex.input("data", ncnn.Mat(arr))
        return ex.extract("output")[1]

    t_ncnn = median_s(run_ncnn, args.repeats)
    print(f"{args.model} at {args.size} px, {args.threads} threads (median of {args.repeats})")
    print(f"  ncnn runtime            {t_ncnn * 1e3:8.1f} ms")
    for name, opts in [("torch eager", InferenceOptions()),
                       ("torch channels_last", InferenceOptions(channels_last=True))]:
        up = create_upscaler(args.model, "cpu", opts)
        t = median_s(lambda up=up: up.forward(x), args.repeats)
        print(f"  {name:22}  {t * 1e3:8.1f} ms   {t / t_ncnn:.2f}x ncnn")


if __name__ == "__main__":
    main()
