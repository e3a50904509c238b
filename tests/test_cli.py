"""The `roundtrip` command as a user meets it: exit codes, one-line errors, JSON progress."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from roundtrip_ml.demo import demo_config


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "roundtrip_ml.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_bad_config_is_one_line_exit_2_and_debug_shows_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text('images = ["skimage:coffee"]\ngenerations = -3\n')
    r = _cli("run", str(cfg))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "generations" in lines[0] and "exp.toml" in lines[0]
    assert "Traceback" not in r.stderr
    r = _cli("--debug", "run", str(cfg))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_flag_run_with_json_progress_and_a_bad_image(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    r = _cli("run", "--image", "skimage:chelsea", "--image", str(bad), "--upscaler", "bicubic",
             "--generations", "2", "--codec", "jpeg:90", "--metrics", "psnr", "--json",
             "--output", str(tmp_path / "run"), "--set", "center_crop=48")
    assert r.returncode == 1  # the run finished, one input failed
    events = [json.loads(ln) for ln in r.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert [e["generation"] for e in events if e["event"] == "generation"] == [1, 2]
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "broken.jpg" in json.dumps(man["input_errors"])
    assert man["status"] == "complete_with_failures"


def test_info_reports_versions() -> None:
    r = _cli("info")
    assert r.returncode == 0
    info = json.loads(r.stdout)
    assert info["packages"]["torch"].startswith("2.")
    assert "cuda_available" in info


def test_demo_config_fits_the_device(tmp_path: Path) -> None:
    small = demo_config(tmp_path, "cpu")
    assert small.max_side == 128 and small.generations == 30
    full = demo_config(tmp_path, "cpu", full=True)
    assert full.max_side is None and full.generations == 200
    assert {"lanczos3", "bicubic"} <= set(small.upscalers)
    assert small.images == ["skimage:astronaut", "skimage:coffee"]
