"""ColorVideoVDP (Mantiuk et al. 2024; the ``cvvdp`` package, MIT): quality in JOD (just
objectionable differences; 10 = identical, each unit one JND-calibrated step worse).

The package is PyTorch itself and ships its calibrated parameters (its ML variants download
weights; the base metric used here does not), so it runs batched on the engine's device. JOD
depends on how the image is seen: the display model (``DISPLAY``: peak luminance, resolution,
size, viewing distance) is part of the result and ``describe()`` records it for the manifest.

``cvvdp_video`` scores a whole chain as a video (its frames against the original held still):
the temporal variant; ``roundtrip_ml.analysis.video.collapse_jod`` applies it to a chain's
saved frames (the frames the collapse video is made of), from the run directory alone.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
from torch import Tensor

from ..core.errors import ConfigError

DISPLAY = "standard_4k"  # the package's default: 30" 4K, 200 cd/m^2, office lighting
MIN_SIZE = 32


@cache
def require() -> Any:
    """The pycvvdp module; ConfigError naming the extra if it is not installed."""
    try:
        import pycvvdp
    except ImportError as e:
        raise ConfigError(
            "metric cvvdp", "cvvdp is not installed", "pip install 'roundtrip-ml[perceptual]'"
        ) from e
    return pycvvdp


@cache
def _metric(device: torch.device) -> Any:
    return require().cvvdp(display_name=DISPLAY, device=device, quiet=True)


@torch.no_grad()
def cvvdp(x: Tensor, ref: Tensor) -> Tensor:
    """JOD of each image in ``x`` against ``ref`` (sRGB in [0, 1] on the display): N values."""
    jod, _ = _metric(x.device).predict(x, ref, dim_order="BCHW")
    return jod.reshape(x.shape[0]).to(torch.float32)


@torch.no_grad()
def cvvdp_video(frames: Tensor, original: Tensor, fps: float = 10.0) -> float:
    """JOD of a chain's frames (F x 3 x H x W, in generation order, shown at ``fps``) against
    the original image (3 x H x W) held for the same time."""
    test = frames.permute(1, 0, 2, 3)[None]
    reference = original[:, None].expand_as(test[0])[None]
    jod, _ = _metric(frames.device).predict(
        test, reference, dim_order="BCFHW", frames_per_second=fps
    )
    return float(jod)


def describe(device: torch.device | None = None) -> dict[str, Any]:
    m = _metric(device or torch.device("cpu"))
    return {
        "implementation": "cvvdp",
        "version": m.version,
        "display": DISPLAY,
        "display_model": m.get_info_string().strip('"'),
    }
