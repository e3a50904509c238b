"""Drift figures from real runs: valid, non-blank files at the promised size, embedded fonts,
one colour per upscaler, +inf drawn clipped, a seeded bootstrap band, sweeps loaded whole."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_runs import text_outside

from roundtrip_ml.core.errors import ConfigError, RunStoreError
from roundtrip_ml.report.data import aggregate, bootstrap_mean, load_runs, select
from roundtrip_ml.report.plots import PNG_DPI, WIDTHS, plot_drift


def _png(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.info.get("dpi") is None or round(im.info["dpi"][0]) == PNG_DPI
        return np.asarray(im.convert("RGB"))


def _pdf_size_in(path) -> tuple[float, float]:
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", path.read_bytes())
    assert box, "PDF without a MediaBox"
    return float(box.group(1)) / 72, float(box.group(2)) / 72


@pytest.mark.parametrize("layout", ["double", "single"])
def test_figures_are_valid_nonblank_and_sized_for_the_layout(study, tmp_path, layout):
    fig = plot_drift(study, tmp_path, layout=layout)
    assert sorted(p.suffix for p in fig.paths) == [".pdf", ".png", ".svg"]
    pdf = next(p for p in fig.paths if p.suffix == ".pdf")
    w_in, h_in = _pdf_size_in(pdf)
    assert w_in == pytest.approx(WIDTHS[layout], abs=0.01)
    a = _png(next(p for p in fig.paths if p.suffix == ".png"))
    # PNG pixels = page inches x 300 dpi: the same figure in every format
    assert a.shape[1] == pytest.approx(w_in * PNG_DPI, abs=1)
    assert a.shape[0] == pytest.approx(h_in * PNG_DPI, abs=1)
    assert a.std() > 20  # not blank: lines, bands, text on white
    assert (a < 128).mean() > 0.002  # some dark ink (axes, labels)
    # fonts: TrueType embedded in the PDF (no Type 3 bitmaps), glyphs as paths in the SVG
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and b"/FontFile2" in data and b"/Type3" not in data
    root = ET.parse(next(p for p in fig.paths if p.suffix == ".svg")).getroot()
    tags = {el.tag.rsplit("}", 1)[-1] for el in root.iter()}
    assert "text" not in tags and "path" in tags
    assert any("DejaVuSans" in (el.get("id") or "") for el in root.iter())


def test_one_colour_per_upscaler_in_every_figure(study, tmp_path):
    a = plot_drift(study, tmp_path, metrics=["psnr"], stem="a", formats=("png",))
    b = plot_drift(
        study,
        tmp_path,
        metrics=["ssim"],
        by=["upscaler"],
        layout="single",
        stem="b",
        formats=("png",),
    )
    c = plot_drift(
        study, tmp_path, metrics=["psnr"], reference="previous", stem="c", formats=("png",)
    )
    # labels are "upscaler · codec" in a and c, "upscaler" in b
    for fig in (a, c):
        assert len(fig.colours) == 4
        for label, colour in fig.colours.items():
            assert colour == b.colours[label.split(" · ")[0]]
    assert b.colours["bicubic"] != b.colours["lanczos3"]
    # the colour is really drawn: the line's exact colour covers pixels of the PNG
    img = _png(a.paths[0]).reshape(-1, 3)
    for colour in b.colours.values():
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(img.astype(int) - rgb).sum(1) <= 3).sum() > 200


def test_infinite_psnr_is_drawn_clipped_and_labelled(fixed, tmp_path):
    runs = load_runs(fixed)
    prev = select(runs.metrics, "psnr", "previous")
    assert np.isposinf(prev["value"]).sum() == 3  # generations 2-4: the fixed point
    fig = plot_drift(runs, tmp_path, metrics=["psnr"], reference="previous", formats=("png",))
    finite = prev.loc[np.isfinite(prev["value"]), "value"].max()
    ceiling = fig.ceilings["psnr"]
    assert finite < ceiling < np.inf and ceiling % 5 == 0
    agg = aggregate(prev, ["upscaler"], clip=ceiling)
    assert (agg.loc[agg["generation"] >= 2, "mean"] == ceiling).all()
    assert agg.loc[agg["generation"] >= 2, "clipped"].all()
    assert not agg.loc[agg["generation"] == 1, "clipped"].any()
    assert _png(fig.paths[0]).std() > 20
    # a run with no +inf gets no ceiling
    assert plot_drift(runs, tmp_path, metrics=["psnr"], formats=("png",)).ceilings == {}


def test_bootstrap_band_is_seeded_and_brackets_the_mean(study):
    runs = load_runs(study)
    rows = select(runs.metrics, "psnr")
    one = aggregate(rows, ["upscaler", "codec"], seed=3)
    two = aggregate(rows, ["upscaler", "codec"], seed=3)
    pd.testing.assert_frame_equal(one, two)
    assert (one["n"] == 2).all()
    assert (one["lo"] <= one["mean"] + 1e-12).all() and (one["mean"] <= one["hi"] + 1e-12).all()
    assert (one["hi"] > one["lo"]).any()
    # the mean is the plain mean over images of the stored numbers
    want = rows.groupby(["upscaler", "codec", "generation"])["value"].mean()
    got = one.set_index(["upscaler", "codec", "generation"])["mean"]
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False)
    # many images: memory stays small and the band narrows like 1/sqrt(n)
    rng = np.random.default_rng(0)
    small = bootstrap_mean(rng.normal(size=(20, 3)), seed=1)
    big = bootstrap_mean(rng.normal(size=(2000, 3)), seed=1)
    assert ((big[2] - big[1]) < (small[2] - small[1]) / 5).all()
    m, lo, hi = bootstrap_mean(np.array([[1.0, np.inf], [2.0, 30.0]]), seed=0)
    assert m[0] == 1.5 and np.isposinf(m[1]) and np.isposinf(hi[1]) and lo[1] == 30.0


def test_sweep_directory_loads_every_run(study, fixed, tmp_path):
    sweep = study.parent  # holds both run directories
    runs = load_runs(sweep)
    assert runs.is_sweep and len(runs.manifests) == 2
    assert len(runs.metrics) == len(load_runs(study).metrics) + len(load_runs(fixed).metrics)
    fig = plot_drift(sweep, tmp_path, metrics=["psnr"], formats=("png",))
    assert any(label.startswith("nearest") for label in fig.colours)
    assert len(set(fig.colours.values())) == 3  # bicubic, lanczos3, nearest
    # 2 images behind the study's curves, 1 behind nearest's: the legend says which
    legend = [t.get_text() for t in fig.figure.legends[0].get_texts()]
    assert any(t.startswith("nearest") and t.endswith("(n=1)") for t in legend), legend
    assert any(t.startswith("lanczos3") and t.endswith("(n=2)") for t in legend), legend
    with pytest.raises(RunStoreError, match="no run"):
        load_runs(tmp_path)


def test_bad_requests_name_the_fix(study, tmp_path):
    with pytest.raises(ConfigError, match="lpips"):
        plot_drift(study, tmp_path, metrics=["lpips"])
    with pytest.raises(ConfigError, match="--by"):
        plot_drift(study, tmp_path, by=["colour"])
    with pytest.raises(ConfigError, match="style"):
        plot_drift(study, tmp_path, style="poster")


def test_replica_distances_plot_from_a_real_replica_run(tmp_path):
    """`--reference replicas` draws the mean pairwise distance of each recipe's replicas."""
    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.experiment import run_experiment

    run = run_experiment(
        make_config(
            {
                "images": ["skimage:astronaut", "skimage:coffee"],
                "upscalers": ["lanczos3", "bicubic"],
                "generations": 3,
                "center_crop": 48,
                "replicas": 2,
                "metrics": ["psnr"],
                "device": "cpu",
                "output": str(tmp_path / "rep"),
            }
        )
    ).run_dir
    runs = load_runs(run)
    rows = select(runs.metrics, "mse", "replicas")
    assert len(rows) == 2 * 2 * 3 and (rows["scope"] == "group").all()
    assert len(select(runs.metrics, "psnr", "unperturbed")) == 2 * 2 * 2 * 3
    fig = plot_drift(
        runs, tmp_path / "fig", metrics=["mse"], reference="replicas", layout="single", n_boot=50
    )
    png = next(p for p in fig.paths if str(p).endswith(".png"))
    assert np.asarray(Image.open(png).convert("L")).std() > 5
    assert set(fig.colours) == {"lanczos3", "bicubic"}


@pytest.mark.parametrize(
    ("layout", "style"), [("single", "paper"), ("double", "paper"), ("double", "slides")]
)
def test_figure_sizes_fit_the_target_and_no_text_leaves_the_canvas(study, layout, style):
    from roundtrip_ml.report.plots import MAX_HEIGHT, PAGE_PANELS, SLIDES_WIDTH, drift_figures

    # seven metrics: more than one page of a single-column figure; `colour` expands
    res = drift_figures(
        study, metrics=["psnr", "ssim", "colour"], layout=layout, style=style, n_boot=50
    )
    target = "slides" if style == "slides" else layout
    assert len(res.figures) == -(-7 // PAGE_PANELS[target])  # paginated, not taller
    width = SLIDES_WIDTH if style == "slides" else WIDTHS[layout]
    for fig in res.figures:
        w, h = fig.get_size_inches()
        assert w == pytest.approx(width) and 1.0 < h <= MAX_HEIGHT[target] + 1e-9
        assert text_outside(fig) == []
        # every panel has a y label with the display name (never the stored name)
        labels = [ax.get_ylabel() for ax in fig.axes if ax.get_visible()]
        assert all(lab and "_" not in lab for lab in labels), labels
    assert "PSNR (dB) ↑" in [ax.get_ylabel() for ax in res.figures[0].axes]


def test_two_images_get_no_band_but_each_image_and_n_in_the_legend(study):
    from matplotlib.collections import PolyCollection

    from roundtrip_ml.report.plots import drift_figure

    fig = drift_figure(study, metrics=["psnr"], layout="single", thresholds="", n_boot=50)
    ax = fig.axes[0]
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]  # n=2: no band
    # 4 recipes: a mean line and 2 thin per-image lines each
    assert len(ax.lines) == 4 * 3
    title = fig.legends[0].get_title().get_text().replace("\n", " ")
    assert "mean of 2 images" in title and "each image" in title and "CI" not in title


def test_thresholds_never_move_the_axis_range(study):
    from roundtrip_ml.report.plots import drift_figure

    plain = drift_figure(study, metrics=["psnr"], thresholds="", n_boot=50).axes[0]
    far = drift_figure(study, metrics=["psnr"], thresholds="psnr<5", n_boot=50).axes[0]
    assert far.get_ylim() == plain.get_ylim()
    lo, hi = plain.get_ylim()
    inside = drift_figure(
        study, metrics=["psnr"], thresholds=f"psnr<{(lo + hi) / 2:.3f}", n_boot=50
    ).axes[0]
    assert inside.get_ylim() == plain.get_ylim()
    assert len(inside.lines) == len(plain.lines) + 1  # the threshold line is drawn


def test_drift_figure_returns_a_figure_and_saves_on_request(study, tmp_path):
    from matplotlib.figure import Figure

    from roundtrip_ml.report.plots import drift_figure

    fig = drift_figure(study, metrics=["ssim"], path=tmp_path / "s.pdf", n_boot=20)
    assert isinstance(fig, Figure) and (tmp_path / "s.pdf").stat().st_size > 1000
    with pytest.raises(ConfigError, match="plot_drift"):
        drift_figure(study, metrics=["psnr", "ssim", "colour"], layout="single")
