"""Helpers for metrics whose reference implementation runs on the host, one image at a time.

Such metrics (FLIP, VMAF) cost a device-to-host copy and a loop per image: the engine computes
them at the metric stride like any other, and `roundtrip metrics list` says where each runs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..images import to_uint8


def per_image(score: Callable[[np.ndarray, np.ndarray], float], x: Tensor, ref: Tensor) -> Tensor:
    """``score(test, reference)`` on each pair of H x W x 3 uint8 arrays; (N,) on x's device."""
    xs = to_uint8(x).permute(0, 2, 3, 1).cpu().numpy()
    rs = to_uint8(ref).permute(0, 2, 3, 1).cpu().numpy()
    pairs = zip(xs, rs, strict=True)
    values = [score(np.ascontiguousarray(a), np.ascontiguousarray(b)) for a, b in pairs]
    return torch.tensor(values, dtype=torch.float32, device=x.device)
