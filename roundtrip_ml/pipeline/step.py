"""One generation of a chain, and the fingerprint of its state.

``generation_step`` is pure tensor work on the device (no I/O, no host sync), shared by the
engine, the in-memory API (`roundtrip_ml.roundtrip`) and the sweep's speed probe, so all three
give the same pixels for the same settings.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..core.errors import ModelError
from ..imaging.codecs import Codec
from ..imaging.images import quantize8, to_uint8
from ..imaging.resample import lowres_size, resize
from ..upscalers import Upscaler
from ..upscalers.base import FitPolicy


class Step(NamedTuple):
    lowres: Tensor  # the handed-off low-res image the upscaler saw
    state: Tensor  # the new chain state (after the second handoff)
    finite: Tensor  # 0-dim bool on the device: was the upscaler's output all finite?


def generation_step(
    x: Tensor,
    upscaler: Upscaler,
    downscaler: str,
    scale: float,
    codec: Codec,
    fit: FitPolicy = "resize",
) -> Step:
    """One roundtrip: down -> handoff -> up -> handoff.

    ``finite`` stays on the device (no host sync here); callers check it with `check_finite`
    before they record anything, since a NaN upscale would otherwise be quantized to black and
    measured as if it were a result.
    """
    if scale == 1:  # a re-compression chain: one encode/decode, no resampling
        y = handoff(codec, x)
        return Step(y, y, torch.isfinite(y).all())
    size = (x.shape[-2], x.shape[-1])
    eight_bit = codec.lossless_state  # 8-bit handoffs: resample like Pillow on 8-bit images
    lo = handoff(codec, resize(x, lowres_size(size, scale), downscaler, eight_bit))
    up = upscaler.upscale(lo, size, fit=fit, fit_kernel=downscaler, eight_bit=eight_bit)
    return Step(lo, handoff(codec, up), torch.isfinite(up).all())


def check_finite(finite: Tensor, name: str, generation: int | str) -> None:
    """Raise ModelError when an upscaler output NaN/Inf (one host sync: the engine calls it
    at checkpoints, where it syncs anyway)."""
    if not bool(finite):
        raise ModelError(
            name,
            f"produced NaN/Inf values (by generation {generation}); nothing of this batch past "
            "its last checkpoint is recorded",
            "run it with precision = 'fp32', or check the weights",
        )


def handoff(codec: Codec, x: Tensor) -> Tensor:
    """The codec on RGB; a carried alpha channel is stored as PNG would (JPEG has no alpha)."""
    if x.shape[1] == 3:
        return codec(x)
    return torch.cat([codec(x[:, :3]), quantize8(x[:, 3:]) / 255.0], dim=1)


class Fingerprinter:
    """64-bit hash of each chain's uint8 state (int64 arithmetic wraps, so it is exact and
    independent of reduction order): cheap fixed-point and cycle detection on the device."""

    def __init__(self) -> None:
        self._weights: dict[tuple[int, torch.device], Tensor] = {}

    def __call__(self, x: Tensor) -> Tensor:
        n = x[0].numel()
        key = (n, x.device)
        if key not in self._weights:
            g = torch.Generator().manual_seed(0x5EED)
            self._weights[key] = torch.randint(1, 2**31 - 1, (n,), generator=g).to(x.device)
        w = self._weights[key]
        u8 = to_uint8(x).reshape(x.shape[0], -1)
        rows = max(1, (256 << 20) // (8 * n))  # keep the int64 temporary under ~256 MB
        return torch.cat([(u8[i : i + rows].long() * w).sum(1) for i in range(0, len(u8), rows)])
