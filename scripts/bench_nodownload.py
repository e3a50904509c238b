"""The perceptual metrics that need no download: deviation from their reference packages and
cost per 512 px image on this machine.

Deviation: on real photos (skimage astronaut, coffee, chelsea, rocket; centre crops of
``--size``) under blur, noise, JPEG q30 and one real ML generation (Real-ESRGAN animevideov3,
x4 down and up), the registry metric (batched, as the engine calls it) vs the reference
called on each pair: the ``ssimulacra2`` package and NVIDIA's ``flip-evaluator`` for our torch
ports, ``cvvdp`` one pair at a time for the batched ColorVideoVDP, ffmpeg/libvmaf for VMAF
(whose registry entry wraps it).

Cost: seconds per image at 512 x 512 (astronaut vs its JPEG q30), median of ``--repeat`` runs,
with ``--threads`` torch threads; the registry metric in a batch of ``--batch`` and the
reference one image at a time.

    python scripts/bench_nodownload.py --size 128 --threads 1
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from roundtrip_ml.metrics import resolve_metrics

CPU = torch.device("cpu")
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket"]


def crop(name: str, size: int) -> np.ndarray:
    import skimage.data

    a = getattr(skimage.data, name)()[..., :3]
    top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
    return np.ascontiguousarray(a[top : top + size, left : left + size])


def batch(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def jpeg(a: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(buf).convert("RGB"))


def ml_generation(a: np.ndarray) -> np.ndarray:
    from roundtrip_ml.imaging.resample import resize
    from roundtrip_ml.upscalers import create_upscaler

    h, w = a.shape[:2]
    up = create_upscaler("realesr-animevideov3", CPU)
    with torch.inference_mode():
        y = up.upscale(
            resize(batch([a]), (h // 4, w // 4), "lanczos3", True), (h, w), eight_bit=True
        )
    return (y[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def cases(size: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for name in PHOTOS:
        a = crop(name, size)
        blur = ndimage.gaussian_filter(a.astype(float), (1.2, 1.2, 0))
        noise = a + np.random.default_rng(0).normal(0, 6, a.shape)
        out += [
            (f"{name}-blur", a, np.clip(blur, 0, 255).round().astype(np.uint8)),
            (f"{name}-noise", a, np.clip(noise, 0, 255).round().astype(np.uint8)),
            (f"{name}-jpeg30", a, jpeg(a, 30)),
        ]
    a = crop("astronaut", size)
    out.append(("astronaut-animevideov3", a, ml_generation(a)))
    return out


def references() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """name -> reference(original, test) on H x W x 3 uint8."""

    def ssimulacra2(a: np.ndarray, b: np.ndarray) -> float:
        from ssimulacra2 import compute_ssimulacra2

        files = []
        for img in (a, b):
            f = io.BytesIO()
            Image.fromarray(img).save(f, format="PNG")
            f.seek(0)
            files.append(f)
        return compute_ssimulacra2(*files)

    from roundtrip_ml.metrics.cvvdp import DISPLAY, require

    cvvdp_ref = require().cvvdp(display_name=DISPLAY, device=CPU, quiet=True)

    def cvvdp(a: np.ndarray, b: np.ndarray) -> float:
        return float(cvvdp_ref.predict(batch([b]), batch([a]), dim_order="BCHW")[0])

    def flip(a: np.ndarray, b: np.ndarray) -> float:
        import flip_evaluator

        f = np.float32
        return float(
            flip_evaluator.evaluate(a.astype(f) / 255, b.astype(f) / 255, "LDR", applyMagma=False)[
                1
            ]
        )

    def vmaf(a: np.ndarray, b: np.ndarray) -> float:
        from roundtrip_ml.metrics.vmaf import _vmaf

        return _vmaf(b, a)

    return {"ssimulacra2": ssimulacra2, "cvvdp": cvvdp, "flip": flip, "vmaf": vmaf}


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--metrics", default="ssimulacra2,cvvdp,flip,vmaf")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    refs = references()
    names = args.metrics.split(",")
    pairs = cases(args.size)
    x, r = batch([p[2] for p in pairs]), batch([p[1] for p in pairs])
    print(
        f"deviation from the reference on {len(pairs)} pairs ({args.size} px crops: "
        f"{', '.join(PHOTOS)} x blur/noise/jpeg30 + an animevideov3 generation)"
    )
    print("| metric | range of values | max abs dev | mean abs dev |")
    print("|---|---|---|---|")
    for name in names:
        (m,) = resolve_metrics([name], CPU)
        ours = m(x, r)[name].double().numpy()
        ref = np.array([refs[name](a, b) for _, a, b in pairs])
        dev = np.abs(ours - ref)
        print(
            f"| {name} | {ref.min():.3f} .. {ref.max():.3f} | {dev.max():.2e} | {dev.mean():.2e} |"
        )
    a = crop("astronaut", 512)
    b = jpeg(a, 30)
    xb, rb = batch([b] * args.batch), batch([a] * args.batch)
    print(f"\ncost per 512 x 512 image, {args.threads} torch thread(s), median of {args.repeat}")
    print(f"| metric | registry (batch of {args.batch}) s/image | reference s/image | ratio |")
    print("|---|---|---|---|")
    for name in names:
        (m,) = resolve_metrics([name], CPU)
        ours = timed(lambda m=m: m(xb, rb), args.repeat) / args.batch
        ref = timed(lambda name=name: refs[name](a, b), args.repeat)
        print(f"| {name} | {ours:.3f} | {ref:.3f} | {ref / ours:.2f}x |")


if __name__ == "__main__":
    main()
