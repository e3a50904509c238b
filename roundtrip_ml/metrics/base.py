"""The one shape every metric has: a named, batched function of (x, ref) on the device.

A metric returns a dict of (N,) tensors on the input's device, one per stored key, so the engine
never syncs with the host. Key-level facts (label, unit, direction, perfect value) live in
``KeyInfo`` so that `summarize` can turn any stored curve into a drift curve, and a plot can label
it, without building the metric again.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..core.errors import ConfigError
from ..core.specs import REFERENCES

# The references a metric compares with (the rest of core.specs.REFERENCES are the engine's own).
ALL_REFERENCES: tuple[str, ...] = REFERENCES[:3]


@functools.lru_cache(maxsize=256)
def device_constant(values: tuple, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A small constant tensor, copied to the device once: a host-to-device copy per call
    would synchronise the stream. Callers must not modify it in place."""
    return torch.tensor(values, dtype=dtype, device=device)


Direction = Literal["higher", "lower", "zero"]  # which way is better; zero: signed, 0 is best


@dataclass(frozen=True)
class KeyInfo:
    """Everything a reader needs about one stored value, written once in the metric registry:
    the display label and unit that plots, tables and pages show, which way is better, and what
    identical images score.

    ``perfect`` is what identical images score (PSNR: +inf, SSIM: 1, LPIPS: 0; NaN where no pair
    of images is compared, as for a chart region's MTF50); drift is the distance from it (for an
    infinite perfect value, drift is the MSE-like 10^(-v/10)). ``unit`` is "" for a
    dimensionless score.
    """

    label: str
    unit: str
    direction: Direction
    perfect: float

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    def drift(self, value: float) -> float:
        """A non-negative number that is 0 for identical images and grows with the damage."""
        if math.isinf(self.perfect):
            return 10.0 ** (-value / 10.0)
        return abs(value - self.perfect)


@dataclass(frozen=True, eq=False)
class Metric:
    """A ready-to-call metric. ``fn(x, ref)`` gets float32 N x 3 x H x W in [0, 1].

    ``min_size``: the smallest H and W the metric accepts (MS-SSIM: 161); the engine checks it
    up front, and calling with a smaller image raises ConfigError naming the size.
    """

    name: str
    fn: Callable[[Tensor, Tensor], dict[str, Tensor]]
    keys: tuple[str, ...]
    higher_is_better: bool
    references: tuple[str, ...] = ALL_REFERENCES
    min_size: int = 1

    def __call__(self, x: Tensor, ref: Tensor) -> dict[str, Tensor]:
        if x.shape != ref.shape or x.ndim != 4:
            raise ConfigError(
                f"metric {self.name}",
                f"needs two N x C x H x W batches of one shape, got {tuple(x.shape)} and "
                f"{tuple(ref.shape)}",
            )
        h, w = x.shape[-2:]
        if min(h, w) < self.min_size:
            raise ConfigError(
                f"metric {self.name}",
                f"needs images of at least {self.min_size} x {self.min_size} px, got {h} x {w}",
                f"drop {self.name} from metrics or use a larger image/crop",
            )
        return self.fn(x, ref)
