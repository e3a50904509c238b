"""How close the engine gets to the hardware: one run prints every figure issue 12 asks for.

    python scripts/bench_gpu.py                   # on a GPU: the seed's size (500 -> 2000 px)
    python scripts/bench_gpu.py --tiny            # on a CPU in seconds (CI runs this)
    python scripts/bench_gpu.py --json out.json   # also write the rows

Sections: (1) the measured dense matmul ceiling (bf16 on CUDA, fp32 on a CPU); (2) per model
(Real-ESRGAN x4plus, animevideov3, a SwinIR-M architecture with random weights) x input size x
precision x execution mode x batch: generations per second per image, achieved TFLOPS (FLOPs
counted by torch's FlopCounterMode) and its fraction of the ceiling; (3) the whole engine loop
(8 default metrics every generation, fingerprints, checkpoints) against the bare forward:
overhead %; (4) Lanczos-3 chains at 2000 px, batch 1 and 16; (5) peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from roundtrip_ml.core.determinism import deterministic
from roundtrip_ml.core.info import resolve_device
from roundtrip_ml.core.specs import InferenceOptions
from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.experiment import run_experiment
from roundtrip_ml.pipeline.manifest import Manifest
from roundtrip_ml.upscalers import create_upscaler
from roundtrip_ml.upscalers.loading import ModelUpscaler, WeightsSource, _descriptor


@dataclass
class Row:
    section: str
    what: str
    value: float
    unit: str
    note: str = ""


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _time(fn: Callable[[], Any], dev: torch.device, repeats: int) -> float:
    """Median seconds per call after one warm-up."""
    fn()
    _sync(dev)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def ceiling(dev: torch.device, tiny: bool) -> float:
    """Dense matmul TFLOPS this device really does (bf16 on CUDA, fp32 on a CPU)."""
    n = 512 if tiny else 8192
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=dev, dtype=dtype) for _ in range(2))
    s = _time(lambda: a @ b, dev, 5)
    return 2 * n**3 / s / 1e12


def swinir_m(dev: torch.device, options: InferenceOptions) -> ModelUpscaler:
    """SwinIR-M (real-SR x4 layout) with random weights: speed only."""
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    net = SwinIR(upscale=4, img_size=64, window_size=8, embed_dim=180, depths=[6] * 6,
                 num_heads=[6] * 6, mlp_ratio=2, upsampler="nearest+conv", resi_connection="1conv")
    d = _descriptor(net.state_dict(), "swinir-m (random weights)")
    ws = WeightsSource(Path(tempfile.gettempdir()), "-", "random weights (speed only)")
    return ModelUpscaler(d, ws, name="swinir-m", device=dev, options=options)


def model(name: str, dev: torch.device, options: InferenceOptions) -> ModelUpscaler:
    if name == "swinir-m":
        return swinir_m(dev, options)
    up = create_upscaler(name, dev, options)
    assert isinstance(up, ModelUpscaler)
    return up


def bench_models(dev: torch.device, tiny: bool, peak: float, rows: list[Row]) -> None:
    sizes = [16] if tiny else [500, 128]
    precisions = ["fp32", "bf16"] if dev.type == "cpu" else ["fp32", "tf32", "bf16", "fp16"]
    modes = ["eager", "channels_last"] + ([] if dev.type == "cpu" else ["compiled", "graphs"])
    names = ["realesr-animevideov3", "realesrgan-x4plus"] + ([] if tiny else ["swinir-m"])
    for name in names:
        for prec in precisions:
            with deterministic(dev, enabled=prec != "tf32"):
                up = model(name, dev, InferenceOptions(precision="fp32" if prec == "tf32"
                                                       else prec))
                for size in sizes:
                    x1 = torch.rand(1, 3, size, size, device=dev)
                    with FlopCounterMode(display=False) as fc:
                        up.forward(x1)
                    flops = fc.get_total_flops()
                    for mode in modes:
                        up.channels_last = mode != "eager"
                        up.compile = mode in ("compiled", "graphs")
                        up.to(dev)
                        if mode == "graphs":  # CUDA graphs: shapes never change in a chain
                            up._compiled = torch.compile(up.descriptor.model,
                                                         mode="reduce-overhead")
                        for batch in ([1, 4] if tiny else [1, 2, 4, 8, 16]):
                            x = x1.repeat(batch, 1, 1, 1)
                            try:
                                s = _time(lambda x=x, up=up: up.forward(x), dev, 2 if tiny else 5)
                            except torch.OutOfMemoryError:
                                torch.cuda.empty_cache()
                                break
                            gps = batch / s
                            tflops = flops * gps / 1e12
                            _emit(rows, Row("model", f"{name} {size}px {prec} {mode} b{batch}",
                                            gps, "gen/s/img", f"{tflops:.3f} TFLOPS = "
                                            f"{tflops / peak:.1%} of ceiling"))


def _emit(rows: list[Row], r: Row) -> None:
    """Print as we go (a long GPU run shows progress), keep for the JSON."""
    rows.append(r)
    print(f"{r.section:8} {r.what:58} {r.value:12.3f} {r.unit:10} {r.note}", flush=True)


def bench_loop(dev: torch.device, tiny: bool, rows: list[Row]) -> None:
    """The whole engine loop vs the bare forward, and Lanczos-3 chains."""
    size = 64 if tiny else 2000
    gens = 3 if tiny else 20
    with tempfile.TemporaryDirectory() as tmp:
        for up, batch in [("realesr-animevideov3", 1), ("lanczos3", 1),
                          ("lanczos3", 4 if tiny else 16)]:
            cfg = make_config({
                "images": ["skimage:astronaut"] * 1, "upscalers": [up], "generations": gens,
                "frame_stride": gens, "checkpoint_stride": gens, "device": str(dev),
                "max_side": size, "replicas": batch - 1, "perturbation": "noise:1",
                "output": f"{tmp}/{up}-{batch}"})
            result = run_experiment(cfg)
            m = Manifest.read(result.run_dir / "manifest.json")
            per_gen = [t for e in m.batches.values() for t in e.wall_s_per_generation[1:]]
            s = sorted(per_gen)[len(per_gen) // 2]
            _emit(rows, Row("loop", f"{up} {size}px b{batch} engine", batch / s, "gen/s/img",
                            "8 default metrics + fingerprint + handoffs every generation"))
            if up != "lanczos3":
                u = create_upscaler(up, dev)
                lo = torch.rand(batch, 3, size // 4, size // 4, device=dev)
                bare = _time(lambda u=u, lo=lo: u.forward(lo), dev, 3)
                _emit(rows, Row("loop", f"{up} {size}px b{batch} overhead",
                                100 * (s - bare) / bare, "%", "engine vs bare forward"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="CPU-sized shapes (seconds)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    rows: list[Row] = []
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"# bench_gpu on {name} ({dev}), torch {torch.__version__}", flush=True)
    peak = ceiling(dev, args.tiny)
    dtype = "bf16" if dev.type == "cuda" else "fp32"
    _emit(rows, Row("ceiling", f"dense {dtype} matmul", peak, "TFLOPS"))
    bench_models(dev, args.tiny, peak, rows)
    bench_loop(dev, args.tiny, rows)
    mem = (torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda"
           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    _emit(rows, Row("memory", "peak " + ("GPU" if dev.type == "cuda" else "RSS"), mem, "MiB"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.__dict__ for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
