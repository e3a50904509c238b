"""Display names, units and directions of every stored metric, as plots, tables, sheets and
the HTML page show them. The facts themselves are the metric registry's
(``roundtrip_ml.metrics.registry``: each key's label, unit, direction and perfect value); this
module only formats them, so a paper's axis label says the same thing everywhere.

Stored names come from roundtrip_ml.metrics (``psnr``, ``spectral_high``, region metrics such
as ``deltae@patch_orange``, options such as ``psnr_y:border=4``, ``pyiqa:NAME``); group names
that ``run --metrics`` accepts (``colour``, ``spectral``) expand to the names they store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..metrics.base import Direction
from ..metrics.registry import GROUPS, describe_key

__all__ = [
    "GROUPS",
    "HEADLINE",
    "MetricLabel",
    "axis_label",
    "display_name",
    "expand",
    "label",
    "threshold_label",
]


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


# The metrics a figure shows first when none are named (most papers report these).
HEADLINE = (
    "psnr",
    "ssim",
    "ms_ssim",
    "lpips",
    "dists",
    "haarpsi",
    "psnr_y",
    "ssim_y",
    "gmsd",
    "de2000_mean",
    "spectral_high",
)


def label(metric: str) -> MetricLabel:
    """The label of a stored metric name; region (``X@R``) and option (``X:k=v``) names keep
    their qualifier, unknown names (pyiqa) show as stored, higher-is-better assumed unknown."""
    base, at, region = metric.partition("@")
    base, colon, opts = base.partition(":")
    if base == "pyiqa" and colon:
        return MetricLabel(opts, "", "higher")
    known = describe_key(base)
    if known is None:
        return MetricLabel(metric, "", "higher")
    name = known.label
    if colon:
        name += f" ({opts.replace('=', ' ')})"
    if at:
        name += f" @{region.removeprefix('patch_').removeprefix('text_')}"
    return MetricLabel(name, known.unit, known.direction)


def display_name(metric: str) -> str:
    """``ΔE00 @orange`` for ``deltae@patch_orange``: the name without unit or arrow."""
    return label(metric).name


def axis_label(metric: str) -> str:
    """``PSNR (dB) ↑``: name, unit and the direction that is better."""
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
