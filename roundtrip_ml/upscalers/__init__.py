"""Upscalers: classical resamplers and ML super-resolution models behind one interface."""

from __future__ import annotations

import torch

from ..resample import ALIASES, KERNELS
from ..specs import InferenceOptions
from .base import ClassicalUpscaler, Upscaler, fit_to

__all__ = [
    "ClassicalUpscaler",
    "InferenceOptions",
    "Upscaler",
    "create_upscaler",
    "fit_to",
    "is_classical",
]


def is_classical(spec: str) -> bool:
    """True when ``spec`` names a classical resampler rather than a model."""
    key = spec.lower()
    return key in KERNELS or key in ALIASES


def create_upscaler(
    spec: str,
    device: torch.device | str = "cpu",
    options: InferenceOptions | None = None,
) -> Upscaler:
    """Build the upscaler a config names: a kernel name, a registry name, a path or ncnn:PATH.

    ``options`` says how an ML model runs (precision, tiling, ...); classical resamplers ignore
    it.

    >>> create_upscaler("lanczos3").describe()["kind"]
    'classical'
    """
    if is_classical(spec):
        return ClassicalUpscaler(spec).to(device)
    from .loading import load_upscaler  # spandrel loads lazily: `roundtrip --help` stays fast

    return load_upscaler(spec, device=device, options=options)
