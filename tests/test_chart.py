"""The test chart: layout at any size, ground truth that matches the pixels, PNG + JSON on disk."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from roundtrip_ml.cli.app import app
from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.imaging.chart import (
    EDGE_ANGLE_DEG,
    STAR_CYCLES,
    TEXT_LINES,
    make_chart,
    read_regions,
    write_chart,
)


@pytest.fixture(scope="module")
def chart512():
    return make_chart(512)


def _overlap(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


@pytest.mark.parametrize("size", [256, 333, 512, 1000])
def test_layout_fits_and_regions_are_disjoint(size):
    chart = make_chart(size)
    assert chart.image.shape == (1, 3, size, size)
    boxes = [r.box for r in chart.regions]
    for r in chart.regions:
        x, y, w, h = r.box
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= size and y + h <= size, r
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not _overlap(a, b), (a, b)
    kinds = {r.kind for r in chart.regions}
    assert kinds == {"star", "zone_plate", "edge", "text", "patch", "gradient"}


def test_text_lines_recorded_are_drawn_and_skipped_ones_are_absent():
    small, large = make_chart(256), make_chart(1600)
    small_sizes = [r.truth["size_px"] for r in small.regions if r.kind == "text"]
    large_sizes = [r.truth["size_px"] for r in large.regions if r.kind == "text"]
    assert large_sizes == sorted(TEXT_LINES)  # 6 ... 48 px all fit at 1600
    assert small_sizes and small_sizes == sorted(TEXT_LINES)[: len(small_sizes)]
    assert max(small_sizes) < 48
    for chart in (small, large):
        img = chart.image[0].mean(0)
        text = [r for r in chart.regions if r.kind == "text"]
        mask = np.zeros(img.shape, bool)
        for r in text:
            x, y, w, h = r.box
            assert r.truth["text"] == TEXT_LINES[r.truth["size_px"]]
            assert img[y : y + h, x : x + w].min() < 0.2  # glyphs are there
            mask[y : y + h, x : x + w] = True
        # the text panel outside the recorded lines is blank: nothing drawn that isn't recorded
        ys = [r.box[1] for r in text]
        x0, y0 = text[0].box[0], min(ys)
        panel = img[y0:, x0 : chart.size - x0].numpy()
        assert (panel[~mask[y0:, x0 : chart.size - x0]] > 0.99).mean() > 0.99


def test_patches_hold_their_srgb_values(chart512):
    img = np.round(chart512.image[0].numpy() * 255).astype(int)
    patches = [r for r in chart512.regions if r.kind == "patch"]
    assert len(patches) == 24
    for r in patches:
        x, y, w, h = r.truth["drawn_box"]
        assert (img[:, y : y + h, x : x + w] == np.array(r.truth["srgb8"])[:, None, None]).all()


def test_gradient_is_a_monotone_ramp_from_black_to_white(chart512):
    r = chart512.region("gradient_gray")
    row = chart512.region("gradient_gray").crop(chart512.image)[0, 1, r.box[3] // 2].numpy()
    assert row[0] == 0.0 and row[-1] == 1.0
    assert (np.diff(row) >= 0).all()
    # 8-bit steps only: no gaps larger than the ramp's slope allows
    assert np.diff(row).max() <= math.ceil(255 / (len(row) - 1)) / 255 + 1e-6


def test_star_has_the_recorded_number_of_cycles(chart512):
    r = chart512.region("star")
    cx, cy = r.truth["center"]
    radius = 0.8 * r.truth["radius_px"]
    t = np.linspace(0, 2 * np.pi, 2048, endpoint=False)
    xs = np.floor(cx + radius * np.cos(t)).astype(int)
    ys = np.floor(cy + radius * np.sin(t)).astype(int)
    ring = chart512.image[0, 1].numpy()[ys, xs]
    spectrum = np.abs(np.fft.rfft(ring - ring.mean()))
    assert int(np.argmax(spectrum)) == STAR_CYCLES == r.truth["cycles"]


def test_zone_plate_local_frequency_matches_the_recorded_law(chart512):
    r = chart512.region("zone_plate")
    cx, cy = (int(v) for v in r.truth["center"])
    radius = r.truth["radius_px"]
    row = chart512.image[0, 1, cy].numpy()
    for frac in (0.3, 0.6):
        seg = row[cx + int(frac * radius) - 16 : cx + int(frac * radius) + 16]
        seg = (seg - seg.mean()) * np.hanning(seg.size)
        spec = np.abs(np.fft.rfft(seg, 1024))
        f = np.fft.rfftfreq(1024)[np.argmax(spec)]
        assert f == pytest.approx(r.truth["f_max_cycles_per_px"] * frac, abs=0.02)


def test_edges_are_slanted_steps_at_the_recorded_angle(chart512):
    for name, axis in (("edge_v", 1), ("edge_h", 0)):
        r = chart512.region(name)
        a = r.crop(chart512.image)[0, 0].numpy()
        levels = set(np.unique(np.round(a * 255)).astype(int))
        assert levels == {r.truth["low_srgb8"], r.truth["high_srgb8"]}
        a = a if axis == 1 else a.T
        first_high = (a > 0.5).argmax(axis=1)  # per row, the column where the step is
        slope = np.polyfit(np.arange(a.shape[0]), first_high, 1)[0]
        assert math.degrees(math.atan(slope)) == pytest.approx(EDGE_ANGLE_DEG, abs=0.3)


def test_write_chart_round_trips_png_and_metadata(tmp_path, chart512):
    png, meta = write_chart(tmp_path / "chart.png", 512)
    assert meta == tmp_path / "chart.json"
    arr = np.asarray(Image.open(png))
    assert arr.shape == (512, 512, 3) and arr.dtype == np.uint8
    assert np.array_equal(arr, (chart512.image[0].permute(1, 2, 0).numpy() * 255).round())
    doc = json.loads(meta.read_text())
    assert doc["size"] == [512, 512] and doc["font"]["name"] == "DejaVu Sans"
    assert read_regions(meta) == chart512.regions


def test_cli_chart_writes_files_and_rejects_bad_sizes(tmp_path):
    runner = CliRunner()
    out = tmp_path / "c.png"
    res = runner.invoke(app, ["chart", str(out), "--size", "300"])
    assert res.exit_code == 0, res.output
    assert out.exists() and out.with_suffix(".json").exists()
    assert Image.open(out).size == (300, 300)
    res = runner.invoke(app, ["chart", str(tmp_path / "d.png"), "--size", "100"])
    assert res.exit_code == 2 and "256" in res.stderr  # errors map to exit 2 inside the app
    with pytest.raises(ConfigError):
        make_chart(255)
    with pytest.raises(ConfigError, match="not on this chart"):
        make_chart(256).region("unknown_region")
