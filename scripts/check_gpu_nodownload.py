"""GPU self-check of the no-download perceptual metrics: the CUDA paths CPU tests cannot reach.

    python scripts/check_gpu_nodownload.py          # needs a CUDA device (and the perceptual extra)

For ``ssimulacra2``, ``flip`` and ``cvvdp``: CPU vs CUDA values on real photos (max abs
difference), the metric called under ``torch.cuda.set_sync_debug_mode("error")`` after a
warm-up (no host sync inside), and seconds per 512 px image in a batch of 16 on the device.
"""

from __future__ import annotations

import io
import json
import time

import numpy as np
import torch
from PIL import Image

from roundtrip_ml.metrics import resolve_metrics

NAMES = ("ssimulacra2", "flip", "cvvdp")


def report(name: str, **values: object) -> None:
    print(json.dumps({"check": name, **values}, default=str), flush=True)


def pairs(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    import skimage.data

    refs, tests = [], []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        a = np.ascontiguousarray(getattr(skimage.data, name)()[:size, :size, :3])
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=30)
        refs.append(a)
        tests.append(np.asarray(Image.open(buf).convert("RGB")))

    def batch(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255

    return batch(tests), batch(refs)


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device")
    cuda = torch.device("cuda")
    x, r = pairs(256)
    big_x, big_r = (t[:1].expand(16, -1, -1, -1) for t in pairs(512))
    for name in NAMES:
        (cpu_m,) = resolve_metrics([name], torch.device("cpu"))
        (gpu_m,) = resolve_metrics([name], cuda)
        on_cpu = cpu_m(x, r)[name]
        on_gpu = gpu_m(x.to(cuda), r.to(cuda))[name].cpu()
        report(
            f"{name} cpu vs cuda",
            max_abs=float((on_cpu - on_gpu).abs().max()),
            values=on_gpu.tolist(),
        )
        xg, rg = big_x.to(cuda), big_r.to(cuda)
        gpu_m(xg, rg)
        torch.cuda.synchronize()
        try:
            torch.cuda.set_sync_debug_mode("error")
            gpu_m(xg, rg)
            synced = False
        except RuntimeError:
            synced = True
        finally:
            torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(3):
            gpu_m(xg, rg)
        torch.cuda.synchronize()
        report(
            f"{name} on cuda",
            host_sync_inside=synced,
            s_per_512px_image=(time.perf_counter() - t0) / (3 * 16),
        )


if __name__ == "__main__":
    main()
