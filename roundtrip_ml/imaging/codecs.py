"""Handoff codecs: what happens to an image between two programs.

Every codec clamps to [0, 1]. ``png`` quantizes to 8 bits exactly as a PNG stores them (lossless
otherwise), ``jpeg:Q``, ``webp:Q``, ``avif:Q`` and ``jxl:Q`` round-trip through the real encoder,
``float`` keeps the float values (an idealised pipeline with no file in between).

JPEG backends: torchvision's libjpeg on CPU (bit-identical to Pillow at 4:2:0, tested), nvJPEG in
batches on CUDA (stays on the device; not bit-identical to libjpeg, so the manifest records the
backend), Pillow for chroma subsampling other than 4:2:0, and imagecodecs' libjpeg-turbo (same
bytes as Pillow, and it reports the encoded size). torchvision 0.29 marks its JPEG functions
deprecated in favour of TorchCodec; they are wrapped here so the backend can change in one place.

WebP, AVIF and JPEG XL (lossy and lossless) go through one library, ``imagecodecs`` (libwebp,
libavif with libaom, libjxl), on the host, one image at a time with one encoder thread so that
the bytes are reproducible; ``describe()`` records the library versions for the manifest. The
imagecodecs wheel builds neither mozjpeg nor jpegli, so the JPEG encoder choice is libjpeg-turbo
(through torchvision, Pillow or imagecodecs) or nvJPEG.

A per-generation sequence of codecs (``jpeg:[90,85,95]``, ``jpeg:70-95``, ``jpeg:85>webp:80``,
``+shift``) is a schedule: see ``roundtrip_ml.imaging.schedule``.
"""

from __future__ import annotations

import io
import warnings
from abc import ABC, abstractmethod
from functools import cache
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..core.errors import ConfigError
from ..core.specs import CODEC_SYNTAX, JPEG_BACKENDS
from .images import quantize8, to_uint8

SUBSAMPLING = {"420": 2, "422": 1, "444": 0}  # Pillow's subsampling codes
LOSSLESS = "lossless"


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


class FileCodec(Codec):
    """A codec that writes real files on the host: encode one H x W x 3 uint8 image to bytes,
    decode them back. ``encode`` is public so that studies can match file sizes."""

    @abstractmethod
    def encode(self, a: np.ndarray) -> bytes: ...

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray: ...

    def roundtrip(self, a: np.ndarray) -> tuple[np.ndarray, int]:
        """(decoded image, encoded size in bytes) of one H x W x 3 uint8 image."""
        data = self.encode(np.ascontiguousarray(a))
        return self.decode(data)[..., :3], len(data)

    def __call__(self, x: Tensor) -> Tensor:
        arrays = to_uint8(x).permute(0, 2, 3, 1).cpu().numpy()
        out = np.stack([self.roundtrip(a)[0] for a in arrays])
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255


@cache
def _imagecodecs() -> Any:
    """imagecodecs, imported on first use (0.1 s: kept off the CLI's start-up path)."""
    import imagecodecs

    return imagecodecs


def _library(lib: str) -> dict[str, str]:
    ic = _imagecodecs()
    return {
        "library": "imagecodecs",
        "library_version": ic.__version__,
        "encoder": lib,
        "encoder_version": ic.version(dict).get(lib, "unknown"),
    }


class JpegCodec(FileCodec):
    def __init__(self, quality: int, subsampling: str = "420", backend: str = "auto") -> None:
        if not 1 <= quality <= 100:
            raise ConfigError(f"codec jpeg:{quality}", "quality out of range", "use 1..100")
        if subsampling not in SUBSAMPLING:
            raise ConfigError(
                f"codec jpeg:{quality}:{subsampling}",
                "unknown chroma subsampling",
                "use 420, 422 or 444",
            )
        if backend not in JPEG_BACKENDS:
            raise ConfigError(
                "jpeg_backend", f"unknown backend {backend!r}", f"use {', '.join(JPEG_BACKENDS)}"
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

    def encode(self, a: np.ndarray) -> bytes:
        """libjpeg-turbo through imagecodecs (the same bytes as Pillow's encoder, tested)."""
        ic = _imagecodecs()
        return bytes(ic.jpeg8_encode(a, level=self.quality, subsampling=self.subsampling))

    def decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().jpeg8_decode(data)

    def __call__(self, x: Tensor) -> Tensor:
        backend = self.resolve_backend(x.device)
        if backend == "imagecodecs":
            return super().__call__(x)
        u8 = to_uint8(x)
        if backend == "pillow":
            out = _pillow_roundtrip(
                u8, "JPEG", quality=self.quality, subsampling=SUBSAMPLING[self.subsampling]
            )
        else:
            out = _torchvision_jpeg(u8, self.quality, cuda=backend == "nvjpeg")
        return out.to(device=x.device, dtype=x.dtype) / 255.0

    def describe(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "quality": self.quality,
            "subsampling": self.subsampling,
            "backend": self.backend,
        }
        if self.backend == "imagecodecs":
            d.update(_library("libjpeg_turbo"))
        return d


class WebpCodec(FileCodec):
    """WebP through libwebp (imagecodecs), method 4: the same bytes as Pillow's ``quality=Q,
    method=4`` (tested). ``quality=None`` is lossless WebP."""

    def __init__(self, quality: int | None) -> None:
        if quality is not None and not 0 <= quality <= 100:
            raise ConfigError(f"codec webp:{quality}", "quality out of range", "use 0..100")
        self.quality = quality
        self.name = f"webp:{LOSSLESS if quality is None else quality}"

    def encode(self, a: np.ndarray) -> bytes:
        ic = _imagecodecs()
        if self.quality is None:
            return bytes(ic.webp_encode(a, lossless=True, method=4))
        return bytes(ic.webp_encode(a, level=self.quality, lossless=False, method=4))

    def decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().webp_decode(data)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quality": self.quality,
            "lossless": self.quality is None,
            "method": 4,
            **_library("libwebp"),
        }


class AvifCodec(FileCodec):
    """AVIF through libavif/libaom (imagecodecs), speed 6, one thread. Lossy AVIF defaults to
    4:2:0 as served on the web (``avif:Q:444`` keeps full chroma); ``avif:lossless`` is
    libavif's lossless mode (4:4:4, identity matrix)."""

    SPEED = 6

    def __init__(self, quality: int | None, subsampling: str = "420") -> None:
        if quality is not None and not 0 <= quality <= 99:  # libavif: 100 means lossless
            raise ConfigError(
                f"codec avif:{quality}", "quality out of range", "use 0..99 (or avif:lossless)"
            )
        if subsampling not in ("420", "444"):
            raise ConfigError(
                f"codec avif:{quality}:{subsampling}",
                "unknown chroma subsampling",
                "use 420 or 444",
            )
        self.quality = quality
        self.subsampling = subsampling
        q = LOSSLESS if quality is None else str(quality)
        self.name = f"avif:{q}" + ("" if subsampling == "420" or quality is None else ":444")

    def encode(self, a: np.ndarray) -> bytes:
        ic = _imagecodecs()
        if self.quality is None:
            return bytes(
                ic.avif_encode(a, level=ic.AVIF.QUALITY.LOSSLESS, speed=self.SPEED, numthreads=1)
            )
        fmt = ic.AVIF.PIXEL_FORMAT
        fmt = fmt.YUV420 if self.subsampling == "420" else fmt.YUV444
        return bytes(
            ic.avif_encode(a, level=self.quality, speed=self.SPEED, pixelformat=fmt, numthreads=1)
        )

    def decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().avif_decode(data, numthreads=1)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quality": self.quality,
            "lossless": self.quality is None,
            "subsampling": "444" if self.quality is None else self.subsampling,
            "speed": self.SPEED,
            **_library("libavif"),
        }


class JxlCodec(FileCodec):
    """JPEG XL through libjxl (imagecodecs), effort 7 (cjxl's default); quality Q maps to a
    Butteraugli distance as cjxl's ``-q`` does. ``jxl:lossless`` is modular lossless."""

    EFFORT = 7

    def __init__(self, quality: int | None) -> None:
        if quality is not None and not 0 <= quality <= 100:
            raise ConfigError(f"codec jxl:{quality}", "quality out of range", "use 0..100")
        self.quality = quality
        self.name = f"jxl:{LOSSLESS if quality is None else quality}"

    def encode(self, a: np.ndarray) -> bytes:
        ic = _imagecodecs()
        if self.quality is None:
            return bytes(ic.jpegxl_encode(a, lossless=True, effort=self.EFFORT, numthreads=1))
        return bytes(ic.jpegxl_encode(a, level=self.quality, effort=self.EFFORT, numthreads=1))

    def decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().jpegxl_decode(data, numthreads=1)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quality": self.quality,
            "lossless": self.quality is None,
            "effort": self.EFFORT,
            **_library("libjxl"),
        }


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


def _quality(text: str) -> int | None:
    return None if text == LOSSLESS else int(text)


def parse_codec(spec: str, jpeg_backend: str = "auto") -> Codec:
    """One fixed codec: ``float`` | ``png`` | ``jpeg:Q[:420|422|444[:BACKEND]]`` |
    ``webp:Q|lossless`` | ``avif:Q[:444]|lossless`` | ``jxl:Q|lossless``."""
    parts = spec.lower().split(":")
    kind, n = parts[0], len(parts)
    try:
        if kind in ("float", "none") and n == 1:
            return FloatCodec()
        if kind == "png" and n == 1:
            return PngCodec()
        if kind in ("jpeg", "jpg") and n in (2, 3, 4):
            sub = parts[2] if n >= 3 else "420"
            return JpegCodec(int(parts[1]), sub, parts[3] if n == 4 else jpeg_backend)
        if kind == "webp" and n == 2:
            return WebpCodec(_quality(parts[1]))
        if kind == "avif" and n in (2, 3) and not (n == 3 and parts[1] == LOSSLESS):
            return AvifCodec(_quality(parts[1]), parts[2] if n == 3 else "420")
        if kind in ("jxl", "jpegxl") and n == 2:
            return JxlCodec(_quality(parts[1]))
    except ValueError:
        pass
    raise ConfigError(f"codec {spec!r}", "not a known handoff codec", f"use one of: {CODEC_SYNTAX}")
