"""Handoff codecs: exact PNG quantization, JPEG identical to Pillow, WebP/AVIF/JPEG XL through
imagecodecs (shape, range, determinism, quality ordering, lossless modes), errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import photo_u8, to_batch
from PIL import Image

from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.imaging.codecs import FileCodec, JpegCodec, parse_codec


def _pillow(a: np.ndarray, fmt: str, **params) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt, **params)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_png_is_exact_uint8_quantization() -> None:
    x = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1
    y = parse_codec("png")(x)
    assert torch.equal(y, torch.floor(x.clamp(0, 1) * 255 + 0.5) / 255)
    assert torch.equal(parse_codec("png")(y), y)  # idempotent: the state is exact


def test_float_only_clamps() -> None:
    x = torch.tensor([[[[-0.5, 0.25, 1.5]]]]).expand(1, 3, 1, 3)
    assert torch.equal(parse_codec("float")(x), x.clamp(0, 1))


@pytest.mark.parametrize("q", [50, 90, 95])
@pytest.mark.parametrize("sub", ["420", "444"])
def test_jpeg_equals_pillow(q: int, sub: str) -> None:
    a = np.stack([photo_u8("astronaut", 203, 151), photo_u8("coffee", 203, 151)])
    x = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255
    codec = parse_codec(f"jpeg:{q}:{sub}")
    y = (codec(x) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i in range(2):
        ref = _pillow(a[i], "JPEG", quality=q, subsampling={"420": 2, "444": 0}[sub])
        assert np.array_equal(y[i], ref)


def test_jpeg_backends_agree_on_cpu() -> None:
    x = to_batch(photo_u8("chelsea", 96, 128))
    tv = JpegCodec(90, backend="torchvision")(x)
    pil = JpegCodec(90, backend="pillow")(x)
    assert torch.equal(tv, pil)
    assert JpegCodec(90).resolve_backend(torch.device("cpu")) == "torchvision"
    assert JpegCodec(90).resolve_backend(torch.device("cuda")) == "nvjpeg"
    assert JpegCodec(90, "444").resolve_backend(torch.device("cuda")) == "pillow"


def test_webp_equals_pillow() -> None:
    a = photo_u8("coffee", 64, 96)
    y = parse_codec("webp:80")(torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255)
    ref = _pillow(a, "WEBP", quality=80, method=4)
    assert np.array_equal((y[0] * 255).round().byte().permute(1, 2, 0).numpy(), ref)


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        (s, s)
        for s in [
            "jpeg",
            "jpeg:0",
            "jpeg:101",
            "jpeg:90:411",
            "gif",
            "png:3",
            "avif:100",
            "avif:lossless:444",
            "jxl:101",
            "webp:x",
        ]
    ]
    + [("jpeg:90:444:mozjpeg", "unknown backend 'mozjpeg'")],
)
def test_bad_codec_specs(spec: str, named: str) -> None:
    """Each refusal names what was wrong: the spec itself, or the part of it that is."""
    with pytest.raises(ConfigError) as e:
        parse_codec(spec)
    assert named in str(e.value)


SUB = {"420": 2, "444": 0}


def test_jpeg_imagecodecs_backend_equals_pillow() -> None:
    """libjpeg-turbo through imagecodecs writes Pillow's bytes, so it can stand in for it when a
    study needs the file size."""
    a = photo_u8("rocket", 64, 96)
    for sub in ("420", "444"):
        codec = parse_codec(f"jpeg:75:{sub}:imagecodecs")
        assert isinstance(codec, FileCodec)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=75, subsampling=SUB[sub])
        assert codec.encode(a) == buf.getvalue()
        assert torch.equal(codec(to_batch(a)), parse_codec(f"jpeg:75:{sub}:pillow")(to_batch(a)))
    assert codec.describe()["encoder"] == "libjpeg_turbo"


MODERN = [
    "webp:30",
    "webp:90",
    "avif:30",
    "avif:80",
    "avif:60:444",
    "jxl:30",
    "jxl:90",
    "jpeg:60:420:imagecodecs",
]


@pytest.mark.parametrize("spec", MODERN)
def test_modern_codec_roundtrip(spec: str) -> None:
    """Shape, 8-bit values in [0, 1], the same bytes twice, a real loss, versions recorded."""
    a = np.stack([photo_u8("astronaut", 48, 72), photo_u8("coffee", 48, 72)])
    x = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255
    codec = parse_codec(spec)
    assert isinstance(codec, FileCodec) and codec.lossless_state
    y = codec(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1
    assert torch.equal(y * 255, (y * 255).round())
    assert codec.encode(a[0]) == codec.encode(a[0])  # deterministic bytes
    assert torch.equal(codec(x), y)
    assert 0 < (y - x).abs().mean() < 0.1
    d = codec.describe()
    assert d["library"] == "imagecodecs" and d["encoder_version"] not in ("", "unknown")


@pytest.mark.parametrize("kind", ["webp", "avif", "jxl"])
def test_quality_orders_error_and_size(kind: str) -> None:
    a = photo_u8("chelsea", 64, 96)
    errors, sizes = [], []
    for q in (20, 50, 90):
        out, n = parse_codec(f"{kind}:{q}").roundtrip(a)  # type: ignore[attr-defined]
        errors.append(np.abs(out.astype(int) - a).mean())
        sizes.append(n)
    assert errors[0] > errors[1] > errors[2] and sizes[0] < sizes[1] < sizes[2]


@pytest.mark.parametrize("kind", ["webp", "avif", "jxl"])
def test_lossless_modes_are_exact(kind: str) -> None:
    x = to_batch(photo_u8("astronaut", 40, 56))
    codec = parse_codec(f"{kind}:lossless")
    assert torch.equal(codec(x), x)
    assert codec.describe()["lossless"] is True


def test_the_torch_free_codec_names_are_the_parser_s() -> None:
    """Config checks codec names before torch loads (specs.CODEC_KINDS); each name must be one
    the real parser accepts, and a name outside the set must be one it refuses."""
    from roundtrip_ml.core.specs import CODEC_ALIASES, CODEC_KINDS

    example = {
        "float": "float",
        "none": "none",
        "png": "png",
        "jpeg": "jpeg:90",
        "jpg": "jpg:90",
        "webp": "webp:80",
        "avif": "avif:60",
        "jxl": "jxl:80",
        "jpegxl": "jpegxl:80",
    }
    assert set(example) == set(CODEC_KINDS) | set(CODEC_ALIASES)
    for spec in example.values():
        parse_codec(spec)
    for alias, kind in CODEC_ALIASES.items():  # an alias names the same codec
        assert type(parse_codec(example[alias])) is type(parse_codec(example[kind]))
    with pytest.raises(ConfigError):
        parse_codec("heic:80")
