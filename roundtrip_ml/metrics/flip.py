"""NVIDIA FLIP (Andersson et al. 2020), LDR: the mean of FLIP's per-pixel error map, 0 for
identical images, up to 1. Computed by ``flip-evaluator`` (NVIDIA's C++ code, BSD-3) on the
host, with its default viewing condition (67.02 pixels per degree: 0.7 m from a 0.7 m wide,
3840 px display), one image at a time: about 1 s per 512 px image on this 2-core CPU
(scripts/bench_nodownload.py).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from torch import Tensor

from ..errors import ConfigError
from .host import per_image


@cache
def require() -> Any:
    """The flip_evaluator module; ConfigError naming the extra if it is not installed."""
    try:
        import flip_evaluator
    except ImportError as e:
        raise ConfigError("metric flip", "flip-evaluator is not installed",
                          "pip install 'roundtrip-ml[perceptual]'") from e
    return flip_evaluator


def _mean_flip(test: np.ndarray, reference: np.ndarray) -> float:
    ref, tst = reference.astype(np.float32) / 255, test.astype(np.float32) / 255
    _, mean, _ = require().evaluate(ref, tst, "LDR", applyMagma=False)
    return float(mean)


def flip(x: Tensor, ref: Tensor) -> Tensor:
    """Mean LDR-FLIP error of each image in ``x`` against ``ref`` (8-bit sRGB): N values."""
    return per_image(_mean_flip, x, ref)


def describe() -> dict[str, Any]:
    from importlib.metadata import version

    return {"implementation": "flip-evaluator", "version": version("flip-evaluator"),
            "mode": "LDR", "pixels_per_degree": "default (67.02)"}
