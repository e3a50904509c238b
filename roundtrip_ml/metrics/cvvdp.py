"""ColorVideoVDP (Mantiuk et al. 2024; the ``cvvdp`` package, MIT): quality in JOD (just
objectionable differences; 10 = identical, each unit one JND-calibrated step worse).

The package is PyTorch itself and ships its calibrated parameters (its ML variants download
weights; the base metric used here does not), so it runs batched on the engine's device. JOD
depends on how the image is seen: the display model (``DISPLAY``: peak luminance, resolution,
size, viewing distance) is part of the result and ``describe()`` records it for the manifest.

``cvvdp_video`` scores a whole chain as a video (its frames against the original held still):
the temporal variant; ``collapse_jod`` applies it to a chain's saved frames in a run directory
(the frames the collapse video is made of), from the run directory alone.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError

DISPLAY = "standard_4k"  # the package's default: 30" 4K, 200 cd/m^2, office lighting
MIN_SIZE = 32


@cache
def require() -> Any:
    """The pycvvdp module; ConfigError naming the extra if it is not installed."""
    try:
        import pycvvdp
    except ImportError as e:
        raise ConfigError("metric cvvdp", "cvvdp is not installed",
                          "pip install 'roundtrip-ml[perceptual]'") from e
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
    jod, _ = _metric(frames.device).predict(test, reference, dim_order="BCFHW",
                                            frames_per_second=fps)
    return float(jod)


def collapse_jod(run: str | Path, chain_id: str, fps: float = 10.0,
                 device: torch.device | None = None) -> float:
    """JOD of a chain's saved frames (generation 1 on, at the frame stride) as a video at
    ``fps`` against its generation-0 frame; RunStoreError if the chain has no frames."""
    from PIL import Image

    from ..errors import RunStoreError
    from ..store import RunStore

    frames = RunStore(run).list_frames(chain_id)
    if 0 not in frames or len(frames) < 2:
        raise RunStoreError(f"{run}/frames/{chain_id}", "needs generation 0 and later frames",
                            "run with frame_stride set so that frames are saved")

    def load(p: Path) -> Tensor:
        a = np.asarray(Image.open(p).convert("RGB"))
        return torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255

    dev = device or torch.device("cpu")
    later = torch.stack([load(p) for g, p in sorted(frames.items()) if g > 0]).to(dev)
    return cvvdp_video(later, load(frames[0]).to(dev), fps)


def describe(device: torch.device | None = None) -> dict[str, Any]:
    m = _metric(device or torch.device("cpu"))
    return {"implementation": "cvvdp", "version": m.version, "display": DISPLAY,
            "display_model": m.get_info_string().strip('"')}
