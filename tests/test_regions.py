"""Per-region chart metrics: generation 0 is perfect, known blur and colour shifts show up
where they should (MTF50, CER on small text, spectral bands, CIEDE2000)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from roundtrip_ml.imaging.chart import write_chart
from roundtrip_ml.imaging.images import load_image
from roundtrip_ml.metrics.regions import RegionSet, load_region_set, ocr_available

SIZE = 768
needs_ocr = pytest.mark.skipif(ocr_available() is not None, reason=str(ocr_available()))


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor]:
    png, _ = write_chart(tmp_path_factory.mktemp("chart") / "chart.png", SIZE)
    return png, load_image(str(png))[0]


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return _quantize(torch.from_numpy(gaussian_filter(x.double().numpy(), (0, 0, sigma, sigma))))


def test_sidecar_is_found_only_beside_a_chart(chart, tmp_path: Path) -> None:
    png, _ = chart
    assert load_region_set("skimage:astronaut") is None
    (tmp_path / "photo.png").write_bytes(png.read_bytes())
    assert load_region_set(str(tmp_path / "photo.png")) is None  # no JSON beside it
    (tmp_path / "photo.json").write_text(json.dumps({"something": "else"}))
    assert load_region_set(str(tmp_path / "photo.png")) is None  # not a chart's metadata
    rs = load_region_set(str(png))
    assert isinstance(rs, RegionSet) and rs.size == (SIZE, SIZE)
    assert [r.truth["size_px"] for r in rs.text] == [16, 20, 24]  # the lines >= 16 px at 768
    few = load_region_set(str(png), min_text_px=10, max_text_lines=2)
    assert few is not None and [r.truth["size_px"] for r in few.text] == [10, 12]


@needs_ocr
def test_generation_zero_is_perfect(chart) -> None:
    png, x = chart
    rs = load_region_set(str(png))
    assert rs is not None
    m = rs.compute(x, x, ocr=True)
    assert all(v.shape == (1,) and v.dtype == torch.float32 for v in m.values())
    for r in rs.text:
        assert m[f"cer@{r.name}"].item() == 0.0, r.name
        assert m[f"word_accuracy@{r.name}"].item() == 1.0
        assert m[f"ocr_confidence@{r.name}"].item() > 0.8
    assert math.isnan(m["mtf50@edge_v"].item()) and math.isnan(m["mtf50@edge_h"].item())
    deltae = [v.item() for k, v in m.items() if k.startswith("deltae@")]
    assert len(deltae) == 24 and max(deltae) < 1e-3  # patches hold their exact 8-bit colours
    for name in ("star", "zone_plate"):
        assert m[f"spectral_high@{name}"].item() == 0.0
        assert m[f"spectral_mid@{name}"].item() == 0.0


@needs_ocr
def test_gaussian_blur_lowers_mtf50_and_breaks_small_text(chart) -> None:
    png, x = chart
    rs = load_region_set(str(png), min_text_px=10, max_text_lines=None)
    assert rs is not None
    sigma = 1.5
    m = rs.compute(_blur(x, sigma), x, ocr=True)
    expected = math.sqrt(math.log(2) / 2) / (math.pi * sigma)  # Gaussian MTF = 0.5
    for edge in ("edge_v", "edge_h"):
        assert m[f"mtf50@{edge}"].item() == pytest.approx(expected, rel=0.05)
    assert m["cer@text_10px"].item() > 0.3 and m["cer@text_12px"].item() > 0.2
    assert m["cer@text_24px"].item() == 0.0  # large text survives this blur
    assert m["spectral_high@star"].item() < -10 and m["spectral_high@zone_plate"].item() < -10
    assert m["spectral_high@star"].item() < m["spectral_mid@star"].item() < 0


def test_colour_shift_raises_deltae(chart) -> None:
    png, x = chart
    rs = load_region_set(str(png))
    assert rs is not None
    shift = torch.tensor([0.06, 0.0, -0.04]).view(1, 3, 1, 1)
    m = rs.compute(_quantize(x + shift), x, ocr=False)
    assert not any(k.startswith("cer@") for k in m)  # ocr=False reads no text
    deltae = {k.partition("@")[2]: v.item() for k, v in m.items() if k.startswith("deltae@")}
    assert deltae["patch_gray40"] > 3 and deltae["patch_sky"] > 3
    assert np.median(list(deltae.values())) > 2
    # saturated channels clip: pure red cannot get redder and barely moves
    assert deltae["patch_red"] < deltae["patch_gray40"]


def test_missing_tesseract_skips_text_with_one_warning(chart, monkeypatch, tmp_path) -> None:
    png, x = chart
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no tesseract binary
    rs = load_region_set(str(png))
    assert rs is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m1 = rs.compute(x, x, ocr=True)
        m2 = rs.compute(x, x, ocr=True)
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "tesseract-ocr" in msgs[0]
    assert m1.keys() == m2.keys() and "mtf50@edge_v" in m1
    assert not any(k.startswith(("cer@", "word_accuracy@")) for k in m1)


def test_resized_input_is_skipped_with_one_warning(chart) -> None:
    png, x = chart
    rs = load_region_set(str(png))
    assert rs is not None
    crop = x[..., :512, :512]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert rs.compute(crop, crop, ocr=False) == {}
        assert rs.compute(crop, crop, ocr=False) == {}
    assert len(caught) == 1 and "768x768" in str(caught[0].message)


def test_engine_records_region_metrics_for_a_chart_run(tmp_path: Path) -> None:
    """A run on the chart writes per-region rows with no setup: the 32 px line survives one
    Lanczos x4 roundtrip (CER 0), smaller lines break, flat patch interiors stay put."""
    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.experiment import run_experiment
    from roundtrip_ml.pipeline.store import RunStore

    if ocr_available() is not None:
        pytest.skip(f"OCR unavailable: {ocr_available()}")
    png, _ = write_chart(tmp_path / "chart.png", 960)
    res = run_experiment(
        make_config(
            {
                "images": [str(png)],
                "upscalers": ["lanczos3"],
                "generations": 1,
                "metrics": ["psnr"],
                "device": "cpu",
                "output": str(tmp_path / "run"),
            }
        )
    )
    m = RunStore(res.run_dir).read_metrics().set_index("metric")["value"]
    assert m["cer@text_32px"] == 0.0 and m["word_accuracy@text_32px"] == 1.0
    assert m["cer@text_16px"] > 0.2
    assert 0 <= m["deltae@patch_gray40"] < 1
    assert m["mtf50@edge_v"] < 0.3
