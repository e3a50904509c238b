"""MTF50 from the chart's slanted edges against the analytic MTF of a known Gaussian blur."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from roundtrip_ml.core.errors import ImageError
from roundtrip_ml.imaging.chart import EDGE_ANGLE_DEG, make_chart
from roundtrip_ml.imaging.resample import resize
from roundtrip_ml.metrics.mtf import edge_mtf, mtf50, mtf50_metric


@pytest.fixture(scope="module")
def chart():
    return make_chart(512)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable sampled Gaussian (radius 4 sigma, normalized), reflect padding."""
    r = math.ceil(4 * sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def analytic_mtf50(sigma: float) -> float:
    """exp(-2 pi^2 sigma^2 f^2) = 0.5  ->  f = sqrt(ln 2 / 2) / (pi sigma)."""
    return math.sqrt(math.log(2) / 2) / (math.pi * sigma)


def _edge_area(chart, name: str, margin: int = 12) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The drawn edge plus a margin (blurring the whole chart is wasted work), and the box in it."""
    r = chart.region(name)
    x0, y0 = r.box[0] - margin, r.box[1] - margin
    area = chart.image[..., y0 : y0 + r.box[3] + 2 * margin, x0 : x0 + r.box[2] + 2 * margin]
    return area, (margin, margin, r.box[2], r.box[3])


@pytest.mark.parametrize("name", ["edge_v", "edge_h"])
@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0])
def test_mtf50_matches_gaussian_blur(chart, name, sigma):
    area, box = _edge_area(chart, name)
    blurred = gaussian_blur(area, sigma)
    expected = analytic_mtf50(sigma)
    measured = mtf50(blurred, box)[0]
    assert measured == pytest.approx(expected, rel=0.05)
    # the same after 8-bit quantization, as every stored frame is
    quantized = mtf50(torch.round(blurred * 255) / 255, box)[0]
    assert quantized == pytest.approx(expected, rel=0.05)


def test_ideal_edge_is_sharper_than_measurable_and_angle_is_found(chart):
    for name, orientation in (("edge_v", "vertical"), ("edge_h", "horizontal")):
        res = edge_mtf(chart.image[0], chart.region(name).box)
        assert res.orientation == orientation
        assert res.angle_deg == pytest.approx(EDGE_ANGLE_DEG, abs=0.1)
        assert math.isnan(res.mtf50)
        assert res.mtf[res.freq <= 0.5].min() > 0.95  # a step: flat MTF up to Nyquist


def test_batched_call_matches_single_calls_and_orders_blur(chart):
    area, box = _edge_area(chart, "edge_v")
    batch = torch.cat([gaussian_blur(area, s) for s in (1.0, 1.5, 2.0)])
    values = mtf50(batch, box)
    assert values == [mtf50(b, box)[0] for b in batch]
    assert values[0] > values[1] > values[2]
    out = mtf50_metric(box)(batch, batch)
    assert out["mtf50"].shape == (3,) and out["mtf50"].dtype == torch.float32
    assert np.allclose(out["mtf50"].numpy(), values)


def test_lanczos_roundtrip_keeps_more_resolution_than_bilinear(chart):
    """A real 2x roundtrip on the chart: Lanczos-3 beats bilinear, both below Nyquist."""
    img = chart.image
    r = chart.region("edge_v")
    down = {k: resize(img, (256, 256), k) for k in ("lanczos3", "bilinear")}
    up = {k: resize(v, (512, 512), k).clamp(0, 1) for k, v in down.items()}
    lanczos, bilinear = (mtf50(up[k], r.box)[0] for k in ("lanczos3", "bilinear"))
    assert 0.1 < bilinear < lanczos < 0.5


def test_no_edge_is_an_error_alone_and_nan_in_a_batch(chart):
    flat = chart.region("patch_gray40").box
    with pytest.raises(ImageError, match="slanted edge"):
        edge_mtf(chart.image[0], flat)
    straight = torch.full((1, 3, 40, 40), 0.25)
    straight[..., 20:] = 0.75  # an edge exactly on the axis gives no sub-pixel phase
    with pytest.raises(ImageError, match="too close to the axis"):
        edge_mtf(straight[0])
    assert math.isnan(mtf50(straight)[0])
