"""Resampler parity with Pillow on real photos, for every kernel Pillow shares with us."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import photo_u8, to_batch
from PIL import Image

from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.imaging.images import to_uint8
from roundtrip_ml.imaging.kernels import KERNELS, PILLOW_FILTERS, get_kernel
from roundtrip_ml.imaging.resample import lowres_size, resize, weight_matrix_cpu

# odd sizes, non-integer factors, pure down, pure up, one axis only
SIZES = [(45, 38), (60, 50), (301, 257), (179, 600), (17, 151), (716, 604)]


@pytest.mark.parametrize("kernel", list(PILLOW_FILTERS))
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_matches_pillow_within_one_level(kernel: str, name: str) -> None:
    a = photo_u8(name, 179, 151)
    x = to_batch(a)
    for h, w in SIZES:
        ref = np.asarray(Image.fromarray(a).resize((w, h), PILLOW_FILTERS[kernel])).astype(int)
        for eight_bit in (False, True):
            ours = to_uint8(resize(x, (h, w), kernel, eight_bit))[0].permute(1, 2, 0)
            d = np.abs(ours.numpy().astype(int) - ref)
            assert d.shape == ref.shape
            assert d.max() <= 1, (kernel, name, (h, w), eight_bit)
            if eight_bit:  # 8-bit intermediate like Pillow's: most pixels are exact (box
                # averages that land on k + 0.5 may round either way in float32)
                assert (d > 0).mean() < 0.1, (kernel, name, (h, w))


def test_rows_sum_to_one_and_lanczos2_is_narrower() -> None:
    for k in KERNELS.values():
        w = weight_matrix_cpu(37, 9, k)
        assert torch.allclose(w.sum(1), torch.ones(9, dtype=torch.float64))
    # downscale by ~4: Lanczos-3's support is 3*4 taps per side, Lanczos-2's 2*4
    l2 = (weight_matrix_cpu(400, 100, KERNELS["lanczos2"]) != 0).sum(1).max()
    l3 = (weight_matrix_cpu(400, 100, KERNELS["lanczos3"]) != 0).sum(1).max()
    assert l2 < l3


def test_lanczos2_between_bilinear_and_lanczos3_on_a_photo() -> None:
    """Lanczos-2 has no Pillow twin: check it is a sensible kernel on a real photo roundtrip."""
    x = to_batch(photo_u8("astronaut", 256, 256))
    errs = {}
    for k in ("bilinear", "lanczos2", "lanczos3"):
        y = resize(resize(x, (64, 64), k), (256, 256), k).clamp(0, 1)
        errs[k] = ((y - x) ** 2).mean().item()
    assert errs["lanczos3"] < errs["lanczos2"] < errs["bilinear"]


def test_batch_and_dtype_are_kept() -> None:
    x = to_batch(photo_u8("coffee", 64, 80)).repeat(3, 1, 1, 1)
    y = resize(x, (16, 20), "bicubic")
    assert y.shape == (3, 3, 16, 20) and y.dtype == torch.float32
    assert torch.equal(y[0], y[2])


def test_unknown_kernel_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="lanczos3"):
        get_kernel("lanczos9")


def test_size_rule() -> None:
    assert lowres_size((179, 179), 4) == (45, 45)
    assert lowres_size((2000, 1333), 4) == (500, 333)
    assert lowres_size((3, 3), 4) == (1, 1)
