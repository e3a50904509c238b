"""Full-reference metrics against the implementations researchers cite, on real photos."""

from __future__ import annotations

import io

import numpy as np
import piq
import pytest
import skimage.metrics as skm
import torch
import torch.nn.functional as F
from conftest import photo_u8, to_batch
from PIL import Image

from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.imaging.resample import resize
from roundtrip_ml.metrics import DEFAULT_METRICS, SPECS, psnr, resolve_metrics
from roundtrip_ml.metrics import full_reference as fr

CPU = torch.device("cpu")
# (photo, top, left): different content (face, texture, fur)
CROPS = [("astronaut", 40, 150), ("coffee", 100, 200), ("chelsea", 60, 100)]


def _blur(x: torch.Tensor) -> torch.Tensor:
    g = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    k = torch.outer(g, g).expand(3, 1, 5, 5)
    return F.conv2d(F.pad(x, (2,) * 4, mode="reflect"), k, groups=3)


def _jpeg(x: torch.Tensor, q: int = 30) -> torch.Tensor:
    a = (x[0].permute(1, 2, 0) * 255).round().byte().numpy()
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=q)
    return to_batch(np.array(Image.open(buf).convert("RGB")))


def _noise(x: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (x + 0.04 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def _generation(x: torch.Tensor) -> torch.Tensor:
    """One real roundtrip generation: Lanczos-3 x2 down and up, PNG (uint8) handoff."""
    h, w = x.shape[-2:]
    lo = resize(x, (h // 2, w // 2), "lanczos3").clamp(0, 1).mul(255).round().div(255)
    return resize(lo, (h, w), "lanczos3").clamp(0, 1).mul(255).round().div(255)


DISTORTIONS = {"blur": _blur, "jpeg": _jpeg, "noise": _noise, "generation": _generation}


def _pairs(size: int):
    for name, top, left in CROPS:
        a = photo_u8(name)[top : top + size, left : left + size]
        ref = to_batch(a)
        for dname, f in DISTORTIONS.items():
            yield f"{name}-{dname}", f(ref), ref


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).double().numpy()


def _basicsr_psnr_y(x: np.ndarray, ref: np.ndarray, border: int = 0) -> float:
    """Independent reference: BasicSR/MATLAB convention, BT.601 Y (16-235) on the [0, 255] scale."""

    def y(rgb255: np.ndarray) -> np.ndarray:  # BasicSR rgb2ycbcr(y_only) on [0, 1], then x255
        return (rgb255 / 255.0) @ np.array([65.481, 128.553, 24.966]) + 16.0

    a, b = y(x * 255.0), y(ref * 255.0)
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    mse = np.mean((a - b) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.mark.parametrize("size", [96])
def test_psnr_ssim_psnr_y_match_references(size: int) -> None:
    for case, x, ref in _pairs(size):
        got_psnr = float(fr.psnr(x, ref))
        want = skm.peak_signal_noise_ratio(_hwc(ref), _hwc(x), data_range=1.0)
        assert abs(got_psnr - want) < 1e-4, case
        got_ssim = float(fr.ssim(x, ref))
        want = skm.structural_similarity(
            _hwc(x),
            _hwc(ref),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=2,
            data_range=1.0,
        )
        assert abs(got_ssim - want) < 1e-3, case
        for border in (0, 4):
            got = float(fr.psnr_y(x, ref, border=border))
            assert abs(got - _basicsr_psnr_y(_hwc(x), _hwc(ref), border)) < 1e-3, (case, border)


def test_ms_ssim_haarpsi_gmsd_match_piq() -> None:
    for case, x, ref in _pairs(176):
        for ours, theirs in [
            (fr.ms_ssim, piq.multi_scale_ssim),
            (fr.haarpsi, piq.haarpsi),
            (fr.gmsd, piq.gmsd),
        ]:
            got = ours(x, ref)
            want = theirs(x, ref, data_range=1.0, reduction="none")
            assert got.shape == (1,)
            assert abs(float(got) - float(want)) < 1e-4, (case, ours.__name__)


def test_odd_sizes_and_batches_match_piq() -> None:
    """Odd sizes exercise the padding conventions; a batch gives per-image values."""
    xs, refs = [], []
    for _case, x, ref in _pairs(171):
        xs.append(x[..., :171, :167])
        refs.append(ref[..., :171, :167])
    x, ref = torch.cat(xs[:4]), torch.cat(refs[:4])
    torch.testing.assert_close(
        fr.ms_ssim(x, ref), piq.multi_scale_ssim(x, ref, reduction="none"), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        fr.haarpsi(x, ref), piq.haarpsi(x, ref, reduction="none"), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        fr.gmsd(x, ref), piq.gmsd(x, ref, reduction="none"), atol=1e-4, rtol=0
    )


def test_identical_images() -> None:
    ref = to_batch(photo_u8("coffee", 64, 64))
    assert psnr(ref, ref).item() == float("inf")
    assert fr.psnr_y(ref, ref).item() == float("inf")
    assert fr.ssim(ref, ref).item() == pytest.approx(1.0, abs=1e-6)
    assert fr.haarpsi(ref, ref).item() == pytest.approx(1.0, abs=1e-5)
    assert fr.gmsd(ref, ref).item() == pytest.approx(0.0, abs=1e-6)


def test_registry_defaults_and_errors() -> None:
    metrics = resolve_metrics(DEFAULT_METRICS, CPU)
    assert [m.name for m in metrics] == list(DEFAULT_METRICS)
    x = to_batch(photo_u8("astronaut", 176, 176))
    y = _noise(x)
    keys = {}
    for m in metrics:
        out = m(torch.cat([y, x]), torch.cat([x, x]))
        assert set(out) == set(m.keys)
        for k, v in out.items():
            assert v.shape == (2,) and v.device == x.device and v.dtype == torch.float32, k
        keys.update(out)
    assert keys["psnr"][1].item() == float("inf") and keys["psnr"][0].item() < 40
    assert keys["ms_ssim"][0] < keys["ms_ssim"][1]

    with pytest.raises(ConfigError, match="psnr, psnr_y"):
        resolve_metrics(["psnr", "nosuch"], CPU)
    with pytest.raises(ConfigError, match="border=N"):
        resolve_metrics(["psnr:crop=4"], CPU)
    (ms,) = resolve_metrics(["ms_ssim"], CPU)
    assert ms.min_size == 161
    with pytest.raises(ConfigError, match="at least 161 x 161 px, got 96 x 96"):
        ms(x[..., :96, :96], x[..., :96, :96])
    (pb,) = resolve_metrics(["psnr_y:border=4"], CPU)
    assert pb.keys == ("psnr_y:border=4",) and pb.min_size == 9
    assert float(pb(y, x)["psnr_y:border=4"]) == pytest.approx(float(fr.psnr_y(y, x, border=4)))
    assert set(SPECS) >= {"lpips", "lpips_vgg", "dists", "colour", "spectral"}
