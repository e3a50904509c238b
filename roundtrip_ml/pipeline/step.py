"""One generation of a chain, and the fingerprint of its state.

``generation_step`` is pure tensor work on the device (no I/O, no host sync), shared by the
engine, the in-memory API (`roundtrip_ml.roundtrip`) and the sweep's speed probe, so all three
give the same pixels for the same settings.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..core.errors import ConfigError, ModelError
from ..core.specs import Stabilizer
from ..imaging.codecs import Codec
from ..imaging.images import quantize8, to_uint8
from ..imaging.resample import lowres_size, resize
from ..imaging.stabilize import stabilize
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
    *,
    stabilizer: Stabilizer | None = None,
    up_steps: tuple[float, ...] | None = None,
    down_steps: tuple[float, ...] | None = None,
) -> Step:
    """One roundtrip: down -> handoff -> up -> [stabilise] -> handoff.

    ``up_steps``/``down_steps`` reach the scale in stages (``(2, 2)`` for x4); between stages
    the image is clamped and, in an 8-bit chain, rounded to 8 bits as a PNG would store it, so
    the chain's codec still runs once per direction and a stepped path sees as many lossy
    encodings as a direct one. ``stabilizer`` (``imaging.stabilize``) runs on the upscale.

    ``finite`` stays on the device (no host sync here); callers check it with `check_finite`
    before they record anything, since a NaN upscale would otherwise be quantized to black and
    measured as if it were a result.
    """
    if scale == 1:  # a re-compression chain: one encode/decode, no resampling
        y = handoff(codec, x)
        return Step(y, y, torch.isfinite(y).all())
    size = (x.shape[-2], x.shape[-1])
    eight_bit = codec.lossless_state  # 8-bit handoffs: resample like Pillow on 8-bit images
    lo = x
    for s in (down_steps or ())[:-1]:
        small = lowres_size((lo.shape[-2], lo.shape[-1]), s)
        lo = _between(resize(lo, small, downscaler, eight_bit), eight_bit)
    lo = handoff(codec, resize(lo, lowres_size(size, scale), downscaler, eight_bit))
    up = lo
    for s in (up_steps or ())[:-1]:
        check_up_step(upscaler, s)
        mid = (round(up.shape[-2] * s), round(up.shape[-1] * s))
        up = _between(
            upscaler.upscale(up, mid, fit=fit, fit_kernel=downscaler, eight_bit=eight_bit),
            eight_bit,
        )
    if up_steps:
        check_up_step(upscaler, up_steps[-1])
    up = upscaler.upscale(up, size, fit=fit, fit_kernel=downscaler, eight_bit=eight_bit)
    if stabilizer is not None and stabilizer.active:
        up = stabilize(up, lo, stabilizer, downscaler)
    return Step(lo, handoff(codec, up), torch.isfinite(up).all())


def check_up_step(upscaler: Upscaler, step: float) -> None:
    """A fixed-scale model runs only at its own scale in a stepped path (an x4 model cannot
    make an x2 stage); classical kernels take any step."""
    if upscaler.scale is not None and float(upscaler.scale) != float(step):
        raise ConfigError(
            f"up_steps: {upscaler.name}",
            f"is an x{upscaler.scale} model and cannot make an x{step:g} stage",
            f"use steps of {upscaler.scale}, or a model with scale {step:g}",
        )


def _between(x: Tensor, eight_bit: bool) -> Tensor:
    """The handoff between two stages of one direction: clamp, and round to 8 bits when the
    chain is 8-bit."""
    return quantize8(x) / 255.0 if eight_bit else x.clamp(0.0, 1.0)


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
