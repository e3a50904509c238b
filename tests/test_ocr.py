"""OCR legibility on the chart's text lines: exact at generation 0, worse after a roundtrip."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch

from roundtrip_ml.core.errors import ConfigError, ModelError
from roundtrip_ml.imaging.chart import make_chart
from roundtrip_ml.imaging.resample import resize
from roundtrip_ml.metrics.ocr import cer, ocr_metric, ocr_region, ocr_scores, word_accuracy

try:
    import pytesseract
except ImportError:  # the `ocr` extra is optional
    pytesseract = None
needs_pytesseract = pytest.mark.skipif(
    pytesseract is None, reason="needs the `ocr` extra (pytesseract)"
)
needs_tesseract = pytest.mark.skipif(
    pytesseract is None or shutil.which("tesseract") is None,
    reason="needs pytesseract and the tesseract binary (Debian package tesseract-ocr)",
)


@pytest.fixture(autouse=True)
def _one_tesseract_thread(monkeypatch):
    """tesseract's OpenMP threads only add start-up cost on tiny line images (~35% here)."""
    monkeypatch.setenv("OMP_THREAD_LIMIT", "1")


@pytest.fixture(scope="module")
def chart():
    return make_chart(1024)  # the 32 px line needs a chart of at least 912 px


def _roundtrip(x: torch.Tensor, factor: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    y = resize(resize(x, (h // factor, w // factor), "lanczos3"), (h, w), "lanczos3")
    return torch.round(y.clamp(0, 1) * 255) / 255


@needs_tesseract
def test_32px_line_reads_exactly_at_generation_0(chart):
    r = chart.region("text_32px")
    assert r.truth["text"] == "NO CASH LEFT ON PREMISES"
    (res,) = ocr_region(chart.image, r.box)
    assert res.text == r.truth["text"]
    assert cer(res.text, r.truth["text"]) == 0.0
    assert word_accuracy(res.text, r.truth["text"]) == 1.0
    assert res.confidence > 0.8
    # every line from 10 px up reads exactly too (small lines are upscaled for tesseract)
    for r in chart.regions:
        if r.kind == "text" and r.truth["size_px"] >= 10:
            assert ocr_scores(chart.image, r.truth["text"], r.box)[0]["cer"] == 0.0, r.name


@needs_tesseract
def test_a_4x_roundtrip_kills_small_text_but_not_large(chart):
    batch = torch.cat([chart.image, _roundtrip(chart.image, 4)])  # N x 3 x H x W in one call
    small = [chart.region(f"text_{s}px") for s in (8, 12, 16)]
    small_cer = [
        [cer(res.text, r.truth["text"]) for res in ocr_region(batch, r.box)] for r in small
    ]
    assert all(before <= 0.05 for before, _ in small_cer)
    assert sum(after for _, after in small_cer) / len(small) > 0.4
    big = chart.region("text_32px")
    before, after = ocr_scores(batch, big.truth["text"], big.box)
    assert before["cer"] == 0.0 and after["cer"] <= 0.05
    assert before["ocr_confidence"] > after["ocr_confidence"] - 0.05


@needs_tesseract
def test_ocr_metric_takes_its_truth_from_the_reference(chart):
    r = chart.region("text_12px")
    x = torch.cat([chart.image, _roundtrip(chart.image, 4)])
    ref = torch.cat([chart.image, chart.image])
    out = ocr_metric(r.box)(x, ref)
    assert set(out) == {"cer", "word_accuracy", "ocr_confidence"}
    assert out["cer"].shape == (2,) and out["cer"][0] == 0.0 and out["cer"][1] > 0.3
    given = ocr_metric(r.box, truth=r.truth["text"])(x, ref)
    assert torch.equal(given["cer"], out["cer"])


@needs_pytesseract
def test_missing_tesseract_names_the_debian_package(chart, monkeypatch, tmp_path):
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", str(tmp_path / "no-tesseract"))
    with pytest.raises(ModelError, match="tesseract-ocr"):
        ocr_region(chart.image, chart.region("text_12px").box)
    # and with the default command name but no tesseract on PATH
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "tesseract")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ModelError, match="apt-get install tesseract-ocr"):
        ocr_region(chart.image, chart.region("text_12px").box)


def test_cer_and_word_accuracy_by_hand():
    assert cer("kitten", "sitting") == pytest.approx(3 / 7)
    assert cer("NO  CASH\nLEFT", " NO CASH LEFT ") == 0.0  # whitespace is normalized
    assert cer("", "abc") == 1.0
    assert cer("no cash", "NO CASH") == pytest.approx(6 / 7)  # case counts
    assert cer("abcabcabc", "abc") == 2.0  # invented text can exceed 1
    assert word_accuracy("NO CASH LEFT", "NO CASH LEFT ON PREMISES") == pytest.approx(0.6)
    assert word_accuracy("PREMISES ON LEFT", "NO CASH LEFT ON PREMISES") == pytest.approx(0.2)
    assert word_accuracy("N0 CASH LEFT 0N PREMISES", "NO CASH LEFT ON PREMISES") == 0.6
    assert word_accuracy("", "NO CASH") == 0.0
    with pytest.raises(ConfigError, match="empty"):
        cer("x", "  ")


def test_bad_inputs_and_missing_extra_are_config_errors(chart, monkeypatch):
    with pytest.raises(ConfigError, match="outside"):
        ocr_region(chart.image, (1000, 1000, 100, 100))
    with pytest.raises(ConfigError, match="3 x H x W"):
        ocr_region(torch.zeros(2, 1, 8, 8))
    monkeypatch.setitem(sys.modules, "pytesseract", None)  # as if the `ocr` extra were absent
    with pytest.raises(ConfigError, match=r"roundtrip-ml\[ocr\]"):
        ocr_region(chart.image, chart.region("text_12px").box)
