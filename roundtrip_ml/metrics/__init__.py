"""Drift metrics: one registry of names, batched on the engine's device.

The engine's contract::

    metrics = resolve_metrics(names, device)     # list[Metric]; unknown name -> ConfigError
    out = m(x, ref)                              # dict key -> (N,) tensor on the device

``psnr`` is exported for the engine's LR-consistency check (downscaled output vs low-res input).
Collapse statistics over a finished run live in ``roundtrip_ml.analysis``.
"""

from .base import KeyInfo, Metric
from .full_reference import psnr
from .registry import DEFAULT_METRICS, SPECS, key_info, list_metrics, resolve_metrics

__all__ = [
    "DEFAULT_METRICS",
    "SPECS",
    "KeyInfo",
    "Metric",
    "key_info",
    "list_metrics",
    "psnr",
    "resolve_metrics",
]
