"""Whole-chain measures read from a run directory's saved frames (a chain seen as a video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..core.errors import RunStoreError
from ..metrics.cvvdp import cvvdp_video
from ..pipeline.store import RunStore


def collapse_jod(
    run: str | Path, chain_id: str, fps: float = 10.0, device: torch.device | None = None
) -> float:
    """JOD of a chain's saved frames (generation 1 on, at the frame stride) as a video at
    ``fps`` against its generation-0 frame; RunStoreError if the chain has no frames."""
    frames = RunStore(run).list_frames(chain_id)
    if 0 not in frames or len(frames) < 2:
        raise RunStoreError(
            f"{run}/frames/{chain_id}",
            "needs generation 0 and later frames",
            "run with frame_stride set so that frames are saved",
        )

    def load(p: Path) -> Tensor:
        a = np.asarray(Image.open(p).convert("RGB"))
        return torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255

    dev = device or torch.device("cpu")
    later = torch.stack([load(p) for g, p in sorted(frames.items()) if g > 0]).to(dev)
    return cvvdp_video(later, load(frames[0]).to(dev), fps)
