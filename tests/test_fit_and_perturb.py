"""fit_to's three paths (resize, centre crop, edge pad) and every perturbation kind, on a real
photo: each does what its name says, and the seeded ones are reproducible."""

from __future__ import annotations

import pytest
import torch
from conftest import photo_u8, to_batch

from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.imaging.perturb import parse_perturbation, replica_generator
from roundtrip_ml.imaging.resample import resize
from roundtrip_ml.upscalers import fit_to


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return to_batch(photo_u8("astronaut", 80, 88))


def test_fit_crop_takes_the_centre(photo: torch.Tensor) -> None:
    out = fit_to(photo, (61, 67), "crop", "lanczos3")
    top, left = (80 - 61) // 2, (88 - 67) // 2
    assert torch.equal(out, photo[..., top : top + 61, left : left + 67])


def test_fit_crop_pads_a_smaller_output_by_its_edges(photo: torch.Tensor) -> None:
    out = fit_to(photo, (85, 91), "crop", "lanczos3")
    assert out.shape[-2:] == (85, 91)
    top, left = (85 - 80) // 2, (91 - 88) // 2
    assert torch.equal(out[..., top : top + 80, left : left + 88], photo)  # centred, unchanged
    assert torch.equal(out[..., 0, left : left + 88], photo[..., 0, :])  # edge rows repeated
    assert torch.equal(out[..., -1, left : left + 88], photo[..., -1, :])


def test_fit_resize_is_the_chain_resampler(photo: torch.Tensor) -> None:
    out = fit_to(photo, (61, 67), "resize", "bicubic")
    assert torch.equal(out, resize(photo, (61, 67), "bicubic"))
    assert fit_to(photo, (80, 88), "crop", "bicubic") is photo  # right size: untouched


@pytest.mark.parametrize(
    ("spec", "max_levels"), [("lsb", 1), ("noise:2", 12), ("shift:0.5", 255), ("jpeg:90", 255)]
)
def test_every_perturbation_changes_the_image_a_little(
    photo: torch.Tensor, spec: str, max_levels: int
) -> None:
    p = parse_perturbation(spec)
    a = p.apply(photo, replica_generator(0, "chain", 1))
    b = p.apply(photo, replica_generator(0, "chain", 1))
    c = p.apply(photo, replica_generator(0, "chain", 2))
    diff = ((a - photo) * 255).round().abs()
    assert a.shape == photo.shape and torch.equal(a, b)  # seeded: the same replica twice
    assert 0 < diff.float().mean() < 4 and diff.max() <= max_levels  # small, but real
    assert torch.equal((a * 255).round() / 255, a)  # an 8-bit image, as a handoff stores it
    assert torch.equal(a, c) == p.deterministic  # only JPEG gives every replica the same image


@pytest.mark.parametrize("spec", ["lsb:1", "noise:0", "shift:-1", "jpeg:0", "blur:1", ""])
def test_bad_perturbations_are_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match="not a known perturbation"):
        parse_perturbation(spec)
