"""Upscalers: classical resamplers and ML super-resolution models behind one interface."""

from __future__ import annotations

from typing import Any

import torch

from ..resample import ALIASES, KERNELS
from .base import ClassicalUpscaler, Upscaler, fit_to

__all__ = ["ClassicalUpscaler", "Upscaler", "create_upscaler", "fit_to", "is_classical"]


def is_classical(spec: str) -> bool:
    """True when ``spec`` names a classical resampler rather than a model."""
    key = spec.lower()
    return key in KERNELS or key in ALIASES


def create_upscaler(spec: str, device: torch.device, **options: Any) -> Upscaler:
    """Build the upscaler a config names: a kernel name, a registry name, a path or ncnn:PATH.

    ``options`` carries model settings (precision, tile, compile, ...) from the config; classical
    resamplers ignore them.
    """
    if is_classical(spec):
        return ClassicalUpscaler(spec).to(device)
    from .loading import load_upscaler  # ML path: imported only when a model is asked for

    return load_upscaler(spec, device=device, **options)
