"""One interface for classical and ML upscalers.

An ``Upscaler`` maps an N x 3 x h x w float batch in [0, 1] to an upscaled batch. The engine
always asks for an exact output size (``upscale(x, size)``): classical resamplers resize there
directly, fixed-scale models run at their native scale and are then brought to the size by the
chain's fit policy (resize with the chain's resampler, or crop), which the manifest records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from ..core.specs import FitPolicy
from ..imaging.kernels import get_kernel
from ..imaging.resample import resize


class Upscaler(ABC):
    """Base class. Subclasses set ``name`` and ``scale`` (None: any scale) and ``forward``."""

    name: str
    scale: int | None = None
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Upscale a batch at the native scale (for ``scale=None``: not used by the engine)."""

    def upscale(
        self,
        x: Tensor,
        size: tuple[int, int],
        fit: FitPolicy = "resize",
        fit_kernel: str = "lanczos3",
        eight_bit: bool = False,
    ) -> Tensor:
        """Upscale ``x`` and return exactly ``size`` (H, W), using ``fit`` when they differ.

        ``eight_bit``: the chain hands off 8-bit images, so resamplers work like Pillow on them.
        """
        y = self.forward(x)
        return fit_to(y, size, fit, fit_kernel, eight_bit)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this upscaler."""
        return {"name": self.name, "scale": self.scale, "kind": type(self).__name__}

    def to(self, device: torch.device | str) -> Upscaler:
        self.device = torch.device(device)
        return self


def fit_to(
    y: Tensor, size: tuple[int, int], fit: FitPolicy, kernel: str, eight_bit: bool = False
) -> Tensor:
    """Bring an upscaled batch to exactly ``size``: resample, or centre-crop (pad by edge)."""
    h, w = size
    if tuple(y.shape[-2:]) == (h, w):
        return y
    if fit == "resize":
        return resize(y, size, kernel, eight_bit)
    # crop: centre crop; if the output is smaller than the target, pad by replicating edges
    dh, dw = y.shape[-2] - h, y.shape[-1] - w
    if dh < 0 or dw < 0:
        pad = (
            max(0, -dw) // 2,
            max(0, -dw) - max(0, -dw) // 2,
            max(0, -dh) // 2,
            max(0, -dh) - max(0, -dh) // 2,
        )
        y = torch.nn.functional.pad(y, pad, mode="replicate")
        dh, dw = y.shape[-2] - h, y.shape[-1] - w
    top, left = dh // 2, dw // 2
    return y[..., top : top + h, left : left + w]


class ClassicalUpscaler(Upscaler):
    """A Pillow-compatible resampler used as an upscaler (Lanczos, bicubic, ...)."""

    scale = None

    def __init__(self, kernel: str) -> None:
        self.kernel = get_kernel(kernel).name
        self.name = self.kernel

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - the engine calls upscale()
        raise NotImplementedError("classical upscalers resize to an exact size; use upscale()")

    def upscale(
        self,
        x: Tensor,
        size: tuple[int, int],
        fit: FitPolicy = "resize",
        fit_kernel: str = "lanczos3",
        eight_bit: bool = False,
    ) -> Tensor:
        return resize(x, size, self.kernel, eight_bit)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "scale": None, "kind": "classical", "kernel": self.kernel}
