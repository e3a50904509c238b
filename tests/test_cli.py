"""The `roundtrip` command as a user meets it: exit codes, one-line errors, JSON progress."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from roundtrip_ml.studies.demo import demo_config


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roundtrip_ml.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


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
    r = _cli(
        "run",
        "--image",
        "skimage:chelsea",
        "--image",
        str(bad),
        "--upscaler",
        "bicubic",
        "--generations",
        "2",
        "--codec",
        "jpeg:90",
        "--metrics",
        "psnr",
        "--json",
        "--output",
        str(tmp_path / "run"),
        "--set",
        "center_crop=48",
    )
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


def _invoke(*args: str):
    from typer.testing import CliRunner

    from roundtrip_ml.cli.app import app

    return CliRunner().invoke(app, list(args))


def test_falsy_flags_reach_validation_in_process() -> None:
    """`-g 0`, `--frame-stride 0`, `--checkpoint-stride 0` are values, not absences: each is
    refused by validation with one line and exit 2, in-process (CliRunner) as from a shell."""
    for flag in ("-g", "--frame-stride", "--checkpoint-stride", "--metric-stride"):
        r = _invoke("run", "-i", "skimage:coffee", flag, "0")
        assert r.exit_code == 2, (flag, r.output)
        key = {"-g": "generations"}.get(flag, flag.lstrip("-").replace("-", "_"))
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and key in lines[0] and "error:" in lines[0], (flag, r.stderr)


def test_seed_zero_overrides_the_config_seed(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        'images = ["skimage:coffee"]\nseed = 5\ngenerations = 1\nmetrics = ["psnr"]\n'
        f'center_crop = 32\noutput = "{tmp_path / "run"}"\n'
    )
    r = _invoke("run", str(cfg), "--seed", "0", "-q")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["seed"] == 0


def test_center_crop_and_max_side_flags(tmp_path: Path) -> None:
    r = _invoke(
        "run",
        "-i",
        "skimage:coffee",
        "-u",
        "bicubic,lanczos3",
        "-g",
        "1",
        "-m",
        "psnr",
        "--center-crop",
        "40,48",
        "-q",
        "-o",
        str(tmp_path / "run"),
    )
    assert r.exit_code == 0, r.output
    import pandas as pd

    chains = pd.read_parquet(tmp_path / "run" / "chains.parquet")
    assert set(chains["upscaler"]) == {"bicubic", "lanczos3"}  # commas split like repeats
    assert (chains["height"] == 40).all() and (chains["width"] == 48).all()
    r = _invoke("run", "-i", "skimage:coffee", "--max-side", "0")
    assert r.exit_code == 2 and "max_side" in r.stderr


def test_help_explains_every_option() -> None:
    """No option shows a <bool> metavar; choices are listed; run's stated defaults are the
    config's own."""
    from roundtrip_ml.cli.app import RUN_DEFAULTS
    from roundtrip_ml.pipeline.config import ExperimentConfig

    for cmd in (
        ["run"],
        ["plot"],
        ["report"],
        ["video"],
        ["summarize"],
        ["models", "verify"],
        ["sweep", "run"],
        ["demo"],
    ):
        r = _invoke(*cmd, "--help")
        assert r.exit_code == 0 and "<bool>" not in r.output and "<list" not in r.output, cmd
    plot = _invoke("plot", "--help").output
    assert "paper|slides" in plot and "single|double|both" in plot and "previous" in plot
    assert "local|local-gpus|ray" in _invoke("sweep", "run", "--help").output
    cfg = ExperimentConfig(images=["x.png"])  # run's help states the config's own defaults
    assert {k: getattr(cfg, k) for k in RUN_DEFAULTS} == RUN_DEFAULTS
    from typer.testing import CliRunner

    from roundtrip_ml.cli.app import app

    wide = {"COLUMNS": "400", "TERMINAL_WIDTH": "400"}
    run_help = CliRunner().invoke(app, ["run", "--help"], env=wide).output
    assert "else 50)" in run_help and "else png)" in run_help and "else lanczos3)" in run_help
    assert "avif:Q[:444]|lossless" in run_help  # the codec help is the codecs' own syntax


def test_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    """SIGINT to a real run: the message survives (not swallowed as 'Aborted!'), exit 130,
    and the finished generations are on disk for --resume."""
    import signal
    import time

    # Ctrl-C as at a terminal: a shell's background job (nohup ... &) starts with SIGINT
    # ignored, the child inherits that, and Python then installs no KeyboardInterrupt handler
    as_at_a_terminal = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('roundtrip_ml.cli', run_name='__main__', alter_sys=True)"
    )
    args = [
        sys.executable,
        "-c",
        as_at_a_terminal,
        "run",
        "-i",
        "skimage:astronaut",
        "-u",
        "lanczos3",
        "-g",
        "400",
        "-m",
        "psnr",
        "--checkpoint-stride",
        "1",
        "--set",
        "center_crop=64",
        "--json",
        "-o",
        str(tmp_path / "run"),
    ]

    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    t0 = time.monotonic()
    for line in proc.stdout:  # wait for real progress, then interrupt
        if '"generation": 3' in line or time.monotonic() - t0 > 120:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Aborted" not in err
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert man["status"] == "running"  # interrupted, resumable


def test_summarize_json(tmp_path: Path) -> None:
    r = _invoke(
        "run",
        "-i",
        "skimage:coffee",
        "-g",
        "2",
        "-m",
        "psnr",
        "--center-crop",
        "32",
        "-q",
        "-o",
        str(tmp_path / "run"),
    )
    assert r.exit_code == 0, r.output
    r = _invoke("summarize", str(tmp_path / "run"), "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 1 and rows[0]["upscaler"] == "lanczos3" and "final_psnr" in rows[0]


def test_demo_refuses_to_replace_a_run(tmp_path: Path) -> None:
    old = tmp_path / "demo"
    old.mkdir()
    (old / "keep.txt").write_text("mine")
    r = _invoke("demo", "-o", str(old), "--device", "cpu")
    assert r.exit_code == 2 and "--overwrite" in r.stderr
    assert (old / "keep.txt").read_text() == "mine"


def test_a_python_warning_prints_as_one_line(tmp_path: Path) -> None:
    """A metric dropped for a missing backbone (LPIPS offline) warns in one line, not as a raw
    `file:line: UserWarning` with source."""
    r = _invoke(
        "run",
        "-i",
        "skimage:coffee",
        "-g",
        "1",
        "-m",
        "psnr,lpips",
        "--center-crop",
        "32",
        "-q",
        "-o",
        str(tmp_path / "run"),
    )
    if "lpips" not in r.stderr:
        pytest.skip("the LPIPS backbone is cached here: nothing to warn about")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if "lpips" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning: metric lpips skipped"), r.stderr
    assert "UserWarning" not in r.stderr and ".py:" not in r.stderr


def test_codec_schedules_survive_the_comma_convention_and_errors_keep_brackets(tmp_path) -> None:
    """`-c jpeg:[90,85],png` is two codecs (a cycling schedule and png), not three; and an
    error naming `jpeg:[101,85]` prints the brackets (no console markup eats them)."""
    out = tmp_path / "run"
    r = _invoke(
        "run",
        "-i",
        "skimage:coffee",
        "-c",
        "jpeg:[90,85],png",
        "-g",
        "2",
        "--center-crop",
        "32",
        "-m",
        "psnr",
        "-q",
        "-o",
        str(out),
    )
    assert r.exit_code == 0, r.output
    import pandas as pd

    assert sorted(pd.read_parquet(out / "chains.parquet")["codec"]) == ["jpeg:[90,85]", "png"]
    bad = _invoke("run", "-i", "skimage:coffee", "-c", "jpeg:[101,85]", "-o", str(tmp_path / "b"))
    assert bad.exit_code == 2 and "jpeg:[101,85]" in bad.stderr, bad.stderr
