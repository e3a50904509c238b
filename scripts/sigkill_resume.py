"""The N-point SIGKILL test: kill a real `roundtrip run` at N points, resume, compare.

Each trial starts a fresh run of the same config, SIGKILLs it after the k-th generation event
(k spread evenly over the run, so kills land in generations, frame writes and checkpoint
writes alike), resumes it with --resume, and compares every table and frame byte for byte
with one uninterrupted run. It also checks that the resume left no temp file and no lock
holder behind. Minutes, not CI:

    PYTHONPATH=. python scripts/sigkill_resume.py            # 20 points
    PYTHONPATH=. python scripts/sigkill_resume.py --points 5 --keep /tmp/kills
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """
name = "sigkill"
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
TABLES = ("chains.parquet", "metrics.parquet", "fingerprints.parquet")


def _cmd(cfg: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "roundtrip_ml.cli", "run", str(cfg), "-o", str(out), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def files(root: Path) -> dict[str, bytes]:
    """Everything a result is made of: the tables and every frame, as bytes."""
    out = {str(p.relative_to(root)): p.read_bytes() for p in (root / "frames").rglob("*.png")}
    out.update({t: (root / t).read_bytes() for t in TABLES})
    return out


def kill_after(cfg: Path, out: Path, k: int) -> tuple[str, str]:
    """Start a run, SIGKILL it after its k-th generation event; (where it died, manifest status)."""
    proc = subprocess.Popen(
        _cmd(cfg, out, "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    seen, last = 0, ""
    for line in proc.stdout:
        ev = json.loads(line)
        if ev.get("event") == "generation":
            seen += 1
            last = f"{ev.get('batch_id', '?')} g{ev.get('generation', '?')}"
            if seen >= k:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait()
    status = (
        json.loads((out / "manifest.json").read_text())["status"]
        if (out / "manifest.json").exists()
        else "no manifest"
    )
    return (last if seen >= k else "finished before the kill"), status


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--keep", type=Path, help="work folder to keep (default: a temp folder)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="sigkill-"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "exp.toml"
    cfg.write_text(CONFIG)
    ref = work / "ref"
    t0 = time.perf_counter()
    r = subprocess.run(
        _cmd(cfg, ref, "--json", "--overwrite"), capture_output=True, text=True, env=_env()
    )
    if r.returncode != 0:
        print(r.stderr)
        return 1
    total = sum(1 for ln in r.stdout.splitlines() if json.loads(ln).get("event") == "generation")
    print(f"reference run: {total} generation events in {time.perf_counter() - t0:.1f} s")
    want = files(ref)
    identical = 0
    for i in range(args.points):
        k = max(1, round((i + 0.5) * total / args.points))
        out = work / f"kill{i:02d}"
        where, status = kill_after(cfg, out, k)
        resumed = subprocess.run(
            _cmd(cfg, out, "-q", "--resume"), capture_output=True, text=True, env=_env()
        )
        got = files(out) if resumed.returncode == 0 else {}
        diff = sorted(k2 for k2 in want.keys() | got.keys() if want.get(k2) != got.get(k2))
        temps = [str(p.relative_to(out)) for p in out.rglob(".*.tmp")]
        holder = (out / ".lock").read_text() if (out / ".lock").exists() else ""
        ok = resumed.returncode == 0 and not diff and not temps and not holder
        identical += ok
        print(
            f"point {i + 1:2d}/{args.points}: killed after event {k:3d} ({where}; manifest "
            f"{status}); resume exit {resumed.returncode}: "
            + (
                "identical"
                if ok
                else f"DIFFERENT {diff[:5]} temps={temps[:3]} "
                f"lock={holder!r} {resumed.stderr.strip()[-300:]}"
            ),
            flush=True,
        )
    print(f"{identical}/{args.points} identical to the uninterrupted run ({work})")
    return 0 if identical == args.points else 1


if __name__ == "__main__":
    sys.exit(main())
