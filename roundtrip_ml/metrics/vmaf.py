"""VMAF (Netflix) on frame pairs, through the ffmpeg binary that ``imageio-ffmpeg`` ships
(built with libvmaf; Debian's ffmpeg is not). Model ``vmaf_v0.6.1``, built into libvmaf, so
nothing is downloaded. Each image is a one-frame video in 4:4:4: VMAF's motion feature is 0
for a single frame, so the score is its spatial part (VIF, ADM), 0..100, 100 at best.

One ffmpeg process per image on the host: 0.06-0.2 s per 512 px image here, depending on load
(scripts/bench_nodownload.py).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.errors import ConfigError
from ..imaging.images import to_uint8

MODEL = "vmaf_v0.6.1"
MIN_SIZE = 32  # libvmaf fails on 16 px tall frames here; 17..39 px all worked


@cache
def require() -> str:
    """The ffmpeg executable with libvmaf (imageio-ffmpeg's); ConfigError if there is none."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise ConfigError(
            "metric vmaf",
            "imageio-ffmpeg is not installed",
            "pip install 'roundtrip-ml[perceptual]'",
        ) from e
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    filters = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True)
    if "libvmaf" not in filters.stdout:
        raise ConfigError(
            "metric vmaf",
            f"{exe} is built without libvmaf",
            "install imageio-ffmpeg's own binary (pip install imageio-ffmpeg)",
        )
    return exe


def _vmaf(test: np.ndarray, reference: np.ndarray) -> float:
    h, w = test.shape[:2]
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}"]
    with tempfile.TemporaryDirectory() as d:
        ref_path, log = Path(d) / "ref.rgb", Path(d) / "vmaf.json"
        ref_path.write_bytes(reference.tobytes())
        graph = (
            f"[0:v]format=yuv444p[d];[1:v]format=yuv444p[r];[d][r]libvmaf="
            f"model=version={MODEL}:log_fmt=json:log_path={log}:n_threads=1"
        )
        cmd = [
            require(),
            "-hide_banner",
            "-loglevel",
            "error",
            *raw,
            "-i",
            "pipe:0",
            *raw,
            "-i",
            str(ref_path),
            "-lavfi",
            graph,
            "-f",
            "null",
            "-",
        ]
        run = subprocess.run(cmd, input=test.tobytes(), capture_output=True)
        if run.returncode != 0:
            raise RuntimeError(f"ffmpeg/libvmaf failed: {run.stderr.decode()[-300:]}")
        return float(json.loads(log.read_text())["frames"][0]["metrics"]["vmaf"])


def vmaf(x: Tensor, ref: Tensor) -> Tensor:
    """VMAF of each image in ``x`` against ``ref`` (8-bit sRGB, one frame each): N values,
    computed on the host and returned on x's device."""
    xs = to_uint8(x).permute(0, 2, 3, 1).cpu().numpy()
    rs = to_uint8(ref).permute(0, 2, 3, 1).cpu().numpy()
    values = [
        _vmaf(np.ascontiguousarray(a), np.ascontiguousarray(b)) for a, b in zip(xs, rs, strict=True)
    ]
    return torch.tensor(values, dtype=torch.float32, device=x.device)


def describe() -> dict[str, Any]:
    exe = require()
    first = subprocess.run([exe, "-version"], capture_output=True, text=True).stdout
    return {
        "implementation": "ffmpeg libvmaf (imageio-ffmpeg)",
        "ffmpeg": first.split("\n")[0],
        "model": MODEL,
        "frames": "one per image, yuv444p",
    }
