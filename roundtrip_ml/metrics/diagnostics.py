"""Drift diagnostics the usual metric libraries lack: spectral and colour drift, weight-free.

- Spectral drift: power of the (Hann-windowed, mean-removed) luma spectrum in three radial bands,
  as a dB ratio to the reference's. Blur shows as a negative high band, hallucinated texture or
  noise as a positive one.
- Colour drift: CIEDE2000 (Sharma, Wu & Dalal 2005) per pixel against the reference, mean and
  95th percentile, plus the mean shift in L*, a*, b* (ML upscalers nudge colour every pass and
  the shift compounds). sRGB -> Lab uses D65 / 2 degrees, the same constants as skimage.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from ..imaging.colour import rgb_to_lab as rgb_to_lab  # one conversion; regions read it here
from .base import device_constant

# Radial frequency bands in cycles/pixel (Nyquist = 0.5; corners reach 0.707 and count as high).
SPECTRAL_BANDS: dict[str, tuple[float, float]] = {
    "low": (0.0, 0.125),
    "mid": (0.125, 0.25),
    "high": (0.25, math.inf),
}
SPECTRAL_KEYS = tuple(f"spectral_{b}" for b in SPECTRAL_BANDS)
COLOUR_KEYS = ("de2000_mean", "de2000_p95", "lab_shift_L", "lab_shift_a", "lab_shift_b")

_LUMA = (0.299, 0.587, 0.114)


# --- spectral ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _spectral_layout(h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Hann window (H x W) and radial frequency (H x W//2+1) for one image size."""
    win = torch.outer(
        torch.hann_window(h, periodic=False, dtype=torch.float32),
        torch.hann_window(w, periodic=False, dtype=torch.float32),
    )
    fy = torch.fft.fftfreq(h).view(-1, 1)
    fx = torch.fft.rfftfreq(w).view(1, -1)
    return win.to(device), torch.sqrt(fy * fy + fx * fx).to(device)


def _power(x: Tensor) -> tuple[Tensor, Tensor]:
    """Power spectrum of windowed luma, (N, H, W//2+1), and its radial frequency grid."""
    win, radius = _spectral_layout(x.shape[-2], x.shape[-1], x.device)
    luma = torch.einsum("c,nchw->nhw", device_constant(_LUMA, x.device, x.dtype), x)
    luma = luma - luma.mean(dim=(1, 2), keepdim=True)
    spec = torch.fft.rfft2(luma * win)
    return spec.real.square() + spec.imag.square(), radius


def band_powers(x: Tensor) -> dict[str, Tensor]:
    """Mean spectral power per radial band (DC excluded), (N,) each."""
    power, radius = _power(x)
    out = {}
    for band, (lo, hi) in SPECTRAL_BANDS.items():
        mask = ((radius > lo) & (radius <= hi)).to(power.dtype)
        out[band] = (power * mask).sum(dim=(1, 2)) / mask.sum()
    return out


def radial_power_spectrum(x: Tensor, bins: int = 32) -> tuple[Tensor, Tensor]:
    """Radially averaged power spectrum: (bin centres in cycles/pixel, (N, bins) mean power).

    For plots of a few frames; the engine stores only the band ratios.
    """
    power, radius = _power(x)
    edges = torch.linspace(0.0, 0.5, bins + 1, device=x.device)
    idx = torch.bucketize(radius.flatten(), edges[1:-1], right=True)
    keep = (radius.flatten() > 0) & (radius.flatten() <= 0.5)
    idx, flat = idx[keep], power.flatten(1)[:, keep]
    sums = torch.zeros(power.shape[0], bins, device=x.device, dtype=power.dtype)
    sums.index_add_(1, idx, flat)
    counts = torch.bincount(idx, minlength=bins).to(power.dtype)
    return (edges[:-1] + edges[1:]) / 2, sums / counts


def spectral(x: Tensor, ref: Tensor) -> dict[str, Tensor]:
    """Band power of ``x`` relative to ``ref`` in dB (0 = same; < 0 lost, > 0 gained)."""
    px, pr = band_powers(x), band_powers(ref)
    return {f"spectral_{b}": 10.0 * torch.log10(px[b] / pr[b]) for b in SPECTRAL_BANDS}


# --- colour -----------------------------------------------------------------------------------
def ciede2000(lab1: Tensor, lab2: Tensor) -> Tensor:
    """CIEDE2000 colour difference per pixel (kL = kC = kH = 1), N x H x W."""
    l1, a1, b1 = lab1.unbind(1)
    l2, a2, b2 = lab2.unbind(1)
    c_mean = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    c7 = c_mean**7
    g = 0.5 * (1 - torch.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.remainder(torch.atan2(b1, a1p), 2 * math.pi)
    h2p = torch.remainder(torch.atan2(b2, a2p), 2 * math.pi)
    cc = c1p * c2p
    zero = cc == 0

    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - 2 * math.pi, dh)
    dh = torch.where(dh < -math.pi, dh + 2 * math.pi, dh)
    dh = torch.where(zero, torch.zeros_like(dh), dh)
    d_hue = 2 * torch.sqrt(cc) * torch.sin(dh / 2)

    h_sum = h1p + h2p
    far = (h2p - h1p).abs() > math.pi
    h_mean = torch.where(far & (h_sum < 2 * math.pi), h_sum + 2 * math.pi, h_sum)
    h_mean = torch.where(far & (h_sum >= 2 * math.pi), h_sum - 2 * math.pi, h_mean)
    h_mean = torch.where(zero, h_sum, h_mean / 2)

    l_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    t = (
        1
        - 0.17 * torch.cos(h_mean - math.radians(30))
        + 0.24 * torch.cos(2 * h_mean)
        + 0.32 * torch.cos(3 * h_mean + math.radians(6))
        - 0.20 * torch.cos(4 * h_mean - math.radians(63))
    )
    sl = 1 + 0.015 * (l_mean - 50) ** 2 / torch.sqrt(20 + (l_mean - 50) ** 2)
    sc = 1 + 0.045 * cp_mean
    sh = 1 + 0.015 * cp_mean * t
    cp7 = cp_mean**7
    rc = 2 * torch.sqrt(cp7 / (cp7 + 25.0**7))
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_mean) - 275) / 25) ** 2))
    rt = -torch.sin(2 * d_theta) * rc
    lt, ct, ht = (l2 - l1) / sl, (c2p - c1p) / sc, d_hue / sh
    return torch.sqrt((lt * lt + ct * ct + ht * ht + rt * ct * ht).clamp_min(0))


def _percentile(v: Tensor, q: float) -> Tensor:
    """Per-row percentile with linear interpolation (numpy's default), for any row length."""
    n = v.shape[1]
    pos = q * (n - 1)
    lo = math.floor(pos)
    frac = pos - lo
    v_lo = torch.kthvalue(v, lo + 1, dim=1).values
    if frac == 0:
        return v_lo
    v_hi = torch.kthvalue(v, min(lo + 2, n), dim=1).values
    return v_lo + frac * (v_hi - v_lo)


def colour(x: Tensor, ref: Tensor) -> dict[str, Tensor]:
    """CIEDE2000 mean / p95 of ``x`` against ``ref`` and the mean L*a*b* shift (x - ref)."""
    lab_x, lab_r = rgb_to_lab(x), rgb_to_lab(ref)
    de = ciede2000(lab_r, lab_x).flatten(1)
    shift = (lab_x - lab_r).mean(dim=(2, 3))
    return {
        "de2000_mean": de.mean(dim=1),
        "de2000_p95": _percentile(de, 0.95),
        "lab_shift_L": shift[:, 0],
        "lab_shift_a": shift[:, 1],
        "lab_shift_b": shift[:, 2],
    }
