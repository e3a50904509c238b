"""What every column of the collapse summary means, in one place and without heavy imports:
`render_summary` takes its headers from here, and `roundtrip summarize --help` and
docs/guide/notebook.md print the definitions (a test checks that every header has one)."""

from __future__ import annotations

# stored column -> header in the printed table
SUMMARY_HEADERS: dict[str, str] = {
    "chain_id": "chain",
    "generations": "gens",
    "final_psnr": "psnr",
    "final_ssim": "ssim",
    "final_lpips": "lpips",
    "final_de2000_mean": "ΔE00",
    "final_spectral_high": "high dB",
    "half_life_psnr": "t½ psnr",
    "step_psnr": "step dB",
    "fixed_point_generation": "fixed from",
    "attractor": "ends",
    "late_psnr_to_image": "dB to photo start",
}

# header -> definition (threshold columns such as ``psnr<20`` share THRESHOLD_DEFINITION)
SUMMARY_DEFINITIONS: dict[str, str] = {
    "chain": "the chain: image-upscaler-downscaler-xSCALE-codec (-rN: replica N)",
    "gens": "generations run",
    "psnr": "PSNR against the original at the last generation, dB (inf: identical)",
    "ssim": "SSIM against the original at the last generation (1: identical)",
    "lpips": "LPIPS against the original at the last generation (0: identical)",
    "ΔE00": "mean CIEDE2000 colour difference from the original at the last generation "
    "(about 2.3: just noticeable)",
    "high dB": "luma power at spatial frequencies above 0.25 cycles/pixel relative to the "
    "original, dB, at the last generation (below 0: detail lost; above 0: detail "
    "invented)",
    "t½ psnr": "half-life: the first generation whose PSNR drift (as MSE) from the original "
    "reaches half of its drift at the last generation",
    "step dB": "PSNR between the last two generations, dB (inf: the image stopped changing)",
    "fixed from": "the first generation from which the image never changes again",
    "ends": "how the chain ends (analysis/attractors.py): fixed_point (the image stopped "
    "changing), cycle (it repeats with a period), converging (the step to the previous "
    "generation keeps shrinking) or wandering (it does not)",
    "dB to photo start": "for a chain started from noise or flat grey (key starts): PSNR "
    "between its late generations and those of the same recipe started "
    "from the photo, dB (high: the starts end in the same place)",
    "event": "fixed point or cycle (period p) found from the 8-bit images, @ the generation "
    "where it starts",
}
THRESHOLD_DEFINITION = (
    "psnr<20: (a column per threshold: ssim<0.5, lpips>0.4, ...) the first "
    "generation whose value against the original crosses the threshold "
    "('-': never in this run)"
)


def columns_help() -> str:
    """The definitions as lines, for --help and the docs."""
    lines = [f"{h}: {d}" for h, d in SUMMARY_DEFINITIONS.items()]
    return "\n".join([*lines, THRESHOLD_DEFINITION])
