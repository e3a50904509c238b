"""NVIDIA FLIP (Andersson et al. 2020), LDR: the mean of FLIP's per-pixel error map, 0 for
identical images, up to 1. A batched torch port of the algorithm as NVIDIA's C++
(``flip-evaluator``, BSD-3, the reference it is tested against) computes it:

- sRGB -> linear RGB -> XYZ -> YCxCz (opponent space, D65 white);
- colour pipeline: the contrast sensitivity of each channel as Gaussian filters (separable;
  Cz is a sum of two), back to linear RGB clamped to [0, 1], CIELAB with the Hunt adjustment,
  HyAB distance ^ 0.7, remapped so that 95% of the range covers 40% of the green-blue distance;
- feature pipeline: edges (1st) and points (2nd Gaussian derivative) of the normalised
  luminance; their largest difference, scaled and ^ 0.5, is the exponent's reduction:
  error = colour ^ (1 - feature);
- edges are replicated, as the reference clamps its sample coordinates.

The viewing condition is the reference's default: 67.02 pixels per degree (0.7 m from a 0.7 m
wide, 3840 px display). float32, as the reference.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import device_constant

PIXELS_PER_DEGREE = 0.7 * 3840 / 0.7 * math.pi / 180
MIN_SIZE = 8
_QC, _QF, _PC, _PT = 0.7, 0.5, 0.4, 0.95
_WHITE = (0.950428545, 1.0, 1.088900371)
_INV_WHITE = (1.052156925, 1.0, 0.918357670)
_RGB_TO_XYZ = (
    (10135552 / 24577794, 8788810 / 24577794, 4435075 / 24577794),
    (2613072 / 12288897, 8788810 / 12288897, 887015 / 12288897),
    (1425312 / 73733382, 8788810 / 73733382, 70074185 / 73733382),
)
_XYZ_TO_RGB = (
    (3.241003275, -1.537398934, -0.498615861),
    (-0.969224334, 1.875930071, 0.041554224),
    (0.055639423, -0.204011202, 1.057148933),
)
# contrast sensitivity as Gaussians a * sqrt(pi / b) * exp(-pi^2 r^2 / b): Y, Cx, Cz, Cz (2nd)
_CSF = ((1.0, 0.0047), (1.0, 0.0053), (34.1, 0.04), (13.5, 0.025))
_FEATURE_WIDTH = 0.082  # degrees


@functools.cache
def _spatial_kernels(ppd: float) -> tuple[tuple[float, ...], ...]:
    """1D kernels for Y, Cx (each sums to 1) and the two Cz Gaussians (whose separable
    products sum to 1 together)."""
    b_max = max(b for _, b in _CSF)
    r = math.ceil(3 * math.sqrt(b_max / (2 * math.pi**2)) * ppd)
    xs = [(i / ppd) ** 2 for i in range(-r, r + 1)]
    rows = []
    for k, (a, b) in enumerate(_CSF):
        scale = a * math.sqrt(math.pi / b)
        rows.append(
            [(scale if k < 2 else math.sqrt(scale)) * math.exp(-(math.pi**2) * x / b) for x in xs]
        )
    cz = 1 / math.sqrt(sum(rows[2]) ** 2 + sum(rows[3]) ** 2)
    return (
        tuple(v / sum(rows[0]) for v in rows[0]),
        tuple(v / sum(rows[1]) for v in rows[1]),
        tuple(v * cz for v in rows[2]),
        tuple(v * cz for v in rows[3]),
    )


@functools.cache
def _feature_kernels(ppd: float) -> tuple[tuple[float, ...], ...]:
    """1D Gaussian (sum 1), 1st and 2nd derivatives (positive and negative parts each
    summing to +1 and -1)."""
    sd = 0.5 * _FEATURE_WIDTH * ppd
    r = math.ceil(3 * sd)
    g = [math.exp(-(i * i) / (2 * sd * sd)) for i in range(-r, r + 1)]
    dg = [-i * v for i, v in zip(range(-r, r + 1), g, strict=True)]
    ddg = [(i * i / (sd * sd) - 1) * v for i, v in zip(range(-r, r + 1), g, strict=True)]

    def signed(k: list[float]) -> tuple[float, ...]:
        pos, neg = sum(v for v in k if v > 0), -sum(v for v in k if v < 0)
        return tuple(v / pos if v > 0 else v / neg for v in k)

    return tuple(v / sum(g) for v in g), signed(dg), signed(ddg)


def _filter_rows(x: Tensor, kernels: Tensor) -> Tensor:
    """Each plane of ``x`` (N x C x H x W) along its rows with its own 1D kernel (C x K),
    edges replicated."""
    c, k = kernels.shape
    r = k // 2
    return F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), kernels.view(c, 1, 1, k), groups=c)


def _filter_cols(x: Tensor, kernels: Tensor) -> Tensor:
    c, k = kernels.shape
    r = k // 2
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), kernels.view(c, 1, k, 1), groups=c)


def _mat(m: tuple, x: Tensor) -> Tensor:
    return torch.einsum("ij,njhw->nihw", device_constant(m, x.device, x.dtype), x)


def _ycxcz(xyz: Tensor) -> Tensor:
    v = xyz * device_constant(_INV_WHITE, xyz.device, xyz.dtype).view(1, 3, 1, 1)
    return torch.stack(
        [116 * v[:, 1] - 16, 500 * (v[:, 0] - v[:, 1]), 200 * (v[:, 1] - v[:, 2])], dim=1
    )


def _ycxcz_to_xyz(y: Tensor) -> Tensor:
    lum = (y[:, 0] + 16) / 116
    xyz = torch.stack([lum + y[:, 1] / 500, lum, lum - y[:, 2] / 200], dim=1)
    return xyz * device_constant(_WHITE, y.device, y.dtype).view(1, 3, 1, 1)


def _lab_hunt(rgb: Tensor) -> Tensor:
    """Linear RGB -> CIELAB with the Hunt adjustment (a, b scaled by L / 100)."""
    v = _mat(_RGB_TO_XYZ, rgb) * device_constant(_INV_WHITE, rgb.device, rgb.dtype).view(1, 3, 1, 1)
    d = 6 / 29
    f = torch.where(v > d**3, v.clamp_min(d**3).pow(1 / 3), v / (3 * d * d) + 4 / 29)
    lum = 116 * f[:, 1] - 16
    return torch.stack(
        [lum, 0.01 * lum * 500 * (f[:, 0] - f[:, 1]), 0.01 * lum * 200 * (f[:, 1] - f[:, 2])], dim=1
    )


def _hyab(a: Tensor, b: Tensor) -> Tensor:
    d = a - b
    return d[:, 0].abs() + d[:, 1:].square().sum(dim=1).sqrt()


@functools.cache
def _cmax(device: torch.device) -> float:
    green, blue = (
        torch.tensor(c, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        for c in ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    )
    return float(_hyab(_lab_hunt(green), _lab_hunt(blue)).pow(_QC))


@torch.no_grad()
def flip_map(x: Tensor, ref: Tensor, ppd: float = PIXELS_PER_DEGREE) -> Tensor:
    """The LDR-FLIP error map (N x H x W in [0, 1]) of ``x`` against ``ref`` (sRGB [0, 1])."""
    n, dev = x.shape[0], x.device
    both = torch.cat([ref, x]).float().clamp(0, 1)
    lin = torch.where(both <= 0.04045, both / 12.92, ((both + 0.055) / 1.055).pow(2.4))
    ycc = _ycxcz(_mat(_RGB_TO_XYZ, lin))
    # colour pipeline: Y, Cx, Cz, Cz through their CSF filters
    ks = device_constant(_spatial_kernels(ppd), dev, torch.float32)
    planes = _filter_cols(_filter_rows(torch.cat([ycc, ycc[:, 2:]], dim=1), ks), ks)
    filtered = torch.cat([planes[:, :2], planes[:, 2:3] + planes[:, 3:]], dim=1)
    rgb = _mat(_XYZ_TO_RGB, _ycxcz_to_xyz(filtered)).clamp(0, 1)
    lab = _lab_hunt(rgb)
    cmax = _cmax(dev)
    de = _hyab(lab[:n], lab[n:]).pow(_QC)
    pccmax = _PC * cmax
    colour = torch.where(
        de < pccmax, de * (_PT / pccmax), _PT + (de - pccmax) / (cmax - pccmax) * (1 - _PT)
    )
    # feature pipeline on the normalised luminance
    g, dg, ddg = _feature_kernels(ppd)
    gray = ((ycc[:, :1] + 16) / 116).expand(-1, 3, -1, -1)
    horiz = _filter_rows(gray, device_constant((dg, ddg, g), dev, torch.float32))
    vert = _filter_cols(
        horiz[:, [0, 1, 2, 2]], device_constant((g, g, dg, ddg), dev, torch.float32)
    )
    edge = torch.hypot(vert[:, 0], vert[:, 2])
    point = torch.hypot(vert[:, 1], vert[:, 3])
    feature = (
        torch.maximum((edge[:n] - edge[n:]).abs(), (point[:n] - point[n:]).abs()) / math.sqrt(2)
    ).pow(_QF)
    return colour.pow(1 - feature)


def flip(x: Tensor, ref: Tensor) -> Tensor:
    """Mean LDR-FLIP error of each image in ``x`` against ``ref``: N values."""
    return flip_map(x, ref).mean(dim=(1, 2)).to(x.dtype)


def describe() -> dict[str, Any]:
    return {
        "implementation": "roundtrip_ml torch port of flip-evaluator (LDR)",
        "pixels_per_degree": PIXELS_PER_DEGREE,
    }
