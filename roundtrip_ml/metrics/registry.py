"""The one table of metric names: what each is, which way is better, what it needs.

Names in a config: a registry name (``psnr``), a name with options (``psnr_y:border=4``, stored
under that full string), or ``pyiqa:NAME`` for any pyiqa metric when pyiqa is installed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    import pandas as pd

from ..core.errors import ConfigError
from . import cvvdp, flip, perceptual, ssimulacra2, vmaf
from . import diagnostics as diag
from . import full_reference as fr
from .base import ALL_REFERENCES, KeyInfo, Metric

INF = math.inf
DEFAULT_METRICS: tuple[str, ...] = (
    "psnr",
    "psnr_y",
    "ssim",
    "ms_ssim",
    "haarpsi",
    "gmsd",
    "spectral",
    "colour",
)


@dataclass(frozen=True)
class MetricSpec:
    """One registry entry. ``build(device, **options)`` returns the batched function, or None
    when its weights are not on disk (the metric is then dropped with one warning)."""

    name: str
    description: str
    keys: dict[str, KeyInfo]
    value_range: tuple[float, float]
    build: Callable[..., Callable[[Tensor, Tensor], dict[str, Tensor]] | None]
    min_size: int = 1
    backbone: perceptual.Backbone | None = None  # ImageNet weights it needs (LPIPS, DISTS)
    options: tuple[str, ...] = ()
    references: tuple[str, ...] = field(default=ALL_REFERENCES)
    cost: str = ""  # where it runs and what it costs when that is not a cheap device op
    about: Callable[[], dict[str, object]] | None = None  # implementation facts for the manifest
    extra: str = ""  # the optional-dependency extra that provides it

    @property
    def higher_is_better(self) -> bool:
        return next(iter(self.keys.values())).higher_is_better


def _single(
    name: str, fn: Callable[..., Tensor], require: Callable[[], object] | None = None
) -> Callable[..., Callable]:
    """Builder for a weight-free metric with one stored value (options passed through);
    ``require`` raises ConfigError at build time when an optional package is missing."""

    def build(device: torch.device, key: str = name, **options: int) -> Callable:
        if require is not None:
            require()
        f = partial(fn, **options)
        return lambda x, ref: {key: f(x, ref)}

    return build


def _multi(fn: Callable[[Tensor, Tensor], dict[str, Tensor]]) -> Callable[..., Callable]:
    return lambda device, key="": fn


def _learned(
    make: Callable[[torch.device], torch.nn.Module | None],
) -> Callable[..., Callable | None]:
    def build(device: torch.device, key: str) -> Callable | None:
        net = make(device)
        if net is None:
            return None
        return lambda x, ref: {key: net(x, ref)}

    return build


def _db(label: str) -> KeyInfo:  # a PSNR-like value: dB, higher is better, +inf when identical
    return KeyInfo(label, "dB", "higher", INF)


def _score(label: str, perfect: float = 1.0, unit: str = "") -> KeyInfo:  # higher is better
    return KeyInfo(label, unit, "higher", perfect)


def _error(label: str, unit: str = "") -> KeyInfo:  # a distance: lower is better, 0 = identical
    return KeyInfo(label, unit, "lower", 0.0)


def _signed(label: str, unit: str = "") -> KeyInfo:  # a signed shift: 0 is best
    return KeyInfo(label, unit, "zero", 0.0)


# One row per metric name `run` accepts: its stored keys with their labels, units, directions
# and perfect values (the only place they are written: plots, tables and pages read them here).
SPECS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec(
            "psnr",
            "PSNR on RGB, dB",
            {"psnr": _db("PSNR")},
            (0, INF),
            _single("psnr", fr.psnr),
            options=("border",),
        ),
        MetricSpec(
            "psnr_y",
            "PSNR on BT.601 Y (SR-paper convention), dB",
            {"psnr_y": _db("PSNR-Y")},
            (0, INF),
            _single("psnr_y", fr.psnr_y),
            options=("border",),
        ),
        MetricSpec(
            "ssim",
            "SSIM on RGB, Gaussian 11 / 1.5",
            {"ssim": _score("SSIM")},
            (-1, 1),
            _single("ssim", fr.ssim),
            min_size=fr.SSIM_WINDOW,
            options=("border",),
        ),
        MetricSpec(
            "ssim_y",
            "SSIM on BT.601 Y",
            {"ssim_y": _score("SSIM-Y")},
            (-1, 1),
            _single("ssim_y", fr.ssim_y),
            min_size=fr.SSIM_WINDOW,
            options=("border",),
        ),
        MetricSpec(
            "ms_ssim",
            "multi-scale SSIM, 5 scales",
            {"ms_ssim": _score("MS-SSIM")},
            (0, 1),
            _single("ms_ssim", fr.ms_ssim),
            min_size=fr.MS_SSIM_MIN_SIZE,
        ),
        MetricSpec(
            "haarpsi",
            "HaarPSI perceptual similarity",
            {"haarpsi": _score("HaarPSI")},
            (0, 1),
            _single("haarpsi", fr.haarpsi),
            min_size=16,
        ),
        MetricSpec(
            "gmsd",
            "gradient magnitude similarity deviation",
            {"gmsd": _error("GMSD")},
            (0, 1),
            _single("gmsd", fr.gmsd),
            min_size=4,
        ),
        MetricSpec(
            "spectral",
            "band power vs reference, dB (low/mid/high)",
            {
                "spectral_low": _signed("low-band power", "dB"),
                "spectral_mid": _signed("mid-band power", "dB"),
                "spectral_high": _signed("high-band power", "dB"),
            },
            (-INF, INF),
            _multi(diag.spectral),
            min_size=8,
        ),
        MetricSpec(
            "colour",
            "CIEDE2000 mean/p95 and mean L*a*b* shift",
            {
                "de2000_mean": _error("ΔE00 mean"),
                "de2000_p95": _error("ΔE00 p95"),
                "lab_shift_L": _signed("mean ΔL*"),
                "lab_shift_a": _signed("mean Δa*"),
                "lab_shift_b": _signed("mean Δb*"),
            },
            (-INF, INF),
            _multi(diag.colour),
        ),
        MetricSpec(
            "lpips",
            "LPIPS v0.1, AlexNet",
            {"lpips": _error("LPIPS")},
            (0, INF),
            _learned(partial(perceptual.build_lpips, "alex")),
            min_size=16,
            backbone=perceptual.ALEXNET,
        ),
        MetricSpec(
            "lpips_vgg",
            "LPIPS v0.1, VGG16",
            {"lpips_vgg": _error("LPIPS-VGG")},
            (0, INF),
            _learned(partial(perceptual.build_lpips, "vgg")),
            min_size=16,
            backbone=perceptual.VGG16,
        ),
        MetricSpec(
            "dists",
            "DISTS, VGG16",
            {"dists": _error("DISTS")},
            (0, 1),
            _learned(perceptual.build_dists),
            min_size=32,
            backbone=perceptual.VGG16,
        ),
        # Perceptual metrics with no downloaded weights; costs per 512 px image with 1 torch
        # thread on this shared 2-core CPU, measured by scripts/bench_nodownload.py. VMAF has no
        # perfect value: identical images score 97.43 from 64 px up, 96.4-98.4 on 32 px crops
        # (tests/test_contracts.py), so no drift curve is drawn against an assumed 100.
        MetricSpec(
            "ssimulacra2",
            "SSIMULACRA 2 (JPEG XL project), 100 = identical",
            {"ssimulacra2": _score("SSIMULACRA 2", 100.0)},
            (-INF, 100),
            _single("ssimulacra2", ssimulacra2.ssimulacra2),
            min_size=ssimulacra2.MIN_SIZE,
            cost="device, batched (torch port, float64); CPU ~0.8 s (reference ~0.85 s)",
        ),
        MetricSpec(
            "cvvdp",
            f"ColorVideoVDP JOD (10 = identical), display {cvvdp.DISPLAY}",
            {"cvvdp": _score("ColorVideoVDP", 10.0, "JOD")},
            (-INF, 10),
            _single("cvvdp", cvvdp.cvvdp, cvvdp.require),
            min_size=cvvdp.MIN_SIZE,
            cost="device, batched (cvvdp); CPU ~0.8 s",
            about=cvvdp.describe,
            extra="perceptual",
        ),
        MetricSpec(
            "flip",
            "NVIDIA FLIP, LDR mean error (0 = identical)",
            {"flip": _error("FLIP")},
            (0, 1),
            _single("flip", flip.flip),
            min_size=flip.MIN_SIZE,
            cost="device, batched (torch port); CPU ~0.7 s (flip-evaluator C++ ~0.9 s)",
            about=flip.describe,
        ),
        MetricSpec(
            "vmaf",
            f"VMAF {vmaf.MODEL} on one frame (spatial part), 0..100",
            {"vmaf": _score("VMAF", math.nan)},
            (0, 100),
            _single("vmaf", vmaf.vmaf, vmaf.require),
            min_size=vmaf.MIN_SIZE,
            cost="host, one ffmpeg/libvmaf process per image; ~0.08 s",
            about=vmaf.describe,
            extra="perceptual",
        ),
    )
}
# Stored values no name in `metrics` selects: the replica distance (pipeline.measure) and the
# chart's per-region measures (metrics.regions, stored as NAME@REGION). NaN perfect: the value
# compares no pair of images (an MTF50 is the edge's own), so it has no drift curve.
OTHER_KEYS: dict[str, KeyInfo] = {
    "mse": _error("MSE"),
    "deltae": _error("ΔE00"),
    "mtf50": _score("MTF50", math.nan, "cycles/px"),
    "cer": _error("OCR CER"),
    "word_accuracy": _score("OCR word accuracy"),
    "ocr_confidence": _score("OCR confidence", math.nan),
}
# Every stored key (a region's NAME@REGION and an option's NAME:k=v stored under NAME's key).
_SPEC_KEYS: dict[str, KeyInfo] = {k: i for s in SPECS.values() for k, i in s.keys.items()}
KEYS: dict[str, KeyInfo] = _SPEC_KEYS | OTHER_KEYS
# Names `run --metrics` accepts that store several values: ``colour`` -> de2000_mean, ...
GROUPS: dict[str, tuple[str, ...]] = {
    s.name: tuple(s.keys) for s in SPECS.values() if len(s.keys) > 1
}
PYIQA_PREFIX = "pyiqa:"


def parse_name(spec: str) -> tuple[str, dict[str, int]]:
    """``"psnr_y:border=4"`` -> ``("psnr_y", {"border": 4})``, checked against the registry."""
    base, _, rest = spec.strip().partition(":")
    if base not in SPECS:
        raise ConfigError(
            f"metric {spec!r}",
            "unknown metric",
            f"use one of {', '.join(SPECS)} or pyiqa:NAME",
        )
    options: dict[str, int] = {}
    for item in filter(None, rest.split(",")):
        k, eq, v = item.partition("=")
        if not eq or k not in SPECS[base].options or not v.isdigit():
            allowed = ", ".join(f"{o}=N" for o in SPECS[base].options) or "no options"
            raise ConfigError(f"metric {spec!r}", f"bad option {item!r}", f"{base} takes {allowed}")
        options[k] = int(v)
    return base, options


def listing() -> list[dict[str, str]]:
    """One row per registry entry for `roundtrip metrics list`: what it is, which way is
    better, whether a run measures it by default, what it needs (weights or an optional
    package) and where/at what cost it runs."""
    rows = []
    for s in SPECS.values():
        needs = s.backbone.filename if s.backbone else ""
        rows.append(
            {
                "name": s.name,
                "description": s.description,
                "better": "higher" if s.higher_is_better else "lower",
                "default": "yes" if s.name in DEFAULT_METRICS else "",
                "needs": needs or (f"extra: {s.extra}" if s.extra else "-"),
                "runs": s.cost or "device, batched",
            }
        )
    return rows


def key_info(key: str) -> KeyInfo | None:
    """The facts of a stored value that has a drift curve: a selectable metric's key, with or
    without options (``psnr_y:border=4``), whose identical images score a known value; None for
    VMAF, pyiqa, region (``X@R``) and unknown names."""
    info = _SPEC_KEYS.get(key.partition(":")[0])
    return None if info is None or math.isnan(info.perfect) else info


def describe_key(key: str) -> KeyInfo | None:
    """The label, unit, direction and perfect value of any stored name: a metric key, with
    options (``psnr_y:border=4``) or a region (``deltae@patch_orange``); None for pyiqa/unknown."""
    return KEYS.get(key.partition("@")[0].partition(":")[0])


def _build_pyiqa(spec: str, device: torch.device) -> Metric:
    name = spec[len(PYIQA_PREFIX) :]
    m, higher, full_ref = perceptual.build_pyiqa(name, device)

    def fn(x: Tensor, ref: Tensor) -> dict[str, Tensor]:
        v = m(x, ref) if full_ref else m(x)  # type: ignore[operator]
        return {spec: v.reshape(x.shape[0]).to(device=x.device, dtype=torch.float32)}

    # A no-reference score does not depend on the reference: compute it once per generation.
    refs = ALL_REFERENCES if full_ref else ("original",)
    return Metric(spec, fn, (spec,), higher, refs)


def resolve_metrics(names: Sequence[str], device: torch.device) -> list[Metric]:
    """Build the named metrics on ``device``.

    Unknown names raise ConfigError listing the valid ones. A learned metric whose backbone is
    not cached is dropped with one warning (never replaced by a random backbone).
    """
    metrics: list[Metric] = []
    seen: set[str] = set()
    for spec in names:
        spec = spec.strip()
        if spec in seen:
            continue
        seen.add(spec)
        if spec.startswith(PYIQA_PREFIX):
            metrics.append(_build_pyiqa(spec, device))
            continue
        base, options = parse_name(spec)
        entry = SPECS[base]
        if len(entry.keys) > 1:
            fn = entry.build(device)
            keys = tuple(entry.keys)
        else:
            fn = entry.build(device, key=spec, **options)
            keys = (spec,)
        if fn is None:  # only learned metrics build to None: their backbone is missing
            assert entry.backbone is not None
            msg = f"metric {spec} skipped: {perceptual.missing_backbone_hint(entry.backbone)}"
            warnings.warn(msg, stacklevel=2)
            continue
        min_size = max(entry.min_size, 1) + 2 * options.get("border", 0)
        metrics.append(Metric(spec, fn, keys, entry.higher_is_better, entry.references, min_size))
    return metrics


def list_metrics() -> pd.DataFrame:
    """Every metric name `run` accepts, with what it measures and its direction.

    Returns:
        One row per metric: name, description, higher_is_better, the keys it stores and
        whether it needs downloaded weights.

    Examples:
        >>> "psnr" in set(list_metrics()["name"])
        True
    """
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "name": s.name,
                "description": s.description,
                "higher_is_better": s.higher_is_better,
                "keys": ", ".join(s.keys),
                "needs_download": s.backbone is not None,
            }
            for s in SPECS.values()
        ]
    )
