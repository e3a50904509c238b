"""Is a faster precision honest? fp32 vs bf16 (or fp16) collapse statistics, paired by photo.

ML chains are chaotic, so two precisions give different pixels after a few generations; what
must agree is the statistics. Each precision runs the same study (x4plus, x4, PNG handoff) on
every photo. Per photo and generation: d = metric(other precision) - metric(fp32). The table
gives the mean paired difference with its 95% Student-t interval (none under 3 photos), and
calls the precisions equivalent at a generation when that whole interval lies within
+-margin (0.5 dB PSNR, 0.01 SSIM by default): a two one-sided test at the 2.5% level each side.
Overlapping unpaired intervals would say nothing: photo-to-photo spread is far wider than
any precision effect.

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

from roundtrip_ml.analysis.paired import paired_t
from roundtrip_ml.imaging.images import sample_names
from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.experiment import run_experiment

PHOTOS = [f"skimage:{n}" for n in sample_names() if n != "logo"]
MARGINS = {"psnr": 0.5, "ssim": 0.01}  # differences no reader of a collapse curve would see


def paired_rows(values: pd.DataFrame, precisions: list[str]) -> pd.DataFrame:
    """values: one row per precision, image, metric, generation. One row per other precision,
    metric and generation: the paired difference to the first precision and its verdict."""
    wide = values.pivot_table(
        index=["metric", "generation", "image"], columns="precision", values="value"
    )
    base, rows = precisions[0], []
    for other in precisions[1:]:
        for (metric, g), grp in wide.groupby(level=["metric", "generation"]):
            d = (grp[other] - grp[base]).dropna()
            st = paired_t(d)
            margin = MARGINS.get(str(metric), math.nan)
            rows.append(
                {
                    "precision": other,
                    "vs": base,
                    "metric": metric,
                    "generation": int(g),
                    "n_photos": st.n,
                    "mean_diff": st.mean,
                    "ci_low": st.ci_low,
                    "ci_high": st.ci_high,
                    "margin": margin,
                    "equivalent": bool(-margin < st.ci_low and st.ci_high < margin),
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--upscaler", default="realesrgan-x4plus")
    ap.add_argument("--images", nargs="*", default=PHOTOS)
    ap.add_argument("--generations", type=int, default=200)
    ap.add_argument("--at", default="1,10,50,200")
    ap.add_argument("--max-side", type=int, default=2000, help="the seed's photo size")
    ap.add_argument("--small", action="store_true", help="4 photos, 48 px crops, 6 generations")
    ap.add_argument("--output", default=None, help="run directories (default: a temp dir)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    at = [int(a) for a in args.at.split(",")]
    extra: dict[str, object] = {"max_side": args.max_side}
    images = args.images
    if args.small:
        images, args.generations, at = images[:4], 6, [1, 3, 6]
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
        m = m[(m["reference"] == "original") & m["generation"].isin(at) & (m["replica"] == 0)]
        rows.append(m.assign(precision=prec, image=m["image_name"]))
    precs = args.precisions.split(",")
    values = pd.concat(rows)[["precision", "image", "metric", "generation", "value"]]
    table = paired_rows(values, precs)
    print(
        f"{args.upscaler}, x4, png, {len(images)} photos: paired difference to {precs[0]} "
        "(mean [95% t-interval]); equivalent = the interval lies within +-margin"
    )
    for r in table.itertuples():
        ci = (
            "no interval (n < 3)"
            if math.isnan(r.ci_low)
            else f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
        )
        verdict = (
            ""
            if math.isnan(r.ci_low)
            else f"  equivalent at +-{r.margin:g}: {'yes' if r.equivalent else 'NO'}"
        )
        print(
            f"{r.precision}-{r.vs} {r.metric:5} g{r.generation:<4} {r.mean_diff:+.4f} {ci}{verdict}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(table.to_dict(orient="records"), indent=1))


if __name__ == "__main__":
    main()
