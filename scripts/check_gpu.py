"""GPU self-check: the CUDA paths CPU tests cannot reach, measured on the machine at hand.

    python scripts/check_gpu.py            # needs a CUDA device

Checks and prints: resampler CPU vs CUDA, nvJPEG vs libjpeg, metrics free of host syncs,
determinism of a real Real-ESRGAN chain on CUDA (two runs, byte-identical tables), fp16 vs
fp32 forward, and CPU vs CUDA divergence of an ML chain (statistical, not pixel-exact).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from roundtrip_ml.core.specs import InferenceOptions
from roundtrip_ml.imaging.codecs import JpegCodec
from roundtrip_ml.imaging.images import load_image, to_uint8
from roundtrip_ml.imaging.resample import resize
from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.experiment import run_experiment


def report(name: str, **values: object) -> None:
    print(json.dumps({"check": name, **values}, default=str), flush=True)


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    cuda = torch.device("cuda")
    x, _ = load_image("skimage:astronaut")
    xc = x.to(cuda)

    # 1. resampler: the same weights as matrix products on both devices
    for kernel in ("lanczos3", "bicubic", "box"):
        a = to_uint8(resize(x, (128, 128), kernel, True)).int()
        b = to_uint8(resize(xc, (128, 128), kernel, True)).cpu().int()
        report("resample_cpu_vs_cuda", kernel=kernel, max_abs_levels=(a - b).abs().max().item())

    # 2. nvJPEG vs libjpeg (not bit-identical by design; the manifest records the backend)
    cpu_j = JpegCodec(90, backend="torchvision")(x)
    gpu_j = JpegCodec(90, backend="nvjpeg")(xc).cpu()
    d = (cpu_j - gpu_j).abs() * 255
    report("nvjpeg_vs_libjpeg_q90", max_abs_levels=d.max().item(), mean_abs_levels=d.mean().item())

    # 3. metrics on the device without host syncs
    from roundtrip_ml.metrics import DEFAULT_METRICS, resolve_metrics

    batch = xc.repeat(4, 1, 1, 1)
    noisy = (batch + 0.03 * torch.randn_like(batch)).clamp(0, 1)
    metrics = resolve_metrics(list(DEFAULT_METRICS), cuda)
    for m in metrics:
        m(noisy, batch)  # warm-up (constants, caches)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    syncing = []
    for m in metrics:
        try:
            m(noisy, batch)
        except RuntimeError as e:
            syncing.append(f"{m.name}: {str(e)[:80]}")
    torch.cuda.set_sync_debug_mode(0)
    cpu_vals = {
        m.name: m(noisy.cpu(), batch.cpu())
        for m in resolve_metrics(list(DEFAULT_METRICS), torch.device("cpu"))
    }
    diffs = {
        k: (v.cpu() - cpu_vals[m.name][k]).abs().max().item()
        for m in metrics
        for k, v in m(noisy, batch).items()
    }
    report("metrics_on_cuda", host_syncs=syncing, max_abs_diff_vs_cpu=diffs)

    # 4. determinism and CPU/GPU divergence of a real ML chain
    with tempfile.TemporaryDirectory() as tmp:
        base = {
            "images": ["skimage:astronaut", "skimage:coffee"],
            "upscalers": ["realesrgan-x4plus"],
            "codecs": ["png"],
            "generations": 6,
            "max_side": 256,
            "metrics": ["psnr", "ssim"],
            "frame_stride": 6,
        }
        tables = []
        for i, dev in enumerate(["cuda", "cuda", "cpu"]):
            t0 = time.perf_counter()
            res = run_experiment(
                make_config({**base, "device": dev, "output": str(Path(tmp) / f"r{i}")})
            )
            tables.append((res.run_dir / "metrics.parquet").read_bytes())
            report(
                "x4plus_chain",
                device=dev,
                wall_s=round(time.perf_counter() - t0, 2),
                failed=res.failed,
            )
        report("cuda_runs_byte_identical", identical=tables[0] == tables[1])
        import pandas as pd

        a = pd.read_parquet(Path(tmp) / "r0" / "metrics.parquet")
        c = pd.read_parquet(Path(tmp) / "r2" / "metrics.parquet")
        key = ["chain_id", "generation", "metric", "reference"]
        m = a.merge(c, on=key, suffixes=("_cuda", "_cpu")).query(
            "metric == 'psnr' and reference == 'original'"
        )
        report(
            "cuda_vs_cpu_psnr_to_original",
            rows=m[["chain_id", "generation", "value_cuda", "value_cpu"]]
            .round(3)
            .to_dict("records"),
        )

    # 5. fp16 vs fp32 forward
    from roundtrip_ml.upscalers import create_upscaler

    lo = resize(xc, (128, 128), "lanczos3").clamp(0, 1)
    f32 = create_upscaler("realesrgan-x4plus", cuda, InferenceOptions(precision="fp32")).forward(lo)
    f16 = create_upscaler("realesrgan-x4plus", cuda, InferenceOptions(precision="fp16")).forward(lo)
    report(
        "x4plus_fp16_vs_fp32",
        max_abs=(f32 - f16).abs().max().item(),
        mean_abs=(f32 - f16).abs().mean().item(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
