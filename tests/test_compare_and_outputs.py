"""Comparing in memory and seeing every image: rt.compare, lists of trajectories or runs for
the figure functions (anything else one TypeError), sheets and videos of every image, figure
text without tool jargon, and names that hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import roundtrip_ml as rt
from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.report.data import load_runs
from roundtrip_ml.report.plots import label_spot
from roundtrip_ml.report.sheets import contact_sheet
from roundtrip_ml.report.video import make_video, read_video

CROP = {"center_crop": 32, "progress": False}


@pytest.fixture(scope="module")
def three() -> rt.Comparison:
    return rt.compare(
        "skimage:astronaut",
        ["Lanczos3", "bicubic", "bilinear"],
        generations=3,
        metrics=["psnr", "ssim"],
        **CROP,
    )


def test_compare_three_upscalers_gives_one_tidy_table_and_one_figure(three):
    table, fig = three
    assert sorted(table["upscaler"].unique()) == ["bicubic", "bilinear", "lanczos3"]
    assert set(table["generation"]) == {1, 2, 3} and set(table["metric"]) == {"psnr", "ssim"}
    assert table["value"].notna().all() and len(three.trajectories) == 3
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_ylabel().split(" ")[0] for ax in axes] == ["PSNR", "SSIM"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sorted(legend) == ["bicubic", "bilinear", "lanczos3"]
    # the curves are the trajectories' own values: lanczos3's PSNR at generation 3
    t = next(t for t in three.trajectories if t.chain.upscaler == "lanczos3")
    line = next(ln for ln in axes[0].get_lines() if ln.get_label() == "lanczos3")
    assert line.get_ydata()[-1] == pytest.approx(t.value("psnr", 3))
    assert three._repr_png_().startswith(b"\x89PNG")


def test_figure_functions_take_lists_and_refuse_anything_else(three, tmp_path):
    ts = three.trajectories
    fig = rt.plot_drift(ts[:2], metrics=["psnr"], panel_letters=True, caption=False)
    assert fig.axes[0].get_title(loc="left") == "a"
    assert fig.legends[0].get_title().get_text() == ""  # caption=False: no legend title
    sheet = rt.contact_sheet(ts)
    assert sheet.mode == "RGB" and sheet.height > 3 * 100  # a row per trajectory
    s = rt.summarize(ts)
    assert sorted(s["source"]) == [0, 1, 2] and set(s["upscaler"]) == {
        "lanczos3",
        "bicubic",
        "bilinear",
    }
    for bad in (5, {"a": 1}, [ts[0], 3.5]):
        with pytest.raises(TypeError, match=r"Trajectory.*RunView.*list"):
            rt.plot_drift(bad)
    with pytest.raises(TypeError, match=r"RunView.*Trajectory"):
        rt.summarize(7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="empty list"):
        rt.contact_sheet([])


def test_sheet_of_a_two_image_run_shows_both_in_a_grid_or_pages(study, tmp_path):
    runs = load_runs(study)
    grid = contact_sheet(runs, tmp_path / "grid", generations=[0, 10])
    assert {cid.split("-")[0] for cid, _ in grid.tiles} == {"astronaut", "coffee"}
    pages = contact_sheet(runs, tmp_path / "pages", generations=[0, 10], layout="pages")
    assert [p.image for p in pages.pages] == ["astronaut", "coffee"]
    names = sorted(p.name for p in pages.paths if p.suffix == ".png")
    assert names == ["sheet-astronaut.png", "sheet-coffee.png"]
    for page in pages.pages:
        assert {cid.split("-")[0] for cid, _ in page.tiles} == {page.image}
    bare = contact_sheet(runs, None, generations=[0, 10], caption=False)
    assert len(bare.figure.texts) < len(grid.figure.texts)  # the caption line is gone
    with pytest.raises(ConfigError, match="grid"):
        contact_sheet(runs, None, layout="poster")


def test_video_tiles_every_image_or_writes_one_per_image(study, tmp_path):
    tiled = make_video(study, tmp_path / "t", gif=False, fps=6)
    assert {c.split("-")[0] for c in tiled.chains} == {"astronaut", "coffee"}
    assert len(tiled.chains) == 8
    frames, (w, h) = read_video(tiled.mp4)
    assert (w, h) == tiled.size and len(frames) == tiled.frames
    each = make_video(study, tmp_path / "p", gif=False, fps=6, layout="per-image")
    assert [v.mp4.name for v in each.videos] == ["collapse-astronaut.mp4", "collapse-coffee.mp4"]
    assert all(len(v.chains) == 4 for v in each.videos)


def test_threshold_label_goes_where_the_data_is_not():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    x = np.arange(11)
    ax.plot(x, np.where(x > 5, 21.0, 25.0))  # just above the line on the right half
    ax.plot(x, np.full(11, 30.0))
    ax.set_ylim(10, 32)
    _, ha, va = label_spot(ax, 20.0)
    # right-above holds data; the others are free: not right-above
    assert (ha, va) != ("right", "bottom")


def test_figures_carry_plain_words(study, tmp_path):
    fig = rt.plot_drift(study, metrics=["psnr", "ssim"])
    title = fig.legends[0].get_title().get_text()
    assert "Compared with the original image" in title and "mean of 2 images" in title
    words = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    for jargon in ("n <", "no band", "frame stride", "collapse:"):
        assert jargon not in title + words
    sheet = contact_sheet(study, None, generations=[0, 2, 10])
    assert "frame stride" not in sheet.note and "no image kept for generation 2" in sheet.note


def _photo(path: Path, image: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return str(path)


def test_same_named_files_and_a_real_butterfly2_get_three_readable_names(tmp_path):
    astro, coffee = data.astronaut()[:48, :48], data.coffee()[:48, :48]
    a = _photo(tmp_path / "a" / "butterfly.png", astro)
    b = _photo(tmp_path / "b" / "butterfly.png", coffee)
    real = _photo(tmp_path / "butterfly2.png", data.chelsea()[:48, :48])
    numbered = _photo(tmp_path / "kodak" / "1.png", astro[::-1].copy())
    r = rt.run(
        {
            "images": [a, b, real, numbered],
            "upscalers": ["Lanczos3"],
            "generations": 1,
            "metrics": ["psnr"],
            "output": str(tmp_path / "run"),
        },
        progress=False,
    )
    chains = r.chains.set_index("image")
    assert chains.loc[a, "image_name"] == "a-butterfly"
    assert chains.loc[b, "image_name"] == "b-butterfly"
    assert chains.loc[real, "image_name"] == "butterfly2"
    assert chains.loc[numbered, "image_name"] == "kodak-1"
    assert set(chains["upscaler"]) == {"lanczos3"}  # one kernel, one name
    assert chains.loc[a, "chain_id"] == "a-butterfly-lanczos3-lanczos3-x4-png"
    # a real collision (two files one name would need) is one line naming both files
    jpg = tmp_path / "a" / "butterfly.jpg"
    Image.fromarray(astro).save(jpg)
    with pytest.raises(ConfigError) as e:
        rt.run(
            {"images": [a, str(jpg)], "generations": 1, "output": str(tmp_path / "x")},
            progress=False,
        )
    msg = str(e.value)
    assert a in msg and str(jpg) in msg and "\n" not in msg and "duplicate" not in msg


def test_image_names_name_inputs_outright_and_are_checked(tmp_path):
    """`image_names` (what a sweep sets for its units) overrides the derived names; a name
    that is no slug, or one that two inputs would share, is one line naming the problem."""
    a = _photo(tmp_path / "a" / "butterfly.png", data.astronaut()[:48, :48])
    b = _photo(tmp_path / "b" / "shell.png", data.coffee()[:48, :48])
    base = {"images": [a, b], "upscalers": ["bicubic"], "scales": [2], "generations": 1}
    r = rt.run(
        {
            **base,
            "image_names": {a: "set1-butterfly"},
            "metrics": ["psnr"],
            "output": str(tmp_path / "run"),
        },
        progress=False,
    )
    assert dict(zip(r.chains["image"], r.chains["image_name"], strict=True)) == {
        a: "set1-butterfly",
        b: "shell",
    }
    with pytest.raises(ConfigError, match="image_names"):
        rt.run({**base, "image_names": {a: "Set 1/x"}, "output": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="both would be named 'shell'"):
        rt.run(
            {**base, "image_names": {a: "shell"}, "output": str(tmp_path / "y")},
            progress=False,
        )


def test_names_are_normalised_once(tmp_path):
    t = rt.roundtrip(
        "skimage:astronaut",
        "Lanczos3",
        downscaler="LANCZOS",
        generations=1,
        metrics=["psnr"],
        **CROP,
    )
    assert t.chain.upscaler == "lanczos3" and t.chain.downscaler == "lanczos3"
    assert set(t.metrics["upscaler"]) == {"lanczos3"}
    assert t.chain.chain_id == "astronaut-lanczos3-lanczos3-x4-png"
    from roundtrip_ml.pipeline.config import make_config

    cfg = make_config(
        {
            "images": ["skimage:astronaut"],
            "upscalers": ["RealESRGAN_x4plus", "Bicubic"],
            "downscalers": ["area", "Lanczos"],
        },
        "test",
    )
    assert cfg.upscalers == ["realesrgan-x4plus", "bicubic"]
    assert cfg.downscalers == ["box", "lanczos3"]


def test_cli_sheet_pages_and_video_per_image(study, tmp_path):
    from typer.testing import CliRunner

    from roundtrip_ml.cli.app import app

    r = CliRunner().invoke(
        app,
        [
            "sheet",
            str(study),
            "--pages",
            "--no-caption",
            "-o",
            str(tmp_path / "s"),
            "--generations",
            "0,10",
        ],
    )
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "s").glob("*.png")) == [
        "sheet-astronaut.png",
        "sheet-coffee.png",
    ]
    assert "astronaut 64x64" in r.output and "coffee 64x43" in r.output
    r = CliRunner().invoke(
        app, ["video", str(study), "--per-image", "--no-gif", "-o", str(tmp_path / "v")]
    )
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "v").glob("*.mp4")) == [
        "collapse-astronaut.mp4",
        "collapse-coffee.mp4",
    ]
