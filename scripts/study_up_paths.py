"""Is 2x twice better than 4x once? x2 + x2 vs x4 upscale paths, paired over photos.

The same x4 roundtrip (one x4 Lanczos-3 downscale, PNG handoff) with the upscale done in one
x4 stage or in two x2 stages (``up_steps = [2, 2]``; the image is rounded to 8 bits between the
stages as a PNG would store it): for Lanczos-3 (the same kernel at both paths) and for two model
families that ship both scales (Real-CUGAN SE: x4 model vs the x2 model twice; SPAN ch52: the
same). Per family, the per-photo difference x2+x2 minus x4 of PSNR and SSIM to the original at
generation 1 and at the last generation, and the cost per generation.

    python scripts/study_up_paths.py            # CPU size: 3 photos, 96 px crops, 10 gens
    python scripts/study_up_paths.py --full     # GPU size: 6 photos, 512 px, 50 gens
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from study_common import (
    DOCS,
    PHOTOS,
    final_values,
    fmt_paired,
    paired,
    run,
    save_figure,
    study_args,
    write_study,
)

FAMILIES = {  # family: (x4 upscaler, x2 upscaler run twice)
    "Lanczos-3": ("lanczos3", "lanczos3"),
    "Real-CUGAN SE": ("realcugan-se-x4", "realcugan-se-x2"),
    "SPAN ch52": ("span-x4-ch52", "span-x2-ch52"),
}


def _cost(view) -> dict[str, float]:
    """ms per chain-generation of each chain's batch (first generation left out: warm-up)."""
    out = {}
    for entry in view.manifest.batches.values():
        walls = entry.wall_s_per_generation[1:] or entry.wall_s_per_generation
        for cid in entry.chains:
            out[cid] = float(np.mean(walls)) / len(entry.chains) * 1000
    return out


def main() -> None:
    args, out = study_args(__doc__, "paths", DOCS)
    if args.full:
        photos, size, gens, note = PHOTOS, {"max_side": 512}, 50, "GPU size: 6 photos, 512 px"
    else:
        photos, size, gens, note = (
            PHOTOS[:3],
            {"center_crop": 96},
            10,
            "CPU size: 3 photos, 96 px centre crops",
        )
    common = {
        "images": photos,
        "generations": gens,
        "frame_stride": gens,
        "checkpoint_stride": gens,
        "metrics": ["psnr", "ssim"],
        "device": args.device,
        **size,
    }
    one = run(
        {**common, "name": "x4", "upscalers": [f[0] for f in FAMILIES.values()]},
        out / "x4",
        args.reuse,
    )
    two = run(
        {
            **common,
            "name": "x2x2",
            "upscalers": [f[1] for f in FAMILIES.values()],
            "up_steps": [2, 2],
        },
        out / "x2x2",
        args.reuse,
    )
    rows = []
    for path, view in (("x4", one), ("x2+x2", two)):
        cost = _cost(view)
        for metric in ("psnr", "ssim"):
            for g in (1, gens):
                v = final_values(view.metrics, metric, generation=g)
                up = view.chains.set_index("chain_id")["upscaler"]
                rows += [
                    {
                        "path": path,
                        "upscaler": up[r.chain_id],
                        "image_name": r.image_name,
                        "chain_id": r.chain_id,
                        "metric": metric,
                        "generation": g,
                        "value": r.value,
                        "ms_per_generation": cost[r.chain_id],
                    }
                    for r in v.itertuples()
                ]
    per = pd.DataFrame(rows)
    fam_of = {u: fam for fam, pair in FAMILIES.items() for u in pair}
    per["family"] = per.upscaler.map(fam_of)
    table, findings = [], []
    for fam in FAMILIES:
        row = {"family": fam, "x4": FAMILIES[fam][0], "x2 twice": FAMILIES[fam][1]}
        for metric, digits in (("psnr", 2), ("ssim", 3)):
            for g in (1, gens):
                sel = per[(per.family == fam) & (per.metric == metric) & (per.generation == g)]
                a = sel[sel.path == "x2+x2"].set_index("image_name").value
                b = sel[sel.path == "x4"].set_index("image_name").value
                p = paired(a - b.reindex(a.index), 0.01 if metric == "psnr" else 1e-4)
                row[f"Δ{metric.upper()} g{g}"] = fmt_paired(p, digits)
                if metric == "psnr" and g == gens:
                    findings.append(
                        f"{fam}: x2+x2 minus x4, PSNR to the original at generation {gens}: "
                        f"{fmt_paired(p)} dB (mean [95% CI] (n; wins/ties/losses) over photos); "
                        f"mean PSNR {a.mean():.2f} vs {b.mean():.2f} dB."
                    )
        c = per[(per.family == fam) & (per.metric == "psnr") & (per.generation == 1)]
        row["ms/gen x4"] = float(c[c.path == "x4"].ms_per_generation.mean())
        row["ms/gen x2+x2"] = float(c[c.path == "x2+x2"].ms_per_generation.mean())
        table.append(row)
    fig = figure(one, two, gens, Path(args.docs) / "up_paths.png")
    path = write_study(
        "up_paths",
        "x2 + x2 vs x4: upscale paths",
        __doc__.split("\n\n")[1].strip(),
        {"x2+x2 minus x4, per family (positive: two steps better)": pd.DataFrame(table)},
        findings,
        per,
        fig,
        note,
        Path(args.docs),
    )
    print(path.read_text())


def figure(one, two, gens: int, path: Path) -> Path:
    """PSNR to the original per generation, one panel per family: x4 solid, x2+x2 dashed;
    thin lines are single photos, thick the mean."""
    fig, axes = plt.subplots(1, len(FAMILIES), figsize=(4.3 * len(FAMILIES), 3.8), sharey=True)
    for ax, (fam, (x4, x2)) in zip(axes, FAMILIES.items(), strict=True):
        for view, up, style, label in (
            (one, x4, "-", f"{x4} (x4)"),
            (two, x2, "--", f"{x2} (x2+x2)"),
        ):
            m = view.metrics
            m = m[(m.metric == "psnr") & (m.reference == "original") & (m.upscaler == up)]
            line = None
            for _, c in m.groupby("image_name"):
                line = ax.plot(
                    c.generation,
                    c.value,
                    style,
                    lw=0.6,
                    alpha=0.45,
                    color=None if line is None else line[0].get_color(),
                )
            mean = m.groupby("generation").value.mean()
            ax.plot(
                mean.index,
                mean.values,
                style,
                lw=2.2,
                label=label,
                color=None if line is None else line[0].get_color(),
            )
        ax.set_title(fam, fontsize=10)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("PSNR to original (dB)")
    fig.suptitle(f"x2 + x2 vs x4 (x4 roundtrip, PNG handoff, {gens} generations; thin: photos)")
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
