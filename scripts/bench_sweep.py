"""Sweep throughput: cells/s with the local and the Ray executor, and what scheduling costs.

The same cells run three ways: (1) one engine run holding every cell, in this process (no sweep
machinery: the floor), (2) `run_sweep` with the local executor, (3) `run_sweep` on a local Ray
with N CPU workers. Scheduling overhead per cell is (wall - ideal) / cells, where ideal is the
one-process wall divided by the number of workers; the ratio column is wall / one-process wall.

    python scripts/bench_sweep.py                       # 32 cells, 3 generations, 2 Ray CPUs
    python scripts/bench_sweep.py --images-per-unit 4   # fewer, larger units
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.experiment import run_experiment
from roundtrip_ml.sweep import RayExecutor, expand_cells, parse_sweep, run_sweep

IMAGES = ["skimage:astronaut", "skimage:coffee", "skimage:chelsea", "skimage:rocket"]


def grid(root: Path, args: argparse.Namespace) -> dict:
    return {
        "name": "bench",
        "output": str(root),
        "images": IMAGES,
        "upscalers": ["lanczos3", "bicubic"],
        "codecs": ["png", "jpeg:90"],
        "scales": [2, 4],
        "generations": args.generations,
        "max_side": 64,
        "center_crop": 40,
        "metrics": ["psnr", "ssim"],
        "device": "cpu",
        "sweep": {"threads": 1, "max_images_per_unit": args.images_per_unit},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--images-per-unit", type=int, default=1)
    ap.add_argument("--ray-cpus", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # every worker uses one thread; so does the baseline
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cfg = parse_sweep(grid(tmp_path / "local", args))
        n_cells = len(expand_cells(cfg))
        engine = {k: v for k, v in grid(tmp_path / "one", args).items() if k != "sweep"}
        t0 = time.perf_counter()
        run_experiment(make_config(engine), overwrite=True)
        base = time.perf_counter() - t0
        rows.append(("one process (engine only)", 1, base, 0.0))

        t0 = time.perf_counter()
        r = run_sweep(cfg, executor="local")
        rows.append(("sweep, local", 1, time.perf_counter() - t0, 0.0))
        units = len(r.outcomes)

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        try:  # cold: Ray starts worker processes (python + torch import); warm: reused
            for label in ("cold workers", "warm workers"):
                t0 = time.perf_counter()
                run_sweep(
                    parse_sweep(grid(tmp_path / label.replace(" ", "-"), args)),
                    executor=RayExecutor("cpu"),
                )
                rows.append(
                    (
                        f"sweep, ray x{args.ray_cpus}, {label}",
                        args.ray_cpus,
                        time.perf_counter() - t0,
                        ray_start,
                    )
                )
        finally:
            ray.shutdown()

    out = []
    for name, workers, wall, start in rows:
        ideal = base / workers
        out.append(
            {
                "executor": name,
                "workers": workers,
                "cells": n_cells,
                "units": units,
                "wall_s": round(wall, 2),
                "cells_per_s": round(n_cells / wall, 3),
                "ratio_to_one_process": round(wall / base, 2),
                "overhead_per_cell_s": round((wall - ideal) / n_cells, 3),
                "ray_start_s": round(start, 2) if start else None,
            }
        )
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{n_cells} cells in {units} units, {args.generations} generations, 40x40 crops, "
        f"psnr+ssim, torch threads 1 per worker, {torch.get_num_threads()} here"
    )
    print(f"ray.init: {ray_start:.2f} s (not included below)")
    print(f"{'executor':34} {'wall s':>7} {'cells/s':>8} {'ratio':>6} {'ovh/cell s':>10}")
    for o in out:
        print(
            f"{o['executor']:34} {o['wall_s']:7.2f} {o['cells_per_s']:8.3f} "
            f"{o['ratio_to_one_process']:6.2f} {o['overhead_per_cell_s']:10.3f}"
        )


if __name__ == "__main__":
    main()
