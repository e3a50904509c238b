"""Where units run, behind one small interface: in this process, one process per local GPU, or
Ray tasks. The runner keeps ``capacity`` units in flight, and collects outcomes with ``wait``;
retries, skipping and merging live in the runner, so every executor gets them for free.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from collections.abc import Callable
from typing import Any, Protocol

from ..core.cpu import threads_per_worker
from ..core.errors import ConfigError
from ..core.specs import EXECUTORS, one_of
from .grid import Unit
from .worker import WORKER_ENV, run_unit

Outcome = dict[str, Any]
OnWork = Callable[[str, int], None]  # (unit_id, chain-generations just done)


class Executor(Protocol):
    name: str

    def start(self, units: list[Unit]) -> None: ...

    @property
    def capacity(self) -> int: ...

    def submit(self, unit: Unit) -> None: ...

    def wait(self, timeout: float) -> list[tuple[str, Outcome]]: ...

    def close(self) -> None: ...


def _crash(error: str) -> Outcome:
    return {"status": "failed", "error": error, "retryable": True, "work": 0}


class LocalExecutor:
    """In this process, one unit after another, on the config's device. Live progress comes
    from the engine itself (every generation)."""

    name = "local"
    capacity = 1

    def __init__(self, threads: int | None = None, on_work: OnWork | None = None) -> None:
        self.threads = threads
        self.on_work = on_work
        self._todo: list[Unit] = []

    def start(self, units: list[Unit]) -> None:
        pass

    def submit(self, unit: Unit) -> None:
        self._todo.append(unit)

    def wait(self, timeout: float) -> list[tuple[str, Outcome]]:
        if not self._todo:
            return []
        unit = self._todo.pop(0)
        hook = None
        if self.on_work is not None:
            on_work, uid = self.on_work, unit.unit_id

            def hook(n: int) -> None:
                on_work(uid, n)

        return [(unit.unit_id, run_unit(unit.config, threads=self.threads, on_work=hook))]

    def close(self) -> None:
        pass


def _process_worker(env: dict[str, str], inbox: Any, outbox: Any) -> None:
    """A long-lived worker: env (CUDA_VISIBLE_DEVICES) is set before anything touches CUDA."""
    os.environ.update(env)
    while True:
        item = inbox.get()
        if item is None:
            return
        uid, config, threads = item
        outbox.put((uid, run_unit(config, threads=threads)))


class ProcessesExecutor:
    """One long-lived worker process per slot; each slot is the environment its worker gets.
    A worker that dies (segfault, OOM killer) is replaced and its unit reported as a crash.
    Workers are spawned, so a script that runs this executor needs the usual
    ``if __name__ == "__main__":`` guard (the CLI has it).

    Each worker sets ``threads`` torch threads; by default the cores split evenly between the
    workers (cores // workers): N workers with all cores each oversubscribe the CPU (measured:
    2 processes x 2 threads on 2 cores ran about 7x slower than one)."""

    def __init__(
        self, slots: list[dict[str, str]], threads: int | None = None, name: str = "processes"
    ) -> None:
        if not slots:
            raise ValueError("no worker slots")
        self.name = name
        self.slots = slots
        self.threads = threads or threads_per_worker(len(slots))
        self._ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited CUDA state
        self._outbox: Any = self._ctx.Queue()
        self._workers: list[Any] = [None] * len(slots)
        self._inboxes: list[Any] = [None] * len(slots)
        self._busy: dict[int, str] = {}  # slot -> unit_id

    @property
    def capacity(self) -> int:
        return len(self.slots)

    @property
    def pids(self) -> list[int | None]:
        """The worker processes' ids, by slot (for monitoring)."""
        return [p.pid if p is not None else None for p in self._workers]

    def _spawn(self, i: int) -> None:
        self._inboxes[i] = self._ctx.Queue()
        env = {**WORKER_ENV, **self.slots[i]}
        p = self._ctx.Process(
            target=_process_worker,
            args=(env, self._inboxes[i], self._outbox),
            name=f"roundtrip-sweep-{i}",
            daemon=True,
        )
        p.start()
        self._workers[i] = p

    def start(self, units: list[Unit]) -> None:
        for i in range(len(self.slots)):
            self._spawn(i)

    def submit(self, unit: Unit) -> None:
        i = next(i for i in range(len(self.slots)) if i not in self._busy)
        self._busy[i] = unit.unit_id
        self._inboxes[i].put((unit.unit_id, unit.config, self.threads))

    def wait(self, timeout: float) -> list[tuple[str, Outcome]]:
        done: list[tuple[str, Outcome]] = []
        try:
            done.append(self._outbox.get(timeout=timeout))
            while True:
                done.append(self._outbox.get_nowait())
        except queue.Empty:
            pass
        for uid, _ in done:
            self._busy = {i: u for i, u in self._busy.items() if u != uid}
        for i, uid in list(self._busy.items()):
            p = self._workers[i]
            if not p.is_alive():
                del self._busy[i]
                done.append((uid, _crash(f"worker process {i} died (exit code {p.exitcode})")))
                self._spawn(i)
        return done

    def close(self) -> None:
        for inbox in self._inboxes:
            if inbox is not None:
                inbox.put(None)
        for p in self._workers:
            if p is not None:
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (ids or UUIDs)."""
    import torch

    n = torch.cuda.device_count()
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None and given.strip():
        return [g.strip() for g in given.split(",") if g.strip()][:n]
    return [str(i) for i in range(n)]


def _check_device_for_workers(device: str, executor: str) -> None:
    if device not in ("auto", "cuda", "cuda:0"):
        raise ConfigError(
            f"device {device!r}",
            f"--executor {executor} gives each worker its own GPU, seen there as cuda:0",
            "set device = 'auto' or 'cuda' in the sweep config",
        )


def local_gpus_executor(device: str, threads: int | None = None) -> ProcessesExecutor:
    """One worker process per visible GPU, each seeing only its GPU."""
    _check_device_for_workers(device, "local-gpus")
    gpus = visible_gpus()
    if not gpus:
        raise ConfigError(
            "--executor local-gpus",
            "no CUDA GPU is visible on this machine (torch.cuda.device_count() is 0)",
            "use --executor local to run on this machine's CPU, or run where GPUs are visible",
        )
    return ProcessesExecutor([{"CUDA_VISIBLE_DEVICES": g} for g in gpus], threads, "local-gpus")


def local_cpu_executor(workers: int, threads: int | None = None) -> Executor:
    """``workers`` processes on this machine's CPU, splitting its cores (cores // workers torch
    threads each unless ``threads`` says otherwise); one worker runs in this process."""
    if workers < 1:
        raise ConfigError("workers", f"{workers} is not >= 1")
    if workers == 1:
        return LocalExecutor(threads)
    return ProcessesExecutor(
        [{"CUDA_VISIBLE_DEVICES": ""} for _ in range(workers)], threads, "local"
    )


def _ray_task(config: dict[str, Any], threads: int | None) -> Outcome:
    return run_unit(config, threads=threads)


class RayExecutor:
    """Ray tasks: one GPU each when the units run on CUDA, else one CPU each. Connects to
    ``address`` (or RAY_ADDRESS), joins a Ray already initialised in this process, or starts a
    local one. Every worker must see the sweep directory (a shared filesystem on a cluster)."""

    name = "ray"

    def __init__(
        self,
        device: str,
        address: str | None = None,
        threads: int | None = None,
        num_cpus: int | None = None,
    ) -> None:
        self.device = device
        self.address = address
        self.threads = threads
        self.num_cpus = num_cpus
        self._started_ray = False
        self._refs: dict[Any, str] = {}
        self._slots = 1

    def start(self, units: list[Unit]) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "--executor ray",
                "Ray is not installed",
                "pip install 'ray[default]' (or the roundtrip-ml[ray] extra)",
            ) from None
        if not ray.is_initialized():
            if self.address or os.environ.get("RAY_ADDRESS"):
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        res = ray.cluster_resources()
        gpus = int(res.get("GPU", 0))
        if self.device.startswith("cuda"):
            _check_device_for_workers(self.device, "ray")
            if not gpus:
                raise ConfigError(
                    "--executor ray",
                    f"device {self.device!r} but the Ray cluster has no GPU",
                    "use device = 'auto' or 'cpu'",
                )
        use_gpu = gpus > 0 and self.device != "cpu"
        if use_gpu:
            _check_device_for_workers(self.device, "ray")
        self._slots = max(1, gpus if use_gpu else int(res.get("CPU", 1)))
        env = dict(WORKER_ENV)
        from ..core.weights import CACHE_ENV, cache_dir

        env[CACHE_ENV] = str(cache_dir())  # the cache the driver filled (shared on a cluster)
        resources = {"num_gpus": 1} if use_gpu else {"num_cpus": 1}
        threads = self.threads or (None if use_gpu else 1)
        self._remote = ray.remote(_ray_task).options(
            **resources, max_retries=0, runtime_env={"env_vars": env}
        )
        self._threads = threads

    @property
    def capacity(self) -> int:
        return self._slots

    def submit(self, unit: Unit) -> None:
        self._refs[self._remote.remote(unit.config, self._threads)] = unit.unit_id

    def wait(self, timeout: float) -> list[tuple[str, Outcome]]:
        import ray

        if not self._refs:
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        done = []
        for ref in ready:
            uid = self._refs.pop(ref)
            try:
                done.append((uid, ray.get(ref)))
            except Exception as e:  # worker died, node lost, ...: the runner may retry
                done.append((uid, _crash(f"{type(e).__name__}: {str(e).splitlines()[0]}")))
        return done

    def close(self) -> None:
        if self._started_ray:
            import ray

            ray.shutdown()


def make_executor(
    name: str,
    *,
    device: str,
    address: str | None = None,
    threads: int | None = None,
    on_work: OnWork | None = None,
    workers: int = 1,
) -> Executor:
    """The executor called ``name``; ``workers`` > 1 runs that many local CPU worker processes
    (the cores split between them)."""
    if name == "local":
        return (
            LocalExecutor(threads, on_work)
            if workers == 1
            else local_cpu_executor(workers, threads)
        )
    if name == "local-gpus":
        return local_gpus_executor(device, threads)
    if name == "ray":
        return RayExecutor(device, address, threads)
    raise ConfigError(f"--executor {name!r}", "unknown executor", f"use {one_of(EXECUTORS)}")
