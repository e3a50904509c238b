"""SSIMULACRA 2 (Sneyers, Cloudinary / the JPEG XL project): a batched torch port.

The score (100: identical, 90: visually lossless, 70: high, 50: medium quality, negative:
very low) combines, over 6 scales of an XYB image, SSIM-style and edge-difference (ringing and
blur) errors with 108 fitted weights. The reference here is the ``ssimulacra2`` package (BSD-3,
numpy, one image pair from two files at a time); this port follows it step by step, including
its quirks, so that the two agree to float precision (tests/test_metrics_nodownload.py
measures it):

- its XYB planes come out transposed (``linear.T``), so the blur's zero padding falls on the
  columns and its mirror padding on the rows;
- with fewer than 6 scales (images under 256 px) the weights are taken in order, as it does.

It runs in float64 (the reference's precision) on any device, all images of a batch at once.
On one CPU core it is about as fast as the numpy reference (0.8 s per 512 px image on this
loaded 2-core machine; scripts/bench_nodownload.py measures both); its point is the device and
the batch, with no host round trip.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import device_constant

NUM_SCALES = 6
_C2 = 0.0009
_OPSIN = (
    (0.30, 1.0 - 0.078 - 0.30, 0.078),
    (0.23, 1.0 - 0.078 - 0.23, 0.078),
    (0.24342268924547819, 0.20476744424496821, 1.0 - 0.24342268924547819 - 0.20476744424496821),
)
_BIAS = 0.0037930732552754493
# 3 channels x 6 scales x 2 norms x (ssim, ringing, blur), in the reference's order
_WEIGHTS = (
    0.0,
    0.0007376606707406586,
    0.0,
    0.0,
    0.0007793481682867309,
    0.0,
    0.0,
    0.0004371155730107379,
    0.0,
    1.1041726426657346,
    0.00066284834129271,
    0.00015231632783718752,
    0.0,
    0.0016406437456599754,
    0.0,
    1.8422455520539298,
    11.441172603757666,
    0.0,
    0.0007989109436015163,
    0.000176816438078653,
    0.0,
    1.8787594979546387,
    10.94906990605142,
    0.0,
    0.0007289346991508072,
    0.9677937080626833,
    0.0,
    0.00014003424285435884,
    0.9981766977854967,
    0.00031949755934435053,
    0.0004550992113792063,
    0.0,
    0.0,
    0.0013648766163243398,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    7.466890328078848,
    0.0,
    17.445833984131262,
    0.0006235601634041466,
    0.0,
    0.0,
    6.683678146179332,
    0.00037724407979611296,
    1.027889937768264,
    225.20515300849274,
    0.0,
    0.0,
    19.213238186143016,
    0.0011401524586618361,
    0.001237755635509985,
    176.39317598450694,
    0.0,
    0.0,
    24.43300999870476,
    0.28520802612117757,
    0.0004485436923833408,
    0.0,
    0.0,
    0.0,
    34.77906344483772,
    44.835625328877896,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0008680556573291698,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0005313191874358747,
    0.0,
    0.00016533814161379112,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0004179171803251336,
    0.0017290828234722833,
    0.0,
    0.0020827005846636437,
    0.0,
    0.0,
    8.826982764996862,
    23.19243343998926,
    0.0,
    95.1080498811086,
    0.9863978034400682,
    0.9834382792465353,
    0.0012286405048278493,
    171.2667255897307,
    0.9807858872435379,
    0.0,
    0.0,
    0.0,
    0.0005130064588990679,
    0.0,
    0.00010854057858411537,
)
_SIGMA = 1.5
_RADIUS = int(3.33 * _SIGMA + 0.5)  # scipy's truncate=3.33; the reference pads by the same 5
MIN_SIZE = 8


@functools.cache
def _kernel() -> tuple[float, ...]:
    w = [math.exp(-0.5 * (i / _SIGMA) ** 2) for i in range(-_RADIUS, _RADIUS + 1)]
    return tuple(v / sum(w) for v in w)


def _linear(x: Tensor) -> Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _xyb(lin: Tensor) -> Tensor:
    """Linear RGB (N x 3 x H x W) -> SSIMULACRA 2's positive XYB."""
    m = device_constant(_OPSIN, lin.device, lin.dtype)
    mixed = torch.einsum("ij,njhw->nihw", m, lin) + _BIAS
    c = mixed.clamp_min(0).pow(1 / 3) - _BIAS ** (1 / 3)
    x, y = 0.5 * (c[:, 0] - c[:, 1]), 0.5 * (c[:, 0] + c[:, 1])
    return torch.stack([x * 14.0 + 0.42, y + 0.01, c[:, 2] - y + 0.55], dim=1)


def _blur(x: Tensor) -> Tensor:
    """Gaussian sigma 1.5 (11 taps): rows mirrored as scipy's ``reflect`` (edge pixel
    repeated), columns zero-padded, as the reference does on its transposed planes.

    Shifted sums, not conv2d: float64 convolution has no fast CPU kernel (3.7x slower)."""
    h, w = x.shape[-2:]
    k = _kernel()
    rows = x[..., _symmetric_index(h, x.device), :]
    out = rows[..., 0:h, :] * k[0]
    for j in range(1, len(k)):
        out.add_(rows[..., j : j + h, :], alpha=k[j])
    cols = F.pad(out, (_RADIUS, _RADIUS))
    out = cols[..., 0:w] * k[0]
    for j in range(1, len(k)):
        out.add_(cols[..., j : j + w], alpha=k[j])
    return out


def _symmetric_index(h: int, device: torch.device) -> Tensor:
    """Row indices of a plane padded by _RADIUS with half-sample symmetry (any h >= 1)."""
    i = torch.arange(-_RADIUS, h + _RADIUS, device=device) % (2 * h)
    return torch.where(i >= h, 2 * h - 1 - i, i)


def _levels(x: Tensor) -> Tensor:
    """float64 values; 8-bit levels restored exactly (k / 255 in float64, as the reference
    reads its files), anything else kept as it is. No host sync."""
    d = x.double()
    q = (d * 255).round()
    return torch.where((d * 255 - q).abs() < 1e-3, q / 255, d)


def _norms(d: Tensor) -> tuple[Tensor, Tensor]:
    """(mean, 4-norm) over each plane: N x 3 each."""
    sq = d * d
    return d.mean(dim=(2, 3)), (sq * sq).mean(dim=(2, 3)).pow(0.25)


@torch.no_grad()
def ssimulacra2(x: Tensor, ref: Tensor) -> Tensor:
    """SSIMULACRA 2 of each image in ``x`` against ``ref`` (N x 3 x H x W in [0, 1]): N scores.

    The reference works on 8-bit files; chains' states are 8-bit already, float inputs are used
    as they are."""
    out_dtype, dev = x.dtype, x.device
    lin_d, lin_r = _linear(_levels(x)), _linear(_levels(ref))
    per_scale: list[Tensor] = []  # each N x 3 x 6: ssim(1, 4) ringing(1, 4) blur(1, 4)
    for scale in range(NUM_SCALES):
        if min(lin_d.shape[-2:]) < MIN_SIZE:
            break
        if scale:
            lin_d = F.avg_pool2d(lin_d, 2, ceil_mode=True)
            lin_r = F.avg_pool2d(lin_r, 2, ceil_mode=True)
            if min(lin_d.shape[-2:]) < MIN_SIZE:
                break
        a, b = _xyb(lin_r), _xyb(lin_d)
        blurred = _blur(torch.cat([a * a, b * b, a * b, a, b], dim=1))
        s11, s22, s12, mu1, mu2 = blurred.split(3, dim=1)
        num_m = 1.0 - (mu1 - mu2).square()
        num_s = 2.0 * (s12 - mu1 * mu2) + _C2
        den_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + _C2
        d = (1.0 - num_m * num_s / den_s).clamp_min(0)
        edge = (1.0 + (b - mu2).abs()) / (1.0 + (a - mu1).abs()) - 1.0
        ssim_1, ssim_4 = _norms(d)
        ring_1, ring_4 = _norms(edge.clamp_min(0))
        blur_1, blur_4 = _norms((-edge).clamp_min(0))
        per_scale.append(torch.stack([ssim_1, ring_1, blur_1, ssim_4, ring_4, blur_4], dim=2))
    # N x 3 x scales x 2 norms x 3 terms, flattened in the reference's weight order
    terms = torch.stack(per_scale, dim=2).reshape(x.shape[0], 3, len(per_scale), 2, 3)
    w = device_constant(_WEIGHTS, dev, torch.float64)[: terms[0].numel()]
    s = (terms.reshape(x.shape[0], -1).abs() * w).sum(dim=1) * 0.9562382616834844
    s = 2.326765642916932 * s - 0.020884521182843837 * s**2 + 6.248496625763138e-05 * s**3
    score = torch.where(s > 0, 100.0 - 10.0 * s.clamp_min(0).pow(0.6276336467831387), 100.0)
    return score.to(out_dtype)
