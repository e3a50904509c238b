"""Cores split between processes: sweep workers get cores // workers torch threads each, and
concurrent CPU runs lower their thread counts to their share while they overlap."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch

from roundtrip_ml.core import cpu
from roundtrip_ml.sweep.executors import (
    LocalExecutor,
    ProcessesExecutor,
    local_cpu_executor,
    make_executor,
)
from roundtrip_ml.sweep.grid import Unit


@pytest.fixture
def share_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private registration folder (other runs on this machine must not count here)."""
    d = tmp_path / "share"
    monkeypatch.setenv(cpu.SHARE_DIR_ENV, str(d))
    return d


def test_threads_per_worker_and_the_core_count(monkeypatch):
    assert [cpu.threads_per_worker(w, cores=8) for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    monkeypatch.setenv(cpu.CORES_ENV, "6")
    assert cpu.usable_cores() == 6 and cpu.threads_per_worker(4) == 1
    monkeypatch.setenv(cpu.CORES_ENV, "six")
    with pytest.raises(Exception, match="ROUNDTRIP_CPU_CORES: 'six' is not a whole number"):
        cpu.usable_cores()


def test_concurrent_runs_split_the_cores_while_they_overlap(share_dir, monkeypatch):
    monkeypatch.setenv(cpu.CORES_ENV, "4")
    (share_dir).mkdir()
    (share_dir / "123-1.lock").write_text("")  # left by a killed run: nobody holds its lock
    with cpu.CoreShare(cap=4) as a:
        assert a.threads(force=True) == 4  # alone (the stale file does not count)
        assert not (share_dir / "123-1.lock").exists()
        with cpu.CoreShare(cap=4) as b:
            assert a.threads(force=True) == 2 and b.threads(force=True) == 2
            with cpu.CoreShare(cap=1) as c:  # a capped run never gets more than its cap
                assert c.threads(force=True) == 1 and a.threads(force=True) == 1
        assert a.threads() == 1  # not recounted before every_s has passed
        assert a.threads(force=True) == 4  # b ended: a takes the cores back
    assert list(share_dir.glob("*.lock")) == []
    with cpu.CoreShare(cap=4, enabled=False) as gpu_run, cpu.CoreShare(cap=4) as d:
        assert d.threads(force=True) == 4 and gpu_run.threads(force=True) == 4  # GPU: uncounted


def _unit(tmp_path: Path, i: int) -> Unit:
    config = {
        "name": f"u{i}",
        "images": ["skimage:astronaut"],
        "upscalers": ["lanczos3"],
        "generations": 1,
        "center_crop": 16,
        "metrics": ["psnr"],
        "device": "cpu",
        "output": str(tmp_path / f"u{i}"),
    }
    return Unit(f"u{i}", config, [], (16, 16))


def test_cpu_workers_each_set_their_share_of_the_cores(tmp_path, share_dir, monkeypatch):
    """Two local CPU workers on a (declared) 4-core machine: each sets 2 torch threads, and
    each run records 2 in its manifest."""
    monkeypatch.setenv(cpu.CORES_ENV, "4")  # spawned workers inherit the environment
    ex = local_cpu_executor(2)
    assert isinstance(ex, ProcessesExecutor) and ex.capacity == 2 and ex.threads == 2
    ex.start([])
    try:
        units = [_unit(tmp_path, i) for i in range(2)]
        for u in units:
            ex.submit(u)
        done: dict[str, dict] = {}
        deadline = time.time() + 240
        while len(done) < 2 and time.time() < deadline:
            done.update(ex.wait(1.0))
    finally:
        ex.close()
    assert {o["status"] for o in done.values()} == {"complete"}, done
    assert [done[u.unit_id]["threads"] for u in units] == [2, 2]
    assert len({done[u.unit_id]["pid"] for u in units}) == 2  # two processes
    for u in units:
        manifest = json.loads((Path(u.config["output"]) / "manifest.json").read_text())
        assert manifest["environment"]["torch_threads"] == 2


def test_executor_choice_and_a_run_restores_the_callers_threads(tmp_path, share_dir, monkeypatch):
    monkeypatch.setenv(cpu.CORES_ENV, "2")
    assert isinstance(make_executor("local", device="cpu"), LocalExecutor)
    many = make_executor("local", device="cpu", workers=3)
    assert isinstance(many, ProcessesExecutor) and many.threads == 1  # 2 cores // 3, at least 1
    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.experiment import run_experiment

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with cpu.CoreShare(cap=2):  # another CPU run is alive: this one gets 2 // 2 = 1
            run_experiment(make_config(_unit(tmp_path, 9).config))
        manifest = json.loads((tmp_path / "u9" / "manifest.json").read_text())
        assert manifest["environment"]["torch_threads"] == 1
        assert torch.get_num_threads() == 2  # the caller's setting is back
    finally:
        torch.set_num_threads(before)


def _threads_seen(stop_at: int | None = None, other_run: bool = True):
    """A progress hook that registers another CPU run at the first generation and records
    this run's torch thread count at every event (optionally stopping at a generation)."""
    seen: list[int] = []
    stack = ExitStack()

    def hook(event: str, **d: object) -> None:
        if other_run and not stack._exit_callbacks:
            stack.enter_context(cpu.CoreShare(cap=2))  # another run starts
        seen.append(torch.get_num_threads())
        if event == "generation" and d["generation"] == stop_at:
            raise KeyboardInterrupt

    return hook, seen, stack


def test_a_deterministic_cpu_run_holds_its_thread_count_and_resumes_with_it(
    tmp_path, share_dir, monkeypatch
):
    """CPU convolutions sum differently with other thread splits, so a deterministic run keeps
    the count it started with when another run starts (the share is recounted at every event
    here), and a resumed run computes with the count recorded at its start; a run with
    deterministic = false gives cores back instead."""
    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.experiment import run_experiment

    monkeypatch.setenv(cpu.CORES_ENV, "2")
    ticks = iter(range(0, 10**9, 60))
    monkeypatch.setattr(cpu.time, "monotonic", lambda: next(ticks))  # recount at every call
    before = torch.get_num_threads()
    config = {**_unit(tmp_path, 7).config, "generations": 4, "checkpoint_stride": 1}
    try:
        torch.set_num_threads(2)
        hook, seen, stack = _threads_seen(stop_at=2)
        with stack, pytest.raises(KeyboardInterrupt):
            run_experiment(make_config(config), progress=hook)
        assert seen and set(seen) == {2}  # the other run did not change it mid-run
        manifest = json.loads((tmp_path / "u7" / "manifest.json").read_text())
        assert manifest["environment"]["torch_threads"] == 2

        torch.set_num_threads(1)  # resumed where only one thread is the caller's setting
        hook, seen, stack = _threads_seen(other_run=False)
        with stack:
            run_experiment(make_config(config), resume=True, progress=hook)
        assert seen and set(seen) == {2}  # computed as the first generations were

        torch.set_num_threads(2)
        loose = {**config, "deterministic": False, "output": str(tmp_path / "loose")}
        hook, seen, stack = _threads_seen()
        with stack:
            run_experiment(make_config(loose), progress=hook)
        assert seen[0] == 2 and seen[-1] == 1  # gave a core to the run that started
    finally:
        torch.set_num_threads(before)
