"""Display names, units and directions of every stored metric: the one table that plots,
tables, sheets and the HTML page read, so a paper's axis label says the same thing everywhere.

Stored names come from roundtrip_ml.metrics (``psnr``, ``spectral_high``, region metrics such
as ``deltae@patch_orange``, options such as ``psnr_y:border=4``, ``pyiqa:NAME``); group names
that ``run --metrics`` accepts (``colour``, ``spectral``) expand to the names they store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower", "zero"]  # which way is better; zero: signed, 0 is best


@dataclass(frozen=True)
class MetricLabel:
    """What a reader needs to read a number: name, unit and which way is better."""

    name: str  # display name: "PSNR", "ΔE00 mean"
    unit: str = ""  # "dB", "cycles/px"; "" when unitless
    direction: Direction = "higher"

    @property
    def arrow(self) -> str:
        return {"higher": "↑", "lower": "↓", "zero": "→0"}[self.direction]

    def axis(self, arrow: bool = True) -> str:
        """An axis label: ``PSNR (dB) ↑``."""
        text = f"{self.name} ({self.unit})" if self.unit else self.name
        return f"{text} {self.arrow}" if arrow else text


_BASE: dict[str, MetricLabel] = {
    "psnr": MetricLabel("PSNR", "dB"),
    "psnr_y": MetricLabel("PSNR-Y", "dB"),
    "ssim": MetricLabel("SSIM"),
    "ssim_y": MetricLabel("SSIM-Y"),
    "ms_ssim": MetricLabel("MS-SSIM"),
    "haarpsi": MetricLabel("HaarPSI"),
    "gmsd": MetricLabel("GMSD", "", "lower"),
    "lpips": MetricLabel("LPIPS", "", "lower"),
    "lpips_vgg": MetricLabel("LPIPS-VGG", "", "lower"),
    "dists": MetricLabel("DISTS", "", "lower"),
    "mse": MetricLabel("MSE", "", "lower"),
    "de2000_mean": MetricLabel("ΔE00 mean", "", "lower"),
    "de2000_p95": MetricLabel("ΔE00 p95", "", "lower"),
    "lab_shift_L": MetricLabel("mean ΔL*", "", "zero"),
    "lab_shift_a": MetricLabel("mean Δa*", "", "zero"),
    "lab_shift_b": MetricLabel("mean Δb*", "", "zero"),
    "spectral_low": MetricLabel("low-band power", "dB", "zero"),
    "spectral_mid": MetricLabel("mid-band power", "dB", "zero"),
    "spectral_high": MetricLabel("high-band power", "dB", "zero"),
    # region metrics of a test chart (name@REGION)
    "deltae": MetricLabel("ΔE00", "", "lower"),
    "mtf50": MetricLabel("MTF50", "cycles/px"),
    "cer": MetricLabel("OCR CER", "", "lower"),
    "word_accuracy": MetricLabel("OCR word accuracy"),
    "ocr_confidence": MetricLabel("OCR confidence"),
}

# Names `run --metrics` accepts that store several values.
GROUPS: dict[str, tuple[str, ...]] = {
    "spectral": ("spectral_low", "spectral_mid", "spectral_high"),
    "colour": ("de2000_mean", "de2000_p95", "lab_shift_L", "lab_shift_a", "lab_shift_b"),
}

# The metrics a figure shows first when none are named (most papers report these).
HEADLINE = ("psnr", "ssim", "ms_ssim", "lpips", "dists", "haarpsi", "psnr_y", "ssim_y", "gmsd",
            "de2000_mean", "spectral_high")


def label(metric: str) -> MetricLabel:
    """The label of a stored metric name; region (``X@R``) and option (``X:k=v``) names keep
    their qualifier, unknown names (pyiqa) show as stored, higher-is-better assumed unknown."""
    base, at, region = metric.partition("@")
    base, colon, opts = base.partition(":")
    if base == "pyiqa" and colon:
        return MetricLabel(opts, "", "higher")
    known = _BASE.get(base)
    if known is None:
        return MetricLabel(metric, "", "higher")
    name = known.name
    if colon:
        name += f" ({opts.replace('=', ' ')})"
    if at:
        name += f" @{region.removeprefix('patch_').removeprefix('text_')}"
    return MetricLabel(name, known.unit, known.direction)


def display_name(metric: str) -> str:
    """``ΔE00 @orange`` for ``deltae@patch_orange``: the name without unit or arrow."""
    return label(metric).name


def axis_label(metric: str) -> str:
    return label(metric).axis()


def threshold_label(metric: str, op: str, value: float) -> str:
    """``PSNR < 20 dB`` for the threshold psnr<20."""
    lab = label(metric)
    return f"{lab.name} {op} {value:g}" + (f" {lab.unit}" if lab.unit else "")


def expand(names: Iterable[str], stored: Sequence[str] | None = None) -> list[str]:
    """Group names (``colour``, ``spectral``) -> the stored names they stand for, in order,
    without duplicates; with ``stored``, a group keeps only what was stored."""
    have = set(stored) if stored is not None else None
    out: list[str] = []
    for n in names:
        parts = GROUPS.get(n, (n,))
        if have is not None and n in GROUPS:
            parts = tuple(p for p in parts if p in have)
        out += [p for p in parts if p not in out]
    return out
