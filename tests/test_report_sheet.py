"""Contact sheets from real saved frames: rows = recipes, columns = saved generations, the
zoomed inset really shows the crop, and generations the stride skipped are named."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from report_runs import STUDY_SAVED, text_outside

from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.report.data import load_runs
from roundtrip_ml.report.sheets import DPI, contact_sheet, parse_crop


def _page_inches(pdf) -> tuple[float, float]:
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
    return float(box.group(1)) / 72, float(box.group(2)) / 72


def test_sheet_shows_saved_generations_and_names_the_missing(study, tmp_path):
    r = contact_sheet(study, tmp_path, generations=[0, 1, 2, 5, 10])
    assert r.generations == [0, 1, 10] and r.missing == [2, 5]
    assert "no image kept for generation 2, 5" in r.note and "kept: 0-1, 3, 6, 9-10" in r.note
    assert "astronaut 64x64" in r.note and "coffee 64x43" in r.note  # every image, its size
    png, pdf = r.paths
    assert png.suffix == ".png" and pdf.read_bytes().startswith(b"%PDF")
    a = np.asarray(Image.open(png).convert("RGB"))
    w_in, h_in = _page_inches(pdf)
    assert a.shape[:2] == (round(h_in * DPI), round(w_in * DPI))
    assert a.std() > 30
    # 2 images x 4 recipes x 3 generations of 64 px frames, each tile enlarged 4x (whole)
    assert {right - left for left, _, right, _ in r.tiles.values()} == {256}
    assert len(r.tiles) == 24 and a.shape[1] > 3 * 256 and a.shape[0] > 8 * 256
    assert {cid.split("-")[0] for cid, _ in r.tiles} == {"astronaut", "coffee"}


def test_default_columns_follow_the_run_and_tiles_are_the_frames(study, tmp_path):
    runs = load_runs(study)
    r = contact_sheet(runs, tmp_path, crop=(16, 8, 24, 16), image="coffee")
    # defaults 0, 1, 2, 5, 10 (<= 10 generations) + last; 2 and 5 were not saved
    assert r.generations == [0, 1, 10] and r.missing == [2, 5] and r.image == "coffee"
    assert "inset: region at (16, 8), 24x16 pixels" in r.note
    sheet = np.asarray(Image.open(r.paths[0]).convert("RGB")).astype(float)
    chains = runs.chains.query("image_name == 'coffee' and replica == 0")
    assert {cid for cid, _ in r.tiles} == set(chains["chain_id"])
    # every tile shows its own chain's stored frame (enlarged), not another generation's
    for chain in chains.itertuples():
        frames = runs.frames(chain.run_id, chain.chain_id)
        for g in r.generations:
            left, top, right, bottom = r.tiles[(chain.chain_id, g)]
            tile = sheet[top:bottom, left:right]
            diffs = {}
            for other in (0, 10):
                f = (
                    Image.open(frames[other])
                    .convert("RGB")
                    .resize((right - left, bottom - top), Image.Resampling.NEAREST)
                )
                diffs[other] = np.abs(tile - np.asarray(f, dtype=float))[2:-2, 2:-2].mean()
            if g in diffs:
                other = 10 if g == 0 else 0
                assert diffs[g] < 4 < diffs[other], (chain.chain_id, g, diffs)
    red = (sheet[..., 0] > 220) & (sheet[..., 1] < 80) & (sheet[..., 2] < 80)
    assert red.sum() > 4 * 3 * 20  # the crop rectangles and inset frames are drawn


def test_bad_crop_and_generations_are_refused(study, tmp_path):
    with pytest.raises(ConfigError, match="outside"):
        contact_sheet(study, tmp_path, crop=(60, 0, 32, 32))
    with pytest.raises(ConfigError, match="none saved"):
        contact_sheet(study, tmp_path, generations=[2, 4])
    with pytest.raises(ConfigError, match="four integers"):
        parse_crop("1,2,3")
    assert len(STUDY_SAVED) == 6


def test_sheet_in_memory_is_the_png_and_text_stays_on_the_canvas(study, tmp_path):
    """Without out_dir nothing is written; to_image() is the same picture the PNG holds."""
    mem = contact_sheet(study, generations=[0, 1, 10])
    assert mem.paths == [] and not any(tmp_path.iterdir())
    img = mem.to_image()
    disk = contact_sheet(study, tmp_path, generations=[0, 1, 10], formats=("png",))
    a = np.asarray(Image.open(disk.paths[0]).convert("RGB")).astype(int)
    assert img.size == (a.shape[1], a.shape[0])
    assert np.abs(np.asarray(img).astype(int) - a).mean() < 1.0
    assert text_outside(mem.figure) == []
