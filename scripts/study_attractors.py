"""Where do chains go? Attractor types and the many-starts distance across offline models.

Every model runs the same x4 roundtrip (Lanczos-3 down, PNG handoff) from three starts of each
photo's size (``starts = ["image", "noise", "flat"]``: the photo, seeded uniform noise, flat
grey 128). ``roundtrip summarize`` types how each chain ends (fixed point, cycle, converging,
wandering; analysis/attractors.py) and measures the PSNR between the starts' late frames (the
last quarter of the run): high means different starts ended in the same place.

    python scripts/study_attractors.py            # CPU size: 2 photos, 96 px crops, 24 gens
    python scripts/study_attractors.py --full     # GPU size: 6 photos, 256 px crops, 200 gens
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from study_common import DOCS, PHOTOS, run, save_figure, study_args, write_study

import roundtrip_ml as rt
from roundtrip_ml.analysis.attractors import ATTRACTOR_KINDS, start_distances

MODELS = [
    "lanczos3",
    "bicubic",
    "realesr-animevideov3",
    "span-x4-ch52",
    "span-clearreality-x4",
    "realcugan-se-x4",
]
PAIRS = [("image", "noise"), ("flat", "image"), ("flat", "noise")]  # as start_distances sorts


def main() -> None:
    args, out = study_args(__doc__, "attr", DOCS)
    if args.full:
        photos, crop, gens, note = PHOTOS, 256, 200, "GPU size: 6 photos, 256 px crops"
    else:
        photos, crop, gens, note = PHOTOS[:2], 96, 24, "CPU size: 2 photos, 96 px centre crops"
    view = run(
        {
            "name": "attractors",
            "images": photos,
            "upscalers": MODELS,
            "starts": ["image", "noise", "flat"],
            "generations": gens,
            "frame_stride": max(1, gens // 8),
            "checkpoint_stride": gens,
            "metrics": ["psnr"],
            "center_crop": crop,
            "device": args.device,
        },
        out / "run",
        args.reuse,
    )
    summary = rt.summarize(view, thresholds="psnr<20")
    per = summary[
        [
            "chain_id",
            "image_name",
            "upscaler",
            "start",
            "attractor",
            "step_trend",
            "event_generation",
            "period",
            "step_psnr",
        ]
    ].copy()
    dist = start_distances(view.path)
    table, findings = [], []
    for model in MODELS:
        s = per[per.upscaler == model]
        row: dict[str, object] = {"model": model}
        for kind in ATTRACTOR_KINDS:
            row[kind] = int((s.attractor == kind).sum())
        row["untyped"] = int(s.attractor.isna().sum())
        d = dist[dist.upscaler == model]
        for a, b in PAIRS:
            v = d[(d.start_a == a) & (d.start_b == b)].late_psnr
            row[f"{a}↔{b} dB"] = float(v.mean()) if len(v) else np.nan
        table.append(row)
    t = pd.DataFrame(table)
    n = len(per)
    counts = {k: int((per.attractor == k).sum()) for k in ATTRACTOR_KINDS}
    findings.append(
        f"Of {n} chains ({len(MODELS)} models x {len(photos)} photos x 3 starts, "
        f"{gens} generations): "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f", {int(per.attractor.isna().sum())} untyped."
    )
    for a, b in PAIRS:
        col = f"{a}↔{b} dB"
        best = t.loc[t[col].idxmax()]
        findings.append(
            f"Late-frame PSNR {a} vs {b} start: mean {t[col].mean():.1f} dB over "
            f"models, highest {best[col]:.1f} dB ({best['model']}), lowest "
            f"{t[col].min():.1f} dB ({t.loc[t[col].idxmin(), 'model']})."
        )
    by_start = (
        per.assign(attractor=per.attractor.fillna("untyped"))
        .pivot_table(
            index="start", columns="attractor", values="chain_id", aggfunc="count", fill_value=0
        )
        .reset_index()
    )
    for r in by_start.itertuples(index=False):
        kinds = ", ".join(f"{getattr(r, k)} {k}" for k in by_start.columns[1:] if getattr(r, k))
        findings.append(f"Started from {r.start}: {kinds} (of {len(MODELS) * len(photos)}).")
    findings.append("Per-photo pair distances: [attractors_starts.csv](attractors_starts.csv).")
    fig = figure(t, Path(args.docs) / "attractors.png", gens)
    Path(args.docs).mkdir(parents=True, exist_ok=True)
    dist.to_csv(Path(args.docs) / "attractors_starts.csv", index=False)  # the distance columns
    path = write_study(
        "attractors",
        "Attractors: how chains end, and where different starts go",
        __doc__.split("\n\n")[1].strip(),
        {
            "Attractor types (chains) and late-frame PSNR between starts (mean over photos)": t,
            "Attractor types by start (chains)": by_start,
        },
        findings,
        per,
        fig,
        note,
        Path(args.docs),
    )
    print(path.read_text())


def figure(t: pd.DataFrame, path: Path, gens: int) -> Path:
    """Left: attractor types per model (stacked counts); right: late PSNR between starts."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    y = np.arange(len(t))
    left = np.zeros(len(t))
    for kind in [*ATTRACTOR_KINDS, "untyped"]:
        ax1.barh(y, t[kind], left=left, label=kind)
        left += t[kind].to_numpy()
    ax1.set_yticks(y, t.model)
    ax1.invert_yaxis()
    ax1.set_xlabel("chains")
    ax1.set_title("how chains end (all photos and starts)", fontsize=10)
    ax1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=5)
    w = 0.27
    for i, (a, b) in enumerate(PAIRS):
        ax2.barh(y + (i - 1) * w, t[f"{a}↔{b} dB"], height=w, label=f"{a} ↔ {b}")
    ax2.set_yticks(y, t.model)
    ax2.invert_yaxis()
    ax2.set_xlabel("PSNR between the starts' late frames (dB; higher: same place)", fontsize=9)
    ax2.set_title("do different starts end in the same place?", fontsize=10)
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    ax2.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Attractors after {gens} generations (x4, PNG handoff)")
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
