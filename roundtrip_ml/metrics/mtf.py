"""Sharpness as MTF50 from a slanted edge (ISO 12233 style), e.g. the chart's ``edge_v``/``edge_h``.

Method: luma of the region; per-row edge location from the centroid of the row derivative,
refined once inside a Hamming window and fitted by a straight line (the edge angle); every pixel
binned by its perpendicular distance to that line into a 4x oversampled edge spread function;
its central-difference derivative (the line spread function) Hamming-windowed around its centre;
|FFT| normalised at DC, divided by the known responses of the derivative and of the binning.
MTF50 is the first frequency where the MTF falls to 0.5, in cycles per pixel perpendicular to
the edge.

Values are measured on the sRGB-encoded luma with no linearisation: resamplers and models act on
encoded values, so this is the MTF of the processing as it ran. An ideal step (the chart at
generation 0) stays above 0.5 up to the largest reported frequency: MTF50 is then NaN,
"sharper than measurable".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..core.errors import ConfigError, ImageError

Box = tuple[int, int, int, int]
_LUMA = np.array([0.2126, 0.7152, 0.0722])
MAX_FREQ = 1.0  # cycles/px reported: twice the pixel Nyquist, where 4x oversampling stays sound


@dataclass(frozen=True)
class MtfResult:
    """MTF curve (``freq`` in cycles/px), its MTF50 (NaN if never below 0.5 up to ``MAX_FREQ``),
    the fitted edge angle from the nearer axis in degrees, and the edge's orientation."""

    freq: np.ndarray
    mtf: np.ndarray
    mtf50: float
    angle_deg: float
    orientation: str  # "vertical" (measures horizontal resolution) | "horizontal"


def _luma(img: Tensor | np.ndarray, box: Box | None) -> np.ndarray:
    a = img.detach().cpu().double().numpy() if isinstance(img, Tensor) else np.asarray(img, float)
    if a.ndim == 3:
        if a.shape[0] != 3:
            raise ConfigError("MTF input", f"expected 3 x H x W or H x W, got {a.shape}")
        a = np.tensordot(_LUMA, a, axes=1)
    elif a.ndim != 2:
        raise ConfigError("MTF input", f"expected 3 x H x W or H x W, got {a.shape}")
    if box is not None:
        x, y, w, h = box
        if x < 0 or y < 0 or y + h > a.shape[0] or x + w > a.shape[1]:
            raise ConfigError(f"MTF box {box}", f"outside the {a.shape[1]}x{a.shape[0]} image")
        a = a[y : y + h, x : x + w]
    return a


def _hamming(n: int, center: float) -> np.ndarray:
    """Hamming window over 0..n-1 centred on ``center``, wide enough to reach both ends."""
    i = np.arange(n)
    half = max(center, n - 1 - center) + 1.0
    return 0.54 + 0.46 * np.cos(np.pi * (i - center) / half)


def _fit_edge(a: np.ndarray) -> tuple[float, float]:
    """Edge x-position per row, x = x0 + slope * row, from row-derivative centroids (2 passes)."""
    d = np.diff(a, axis=1)
    if d.sum() < 0:
        d = -d
    d = np.clip(d, 0.0, None)  # keep the edge's own polarity, not noise of the other sign
    xs = np.arange(d.shape[1]) + 0.5  # diff j sits between pixels j and j+1
    rows = np.arange(d.shape[0])
    weights = np.ones_like(d)
    x0 = slope = 0.0
    for _ in range(2):
        dw = d * weights
        mass = dw.sum(axis=1)
        ok = mass > 1e-6 * max(mass.max(), 1e-12)
        if ok.sum() < 3:
            raise ImageError("slanted edge", "no edge found in the region", "check the box")
        centroid = (dw[ok] * xs).sum(axis=1) / mass[ok]
        slope, x0 = np.polyfit(rows[ok], centroid, 1)
        weights = np.stack([_hamming(d.shape[1], x0 + slope * r - 0.5) for r in rows])
    return float(x0), float(slope)


def edge_mtf(img: Tensor | np.ndarray, box: Box | None = None, *, oversample: int = 4) -> MtfResult:
    """MTF of one slanted edge in ``box`` (x, y, w, h; None: whole image) of a 3 x H x W or
    H x W image. Raises ImageError when the region holds no usable slanted edge."""
    a = _luma(img, box)
    gx, gy = np.abs(np.diff(a, axis=1)).sum(), np.abs(np.diff(a, axis=0)).sum()
    orientation = "vertical" if gx >= gy else "horizontal"
    if orientation == "horizontal":
        a = a.T
    h, w = a.shape
    if h < 8 or w < 8:
        raise ImageError("slanted edge", f"region {w}x{h} is too small", "use at least 8x8 px")
    x0, slope = _fit_edge(a)
    if abs(slope) * h < 1.0:
        angle = math.degrees(math.atan(slope))
        raise ImageError(
            "slanted edge",
            f"edge is too close to the axis ({angle:.2f} deg): under one pixel of phase shift",
            "tilt it 2-10 degrees or use more rows",
        )
    cos = math.cos(math.atan(slope))
    rows, cols = np.mgrid[0:h, 0:w]
    dist = (cols - (x0 + slope * rows)) * cos  # perpendicular distance to the edge, px
    lo, hi = dist.min(axis=1).max(), dist.max(axis=1).min()  # range every row covers
    keep = (dist >= lo) & (dist <= hi)
    idx = np.floor(dist[keep] * oversample).astype(int)
    idx -= idx.min()
    counts = np.bincount(idx)
    sums = np.bincount(idx, weights=a[keep])
    filled = counts > 0
    centers = np.arange(counts.size)
    esf = np.interp(centers, centers[filled], sums[filled] / counts[filled])
    lsf = np.gradient(esf)
    if lsf.sum() < 0:
        lsf = -lsf
    pos = np.clip(lsf, 0, None)
    center = float((pos * centers).sum() / max(pos.sum(), 1e-12))
    lsf = lsf * _hamming(lsf.size, center)
    nfft = max(4096, 1 << (lsf.size - 1).bit_length())
    spec = np.abs(np.fft.rfft(lsf, nfft))
    if spec[0] <= 0:
        raise ImageError("slanted edge", "edge has no contrast", "check the box")
    step = 1.0 / oversample
    freq = np.fft.rfftfreq(nfft, d=step)
    band = freq <= MAX_FREQ
    freq = freq[band]
    # undo the central difference (sinc(2 f step)) and the bin width (sinc(f step))
    mtf = spec[band] / spec[0] / (np.sinc(2 * freq * step) * np.sinc(freq * step))
    below = np.flatnonzero(mtf < 0.5)
    if below.size == 0:
        f50 = float("nan")
    else:
        i = int(below[0])
        f0, f1, m0, m1 = freq[i - 1], freq[i], mtf[i - 1], mtf[i]
        f50 = float(f0 + (m0 - 0.5) * (f1 - f0) / (m0 - m1))
    return MtfResult(freq, mtf, f50, math.degrees(math.atan(slope)), orientation)


def mtf50(img: Tensor, box: Box | None = None, *, oversample: int = 4) -> list[float]:
    """MTF50 (cycles/px) of the slanted edge in ``box`` for each image of a (N x) 3 x H x W batch;
    NaN where it is not measurable (no usable edge, or sharper than ``MAX_FREQ``)."""
    if img.ndim == 3:
        img = img[None]
    out: list[float] = []
    for one in img.detach().to("cpu", torch.float64):
        try:
            out.append(edge_mtf(one, box, oversample=oversample).mtf50)
        except ImageError:
            out.append(float("nan"))
    return out


def mtf50_metric(box: Box | None = None) -> Callable[[Tensor, Tensor], dict[str, Tensor]]:
    """A batched ``fn(x, ref)`` for the metric registry: ``mtf50`` of ``x`` (``ref`` unused)."""

    def fn(x: Tensor, ref: Tensor) -> dict[str, Tensor]:
        return {"mtf50": torch.tensor(mtf50(x, box), dtype=torch.float32, device=x.device)}

    return fn
