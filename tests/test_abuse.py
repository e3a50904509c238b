"""The abuse corpus of issue 10: nothing lost, nothing mixed, nothing trusted blindly.

Each case is what a hostile or careless user did; each asserts the outcome (exit code and the
one line for CLI cases, proof that nothing was mixed or lost for data cases). Real photos from
scikit-image's wheel, small crops, a few generations: the whole file runs in well under a minute.
The 20-point SIGKILL test is scripts/sigkill_resume.py (minutes; not in CI).
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import photo_u8
from pandas.testing import assert_frame_equal
from PIL import Image

from roundtrip_ml.cli import app as cli
from roundtrip_ml.core.errors import ConfigError, ImageError, RunStoreError, WeightsError
from roundtrip_ml.core.files import atomic_write_bytes, path_error
from roundtrip_ml.imaging.images import load_image
from roundtrip_ml.pipeline.config import load_config, make_config
from roundtrip_ml.pipeline.experiment import run_experiment
from roundtrip_ml.pipeline.store import LOCK_FILE, RunStore

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "images": ["skimage:astronaut"],
    "upscalers": ["bicubic"],
    "scales": [2],
    "codecs": ["png"],
    "generations": 3,
    "frame_stride": 1,
    "checkpoint_stride": 2,
    "center_crop": 40,
    "metrics": ["psnr"],
    "device": "cpu",
    "region_metrics": False,
}
TABLES = ("chains.parquet", "metrics.parquet", "fingerprints.parquet")


def _cfg(out: Path, **over: object):
    return make_config({**SMALL, "output": str(out), **over})


def _main(argv: list[str], monkeypatch, capsys) -> tuple[int, list[str]]:
    """The real CLI entry point (exit-code mapping included), in this process."""
    monkeypatch.setattr(sys, "argv", ["roundtrip", *argv])
    with pytest.raises(SystemExit) as ei:
        cli.main()
    err = capsys.readouterr().err
    return int(ei.value.code or 0), [ln for ln in err.splitlines() if ln.strip()]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"}


def _assert_same_tables(a: Path, b: Path) -> None:
    for t in TABLES:
        assert_frame_equal(pd.read_parquet(a / t), pd.read_parquet(b / t), check_exact=True)


# ---- 1. one process per run directory ----------------------------------------------------------


def test_two_concurrent_cli_runs_one_refused_other_equals_solo(
    tmp_path, monkeypatch, capsys
) -> None:
    """A: a real `python -m roundtrip_ml.cli run` process; B: the same CLI entry point in this
    process (one interpreter start less), with another config, on the same output."""
    out = tmp_path / "shared"
    a_cfg, b_cfg = tmp_path / "a.toml", tmp_path / "b.toml"
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in SMALL.items() if k != "generations")
    a_cfg.write_text(body + "\ngenerations = 4\n")
    b_cfg.write_text(body.replace('["png"]', '["jpeg:80"]') + "\ngenerations = 4\n")
    a = subprocess.Popen(
        [sys.executable, "-m", "roundtrip_ml.cli", "run", str(a_cfg), "-q", "-o", str(out)],
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline and f'"pid": {a.pid}' not in _read(out / LOCK_FILE):
            assert a.poll() is None, a.stderr.read() if a.stderr else ""
            time.sleep(0.01)
        os.kill(a.pid, signal.SIGSTOP)  # A holds the lock and stays mid-run while B tries
        code, lines = _main(["run", str(b_cfg), "-q", "-o", str(out)], monkeypatch, capsys)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    assert a.wait(timeout=300) == 0
    assert code == 2 and len(lines) == 1, lines
    assert str(out) in lines[0] and f"pid {a.pid}" in lines[0] and "in use" in lines[0]
    solo = tmp_path / "solo"
    run_experiment(load_config(a_cfg, {"output": str(solo)}))
    _assert_same_tables(out, solo)  # nothing of B's in A's tables
    assert json.loads((out / "config.json").read_text())["codecs"] == ["png"]


def _read(p: Path) -> str:
    try:
        return p.read_text()
    except OSError:
        return ""


def test_lock_refuses_a_second_holder_and_a_resume_and_a_sweep_unit(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_experiment(_cfg(out, generations=2))
    store = RunStore(out)
    with store.lock():
        with pytest.raises(RunStoreError, match=rf"{out}.*in use.*pid {os.getpid()}"):
            run_experiment(_cfg(out, generations=2), resume=True)
        from roundtrip_ml.sweep.worker import run_unit

        res = run_unit({**SMALL, "generations": 2, "output": str(tmp_path / "unit")})
        assert res["status"] == "complete"  # another directory: not blocked
        with RunStore(tmp_path / "unit").lock():
            (tmp_path / "unit" / "manifest.json").unlink()  # unfinished: the unit would run
            res = run_unit({**SMALL, "generations": 2, "output": str(tmp_path / "unit")})
        assert res["status"] == "failed" and "in use" in res["error"]
    run_experiment(_cfg(out, generations=2), resume=True)  # released: resume works
    assert _read(out / LOCK_FILE) == ""  # holder line cleared on release


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    code = (
        "import time\nfrom roundtrip_ml.pipeline.store import RunStore\n"
        f"with RunStore({str(tmp_path)!r}).lock():\n    print('locked', flush=True)\n"
        "    time.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunStoreError, match=f"pid {holder.pid}"), RunStore(tmp_path).lock():
            pass
    finally:
        holder.kill()  # SIGKILL: no cleanup code runs in the holder
        holder.wait()
    with RunStore(tmp_path).lock():  # the kernel released it with the process
        assert f'"pid": {os.getpid()}' in _read(tmp_path / LOCK_FILE)


# ---- 6. --overwrite and non-empty folders -----------------------------------------------------


def test_overwrite_deletes_only_run_files(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_experiment(_cfg(out, images=["skimage:coffee"]))
    (out / "notes.txt").write_text("mine")
    (out / "data").mkdir()
    (out / "data" / "x.csv").write_text("1,2")
    with pytest.raises(RunStoreError, match="--overwrite"):
        run_experiment(_cfg(out))
    res = run_experiment(_cfg(out), overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "data" / "x.csv").exists()
    assert sorted(p.name for p in (out / "frames").iterdir()) == [c for c in _chain_ids(out)]
    assert not any("coffee" in p.name for p in (out / "frames").iterdir())  # nothing mixed
    solo = tmp_path / "solo"
    run_experiment(_cfg(solo))
    _assert_same_tables(out, solo)
    assert res.chains == 1


def _chain_ids(run: Path) -> list[str]:
    return sorted(pd.read_parquet(run / "chains.parquet")["chain_id"])


def test_non_empty_folder_without_a_run_is_refused_unless_allowed(tmp_path: Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"my photo")
    with pytest.raises(RunStoreError, match=r"non-empty folder that holds no run \(holiday"):
        run_experiment(_cfg(out))
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]  # not even a lock file
    run_experiment(_cfg(out), allow_nonempty=True)
    assert (out / "holiday.jpg").read_bytes() == b"my photo" and (out / "manifest.json").exists()


# ---- 9. output path problems: one RunStoreError line -----------------------------------------


def test_output_path_problems_are_one_clear_line(tmp_path: Path, monkeypatch, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, fix in ((afile, "the path is a file"), (afile / "sub", "is a file, not a folder")):
        code, lines = _main(
            [
                "run",
                "-i",
                "skimage:astronaut",
                "-u",
                "bicubic",
                "-g",
                "1",
                "-o",
                str(out),
                "--device",
                "cpu",
            ],
            monkeypatch,
            capsys,
        )
        assert code == 2 and len(lines) == 1 and str(out) in lines[0] and fix in lines[0], lines
    # read-only filesystems and full disks cannot be made here without root mounts: the
    # mapping of their OSErrors is checked directly
    for no, words in (
        (errno.EROFS, "read-only"),
        (errno.ENOSPC, "free disk space"),
        (errno.EDQUOT, "quota"),
        (errno.EACCES, "permissions"),
    ):
        e = path_error(tmp_path / "run", OSError(no, os.strerror(no)))
        assert isinstance(e, RunStoreError) and words in str(e) and "\n" not in str(e)
        assert str(tmp_path / "run") in str(e) and os.strerror(no) in str(e)


def test_atomic_writes_honour_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "b.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o600


def test_temp_files_left_by_a_kill_are_cleaned_at_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_experiment(_cfg(out))
    chain = _chain_ids(out)[0]
    left = [
        out / ".manifest.json.1a2b3c.tmp",
        out / "parts" / ".metrics-b0000-000002.x.tmp",
        out / "frames" / chain / ".g000002.png.dead.tmp",
        out / "checkpoints" / ".b0000.safetensors.beef.tmp",
    ]
    for p in left:
        p.write_bytes(b"half")
    before = {t: pd.read_parquet(out / t) for t in TABLES}
    run_experiment(_cfg(out), resume=True)
    assert not any(p.exists() for p in left)
    for t, df in before.items():
        assert_frame_equal(pd.read_parquet(out / t), df, check_exact=True)


# ---- 11 and 12: config types, names, limits ----------------------------------------------------


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"generations": True}, "'generations': must be a whole number, got true"),
        ({"generations": 99999999999999999999}, "'generations': must be <= 100000"),
        ({"generations": 0}, "'generations': must be >= 1"),
        ({"scales": [float("nan")]}, "'scales[0]': must be a finite number"),
        ({"max_batch": 10**6}, "'max_batch': must be <= 4096"),
        ({"frame_stride": 4.5}, "'frame_stride': must be a whole number"),
        ({"seed": -1}, "'seed': must be >= 0"),
        ({"metric_crop": [0, 0, 10]}, "'metric_crop': has the wrong number of values"),
        ({"metric_crop": [-1, 0, 10, 10]}, "'metric_crop[0]': must be >= 0"),
        ({"gnerations": 3}, "did you mean 'generations'"),
        ({"name": "../elsewhere"}, "'name': must be a plain folder name"),
        (
            {"image_names": {"skimage:astronaut": "A b"}},
            "'image_names[skimage:astronaut]': must be lower-case letters and digits joined",
        ),
        ({"upscalers": ["lanczso3"]}, "did you mean lanczos3"),
        ({"upscalers": ["RealESRGAN_x4plsu"]}, "did you mean realesrgan-x4plus"),
        ({"upscalers": ["/nonexistent/model.pth"]}, "weights file not found"),
        ({"upscalers": ["ncnn:/nonexistent/x.param"]}, "ncnn file /nonexistent/x.param not found"),
    ],
)
def test_config_values_are_taken_strictly(over: dict, words: str) -> None:
    with pytest.raises(ConfigError) as ei:
        make_config({**SMALL, **over})
    msg = str(ei.value)
    assert words in msg and "\n" not in msg and "<class" not in msg, msg


def test_single_values_are_one_item_lists(tmp_path: Path) -> None:
    p = tmp_path / "one.toml"
    p.write_text(
        'images = "skimage:astronaut"\nupscalers = "bicubic"\nscales = 2\n'
        'codecs = "jpeg:90"\nmetrics = "psnr"\n'
    )
    cfg = load_config(p)
    assert (cfg.images, cfg.upscalers, cfg.scales, cfg.codecs, cfg.metrics) == (
        ["skimage:astronaut"],
        ["bicubic"],
        [2.0],
        ["jpeg:90"],
        ["psnr"],
    )
    assert make_config({"images": "x.png", "upscalers": "bicubic"}).images == ["x.png"]


def test_cli_model_typo_and_huge_generations_exit_2(tmp_path, monkeypatch, capsys) -> None:
    base = ["run", "-i", "skimage:astronaut", "-o", str(tmp_path / "r"), "--device", "cpu"]
    code, lines = _main([*base, "-u", "realesrgan-x4plsu"], monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "did you mean realesrgan-x4plus" in lines[0]
    code, lines = _main([*base, "-g", "99999999999999999999"], monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "must be <= 100000" in lines[0]
    assert not (tmp_path / "r").exists()  # nothing created before the config was checked


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("generations = true", "must be a whole number"),
        ('upscalers = ["lanczos3x"]', "did you mean lanczos3"),
        ('upscalers = ["realesrgan-x4plsu"]', "did you mean realesrgan-x4plus"),
        ('downscalers = ["bicubik"]', "unknown kernel"),
        ('codecs = ["jepg:90"]', "jepg is no codec"),
        ('codecs = ["jpeg:85>wepb:80"]', "wepb is no codec"),
        ('perturbation = "nois:2"', "is no perturbation"),
    ],
)
def test_a_bad_config_is_refused_without_importing_torch(
    tmp_path: Path, body: str, says: str
) -> None:
    """Types, bounds and misspelt names are one line before torch loads (~10 s saved)."""
    p = tmp_path / "bad.toml"
    p.write_text(f'images = "skimage:coffee"\n{body}\n')
    code = (
        "import sys\nfrom roundtrip_ml.pipeline.config import load_config\n"
        "from roundtrip_ml.core.errors import ConfigError\n"
        f"try:\n    load_config({str(p)!r})\nexcept ConfigError as e:\n    print(e)\n"
        "print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True)
    assert r.stdout.splitlines()[-1] == "False", r.stdout + r.stderr
    assert says in r.stdout


# ---- 8 and 12: images -------------------------------------------------------------------------


def _png_claiming(w: int, h: int, bit_depth: int) -> bytes:
    """A tiny PNG whose header claims w x h (a decompression bomb's signature)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def test_bombs_are_refused_from_the_header_before_torch(tmp_path: Path) -> None:
    for bits in (16, 8):
        (tmp_path / f"bomb{bits}.png").write_bytes(_png_claiming(100_000, 100_000, bits))
    buf = io.BytesIO()
    Image.fromarray(photo_u8("astronaut", 64, 64)).save(buf, format="JPEG")
    jpeg = bytearray(buf.getvalue())
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)  # SOF0 height, width
    (tmp_path / "bomb.jpg").write_bytes(bytes(jpeg))
    code = (
        "import sys\nfrom roundtrip_ml.imaging.images import load_image\n"
        "from roundtrip_ml.core.errors import ImageError\n"
        f"for n in ('bomb16.png', 'bomb8.png', 'bomb.jpg'):\n"
        f"    try:\n        load_image({str(tmp_path)!r} + '/' + n, max_pixels=10**8)\n"
        "    except ImageError as e:\n        print(e)\n"
        "print('torch' in sys.modules)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120
    )
    lines = r.stdout.splitlines()
    assert lines[-1] == "False", r.stdout + r.stderr  # no decoder (torchvision) was reached
    assert len(lines) == 4 and all("over the 100000000-pixel limit" in ln for ln in lines[:3])
    assert "100000x100000" in lines[0] and "60000x60000" in lines[2]


def test_animations_and_multipage_files_use_the_first_frame_and_say_so(tmp_path: Path) -> None:
    frames = [Image.fromarray(photo_u8(n, 48, 48)) for n in ("astronaut", "coffee", "chelsea")]
    gif, tif = tmp_path / "anim.gif", tmp_path / "pages.tif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=50, loop=0)
    frames[0].save(tif, save_all=True, append_images=frames[1:])
    for path in (gif, tif):
        with pytest.warns(UserWarning, match="first of 3 frames"):
            x, info = load_image(path)
        assert any("first of 3 frames" in n for n in info.notes)
        first = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        assert torch.equal(x[0], torch.from_numpy(first).permute(2, 0, 1))


def test_a_large_icc_profile_names_the_limit_not_corruption(tmp_path: Path) -> None:
    p = tmp_path / "icc.png"
    Image.fromarray(photo_u8("astronaut", 16, 16)).save(p, icc_profile=b"\0" * (2 << 20))
    with pytest.raises(ImageError) as ei:
        load_image(p)
    assert "MAX_TEXT_CHUNK" in str(ei.value) and "corrupt" not in str(ei.value)


# ---- 4. tampered cached weights ----------------------------------------------------------------


def test_tampered_cached_weights_are_refused_with_both_hashes(tmp_path, monkeypatch) -> None:
    import hashlib

    from test_zoo import _tiny_weights, _write_registry

    from roundtrip_ml.core import weights
    from roundtrip_ml.upscalers import zoo
    from roundtrip_ml.upscalers.loading import load_upscaler

    data = _tiny_weights()
    monkeypatch.setenv(zoo.MODELS_ENV, str(_write_registry(tmp_path, data, False)))
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "tiny-compact.pth"
    cached.parent.mkdir()
    cached.write_bytes(data)
    good = load_upscaler("tiny-compact", device="cpu")  # verified, stamp written
    assert good.describe()["weights_sha256"] == hashlib.sha256(data).hexdigest()
    st = cached.stat()
    bad = bytearray(data)
    bad[-100] ^= 0x01  # same size ...
    cached.write_bytes(bytes(bad))
    os.utime(cached, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... same mtime: the stamp matches
    assert zoo.is_cached(zoo.get_entry("tiny-compact"))  # what used to be trusted
    with pytest.raises(WeightsError) as ei:
        load_upscaler("tiny-compact", device="cpu")
    msg = str(ei.value)
    assert hashlib.sha256(bytes(bad)).hexdigest() in msg and hashlib.sha256(data).hexdigest() in msg
    assert not zoo.is_cached(zoo.get_entry("tiny-compact"))  # the stamp is gone, re-hashed now
