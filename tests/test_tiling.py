"""Tiling: coverage, seamless blending on real photos and real weights, size rules, OOM back-off."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import photo_u8, to_batch
from spandrel import SizeRequirements

from roundtrip_ml.core.errors import ModelError
from roundtrip_ml.core.specs import InferenceOptions
from roundtrip_ml.upscalers.loading import load_upscaler
from roundtrip_ml.upscalers.tiling import (
    forward_with_backoff,
    padded_forward,
    tile_starts,
    tiled_forward,
)

CPU = torch.device("cpu")


def _crop(name: str, y: int, x: int, h: int, w: int) -> torch.Tensor:
    return to_batch(photo_u8(name)[y : y + h, x : x + w].copy())


@pytest.fixture(scope="module")
def anime():
    return load_upscaler("realesr-animevideov3", device=CPU)


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [(96, 48, 32), (100, 32, 8), (33, 32, 16), (20, 32, 8), (257, 64, 16)],
)
def test_tiles_cover_with_at_least_the_overlap(length, tile, overlap):
    s = tile_starts(length, tile, overlap)
    assert s[0] == 0 and min(length, s[-1] + tile) == length
    assert all(b > a and a + tile - b >= overlap for a, b in itertools.pairwise(s))
    assert all(0 <= v <= max(0, length - tile) for v in s)


def test_tiled_equals_untiled_on_a_real_photo(anime):
    """SRVGGNetCompact (animevideov3, real weights): within 1/255 with 32 px of overlap."""
    x = torch.cat([_crop("coffee", 100, 150, 96, 96), _crop("chelsea", 40, 120, 96, 96)])
    net = anime.descriptor.model
    with torch.inference_mode():
        ref = net(x).clamp(0, 1)
        tiled = tiled_forward(net, x, scale=4, tile=48, overlap=32).clamp(0, 1)
        naive = tiled_forward(net, x, scale=4, tile=48, overlap=0).clamp(0, 1)
    assert tiled.shape == ref.shape == (2, 3, 384, 384)
    assert float((tiled - ref).abs().max()) <= 1 / 255
    assert float((naive - ref).abs().max()) > 4 / 255  # without overlap the seams show


def test_upscaler_tile_option_is_used_and_reported(anime):
    x = _crop("astronaut", 150, 150, 64, 80)
    tiled = load_upscaler(
        "realesr-animevideov3", device=CPU, options=InferenceOptions(tile=48, tile_overlap=32)
    )
    y = tiled.forward(x)
    assert float((y - anime.forward(x)).abs().max()) <= 1 / 255
    d = tiled.describe()
    assert (d["tile"], d["tile_overlap"]) == (48, 32)


def test_size_requirements_are_met_by_padding_and_cropping():
    """Real-ESRGAN's x2 layout (pixel-unshuffle) needs multiples of 4: odd sizes still work."""
    from spandrel import ModelLoader
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    sd = ESRGAN(
        in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2
    ).state_dict()
    d = ModelLoader().load_from_state_dict(sd)
    assert d.scale == 2 and d.size_requirements.multiple_of == 4
    seen: list[tuple[int, int]] = []

    def net(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape[-2:]))
        return d.model(t)

    x = _crop("coffee", 10, 10, 21, 30)
    with torch.inference_mode():
        y = padded_forward(net, x, 2, d.size_requirements)
        yt = tiled_forward(net, x, scale=2, tile=15, overlap=6, req=d.size_requirements)
    assert y.shape == yt.shape == (1, 3, 42, 60)
    assert len(seen) > 1 and all(h % 4 == 0 and w % 4 == 0 for h, w in seen)
    assert torch.allclose(y.clamp(0, 1), d(x), atol=1e-6)  # same padding rule as spandrel's


def test_out_of_memory_halves_the_tile_and_goes_on(anime):
    net = anime.descriptor.model
    calls: list[int] = []

    def small_memory(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape[-1])
        if t.shape[-1] * t.shape[-2] > 48 * 48:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return net(t)

    x = _crop("chelsea", 60, 100, 64, 64)
    with torch.inference_mode(), pytest.warns(RuntimeWarning, match="continuing with 32 px"):
        y, tile = forward_with_backoff(small_memory, x, scale=4, tile=0, overlap=16)
        ref = net(x)
    assert tile == 32 and calls[0] == 64 and y.shape == ref.shape
    assert float((y.clamp(0, 1) - ref.clamp(0, 1)).abs().max()) < 8 / 255

    def no_memory(t: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(ModelError, match="out of memory"), pytest.warns(RuntimeWarning):
        forward_with_backoff(
            no_memory, x, scale=4, tile=64, overlap=16, req=SizeRequirements(minimum=16)
        )


def test_other_runtime_errors_are_not_swallowed():
    def broken(t: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        forward_with_backoff(broken, torch.zeros(1, 3, 8, 8), scale=2, tile=0, overlap=4)
