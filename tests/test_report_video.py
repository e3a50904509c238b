"""Videos from real saved frames, read back with PyAV: frame count, resolution, the stored
pixels (lossless), chain names and the generation counter drawn on, missing generations named."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from report_runs import STUDY_SAVED

from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.report.data import load_runs
from roundtrip_ml.report.video import BANNER, GUTTER, LABEL, make_video, read_video


def test_side_by_side_mp4_and_gif(study, tmp_path):
    r = make_video(study, tmp_path, fps=6, image="astronaut")
    assert r.generations == STUDY_SAVED and r.missing == [2, 4, 5, 7, 8]
    assert "not shown (no image kept): 2, 4-5, 7-8" in r.note
    frames, size = read_video(r.mp4)
    assert len(frames) == r.frames == len(STUDY_SAVED)
    assert size == r.size and size[0] % 2 == 0 and size[1] % 2 == 0
    # four astronaut chains side by side, 64 px frames enlarged 4x, labels and banner above
    assert size == (4 * 256 + 3 * GUTTER, BANNER + LABEL + 256)
    import av

    with av.open(str(r.mp4)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert s.average_rate == 6
    # frames change as the chains collapse, and the first frame is not the last
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 2
    with Image.open(r.gif) as g:
        assert g.n_frames == len(STUDY_SAVED) and g.size == size


def test_lossless_frames_are_the_stored_frames(study, tmp_path):
    runs = load_runs(study)
    chain = runs.chains.query("image_name == 'coffee' and replica == 0").iloc[0]
    r = make_video(runs, tmp_path, chains=[chain.chain_id], lossless=True, gif=False)
    frames, _ = read_video(r.mp4)
    assert len(frames) == 6 and r.generations == STUDY_SAVED
    stored = runs.frames(chain.run_id, chain.chain_id)
    for g, frame in zip(r.generations, frames, strict=True):
        tile = frame[BANNER + LABEL : BANNER + LABEL + 4 * chain.height, : 4 * chain.width]
        want = np.asarray(Image.open(stored[g]).convert("RGB"))
        np.testing.assert_array_equal(tile, want.repeat(4, 0).repeat(4, 1))


def test_sequential_video_plays_chains_one_after_another(study, tmp_path):
    r = make_video(
        study,
        tmp_path,
        chains=["astronaut-*-png"],
        side_by_side=False,
        gif=False,
        crop=(8, 8, 32, 24),
    )
    frames, size = read_video(r.mp4)
    assert len(frames) == 2 * len(STUDY_SAVED) and r.generations == STUDY_SAVED * 2
    assert size == (256, BANNER + LABEL + 192)  # the 32x24 crop enlarged 8x


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract-ocr (Debian)")
def test_counter_and_chain_names_are_drawn(study, tmp_path):
    pytesseract = pytest.importorskip("pytesseract", reason="needs the `ocr` extra")
    r = make_video(study, tmp_path, lossless=True, gif=False)
    frames, _ = read_video(r.mp4)
    last = Image.fromarray(frames[-1])
    banner = last.crop((0, 0, 400, BANNER)).resize((1600, 4 * BANNER))
    text = pytesseract.image_to_string(banner, config="--psm 7")
    assert "generation 10 / 10" in text, text
    label = last.crop((0, BANNER, 256, BANNER + LABEL)).resize((1024, 4 * LABEL))
    text = pytesseract.image_to_string(label, config="--psm 7")
    assert "bicubic" in text and "jpeg" in text, text


def test_refuses_unknown_chains_and_bad_fps(study, tmp_path):
    with pytest.raises(Exception, match="nope"):
        make_video(study, tmp_path, chains=["nope"])
    with pytest.raises(ConfigError, match="fps"):
        make_video(study, tmp_path, fps=0)


def test_default_duration_is_watchable(study, tmp_path):
    """Six saved generations at a fixed 12 fps would last half a second: the default plays
    them for about six seconds, and the container says so."""
    import av

    from roundtrip_ml.report.video import TARGET_SECONDS

    r = make_video(study, tmp_path, gif=False)
    assert r.frames == len(STUDY_SAVED) and r.duration_s == pytest.approx(TARGET_SECONDS, rel=0.05)
    with av.open(str(r.mp4)) as c:
        s = c.streams.video[0]
        seconds = float(s.duration * s.time_base) if s.duration else c.duration / 1e6
    assert seconds == pytest.approx(TARGET_SECONDS, rel=0.1)
