"""Is a faster precision honest? fp32 vs bf16 (or fp16) collapse statistics over photos.

ML chains are chaotic, so two precisions give different pixels after a few generations; what
must agree is the statistics. For each precision this runs the same study (x4plus, x4, PNG
handoff) on every photo and prints PSNR and SSIM vs the original at chosen generations, the mean
over photos with a 95% t-interval, and whether the two precisions' intervals overlap.

    python scripts/precision_study.py --device cuda                 # the seed's protocol, 200 gens
    python scripts/precision_study.py --small --device cpu          # minutes on a CPU
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import pandas as pd
from scipy import stats

from roundtrip_ml.imaging.images import sample_names
from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.experiment import run_experiment

PHOTOS = [f"skimage:{n}" for n in sample_names() if n != "logo"]


def mean_ci(values: pd.Series) -> tuple[float, float, float, int]:
    v = values.dropna().to_numpy()
    n = len(v)
    m = float(v.mean()) if n else math.nan
    if n < 2:
        return m, math.nan, math.nan, n
    half = float(stats.t.ppf(0.975, n - 1)) * float(v.std(ddof=1)) / math.sqrt(n)
    return m, m - half, m + half, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--upscaler", default="realesrgan-x4plus")
    ap.add_argument("--images", nargs="*", default=PHOTOS)
    ap.add_argument("--generations", type=int, default=200)
    ap.add_argument("--at", default="1,10,50,200")
    ap.add_argument("--max-side", type=int, default=2000, help="the seed's photo size")
    ap.add_argument("--small", action="store_true", help="2 photos, 48 px crops, 6 generations")
    ap.add_argument("--output", default=None, help="run directories (default: a temp dir)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    at = [int(a) for a in args.at.split(",")]
    extra: dict[str, object] = {"max_side": args.max_side}
    images = args.images
    if args.small:
        images, args.generations, at = images[:2], 6, [1, 3, 6]
        extra = {"center_crop": 48}
    out = Path(args.output or tempfile.mkdtemp(prefix="precision-"))
    rows = []
    for prec in args.precisions.split(","):
        cfg = make_config(
            {
                "name": f"precision-{prec}",
                "images": images,
                "upscalers": [args.upscaler],
                "codecs": ["png"],
                "generations": args.generations,
                "metrics": ["psnr", "ssim"],
                "metric_stride": max(1, min(at[1:] or [1])),
                "frame_stride": args.generations,
                "checkpoint_stride": max(10, args.generations // 4),
                "precision": prec,
                "device": args.device,
                "output": str(out / prec),
                **extra,
            }
        )
        result = run_experiment(cfg, resume=(out / prec / "manifest.json").exists())
        if result.failed:
            raise SystemExit(
                f"{prec}: {len(result.failed)} chains failed: {next(iter(result.failed.values()))}"
            )
        m = pd.read_parquet(result.run_dir / "metrics.parquet")
        m = m[(m["reference"] == "original") & m["generation"].isin(at)]
        for (metric, g), grp in m.groupby(["metric", "generation"]):
            mean, lo, hi, n = mean_ci(grp["value"])
            rows.append(
                {
                    "precision": prec,
                    "metric": metric,
                    "generation": int(g),
                    "mean": mean,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n_photos": n,
                }
            )
    table = pd.DataFrame(rows).sort_values(["metric", "generation", "precision"])
    precs = args.precisions.split(",")
    print(f"{args.upscaler}, x4, png, {len(images)} photos, 95% t-interval over photos")
    for (metric, g), grp in table.groupby(["metric", "generation"]):
        cells = {r.precision: r for r in grp.itertuples()}
        text = "  ".join(
            f"{p}: {cells[p].mean:7.3f} [{cells[p].ci_low:7.3f}, {cells[p].ci_high:7.3f}]"
            for p in precs
            if p in cells
        )
        a, b = (cells.get(p) for p in precs[:2])
        overlap = (
            a is not None and b is not None and a.ci_low <= b.ci_high and b.ci_low <= a.ci_high
        )
        print(f"{metric:5} g{g:<4} {text}  intervals overlap: {'yes' if overlap else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps(table.to_dict(orient="records"), indent=1))


if __name__ == "__main__":
    main()
