"""Forward time per generation and peak memory of the ML upscalers, at the demo's sizes.

Each (model, size) runs in a fresh subprocess, so the CPU peak (ru_maxrss) belongs to that case
alone; on CUDA the peak is torch.cuda.max_memory_allocated. Usage:

    python scripts/bench_models.py                       # x4plus and animevideov3, CPU, 2 threads
    python scripts/bench_models.py --device cuda --precision fp16 --sizes 96,256,512
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

DEFAULT_MODELS = "realesrgan-x4plus,realesr-animevideov3"


def _one(args: argparse.Namespace) -> dict:
    """Measure one model at one size in this process; return a JSON-able row."""
    import skimage.data
    import torch

    from roundtrip_ml.core.specs import InferenceOptions
    from roundtrip_ml.upscalers.loading import load_upscaler

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    t0 = time.perf_counter()
    options = InferenceOptions(
        precision=args.precision,
        tile=args.tile,
        tile_overlap=args.overlap,
        channels_last=args.channels_last,
        compile=args.compile,
    )
    up = load_upscaler(args.model, device=dev, options=options)
    load_s = time.perf_counter() - t0
    s = args.size
    photo = skimage.data.astronaut()  # 512 x 512: tile it for bigger sizes
    reps = -(-s // 512)
    a = photo.repeat(reps, 0).repeat(reps, 1)[:s, :s] if reps > 1 else photo[:s, :s]
    x = torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float().div(255)
    x = x.repeat(args.batch, 1, 1, 1).to(dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    up.forward(x)  # warm-up (and compile, if asked)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        up.forward(x)
        sync()
        times.append(time.perf_counter() - t)
    d = up.describe()
    row = {
        "model": args.model,
        "size": s,
        "batch": args.batch,
        "device": str(dev),
        "precision": d["precision"],
        "tile": d["tile"],
        "source": d["source"],
        "load_s": round(load_s, 2),
        "forward_s": round(statistics.median(times), 4),
        "forward_min_s": round(min(times), 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_forward_mib": round(base_rss / 1024, 1),
    }
    if dev.type == "cuda":
        row["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
        row["gpu"] = torch.cuda.get_device_name(dev)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated registry names")
    p.add_argument("--sizes", default="64,96", help="comma-separated low-res sizes (square)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (2 = this box)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--tile", type=int, default=0)
    p.add_argument("--overlap", type=int, default=16)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--one", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.one:
        args.model, args.size = args.one[0], int(args.one[1])
        print(json.dumps(_one(args)))
        return

    passthrough = [a for a in sys.argv[1:] if a != "--json"]
    rows = []
    for model in args.models.split(","):
        for size in (int(v) for v in args.sizes.split(",")):
            out = subprocess.run(
                [sys.executable, __file__, *passthrough, "--one", model, str(size)],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode:
                print(f"{model} @ {size}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if args.json or not rows:
        return
    cuda = any("cuda_peak_mib" in r for r in rows)
    head = (
        f"{'model':24} {'in px':>6} {'out px':>7} {'batch':>5} {'prec':>5} "
        f"{'fwd s med':>10} {'min':>7} {'RSS loaded MiB':>15} {'peak RSS MiB':>13}"
    )
    head += f" {'CUDA peak MiB':>14}" if cuda else ""
    print(
        f"device {rows[0]['device']}"
        + (f" ({rows[0]['gpu']})" if cuda else f", {args.threads} torch threads")
    )
    print(head)
    for r in rows:
        line = (
            f"{r['model']:24} {r['size']:>6} {r['size'] * 4:>7} {r['batch']:>5} "
            f"{r['precision']:>5} {r['forward_s']:>10.3f} {r['forward_min_s']:>7.3f} "
            f"{r['rss_before_forward_mib']:>15.0f} "
            f"{r['peak_rss_mib']:>13.0f}"
        )
        if cuda:
            line += f" {r.get('cuda_peak_mib', float('nan')):>14.0f}"
        print(line)
    print("weights: " + "; ".join(sorted({f"{r['model']}: {r['source']}" for r in rows})))


if __name__ == "__main__":
    main()
