"""Full-reference metrics on float32 N x 3 x H x W batches in [0, 1], data_range fixed at 1.0.

Written as plain batched torch so they run on the engine's device without host syncs (piq and
torchmetrics validate value ranges with a `.min()` on the host; they are our test references).
Conventions follow the references SR papers cite:

- PSNR: 10 log10(1 / MSE) over all channels and pixels; identical images give +inf.
- Y channel: BT.601 with the 16-235 offset (MATLAB ``rgb2ycbcr``/BasicSR ``bgr2ycbcr``, unrounded),
  scaled to [0, 1]; PSNR on it equals BasicSR's on [0, 255].
- SSIM: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, valid region only (as skimage with
  ``gaussian_weights=True, use_sample_covariance=False``), mean over channels.
- MS-SSIM: five scales (weights of Wang et al. 2003), 2x2 average pooling between scales (odd
  sizes padded by replication at the top/left, as piq), min size (11 - 1) * 2^4 + 1 = 161.
- HaarPSI (Reisenhofer et al. 2018) and GMSD (Xue et al. 2014) with the authors' constants.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import device_constant

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIZE = (SSIM_WINDOW - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1  # 161

# BT.601 luma with studio-range offset, for RGB in [0, 1] -> Y in [16/255, 235/255].
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_Y_OFFSET = 16.0 / 255.0
# FCC YIQ (HaarPSI and GMSD work on it).
_YIQ = ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112))


def _crop_border(x: Tensor, border: int) -> Tensor:
    return x[..., border:-border, border:-border] if border > 0 else x


def rgb_to_y(x: Tensor) -> Tensor:
    """BT.601 Y (16-235 range, as SR papers use), N x 1 x H x W in [0, 1] units."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return _Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b + _Y_OFFSET


def _rgb_to_yiq(x: Tensor) -> Tensor:
    return torch.einsum("kc,nchw->nkhw", device_constant(_YIQ, x.device, x.dtype), x)


def psnr(x: Tensor, ref: Tensor, border: int = 0) -> Tensor:
    """PSNR in dB per image, data_range 1. Identical images give +inf (kept, never clipped)."""
    d = _crop_border(x, border) - _crop_border(ref, border)
    mse = (d * d).mean(dim=(1, 2, 3))
    return -10.0 * torch.log10(mse)


def psnr_y(x: Tensor, ref: Tensor, border: int = 0) -> Tensor:
    """PSNR on BT.601 Y, the number SR papers report (optionally after a border crop)."""
    return psnr(rgb_to_y(x), rgb_to_y(ref), border)


@functools.lru_cache(maxsize=16)
def _gaussian_1d(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t * t) / (2 * sigma * sigma))
    return (g / g.sum()).to(device=device, dtype=dtype)  # cached: copied to the device once


@functools.lru_cache(maxsize=64)
def _valid_band(n: int, g: Tensor) -> Tensor:
    """(n - k + 1, n) matrix whose rows are the kernel shifted along: a 'valid' 1-D filter."""
    k = g.numel()
    rows = torch.arange(n - k + 1, device=g.device)
    band = torch.zeros(n - k + 1, n, device=g.device, dtype=g.dtype)
    for j in range(k):
        band[rows, rows + j] = g[j]
    return band


def _blur_valid(x: Tensor, g: Tensor) -> Tensor:
    """Separable Gaussian filter over the valid region, per channel, as two matrix products
    (4x faster than depthwise conv2d on a CPU, and tensor-core friendly on a GPU)."""
    h, w = x.shape[-2:]
    return _valid_band(h, g) @ (x @ _valid_band(w, g).t())


def _ssim_cs(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Mean SSIM and mean contrast-structure term per image and channel, (N, C) each."""
    g = _gaussian_1d(SSIM_WINDOW, SSIM_SIGMA, x.device, x.dtype)
    c1, c2 = 0.01**2, 0.03**2
    # Shift by 0.5 before the second moments: variances are shift-invariant, and the float32
    # cancellation in E[x^2] - E[x]^2 shrinks (skimage works in float64).
    xs, ys = x - 0.5, y - 0.5
    mu_x, mu_y = _blur_valid(xs, g), _blur_valid(ys, g)
    var_x = _blur_valid(xs * xs, g) - mu_x * mu_x
    var_y = _blur_valid(ys * ys, g) - mu_y * mu_y
    cov = _blur_valid(xs * ys, g) - mu_x * mu_y
    mu_x, mu_y = mu_x + 0.5, mu_y + 0.5
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    return (lum * cs).mean(dim=(2, 3)), cs.mean(dim=(2, 3))


def ssim(x: Tensor, ref: Tensor, border: int = 0) -> Tensor:
    """SSIM per image (Gaussian 11 / 1.5, data_range 1), mean over channels."""
    s, _ = _ssim_cs(_crop_border(x, border), _crop_border(ref, border))
    return s.mean(dim=1)


def ssim_y(x: Tensor, ref: Tensor, border: int = 0) -> Tensor:
    """SSIM on BT.601 Y."""
    return ssim(rgb_to_y(x), rgb_to_y(ref), border)


def ms_ssim(x: Tensor, ref: Tensor) -> Tensor:
    """Multi-scale SSIM per image: product over scales of cs^w (ssim^w at the coarsest)."""
    weights = device_constant(MS_SSIM_WEIGHTS, x.device, x.dtype)
    terms = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        if level > 0:
            pad = max(x.shape[2] % 2, x.shape[3] % 2)
            if pad:
                x = F.pad(x, (pad, 0, pad, 0), mode="replicate")
                ref = F.pad(ref, (pad, 0, pad, 0), mode="replicate")
            x, ref = F.avg_pool2d(x, 2), F.avg_pool2d(ref, 2)
        s, cs = _ssim_cs(x, ref)
        terms.append(s if level == len(MS_SSIM_WEIGHTS) - 1 else cs)
    stacked = torch.relu(torch.stack(terms))  # (levels, N, C)
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean(dim=1)


@functools.lru_cache(maxsize=16)
def _prewitt(device: torch.device, dtype: torch.dtype) -> Tensor:
    kx = torch.tensor([[-1.0, 0.0, 1.0]] * 3, dtype=dtype) / 3
    return torch.stack([kx, kx.t()]).unsqueeze(1).to(device)


@functools.lru_cache(maxsize=16)
def _haar(k: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Haar wavelet pair of size k (horizontal and vertical), 2 x 1 x k x k."""
    h = torch.full((k, k), 1.0 / k, dtype=dtype)
    h[k // 2 :] *= -1
    return torch.stack([h, h.t()]).unsqueeze(1).to(device)


def _halve(x: Tensor) -> Tensor:
    """2x2 mean with a zero row/column appended to odd sizes (the HaarPSI/GMSD subsampling)."""
    pad = max(x.shape[2] % 2, x.shape[3] % 2)
    if pad:
        x = F.pad(x, (0, pad, 0, pad))
    return F.avg_pool2d(x, 2)


def _similarity(a: Tensor, b: Tensor, c: float) -> Tensor:
    return (2 * a * b + c) / (a * a + b * b + c)


def gmsd(x: Tensor, ref: Tensor) -> Tensor:
    """Gradient Magnitude Similarity Deviation on luma (0 = identical; lower is better)."""
    t = 170.0 / 255.0**2
    kernels = _prewitt(x.device, x.dtype)

    def grad_mag(img: Tensor) -> Tensor:
        y = _halve(_rgb_to_yiq(img)[:, :1])
        return F.conv2d(y, kernels, padding=1).square().sum(dim=1).sqrt()

    gms = _similarity(grad_mag(x), grad_mag(ref), t)
    return gms.flatten(1).std(dim=1, correction=0)


def haarpsi(x: Tensor, ref: Tensor, c: float = 30.0, alpha: float = 4.2) -> Tensor:
    """HaarPSI per image in [0, 1] (1 = identical), colour version on 8-bit scaled YIQ."""
    yiq = [_halve(_rgb_to_yiq(img * 255.0)) for img in (x, ref)]
    coeffs = []
    for img in yiq:
        per_scale = []
        for j in (1, 2, 3):
            k = 2**j
            padded = F.pad(img[:, :1], (k // 2 - 1, k // 2, k // 2 - 1, k // 2))
            # (N, 2 orientations, H, W)
            per_scale.append(F.conv2d(padded, _haar(k, x.device, x.dtype)).abs())
        coeffs.append(per_scale)
    (cx1, cx2, cx3), (cy1, cy2, cy3) = coeffs
    weights = torch.maximum(cx3, cy3)  # (N, 2, H, W): coarsest scale weighs each orientation
    local_sim = (_similarity(cx1, cy1, c) + _similarity(cx2, cy2, c)) / 2  # (N, 2, H, W)
    chroma = [F.avg_pool2d(F.pad(img[:, 1:], (0, 1, 0, 1)), 2, stride=1).abs() for img in yiq]
    chroma_sim = _similarity(chroma[0], chroma[1], c).mean(dim=1, keepdim=True)
    weights = torch.cat([weights, weights.mean(dim=1, keepdim=True)], dim=1)
    local_sim = torch.cat([local_sim, chroma_sim], dim=1)
    score = (torch.sigmoid(alpha * local_sim) * weights).sum(dim=(1, 2, 3)) / weights.sum(
        dim=(1, 2, 3)
    )
    return (torch.logit(score) / alpha) ** 2
