"""Handoff codecs: what happens to an image between two programs.

Every codec clamps to [0, 1]. ``png`` quantizes to 8 bits exactly as a PNG stores them (lossless
otherwise), ``jpeg:Q`` and ``webp:Q`` round-trip through the real encoder, ``float`` keeps the
float values (an idealised pipeline with no file in between).

JPEG backends: torchvision's libjpeg on CPU (bit-identical to Pillow at 4:2:0, tested), nvJPEG in
batches on CUDA (stays on the device; not bit-identical to libjpeg, so the manifest records the
backend), Pillow for chroma subsampling other than 4:2:0. torchvision 0.29 marks its JPEG
functions deprecated in favour of TorchCodec; they are wrapped here so the backend can change in
one place.
"""

from __future__ import annotations

import io
import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .errors import ConfigError
from .images import quantize8, to_uint8

SUBSAMPLING = {"420": 2, "422": 1, "444": 0}  # Pillow's subsampling codes


class Codec(ABC):
    """A handoff: float batch in [0, 1] in, the batch as the next program would read it out."""

    name: str
    lossless_state: bool = True  # the output is exactly representable in uint8

    @abstractmethod
    def __call__(self, x: Tensor) -> Tensor: ...

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class FloatCodec(Codec):
    name = "float"
    lossless_state = False

    def __call__(self, x: Tensor) -> Tensor:
        return x.clamp(0.0, 1.0)


class PngCodec(Codec):
    """Exact uint8 round trip: what a PNG stores, without the cost of zlib."""

    name = "png"

    def __call__(self, x: Tensor) -> Tensor:
        return quantize8(x) / 255.0


class JpegCodec(Codec):
    def __init__(self, quality: int, subsampling: str = "420", backend: str = "auto") -> None:
        if not 1 <= quality <= 100:
            raise ConfigError(f"codec jpeg:{quality}", "quality out of range", "use 1..100")
        if subsampling not in SUBSAMPLING:
            raise ConfigError(
                f"codec jpeg:{quality}:{subsampling}",
                "unknown chroma subsampling",
                "use 420, 422 or 444",
            )
        if backend not in ("auto", "torchvision", "nvjpeg", "pillow"):
            raise ConfigError(
                "jpeg_backend",
                f"unknown backend {backend!r}",
                "use auto, torchvision, nvjpeg or pillow",
            )
        self.quality = quality
        self.subsampling = subsampling
        self.backend = backend
        self.name = f"jpeg:{quality}" + ("" if subsampling == "420" else f":{subsampling}")

    def resolve_backend(self, device: torch.device) -> str:
        """Which encoder runs for a batch on ``device`` (recorded in the manifest)."""
        if self.backend != "auto":
            return self.backend
        if self.subsampling != "420":
            return "pillow"
        return "nvjpeg" if device.type == "cuda" else "torchvision"

    def __call__(self, x: Tensor) -> Tensor:
        backend = self.resolve_backend(x.device)
        u8 = to_uint8(x)
        if backend == "pillow":
            out = _pillow_roundtrip(
                u8, "JPEG", quality=self.quality, subsampling=SUBSAMPLING[self.subsampling]
            )
        else:
            out = _torchvision_jpeg(u8, self.quality, cuda=backend == "nvjpeg")
        return out.to(device=x.device, dtype=x.dtype) / 255.0

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quality": self.quality,
            "subsampling": self.subsampling,
            "backend": self.backend,
        }


class WebpCodec(Codec):
    """WebP through Pillow/libwebp (CPU only: a host round trip per generation)."""

    def __init__(self, quality: int) -> None:
        if not 0 <= quality <= 100:
            raise ConfigError(f"codec webp:{quality}", "quality out of range", "use 0..100")
        self.quality = quality
        self.name = f"webp:{quality}"

    def __call__(self, x: Tensor) -> Tensor:
        out = _pillow_roundtrip(to_uint8(x), "WEBP", quality=self.quality, method=4)
        return out.to(device=x.device, dtype=x.dtype) / 255.0


def _torchvision_jpeg(u8: Tensor, quality: int, cuda: bool) -> Tensor:
    from torchvision.io import decode_jpeg, encode_jpeg

    images = list(u8 if cuda else u8.cpu())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision 0.29's TorchCodec notice
        warnings.simplefilter("ignore", DeprecationWarning)
        encoded = encode_jpeg(images, quality=quality)
        # nvJPEG's decoder takes the (small) encoded bytes from host memory
        decoded = decode_jpeg([e.cpu() for e in encoded], device=u8.device if cuda else "cpu")
    return torch.stack(decoded)


def _pillow_roundtrip(u8: Tensor, fmt: str, **params: Any) -> Tensor:
    arrays = u8.permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for arr in arrays:
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB").save(buf, format=fmt, **params)
        buf.seek(0)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def parse_codec(spec: str, jpeg_backend: str = "auto") -> Codec:
    """``float`` | ``png`` | ``jpeg:Q[:420|422|444]`` | ``webp:Q``."""
    parts = spec.lower().split(":")
    kind = parts[0]
    allowed = "float, png, jpeg:Q[:420|422|444] (Q in 1..100), webp:Q"
    try:
        if kind in ("float", "none") and len(parts) == 1:
            return FloatCodec()
        if kind == "png" and len(parts) == 1:
            return PngCodec()
        if kind in ("jpeg", "jpg") and len(parts) in (2, 3):
            return JpegCodec(int(parts[1]), parts[2] if len(parts) == 3 else "420", jpeg_backend)
        if kind == "webp" and len(parts) == 2:
            return WebpCodec(int(parts[1]))
    except ValueError:
        pass
    raise ConfigError(f"codec {spec!r}", "not a known handoff codec", f"use one of: {allowed}")
