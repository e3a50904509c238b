"""How chaotic is each model family? Largest Lyapunov exponents from perturbed replicas.

Every model runs the same x4 roundtrip (Lanczos-3 down, PNG handoff) on each photo plus two
replicas whose start differs by one 8-bit level in random pixels (``replicas = 2``,
``perturbation = "lsb"``). The mean pairwise distance between replicas grows like
e^(lambda g) while it is small; lambda (per generation, natural log of the RMS distance's
growth) is fitted over that exponential phase with a 95% CI, pooled over photos
(analysis/divergence.py; the method is in docs/guide/collapse-science.md). lambda > 0: chaos;
e^lambda: the factor by which a difference grows per generation.

    python scripts/study_lyapunov.py            # CPU size: 2 photos, 96 px crops, 12 gens
    python scripts/study_lyapunov.py --full     # GPU size: 6 photos, 256 px crops, 40 gens
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from study_common import DOCS, PHOTOS, run, save_figure, study_args, write_study

from roundtrip_ml.analysis.divergence import summarize_divergence

FAMILIES = {  # model: family
    "lanczos3": "classical",
    "bicubic": "classical",
    "realesrgan-x4plus": "Real-ESRGAN",
    "realesr-animevideov3": "Real-ESRGAN",
    "span-x4-ch52": "SPAN",
    "span-clearreality-x4": "SPAN",
    "realcugan-se-x4": "Real-CUGAN",
    "srmd-x4": "SRMD",
}


def main() -> None:
    args, out = study_args(__doc__, "lyap", DOCS)
    if args.full:
        photos, crop, gens, note = PHOTOS, 256, 40, "GPU size: 6 photos, 256 px crops"
    else:
        photos, crop, gens, note = PHOTOS[:2], 96, 12, "CPU size: 2 photos, 96 px centre crops"
    view = run(
        {
            "name": "lyapunov",
            "images": photos,
            "upscalers": list(FAMILIES),
            "replicas": 2,
            "perturbation": "lsb",
            "generations": gens,
            "frame_stride": gens,
            "checkpoint_stride": gens,
            "metrics": ["psnr"],
            "center_crop": crop,
            "device": args.device,
        },
        out / "run",
        args.reuse,
    )
    m = view.metrics
    pooled = summarize_divergence(m)
    per_chain = summarize_divergence(m, per="chain")
    for df in (pooled, per_chain):
        df["family"] = df.upscaler.map(FAMILIES)
    pooled = pooled.set_index("upscaler").loc[list(FAMILIES)].reset_index()
    cols = [
        "family",
        "upscaler",
        "lyapunov",
        "lyapunov_ci_low",
        "lyapunov_ci_high",
        "rate_db_per_gen",
        "n_points",
        "n_chains",
        "horizon",
        "final_pairwise_psnr",
    ]
    table = pooled[cols].rename(
        columns={
            "upscaler": "model",
            "lyapunov": "λ /gen",
            "lyapunov_ci_low": "λ CI low",
            "lyapunov_ci_high": "λ CI high",
            "rate_db_per_gen": "dB/gen",
            "n_chains": "photos",
            "final_pairwise_psnr": "final pair dB",
        }
    )
    findings = []
    for fam in dict.fromkeys(FAMILIES.values()):
        sub = pooled[pooled.family == fam]
        parts = [
            f"{r.upscaler} λ = {r.lyapunov:.3f} [{r.lyapunov_ci_low:.3f}, "
            f"{r.lyapunov_ci_high:.3f}] per generation (x{math.exp(r.lyapunov):.2f} per "
            f"generation, {r.rate_db_per_gen:.2f} dB/gen)"
            for r in sub.itertuples()
        ]
        findings.append(f"{fam}: " + "; ".join(parts) + ".")
    classical = pooled[pooled.family == "classical"]
    ml = pooled[pooled.family != "classical"]
    above = ml[ml.lyapunov_ci_low > classical.lyapunov_ci_high.max()].upscaler.tolist()
    findings.append(
        f"The classical kernels' λ is not 0 ({classical.lyapunov.min():.3f} to "
        f"{classical.lyapunov.max():.3f}): with a 1-level start, 8-bit rounding alone moves "
        "replicas apart, so a model's λ reads against that floor. CI entirely above the "
        f"classical ones: {', '.join(above) or 'none'} ({len(above)} of {len(ml)} models). "
        f"Each fit pools {len(photos)} photos (one slope, a per-photo intercept); the CI comes "
        "from the residuals over generations."
    )
    fig = figure(pooled, m, Path(args.docs) / "lyapunov.png", gens)
    path = write_study(
        "lyapunov",
        "Lyapunov exponents per model family",
        __doc__.split("\n\n")[1].strip(),
        {"Per model (pooled over photos)": table},
        findings,
        per_chain,
        fig,
        note,
        Path(args.docs),
    )
    print(path.read_text())


def figure(pooled: pd.DataFrame, m: pd.DataFrame, path: Path, gens: int) -> Path:
    """Left: mean pairwise PSNR between replicas per generation; right: λ with its 95% CI."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.4))
    fams = list(dict.fromkeys(FAMILIES.values()))
    colours = {f: plt.get_cmap("tab10")(i) for i, f in enumerate(fams)}
    pair = m[(m.reference == "replicas") & (m.metric == "psnr")]
    for i, model in enumerate(FAMILIES):
        curve = pair[pair.upscaler == model].groupby("generation").value.mean()
        ax1.plot(
            curve.index,
            curve.values,
            color=colours[FAMILIES[model]],
            ls=["-", "--"][i % 2],
            label=model,
        )
    ax1.set_xlabel("generation")
    ax1.set_ylabel("PSNR between replicas (dB, mean)")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    y = np.arange(len(pooled))
    for i, r in enumerate(pooled.itertuples()):
        ax2.errorbar(
            r.lyapunov,
            i,
            xerr=[[r.lyapunov - r.lyapunov_ci_low], [r.lyapunov_ci_high - r.lyapunov]],
            fmt="o",
            color=colours[r.family],
            capsize=3,
        )
    ax2.axvline(0, color="grey", lw=0.8)
    ax2.set_yticks(y, [f"{r.upscaler} ({r.family})" for r in pooled.itertuples()])
    ax2.invert_yaxis()
    ax2.set_xlabel("largest Lyapunov exponent λ (per generation, 95% CI)")
    ax2.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Replica divergence, x4, PNG handoff, 1-level perturbation, {gens} generations")
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
