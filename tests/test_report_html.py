"""`roundtrip report RUN` on a real run: every artefact is written, index.html links only
relative files, and headless Chromium opens it from disk with every image and the video
resolved and no console errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_runs import study_run
from typer.testing import CliRunner

from roundtrip_ml.cli.app import app
from roundtrip_ml.report.video import read_video

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)

# Injected into a copy of the page (never into the report itself): records load errors from
# the start, then waits until the video can play and writes a verdict into the DOM.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(
  (e.message || 'failed to load') + ' ' + ((e.target && (e.target.src || e.target.href)) || '')),
  true);
window.addEventListener('load', () => {
  const t0 = Date.now();
  (function check() {
    const vids = [...document.querySelectorAll('video')];
    const waiting = vids.some(v => !v.error && v.readyState < 2);
    if (waiting && Date.now() - t0 < 8000) { setTimeout(check, 100); return; }
    const bad = [];
    for (const img of document.images)
      if (!(img.complete && img.naturalWidth > 0)) bad.push('img ' + img.src);
    for (const v of vids)
      if (v.error || v.readyState < 2)
        bad.push('video ' + v.currentSrc + ' state ' + v.readyState + ' error ' +
                 (v.error && v.error.code));
    const out = document.createElement('pre');
    out.id = 'rt-verdict';
    const root = document.documentElement;
    // content scrolled inside its own box (a wide table) does not widen the page
    const scrolls = el => el.closest('table, pre') !== null;
    const wide = [...document.body.querySelectorAll('*')].filter(
      el => !scrolls(el.parentElement) &&
            el.getBoundingClientRect().right > root.clientWidth + 1).map(el => el.tagName);
    out.textContent = JSON.stringify({images: document.images.length, videos: vids.length,
      srcs: [...document.images].map(i => i.getAttribute('src')),
      overflow: root.scrollWidth - root.clientWidth, wide: wide,
      sizes: [...document.images].map(i => [i.naturalWidth, i.naturalHeight]),
      video: vids.map(v => [v.videoWidth, v.videoHeight, v.duration]),
      bad, errors: window.__errors});
    document.body.appendChild(out);
    console.log('rt-probe-done');
  })();
});
</script>"""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = study_run(tmp_path_factory)
    res = CliRunner().invoke(app, ["report", str(run), "--crop", "16,16,24,16", "--at", "1,5,10"])
    assert res.exit_code == 0, res.output
    return run / "report"


def test_report_writes_every_artefact_with_relative_links(report):
    for rel in (
        "index.html",
        "figures/drift-original-double.pdf",
        "figures/drift-original-single.svg",
        "figures/drift-previous-single.png",
        "sheet/sheet.png",
        "sheet/sheet.pdf",
        "video/collapse.mp4",
        "video/collapse.gif",
        "tables/metrics.csv",
        "tables/metrics.tex",
        "tables/collapse.md",
    ):
        assert (report / rel).is_file() and (report / rel).stat().st_size > 100, rel
    page = (report / "index.html").read_text()
    parser = _Links()
    parser.feed(page)
    files = [x for x in parser.links if not x.startswith("data:")]
    assert len(files) > 10
    for link in files:
        assert not re.match(r"^[a-z]+://|^/", link), link  # opens from disk, no server
        assert (report / link).is_file(), link
    assert "<script" not in page and "run_id" in page and "Collapse statistics" in page


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_page_loads_in_headless_chromium(report, tmp_path):
    page = (report / "index.html").read_text()
    probe = report / "_probe.html"
    probe.write_text(page.replace("<head>", "<head>" + PROBE, 1))
    try:
        proc = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=800,1000",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=15000",
                "--dump-dom",
                probe.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        probe.unlink()
    m = re.search(r'<pre id="rt-verdict">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"page never finished loading:\n{proc.stderr[-3000:]}"
    verdict = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert verdict["bad"] == [] and verdict["errors"] == [], verdict
    assert verdict["images"] >= 3 and verdict["videos"] == 1
    # no horizontal overflow at 800 px: wide tables scroll inside themselves, text wraps
    assert verdict["overflow"] <= 0 and verdict["wide"] == [], verdict
    assert len(set(verdict["srcs"])) == len(verdict["srcs"]), verdict["srcs"]  # each once
    assert all(w > 100 and h > 100 for w, h in verdict["sizes"])
    vw, vh, duration = verdict["video"][0]
    _, size = read_video(report / "video" / "collapse.mp4")
    assert (vw, vh) == size and duration > 0
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert any("rt-probe-done" in line for line in console), proc.stderr[-2000:]  # seen
    problems = [line for line in console if "rt-probe-done" not in line]
    assert problems == [], problems
    assert not re.search(r"Not allowed to load local resource|ERR_FILE_NOT_FOUND", proc.stderr)


def test_report_of_a_folder_holding_a_failed_run(study, tmp_path):
    """A run whose every chain failed (a model whose output is NaN) beside a good run: the
    report shows the good one and names the failure; on its own the failed run gets a page
    too. (A model that cannot even load refuses the run before anything is written.)"""
    from test_engine_integrity import _model_file

    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.experiment import run_experiment

    bogus = _model_file(tmp_path / "nan.safetensors", nan=True)
    folder = tmp_path / "study"
    result = run_experiment(
        make_config(
            {
                "images": ["skimage:coffee"],
                "upscalers": [bogus],
                "generations": 1,
                "center_crop": 32,
                "metrics": ["psnr"],
                "output": str(folder / "failed"),
            }
        )
    )
    assert result.failed
    shutil.copytree(study, folder / "good", ignore=shutil.ignore_patterns("report"))
    res = CliRunner().invoke(app, ["report", str(folder), "--at", "1,10"])
    assert res.exit_code == 0, res.output
    page = (folder / "report" / "index.html").read_text()
    assert "NaN/Inf" in page and "drift-original-double.png" in page
    res = CliRunner().invoke(app, ["report", str(folder / "failed")])
    assert res.exit_code == 0, res.output
    page = (folder / "failed" / "report" / "index.html").read_text()
    assert "no metric rows" in page and "complete_with_failures" in page


def test_report_refuses_a_missing_run(tmp_path):
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    # mapped inside the app: one line and exit 2, in-process as from a shell
    assert res.exit_code == 2 and "no such directory" in res.stderr


def test_report_of_a_sweep_directory(report, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    shutil.copytree(report.parent, sweep / "a", ignore=shutil.ignore_patterns("report"))
    res = CliRunner().invoke(app, ["table", str(sweep), "--at", "1,10"])
    assert res.exit_code == 0, res.output
    assert Path(sweep / "report" / "tables" / "metrics.csv").is_file()
    assert "lanczos3" in res.output
