"""sRGB <-> CIE L*a*b* (D65, 2 degree observer, skimage's constants) on N x 3 x H x W batches.

One place for the conversion: the colour metrics (``metrics.diagnostics``) measure in Lab and
the colour stabiliser (``imaging.stabilize``) matches statistics in it.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_D65 = (0.95047, 1.0, 1.08883)
_EPS = (6.0 / 29.0) ** 3


@functools.lru_cache(maxsize=64)
def _constants(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """(RGB->XYZ matrix, its inverse, white point), copied to the device once (a host-to-device
    copy per call would synchronise the stream)."""
    m = torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64)
    white = torch.tensor(_D65, dtype=torch.float64).view(1, 3, 1, 1)
    return (m.to(device, dtype), torch.linalg.inv(m).to(device, dtype), white.to(device, dtype))


def rgb_to_lab(x: Tensor) -> Tensor:
    """sRGB in [0, 1] -> CIE L*a*b*, N x 3 x H x W."""
    lin = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(0) ** 2.4)
    m, _, white = _constants(x.device, x.dtype)
    xyz = torch.einsum("kc,nchw->nkhw", m, lin) / white
    f = torch.where(xyz > _EPS, xyz.clamp_min(_EPS) ** (1.0 / 3.0), xyz * 7.787 + 16.0 / 116.0)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """CIE L*a*b* -> sRGB (not clamped: out-of-gamut colours leave [0, 1], the handoff clamps)."""
    fy = (lab[:, 0] + 16.0) / 116.0
    f = torch.stack([fy + lab[:, 1] / 500.0, fy, fy - lab[:, 2] / 200.0], dim=1)
    cut = 6.0 / 29.0
    xyz = torch.where(f > cut, f**3, (f - 16.0 / 116.0) / 7.787)
    _, inv, white = _constants(lab.device, lab.dtype)
    lin = torch.einsum("kc,nchw->nkhw", inv, xyz * white)
    return torch.where(
        lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp_min(0) ** (1.0 / 2.4) - 0.055
    )
