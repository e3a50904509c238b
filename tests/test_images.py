"""Image I/O: every format and oddity a researcher's folder holds, and clear errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo_u8
from PIL import Image

from roundtrip_ml.core.errors import ImageError
from roundtrip_ml.imaging.images import load_image, save_png


def _save(tmp: Path, name: str, im: Image.Image, **params) -> Path:
    p = tmp / name
    im.save(p, **params)
    return p


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("a.png", {}),
        ("a.jpg", {"quality": 95}),
        ("p.jpg", {"quality": 95, "progressive": True}),
        ("a.tif", {}),
        ("a.webp", {"lossless": True}),
        ("a.bmp", {}),
    ],
)
def test_formats_load_as_float_rgb(tmp_path: Path, name: str, params: dict) -> None:
    a = photo_u8("coffee", 60, 90)
    p = _save(tmp_path, name, Image.fromarray(a), **params)
    x, info = load_image(p)
    assert x.shape == (1, 3, 60, 90) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    err = np.abs(x[0].permute(1, 2, 0).numpy() * 255 - a).mean()
    assert err < (3.0 if name.endswith("jpg") else 1e-4)
    assert len(info.sha256) == 64


def _write_png16(path: Path, a16: np.ndarray) -> None:
    """A minimal 16-bit RGB PNG writer (Pillow cannot write one): IHDR, one IDAT, IEND."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    h, w, _ = a16.shape
    raw = b"".join(b"\x00" + a16[r].astype(">u2").tobytes() for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_16bit_png_keeps_its_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a16 = rng.integers(0, 65536, size=(20, 30, 3), dtype=np.uint16)
    p = tmp_path / "deep.png"
    _write_png16(p, a16)
    x, info = load_image(p)
    assert info.bits == 16
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), a16 / 65535.0, atol=1e-6)
    # values that differ by less than one 8-bit level survive (the point of 16-bit input)
    assert len(np.unique((x * 65535).round().numpy())) > 256


def test_16bit_gray_png(tmp_path: Path) -> None:
    a = (np.linspace(0, 65535, 40 * 50).reshape(40, 50)).astype(np.uint16)
    p = _save(tmp_path, "g16.png", Image.fromarray(a))
    x, info = load_image(p)
    assert info.gray and info.bits == 16 and x.shape == (1, 3, 40, 50)
    np.testing.assert_allclose(x[0, 1].numpy(), a / 65535.0, atol=1e-6)


def test_grayscale_is_expanded_and_recorded(tmp_path: Path) -> None:
    p = _save(tmp_path, "cam.png", Image.fromarray(photo_u8("camera")[:, :, 0]))
    x, info = load_image(p)
    assert info.gray and "grayscale" in " ".join(info.notes)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])


def test_rgba_composite_on_background_and_drop(tmp_path: Path) -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255  # red, half transparent on the left half
    rgba[:, :5, 3] = 0
    rgba[:, 5:, 3] = 255
    p = _save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA"))
    x, info = load_image(p, background=(0.0, 0.0, 1.0))
    assert "composited" in (info.alpha or "")
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([0.0, 0.0, 1.0]))  # transparent -> bg
    assert torch.allclose(x[0, :, 0, 9], torch.tensor([1.0, 0.0, 0.0]))
    x2, info2 = load_image(p, alpha="drop")
    assert info2.alpha == "dropped" and torch.allclose(x2[0, :, 0, 0], torch.tensor([1.0, 0, 0]))


def test_skimage_logo_rgba_sample() -> None:
    x, info = load_image("skimage:logo")
    assert x.shape[1] == 3 and info.alpha is not None


def test_cmyk_jpeg(tmp_path: Path) -> None:
    a = photo_u8("astronaut", 64, 64)
    p = _save(tmp_path, "cmyk.jpg", Image.fromarray(a).convert("CMYK"), quality=95)
    x, info = load_image(p)
    assert info.mode == "CMYK" and x.shape == (1, 3, 64, 64)
    assert np.abs(x[0].permute(1, 2, 0).numpy() * 255 - a).mean() < 12


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    a = photo_u8("coffee", 40, 100)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = _save(tmp_path, "rot.jpg", Image.fromarray(a), exif=exif, quality=95)
    x, info = load_image(p)
    assert info.exif_rotated and x.shape == (1, 3, 100, 40)


@pytest.mark.parametrize("kind", ["zero", "text", "truncated", "garbage_png"])
def test_bad_files_raise_image_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    p = tmp_path / f"bad_{kind}.png"
    if kind == "zero":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("this is not an image\n")
    elif kind == "truncated":
        buf = io.BytesIO()
        Image.fromarray(photo_u8("coffee", 100, 100)).save(buf, format="PNG")
        p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    else:
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ImageError) as e:
        load_image(p)
    assert p.name in str(e.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    p = _save(tmp_path, "big.png", Image.new("RGB", (400, 300)))
    with pytest.raises(ImageError, match=r"bomb|exceeds"):
        load_image(p, max_pixels=10_000)


def test_png_writer_roundtrip_is_exact(tmp_path: Path) -> None:
    a = photo_u8("chelsea", 33, 47)
    x = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    save_png(x, tmp_path / "f.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "f.png")), a)
