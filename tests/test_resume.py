"""Resume after SIGKILL: a killed run, resumed, ends byte-identical to an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roundtrip_ml.pipeline.store import RunStore

CONFIG = """
name = "resume"
images = ["skimage:astronaut", "skimage:coffee"]
upscalers = ["lanczos3"]
codecs = ["png", "jpeg:90", "float"]
generations = 24
frame_stride = 3
checkpoint_stride = 4
metrics = ["psnr", "ssim"]
max_side = 96
device = "cpu"
"""


def _run(cfg: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "roundtrip_ml.cli", "run", str(cfg), "-o", str(out), "-q", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _files(root: Path) -> dict[str, bytes]:
    frames = (p for p in (root / "frames").rglob("*.png") if p.is_file())
    out = {str(p.relative_to(root)): p.read_bytes() for p in frames}
    out["metrics.parquet"] = (root / "metrics.parquet").read_bytes()
    out["fingerprints.parquet"] = (root / "fingerprints.parquet").read_bytes()
    return out


def test_sigkill_then_resume_is_byte_identical(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(CONFIG)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert _run(cfg, ref).wait(timeout=600) == 0

    proc = _run(cfg, killed)
    deadline = time.time() + 300
    # wait until some checkpoints exist, then kill mid-generation without warning
    while time.time() < deadline and proc.poll() is None:
        ckpts = list((killed / "checkpoints").glob("*.safetensors"))
        if len(ckpts) >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    if proc.poll() is not None:
        pytest.fail("the run finished before it could be killed; make it longer")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    man = RunStore(killed).read_manifest()
    assert man["status"] == "running"
    done = [b["generations_done"] for b in man["batches"].values()]
    assert any(d < 24 for d in done)

    # a fresh run into the same directory is refused; --resume continues
    again = _run(cfg, killed)
    assert again.wait(timeout=60) == 2
    assert b"--resume" in again.communicate()[1]
    assert _run(cfg, killed, "--resume").wait(timeout=600) == 0

    a, b = _files(ref), _files(killed)
    assert a.keys() == b.keys()
    different = [k for k in a if a[k] != b[k]]
    assert not different, different
    assert RunStore(killed).read_manifest()["status"] == "complete"
