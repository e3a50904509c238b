"""Drift diagnostics on cases with a known answer, and CIEDE2000 against skimage."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.color as skc
import torch
import torch.nn.functional as F
from conftest import photo_u8, to_batch

from roundtrip_ml.metrics import diagnostics as diag
from roundtrip_ml.metrics import resolve_metrics


def _photos(size: int = 128) -> torch.Tensor:
    crops = [("astronaut", 40, 150), ("coffee", 100, 200), ("chelsea", 60, 100)]
    return torch.cat([to_batch(photo_u8(n)[t : t + size, c : c + size]) for n, t, c in crops])


def _gaussian_blur(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    r = 4
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-t * t / (2 * sigma * sigma))
    g = g / g.sum()
    k = torch.outer(g, g).expand(3, 1, 2 * r + 1, 2 * r + 1)
    return F.conv2d(F.pad(x, (r,) * 4, mode="reflect"), k, groups=3)


def test_blur_loses_and_noise_gains_high_band_power() -> None:
    ref = _photos()
    blurred = diag.spectral(_gaussian_blur(ref), ref)
    gen = torch.Generator().manual_seed(0)
    noisy = diag.spectral((ref + 0.05 * torch.randn(ref.shape, generator=gen)).clamp(0, 1), ref)
    same = diag.spectral(ref, ref)
    assert (blurred["spectral_high"] < -10).all()  # sigma 1.5 removes most power above 1/4 cyc/px
    assert (blurred["spectral_high"] < blurred["spectral_mid"]).all()
    assert (blurred["spectral_low"].abs() < 1.5).all()  # low band nearly untouched
    assert (noisy["spectral_high"] > 3).all()
    assert (noisy["spectral_high"] > noisy["spectral_mid"]).all()
    for v in same.values():
        assert torch.equal(v, torch.zeros(3))


def test_radial_spectrum_falls_with_frequency_and_blur() -> None:
    ref = _photos()
    f, p = diag.radial_power_spectrum(ref, bins=16)
    fb, pb = diag.radial_power_spectrum(_gaussian_blur(ref), bins=16)
    assert f.shape == (16,) and p.shape == (3, 16) and torch.equal(f, fb)
    assert (p[:, 0] > 10 * p[:, -1]).all()  # natural images: power falls with frequency
    assert (pb[:, -4:] < 0.1 * p[:, -4:]).all()


def test_lab_and_ciede2000_match_skimage() -> None:
    ref = _photos(96)
    gen = torch.Generator().manual_seed(2)
    x = (ref + 0.06 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    x[..., :8, :] = 0.5  # greys: zero chroma, the hue special case
    x[..., 8:12, :] = 0.0
    lab_ref, lab_x = diag.rgb_to_lab(ref), diag.rgb_to_lab(x)
    de = diag.ciede2000(lab_ref, lab_x)
    for i in range(3):
        a = ref[i].permute(1, 2, 0).double().numpy()
        b = x[i].permute(1, 2, 0).double().numpy()
        sk_a, sk_b = skc.rgb2lab(a), skc.rgb2lab(b)
        np.testing.assert_allclose(lab_ref[i].permute(1, 2, 0).numpy(), sk_a, atol=2e-4)
        want = skc.deltaE_ciede2000(sk_a, sk_b)
        assert np.abs(de[i].numpy() - want).max() < 1e-3
        out = diag.colour(x[i : i + 1], ref[i : i + 1])
        assert out["de2000_mean"].item() == pytest.approx(want.mean(), abs=1e-3)
        assert out["de2000_p95"].item() == pytest.approx(np.percentile(want, 95), abs=1e-3)
        shift = (skc.rgb2lab(b) - sk_a).mean(axis=(0, 1))
        got = [out[k].item() for k in ("lab_shift_L", "lab_shift_a", "lab_shift_b")]
        np.testing.assert_allclose(got, shift, atol=1e-3)


def test_colour_shift_has_the_right_sign() -> None:
    ref = _photos(64)
    warmer = ref.clone()
    warmer[:, 0] = (warmer[:, 0] + 0.05).clamp(0, 1)  # more red -> a* up
    warmer[:, 2] = (warmer[:, 2] - 0.05).clamp(0, 1)  # less blue -> b* up
    out = diag.colour(warmer, ref)
    assert (out["lab_shift_a"] > 1).all() and (out["lab_shift_b"] > 1).all()
    assert (out["de2000_p95"] >= out["de2000_mean"]).all()
    same = diag.colour(ref, ref)
    assert torch.equal(same["de2000_p95"], torch.zeros(3))


def test_registry_runs_diagnostics_batched() -> None:
    spectral, colour = resolve_metrics(["spectral", "colour"], torch.device("cpu"))
    ref = _photos(64)
    out = spectral(_gaussian_blur(ref), ref) | colour(_gaussian_blur(ref), ref)
    assert set(out) == set(diag.SPECTRAL_KEYS) | set(diag.COLOUR_KEYS)
    assert all(v.shape == (3,) for v in out.values())
    assert not spectral.higher_is_better
