"""Tiny seeded perturbations of a start image, for replica (sensitivity) studies.

Noise is drawn on the CPU from a per-replica ``torch.Generator`` and then moved, so a replica
starts from the same pixels on every device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.errors import ConfigError
from ..core.specs import PERTURBATION_SYNTAX
from .images import to_uint8

ALLOWED = PERTURBATION_SYNTAX


@dataclass(frozen=True)
class Perturbation:
    kind: str
    amount: float = 0.0

    @property
    def deterministic(self) -> bool:
        """True when every replica would get the same perturbation (JPEG re-encoding)."""
        return self.kind == "jpeg"

    def apply(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Perturb a 1 x 3 x H x W image; the result is quantized to 8 bits like any handoff."""
        if self.kind == "lsb":
            delta = torch.randint(-1, 2, x.shape, generator=generator).to(x) / 255.0
            y = x + delta
        elif self.kind == "noise":
            y = x + torch.randn(x.shape, generator=generator).to(x) * (self.amount / 255.0)
        elif self.kind == "shift":
            offs = (torch.rand(2, generator=generator) * 2 - 1) * self.amount
            y = _subpixel_shift(x, float(offs[0]), float(offs[1]))
        else:  # jpeg
            from .codecs import JpegCodec

            y = JpegCodec(int(self.amount), backend="torchvision")(x.cpu()).to(x)
        return to_uint8(y).to(x.dtype) / 255.0


def _subpixel_shift(x: Tensor, dx: float, dy: float) -> Tensor:
    n, _, h, w = x.shape
    theta = torch.tensor([[1.0, 0.0, -2.0 * dx / w], [0.0, 1.0, -2.0 * dy / h]], dtype=x.dtype)
    grid = F.affine_grid(theta.expand(n, 2, 3).to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bicubic", padding_mode="border", align_corners=False)


def parse_perturbation(spec: str) -> Perturbation:
    kind, _, arg = spec.lower().partition(":")
    try:
        if kind == "lsb" and not arg:
            return Perturbation("lsb")
        if kind == "noise" and float(arg) > 0:
            return Perturbation("noise", float(arg))
        if kind == "shift" and float(arg) > 0:
            return Perturbation("shift", float(arg))
        if kind == "jpeg" and 1 <= int(arg) <= 100:
            return Perturbation("jpeg", int(arg))
    except ValueError:
        pass
    raise ConfigError(f"perturbation {spec!r}", "not a known perturbation", f"use {ALLOWED}")


def replica_generator(seed: int, chain_key: str, replica: int) -> torch.Generator:
    """A CPU generator seeded from (run seed, chain, replica): stable across runs and devices."""
    digest = hashlib.sha256(f"{seed}/{chain_key}/{replica}".encode()).digest()
    g = torch.Generator(device="cpu")
    g.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return g
