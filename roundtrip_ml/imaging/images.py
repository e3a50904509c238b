"""Reading and writing images at the file boundary.

Everything inside the engine is float32 1 x 3 x H x W in [0, 1]; this module is where files turn
into that and back. What was done to an input on the way in (gray expanded, alpha composited,
EXIF rotation applied, 16-bit precision kept, first frame of an animation taken) is recorded in
``ImageInfo`` for the manifest.

Every file is sized from its header before any decoder allocates (``_probe``), whichever decoder
then reads it, so a decompression bomb costs nothing. torch is imported only when pixels are
decoded: the config (which checks sample names) validates without it.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from ..core.errors import ImageError
from ..core.specs import AlphaPolicy

if TYPE_CHECKING:
    from torch import Tensor

DEFAULT_MAX_PIXELS = 20_000 * 20_000  # above this a file is treated as a decompression bomb
SAMPLE_PREFIX = "skimage:"


@dataclass
class ImageInfo:
    """What the loader saw and did; stored in the manifest per input."""

    source: str
    sha256: str
    width: int
    height: int
    mode: str
    bits: int
    gray: bool = False
    alpha: str | None = None  # None, or how alpha was handled
    exif_rotated: bool = False
    notes: list[str] = field(default_factory=list)

    def asdict(self) -> dict[str, Any]:
        return asdict(self)


def sample_names() -> list[str]:
    """Photos that ship inside scikit-image's wheel (no download needed)."""
    return ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina", "logo"]


def _read_bytes(source: str) -> tuple[bytes, str]:
    if source.startswith(SAMPLE_PREFIX):
        name = source[len(SAMPLE_PREFIX) :]
        import skimage.data

        if name not in sample_names():
            raise ImageError(
                source, "not a bundled sample photo", f"use one of: {', '.join(sample_names())}"
            )
        arr = getattr(skimage.data, name)()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        return buf.getvalue(), source
    path = Path(source)
    if not path.exists():
        raise ImageError(source, "file not found", "check the path or the glob in the config")
    if path.is_dir():
        raise ImageError(source, "is a directory", "give image files or a glob such as dir/*.png")
    data = path.read_bytes()
    if not data:
        raise ImageError(source, "file is empty (0 bytes)", "re-export or remove the file")
    return data, str(path)


def _png_bit_depth(data: bytes) -> int | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25:
        return data[24]
    return None


def load_image(
    source: str | Path,
    *,
    alpha: AlphaPolicy = "composite",
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[Tensor, ImageInfo]:
    """Read one image as float32 1 x 3 x H x W in [0, 1] plus what was done to it.

    Raises ImageError naming the file for missing, empty, corrupt, truncated, non-image and
    oversized (decompression bomb) inputs; the size is checked from the header, first.
    """
    source = str(source)
    data, name = _read_bytes(source)
    sha = hashlib.sha256(data).hexdigest()
    frames = _probe(data, name, max_pixels)
    if _png_bit_depth(data) == 16:
        arr, mode, bits = _decode_png16(data, name), "16-bit PNG", 16
        info = ImageInfo(name, sha, arr.shape[1], arr.shape[0], mode, bits)
    else:
        arr, info = _decode_pillow(data, name, sha, max_pixels)
    if frames > 1:
        note = f"first of {frames} frames used (animated or multi-page file)"
        info.notes.append(note)
        warnings.warn(f"{name}: {note}", stacklevel=2)
    x = to_rgb_tensor(arr, info, alpha, background)
    return x, info


def _probe(data: bytes, name: str, max_pixels: int) -> int:
    """Size and frame count from the header alone (Pillow's ``open`` decodes no pixels):
    refuse a decompression bomb before any decoder, Pillow's or torchvision's, allocates."""
    with _pillow(name, None), Image.open(io.BytesIO(data)) as im:  # we check below, by name
        w, h = im.size
        frames = int(getattr(im, "n_frames", 1) or 1)
    if w * h > max_pixels:
        raise ImageError(
            name,
            f"its header says {w}x{h} = {w * h} pixels, over the {max_pixels}-pixel limit "
            "(refused before decoding, as a possible decompression bomb)",
            "crop or shrink it first, or raise max_pixels in the config if you trust it",
        )
    return frames


@contextmanager
def _pillow(name: str, max_pixels: int | None) -> Iterator[None]:
    """Pillow with its pixel limit set for this read (None: off) and restored after; its
    errors become one ImageError naming the file (a safety limit is named as such)."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(
            name, f"refused as a decompression bomb ({e})", "raise max_pixels only if you trust it"
        ) from e
    except UnidentifiedImageError as e:
        raise ImageError(name, "not an image Pillow can identify", "check the file type") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise _decode_error(name, e) from e
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _decode_error(name: str, e: Exception) -> ImageError:
    """Say which safety limit a file hit, when it was one, rather than calling it corrupt."""
    msg = str(e)
    if "MAX_TEXT_CHUNK" in msg or "MAX_TEXT_MEMORY" in msg:
        which = "MAX_TEXT_CHUNK" if "CHUNK" in msg else "MAX_TEXT_MEMORY"
        limit = getattr(PngImagePlugin, which) >> 20
        return ImageError(
            name,
            f"its ICC profile or text metadata is larger than Pillow's limit for PNG metadata "
            f"({limit} MB, PngImagePlugin.{which})",
            "re-save it without the embedded profile/metadata",
        )
    return ImageError(name, f"corrupt or truncated image ({msg})", "re-export the file")


def _decode_png16(data: bytes, name: str) -> np.ndarray:
    """16-bit PNGs through torchvision, which keeps all 16 bits (Pillow drops RGB to 8).
    Only called after ``_probe`` has checked the size from the header."""
    import torch
    from torchvision.io import ImageReadMode, decode_png

    try:
        t = decode_png(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), ImageReadMode.UNCHANGED
        )
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ImageError(name, f"corrupt 16-bit PNG ({first})", "re-export the file") from e
    return t.permute(1, 2, 0).numpy().astype(np.float32) / 65535.0


def _decode_pillow(
    data: bytes, name: str, sha: str, max_pixels: int
) -> tuple[np.ndarray, ImageInfo]:
    with _pillow(name, max_pixels):
        im: Image.Image = Image.open(io.BytesIO(data))
        im.load()

    info = ImageInfo(name, sha, im.width, im.height, im.mode, 8)
    if _has_orientation(im):
        im = ImageOps.exif_transpose(im)
        info.exif_rotated = True
        info.notes.append("EXIF orientation applied")
        info.width, info.height = im.size
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        scale = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        info.bits = 16 if scale == 65535.0 else 8
        return arr / scale, info
    if mode == "F":
        return np.clip(np.asarray(im, dtype=np.float32), 0, 1), info
    if mode == "CMYK":
        info.notes.append("CMYK converted to RGB by Pillow (no ICC colour management)")
        im = im.convert("RGB")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
    elif mode in ("1", "L"):
        im = im.convert("L")
    elif mode == "LA":
        pass
    elif mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in mode else "RGB")
    return np.asarray(im, dtype=np.float32) / 255.0, info


def _has_orientation(im: Image.Image) -> bool:
    try:
        return im.getexif().get(0x0112, 1) not in (1, None)
    except Exception:  # malformed EXIF: treat as no orientation
        return False


def to_rgb_tensor(
    arr: np.ndarray, info: ImageInfo, alpha: AlphaPolicy, background: tuple[float, float, float]
) -> Tensor:
    """H x W (x C) float array in [0, 1] (gray, gray+alpha, RGB, RGBA) -> 1 x C x H x W with
    the alpha policy applied: one place for files and in-memory images alike."""
    if arr.ndim == 2:
        arr = arr[..., None]
    channels = arr.shape[2]
    color, a = (arr[..., :-1], arr[..., -1:]) if channels in (2, 4) else (arr, None)
    if color.shape[2] == 1:
        info.gray = True
        info.notes.append("grayscale expanded to 3 channels")
        color = np.repeat(color, 3, axis=2)
    if a is not None:
        if alpha == "composite":
            bg = np.asarray(background, dtype=np.float32)[None, None, :]
            color = color * a + bg * (1.0 - a)
            info.alpha = f"composited on background {tuple(background)}"
        elif alpha == "carry":  # a 4th channel, resampled with the colour by classical chains
            color = np.concatenate([color, a], axis=2)
            info.alpha = "carried as a 4th channel"
        else:
            info.alpha = "dropped"
    import torch

    x = torch.from_numpy(np.ascontiguousarray(color.transpose(2, 0, 1))).float()
    return x.clamp_(0.0, 1.0).unsqueeze(0)


def quantize8(x: Tensor) -> Tensor:
    """Round [0, 1] floats to the nearest 8-bit level, halves up as Pillow's resampler does."""
    return x.clamp(0.0, 1.0).mul_(255.0).add_(0.5).floor_()


def to_uint8(x: Tensor) -> Tensor:
    """Quantize [0, 1] floats to uint8 the way a PNG stores them."""
    import torch

    return quantize8(x).to(torch.uint8)


def save_png(x: Tensor, path: str | Path) -> None:
    """Write one 3 (RGB) or 4 (RGBA) x H x W image as an 8-bit PNG, deterministically."""
    import torch

    if x.ndim == 4:
        x = x[0]
    arr = (x if x.dtype == torch.uint8 else to_uint8(x)).permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA" if arr.shape[2] == 4 else "RGB").save(
        buf, format="PNG", compress_level=6
    )
    from ..core.files import atomic_write_bytes

    atomic_write_bytes(Path(path), buf.getvalue())


def memory_image(
    image: Image.Image | np.ndarray | Tensor,
    alpha: AlphaPolicy,
    background: tuple[float, float, float],
) -> tuple[Tensor, ImageInfo]:
    """A PIL image, an H x W x C array (uint8, uint16 or float in [0, 1]) or a C x H x W tensor
    in [0, 1] (C = 1 to 4) as 1 x C x H x W float32, through the same alpha policy and gray
    expansion as a file, so an RGBA image gives the same chain whichever way it is passed."""
    import torch

    if isinstance(image, Image.Image):
        keep = (
            "RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB"
        )
        image = np.asarray(image if image.mode == keep else image.convert(keep))
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        t = t[0] if t.ndim == 4 and t.shape[0] == 1 else t
        if t.ndim != 3 or t.shape[0] not in (1, 2, 3, 4):
            raise ImageError(
                "tensor",
                f"shape {tuple(image.shape)} is not C x H x W or 1 x C x H x W (C = 1 to 4)",
                "pass one image",
            )
        arr = t.permute(1, 2, 0).numpy()
    else:
        arr = np.asarray(image)
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
            raise ImageError(
                "array",
                f"shape {arr.shape} is not H x W x C (C = 1 to 4)",
                "pass gray, RGB or RGBA pixels",
            )
        scale = 255.0 if arr.dtype == np.uint8 else 65535.0 if arr.dtype == np.uint16 else 1.0
        arr = arr.astype(np.float32) / np.float32(scale)
    if arr.size == 0:
        raise ImageError(
            "tensor" if isinstance(image, torch.Tensor) else "array",
            f"shape {tuple(image.shape)} holds no pixels",
            "pass an image at least 1 px on each side",
        )
    if not bool(np.isfinite(arr).all()) or arr.min() < 0 or arr.max() > 1:
        raise ImageError(
            "tensor" if isinstance(image, torch.Tensor) else "array",
            "values outside [0, 1] or not finite",
            "scale it to [0, 1]",
        )
    sha = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
    info = ImageInfo("image", sha, int(arr.shape[1]), int(arr.shape[0]), "array", 32)
    return to_rgb_tensor(arr, info, alpha, background), info
