"""Metric functions in torchmetrics' vocabulary: ``fn(preds, target, *, data_range, reduction)``.

The same kernels the engine runs (roundtrip_ml.metrics.full_reference), with the argument
checks and reductions a notebook user expects. Inputs are N x 3 x H x W (or 3 x H x W) float
tensors with values in [0, data_range].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch  # noqa: F401  (the doctests use it)
from torch import Tensor

from ..core.errors import ConfigError
from . import full_reference as fr

Reduction = Literal["none", "mean", "sum"]


def _apply(
    fn: Callable[[Tensor, Tensor], Tensor],
    name: str,
    preds: Tensor,
    target: Tensor,
    data_range: float,
    reduction: Reduction,
) -> Tensor:
    if preds.shape != target.shape:
        raise ConfigError(
            name,
            f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape",
            "pass two images of one size",
        )
    if preds.ndim == 3:
        preds, target = preds.unsqueeze(0), target.unsqueeze(0)
    if preds.ndim != 4 or preds.shape[1] != 3:
        raise ConfigError(
            name, f"expects N x 3 x H x W, got {tuple(preds.shape)}", "pass RGB images"
        )
    if data_range <= 0:
        raise ConfigError(name, f"data_range {data_range} must be > 0")
    values = fn(preds.float() / data_range, target.float() / data_range)
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    raise ConfigError(name, f"reduction {reduction!r} is not none, mean or sum")


def psnr(
    preds: Tensor, target: Tensor, *, data_range: float = 1.0, reduction: Reduction = "none"
) -> Tensor:
    """PSNR in dB per image (identical images give +inf, never clipped).

    Args:
        preds: N x 3 x H x W images in [0, data_range].
        target: The reference images, same shape.
        data_range: The value range of the inputs (1.0 for [0, 1]).
        reduction: "none" (one value per image), "mean" or "sum".

    Returns:
        PSNR in dB: shape (N,) for "none", else a scalar.

    Examples:
        >>> x = torch.zeros(1, 3, 8, 8)
        >>> float(psnr(x + 0.1, x).round())
        20.0
    """
    return _apply(fr.psnr, "psnr", preds, target, data_range, reduction)


def psnr_y(
    preds: Tensor, target: Tensor, *, data_range: float = 1.0, reduction: Reduction = "none"
) -> Tensor:
    """PSNR on BT.601 luma (the super-resolution papers' convention), dB per image.

    Args:
        preds: N x 3 x H x W images in [0, data_range].
        target: The reference images, same shape.
        data_range: The value range of the inputs (1.0 for [0, 1]).
        reduction: "none" (one value per image), "mean" or "sum".

    Returns:
        PSNR-Y in dB: shape (N,) for "none", else a scalar.

    Examples:
        >>> x = torch.zeros(1, 3, 8, 8)
        >>> bool(psnr_y(x + 0.1, x) > 20)
        True
    """
    return _apply(fr.psnr_y, "psnr_y", preds, target, data_range, reduction)


def ssim(
    preds: Tensor, target: Tensor, *, data_range: float = 1.0, reduction: Reduction = "none"
) -> Tensor:
    """SSIM per image: Gaussian window 11, sigma 1.5, population covariance, mean over channels.

    Args:
        preds: N x 3 x H x W images in [0, data_range].
        target: The reference images, same shape.
        data_range: The value range of the inputs (1.0 for [0, 1]).
        reduction: "none" (one value per image), "mean" or "sum".

    Returns:
        SSIM: shape (N,) for "none", else a scalar.

    Examples:
        >>> x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> ssim(x, x).tolist()
        [1.0, 1.0]
    """
    return _apply(fr.ssim, "ssim", preds, target, data_range, reduction)


def ms_ssim(
    preds: Tensor, target: Tensor, *, data_range: float = 1.0, reduction: Reduction = "none"
) -> Tensor:
    """Multi-scale SSIM (5 scales; images of at least 161 px a side).

    Args:
        preds: N x 3 x H x W images in [0, data_range].
        target: The reference images, same shape.
        data_range: The value range of the inputs (1.0 for [0, 1]).
        reduction: "none" (one value per image), "mean" or "sum".

    Returns:
        MS-SSIM: shape (N,) for "none", else a scalar.

    Examples:
        >>> x = torch.rand(1, 3, 161, 161, generator=torch.Generator().manual_seed(0))
        >>> round(float(ms_ssim(x, x)), 4)
        1.0
    """
    return _apply(fr.ms_ssim, "ms_ssim", preds, target, data_range, reduction)


def haarpsi(
    preds: Tensor, target: Tensor, *, data_range: float = 1.0, reduction: Reduction = "none"
) -> Tensor:
    """HaarPSI perceptual similarity in [0, 1] (1 = identical).

    Args:
        preds: N x 3 x H x W images in [0, data_range].
        target: The reference images, same shape.
        data_range: The value range of the inputs (1.0 for [0, 1]).
        reduction: "none" (one value per image), "mean" or "sum".

    Returns:
        HaarPSI: shape (N,) for "none", else a scalar.

    Examples:
        >>> x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> round(float(haarpsi(x, x)), 4)
        1.0
    """
    return _apply(fr.haarpsi, "haarpsi", preds, target, data_range, reduction)


def gmsd(
    preds: Tensor, target: Tensor, *, data_range: float = 1.0, reduction: Reduction = "none"
) -> Tensor:
    """Gradient magnitude similarity deviation (0 = identical; lower is better).

    Args:
        preds: N x 3 x H x W images in [0, data_range].
        target: The reference images, same shape.
        data_range: The value range of the inputs (1.0 for [0, 1]).
        reduction: "none" (one value per image), "mean" or "sum".

    Returns:
        GMSD: shape (N,) for "none", else a scalar.

    Examples:
        >>> x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> float(gmsd(x, x))
        0.0
    """
    return _apply(fr.gmsd, "gmsd", preds, target, data_range, reduction)


__all__ = ["gmsd", "haarpsi", "ms_ssim", "psnr", "psnr_y", "ssim"]
