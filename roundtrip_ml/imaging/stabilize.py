"""Stabilisers: pull each upscaled image back toward this generation's low-res input.

These are the fixes users post for the colour shift and drift of SR models, applied after the
upscale and before the handoff, every generation (``stabilizers`` in the config). Each is a
batched torch operation on the device; all compare the output with the *reference*: the low-res
input the upscaler saw, brought to the output size with the chain's downscale kernel.

- ``colour``: per-image, per-channel mean and standard deviation in CIE Lab matched to the
  reference's (a channel with no spread only gets its mean moved);
- ``histogram``: per-channel histogram matching (RGB) to the reference, tie-aware: equal input
  values get equal outputs (the mid-rank quantile of the reference);
- ``wavelet``: the output's low-frequency band replaced by the reference's; the band is a
  Gaussian low-pass with sigma = the scale in output pixels (one low-res pixel), so what is
  kept of the output is the detail the low-res image cannot hold;
- ``backproject:N``: N steps of iterative back-projection (Irani & Peleg 1991),
  ``y += up(lo - down(y))``, down and up with the chain's kernel: downscaling the result gives
  the low-res input back ever more closely.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.specs import Stabilizer
from .colour import lab_to_rgb, rgb_to_lab
from .kernels import get_kernel
from .resample import resize, weight_matrix


def stabilize(y: Tensor, lo: Tensor, stabilizer: Stabilizer, kernel: str) -> Tensor:
    """Apply ``stabilizer`` to the upscaled batch ``y`` (N x C x H x W) given the low-res input
    ``lo`` it came from. RGB only: a carried alpha channel passes through unchanged."""
    if not stabilizer.active:
        return y
    rgb, rest = y[:, :3], y[:, 3:]
    size = (int(y.shape[-2]), int(y.shape[-1]))
    lo3 = lo[:, :3].to(rgb.dtype)
    if stabilizer.kind == "backproject":
        out = back_project(rgb, lo3, stabilizer.iterations, kernel)
    else:
        ref = resize(lo3, size, kernel).clamp(0.0, 1.0)
        if stabilizer.kind == "colour":
            out = match_lab_moments(rgb, ref)
        elif stabilizer.kind == "histogram":
            out = match_histograms(rgb, ref)
        elif stabilizer.kind == "wavelet":
            sigma = max(size[0] / lo.shape[-2], size[1] / lo.shape[-1])
            out = rgb - gaussian_blur(rgb, sigma) + gaussian_blur(ref, sigma)
        else:  # parse_stabilizer admits only the kinds above
            raise AssertionError(stabilizer.kind)
    return torch.cat([out, rest], dim=1) if rest.shape[1] else out


def match_lab_moments(x: Tensor, ref: Tensor) -> Tensor:
    """Per image and Lab channel: (x - mean_x) / std_x * std_ref + mean_ref, back to sRGB."""
    lx, lr = rgb_to_lab(x.clamp(0.0, 1.0)), rgb_to_lab(ref)
    mx, sx = lx.mean(dim=(2, 3), keepdim=True), lx.std(dim=(2, 3), keepdim=True)
    mr, sr = lr.mean(dim=(2, 3), keepdim=True), lr.std(dim=(2, 3), keepdim=True)
    gain = torch.where(sx > 1e-6, sr / sx.clamp_min(1e-6), torch.ones_like(sx))
    return lab_to_rgb((lx - mx) * gain + mr)


def match_histograms(x: Tensor, ref: Tensor) -> Tensor:
    """Per image and channel, map each value to the reference's value at the same quantile.
    Ties share their mid-rank, so a flat region stays flat. Sizes may differ."""
    n, c = x.shape[:2]
    src = x.reshape(n * c, -1).contiguous()
    tgt = ref.reshape(n * c, -1).sort(dim=1).values
    srt = src.sort(dim=1).values
    left = torch.searchsorted(srt, src, side="left").to(x.dtype)
    right = torch.searchsorted(srt, src, side="right").to(x.dtype)
    q = (left + right - 1.0) / 2.0 / max(src.shape[1] - 1, 1)  # mid-rank quantile in [0, 1]
    pos = q * (tgt.shape[1] - 1)
    lo_i = pos.floor().long().clamp(0, tgt.shape[1] - 1)
    hi_i = (lo_i + 1).clamp(max=tgt.shape[1] - 1)
    frac = pos - lo_i.to(x.dtype)
    out = tgt.gather(1, lo_i) * (1 - frac) + tgt.gather(1, hi_i) * frac
    return out.reshape(x.shape)


@functools.lru_cache(maxsize=32)
def _gauss(sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(device, dtype)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian low-pass, edges replicated (a flat image stays exactly flat)."""
    k = _gauss(float(sigma), x.device, x.dtype)
    r = (len(k) - 1) // 2
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


def back_project(y: Tensor, lo: Tensor, iterations: int, kernel: str) -> Tensor:
    """``iterations`` steps of y <- y + up(lo - down(y)), both resamples with ``kernel`` as
    plain linear maps (``resize`` clips between its passes as Pillow does, which would cut the
    negative half of a residual)."""
    size, small = (int(y.shape[-2]), int(y.shape[-1])), (int(lo.shape[-2]), int(lo.shape[-1]))
    for _ in range(iterations):
        y = y + linear_resize(lo - linear_resize(y, small, kernel), size, kernel)
    return y


def linear_resize(x: Tensor, size: tuple[int, int], kernel: str) -> Tensor:
    """``resize``'s separable weights as one linear map (no clipping between the passes)."""
    name = get_kernel(kernel).name
    wy = weight_matrix(int(x.shape[-2]), size[0], name, x.device, x.dtype)
    wx = weight_matrix(int(x.shape[-1]), size[1], name, x.device, x.dtype)
    return torch.matmul(wy, torch.matmul(x, wx.t()))
