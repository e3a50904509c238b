"""Resampling kernels by name, as Pillow defines them; torch-free, so a misspelt kernel in a
config is reported before torch loads."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import ConfigError


def _box(x: float) -> float:
    return 1.0 if -0.5 <= x < 0.5 else 0.0


def _triangle(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _bicubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x *= math.pi
    return math.sin(x) / x


def _lanczos(lobes: int) -> Callable[[float], float]:
    def f(x: float) -> float:
        return _sinc(x) * _sinc(x / lobes) if -lobes <= x < lobes else 0.0

    return f


@dataclass(frozen=True)
class Kernel:
    """A separable resampling kernel: ``fn`` evaluated on ``[-support, support]``."""

    name: str
    support: float
    fn: Callable[[float], float] | None  # None: nearest neighbour (index selection)


KERNELS: dict[str, Kernel] = {
    k.name: k
    for k in (
        Kernel("nearest", 0.0, None),
        Kernel("box", 0.5, _box),
        Kernel("bilinear", 1.0, _triangle),
        Kernel("bicubic", 2.0, _bicubic),
        Kernel("lanczos2", 2.0, _lanczos(2)),
        Kernel("lanczos3", 3.0, _lanczos(3)),
    )
}
ALIASES = {"area": "box", "lanczos": "lanczos3", "linear": "bilinear", "cubic": "bicubic"}

# Pillow's filter for each kernel we share with it (lanczos2 has no Pillow counterpart).
PILLOW_FILTERS = {
    "nearest": 0,  # Image.Resampling.NEAREST
    "box": 4,  # BOX
    "bilinear": 2,  # BILINEAR
    "bicubic": 3,  # BICUBIC
    "lanczos3": 1,  # LANCZOS
}


def get_kernel(name: str) -> Kernel:
    """Look a kernel up by name or alias; a ConfigError lists the valid names."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in KERNELS:
        allowed = ", ".join([*KERNELS, *ALIASES])
        raise ConfigError(f"resampler {name!r}", "unknown kernel", f"use one of: {allowed}")
    return KERNELS[key]


def is_classical(spec: str) -> bool:
    """True when ``spec`` names a classical resampler rather than a model."""
    key = spec.lower()
    return key in KERNELS or key in ALIASES
