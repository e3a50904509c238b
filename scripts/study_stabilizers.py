"""Can collapse be slowed? Stabilisers vs none on three collapsing models, paired over photos.

Each model runs the same chains (x4, Lanczos-3 down, PNG handoff) with no stabiliser and with
each stabiliser (colour, histogram, wavelet, backproject:3). Per model and stabiliser, against
"none" on the same photos: generations gained before PSNR to the original falls under 20 dB
(Kaplan-Meier medians with the censoring stated; paired differences where both chains
crossed), PSNR and colour shift (CIEDE2000 mean) at the last generation, and the cost per
generation: the stabiliser's own time per image (timed alone) beside the batch's wall time per
chain-generation (model included; noisy on a shared machine). Lanczos-3 runs beside the models
for scale.

    python scripts/study_stabilizers.py            # CPU size: 3 photos, 96 px crops, 12 gens
    python scripts/study_stabilizers.py --full     # GPU size: 6 photos, 512 px, 50 gens
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from study_common import (
    DOCS,
    PHOTOS,
    crossings,
    final_values,
    fmt_paired,
    km_median,
    paired,
    run,
    save_figure,
    study_args,
    write_study,
)

import roundtrip_ml as rt

MODELS = ["realesr-animevideov3", "span-clearreality-x4", "realcugan-se-x4"]
REFERENCE = "lanczos3"  # a classical chain beside them, for scale (not in the pooled findings)
STABILIZERS = ["none", "colour", "histogram", "wavelet", "backproject:3"]
THRESHOLD = "psnr<20"


def main() -> None:
    args, out = study_args(__doc__, "stab", DOCS)
    if args.full:
        photos, size, gens, note = PHOTOS, {"max_side": 512}, 50, "GPU size: 6 photos, 512 px"
    else:
        photos, size, gens, note = (
            PHOTOS[:3],
            {"center_crop": 96},
            12,
            "CPU size: 3 photos, 96 px centre crops",
        )
    view = run(
        {
            "name": "stabilizers",
            "images": photos,
            "upscalers": [*MODELS, REFERENCE],
            "stabilizers": STABILIZERS,
            "generations": gens,
            "frame_stride": gens,
            "checkpoint_stride": gens,
            "metrics": ["psnr", "ssim", "colour"],
            "device": args.device,
            **size,
        },
        out / "run",
        args.reuse,
    )
    summary = rt.summarize(view, thresholds=THRESHOLD)
    summary = crossings(summary[summary.replica == 0], THRESHOLD, gens)
    m = view.metrics
    de = final_values(m, "de2000_mean").rename(columns={"value": "de2000_last"})
    psnr = final_values(m, "psnr").rename(columns={"value": "psnr_last"})
    chains = view.chains.set_index("chain_id")
    cost = {}
    for entry in view.manifest.batches.values():
        walls = entry.wall_s_per_generation[1:] or entry.wall_s_per_generation  # skip warm-up
        per_chain = float(np.mean(walls)) / len(entry.chains)
        for cid in entry.chains:
            cost[cid] = per_chain * 1000
    per = (
        summary[["chain_id", "image_name", "upscaler", "stabilizer", "crossed", "cross_gen"]]
        .merge(psnr[["chain_id", "psnr_last"]], on="chain_id")
        .merge(de[["chain_id", "de2000_last"]], on="chain_id")
    )
    per["ms_per_generation"] = per.chain_id.map(cost)
    per["batch"] = per.chain_id.map(chains["batch_id"])
    rows, findings = [], []
    own = stabilizer_cost(photos, size, args.device)
    for model in [*MODELS, REFERENCE]:
        base = per[(per.upscaler == model) & (per.stabilizer == "none")].set_index("image_name")
        for stab in STABILIZERS:
            s = per[(per.upscaler == model) & (per.stabilizer == stab)].set_index("image_name")
            both = s.crossed & base.crossed.reindex(s.index)
            gained = paired((s.cross_gen - base.cross_gen.reindex(s.index))[both])
            row = {
                "model": model,
                "stabiliser": stab,
                "crossed": f"{int(s.crossed.sum())}/{len(s)}",
                "KM median gen": km_median(list(s.cross_gen), list(s.crossed)),
                "PSNR last": float(s.psnr_last.mean()),
                "ΔE00 last": float(s.de2000_last.mean()),
                "batch ms/chain-gen": float(s.ms_per_generation.mean()),
            }
            if stab != "none":
                dpsnr = paired(s.psnr_last - base.psnr_last.reindex(s.index), 0.05)
                dde = paired(base.de2000_last.reindex(s.index) - s.de2000_last, 0.05)
                row.update(
                    {
                        "gens gained (both crossed)": fmt_paired(gained, 1),
                        "Δ PSNR last (dB)": fmt_paired(dpsnr),
                        "ΔE00 reduction": fmt_paired(dde),
                        "stabiliser ms/image": own[stab],
                    }
                )
            rows.append(row)
    table = pd.DataFrame(rows)
    ml = per[per.upscaler.isin(MODELS)]
    for stab in STABILIZERS[1:]:
        sub = ml[ml.stabilizer == stab].set_index(["upscaler", "image_name"])
        base = ml[ml.stabilizer == "none"].set_index(["upscaler", "image_name"])
        dpsnr = paired(sub.psnr_last - base.psnr_last.reindex(sub.index), 0.05)
        dde = paired(base.de2000_last.reindex(sub.index) - sub.de2000_last, 0.05)
        findings.append(
            f"`{stab}` over the three models at generation {gens}: PSNR to the original "
            f"{fmt_paired(dpsnr)} dB, ΔE00 reduced by {fmt_paired(dde)} (mean [95% CI] "
            f"(n; wins/ties/losses) of per-photo differences); it costs {own[stab]:.2f} ms per "
            f"image and generation on this device (median of 20, one thread)."
        )
    ref = per[(per.upscaler == REFERENCE)].set_index("stabilizer")
    findings.append(
        f"For scale: {REFERENCE} without a stabiliser ends at "
        f"{ref.psnr_last.loc['none'].mean():.1f} dB PSNR and ΔE00 "
        f"{ref.de2000_last.loc['none'].mean():.1f}; with backproject:3 at "
        f"{ref.psnr_last.loc['backproject:3'].mean():.1f} dB."
    )
    crossed_none = ml[ml.stabilizer == "none"].crossed
    findings.insert(
        0,
        f"Without a stabiliser {int(crossed_none.sum())} of {len(crossed_none)} "
        f"chains fell under {THRESHOLD.replace('psnr<', '')} dB PSNR within "
        f"{gens} generations.",
    )
    fig = figure(m, view.chains, gens, Path(args.docs) / "stabilizers.png")
    path = write_study(
        "stabilizers",
        "Stabilisers vs none on three collapsing models",
        __doc__.split("\n\n")[1].strip(),
        {"Per model and stabiliser": table},
        findings,
        per,
        fig,
        note,
        Path(args.docs),
    )
    print(path.read_text())


def stabilizer_cost(photos: list[str], size: dict[str, int], device: str) -> dict[str, float]:
    """Each stabiliser's own cost: median ms per image of ``stabilize`` on the photos' x4
    Lanczos upscale (one batch, 3 warm-up calls, 20 timed; one torch thread on a CPU)."""
    import time

    import torch

    from roundtrip_ml.core.info import resolve_device
    from roundtrip_ml.core.specs import parse_stabilizer
    from roundtrip_ml.imaging.resample import lowres_size, resize
    from roundtrip_ml.imaging.stabilize import stabilize
    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.plan import prepare_image

    dev = resolve_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(1)
    cfg = make_config({"images": photos, **size})
    imgs = [prepare_image(p, cfg)[0] for p in photos]
    h0, w0 = min(i.shape[-2] for i in imgs), min(i.shape[-1] for i in imgs)  # one batch size
    x = torch.cat([i[..., :h0, :w0] for i in imgs]).to(dev)
    h, w = x.shape[-2:]
    lo = resize(x, lowres_size((h, w), 4), "lanczos3").clamp(0, 1)
    y = resize(lo, (h, w), "lanczos3").clamp(0, 1)
    out = {}
    for spec in STABILIZERS[1:]:
        stab = parse_stabilizer(spec)
        times = []
        for i in range(23):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            stabilize(y, lo, stab, "lanczos3")
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - t0)
        out[spec] = float(np.median(times)) * 1000 / len(x)
    return out


def figure(m: pd.DataFrame, chains: pd.DataFrame, gens: int, path: Path) -> Path:
    """Mean over photos of PSNR and ΔE00 to the original per generation: one column per model,
    one line per stabiliser."""
    m = m[(m.reference == "original") & (m.replica == 0)]
    m = m.assign(stabilizer=m.chain_id.map(chains.set_index("chain_id")["stabilizer"]))
    models = [*MODELS, REFERENCE]
    fig, axes = plt.subplots(2, len(models), figsize=(4.2 * len(models), 6.4), sharex=True)
    for col, model in enumerate(models):
        for row, (metric, label) in enumerate(
            [("psnr", "PSNR to original (dB)"), ("de2000_mean", "ΔE00 to original")]
        ):
            ax = axes[row, col]
            sub = m[(m.upscaler == model) & (m.metric == metric)]
            for stab in STABILIZERS:
                curve = sub[sub.stabilizer == stab].groupby("generation")["value"].mean()
                ax.plot(
                    curve.index,
                    curve.values,
                    label=stab,
                    lw=1.6,
                    ls="-" if stab == "none" else "--",
                )
            if metric == "psnr":
                ax.axhline(20, color="grey", lw=0.8, ls=":")
                ax.set_title(model, fontsize=10)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("generation")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Stabilisers vs none: mean over photos, x4, PNG handoff, {gens} generations")
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
