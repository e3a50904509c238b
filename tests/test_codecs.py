"""Handoff codecs: exact PNG quantization, JPEG identical to Pillow, WebP, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import photo_u8, to_batch
from PIL import Image

from roundtrip_ml.codecs import JpegCodec, parse_codec
from roundtrip_ml.errors import ConfigError


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


@pytest.mark.parametrize("spec", ["jpeg", "jpeg:0", "jpeg:101", "jpeg:90:411", "gif", "png:3"])
def test_bad_codec_specs(spec: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_codec(spec)
    assert spec in str(e.value) or "jpeg" in str(e.value)
