"""CPU cores and how torch threads are split between processes that share them.

Why: two torch processes with 2 threads each on a 2-core machine slowed a run about 7x (400
generations: 500 s instead of about 75 s): every parallel region waits for a thread that has no
core. So sweep workers get ``cores // workers`` threads each, and concurrent runs on one machine
(two `roundtrip run` in two shells, a run beside a sweep) lower their thread counts to their
share of the cores: each CPU run holds an ``flock`` on its own file in a shared folder; the
number of files locked is the number of runs alive (the kernel drops a dead process's lock, so a
killed run stops counting at once).

Torch-free: torch is told the count by the caller.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["CORES_ENV", "SHARE_DIR_ENV", "CoreShare", "threads_per_worker", "usable_cores"]

CORES_ENV = "ROUNDTRIP_CPU_CORES"  # override the core count (a container's CPU quota, tests)
SHARE_DIR_ENV = "ROUNDTRIP_CPU_SHARE_DIR"  # where concurrent runs register (default: temp dir)


def usable_cores() -> int:
    """The cores this process may run on: $ROUNDTRIP_CPU_CORES, else its affinity mask (what
    a container or `taskset` allows), else os.cpu_count()."""
    env = os.environ.get(CORES_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            from .errors import ConfigError

            raise ConfigError(
                CORES_ENV, f"{env!r} is not a whole number", "set it to the number of cores to use"
            ) from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads for each of ``workers`` processes sharing the cores: cores // workers,
    at least 1 (more workers than cores oversubscribe anyway; one thread each is the least)."""
    return max(1, (cores or usable_cores()) // max(1, workers))


def _share_dir() -> Path:
    env = os.environ.get(SHARE_DIR_ENV)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(env) if env else Path(tempfile.gettempdir()) / f"roundtrip-ml-cpu-{uid}"


class CoreShare:
    """This process's registration as a CPU run, and its share of the cores.

    ``threads()`` is cores // (runs alive), at most ``cap`` (what the caller had set: a sweep
    worker's split or the user's choice is never raised). Counting is re-done at most every
    ``every_s`` seconds, so a long run can give threads back when another run starts and take
    them again when it ends (a deterministic run does not ask: pipeline/experiment.py).
    """

    def __init__(self, cap: int, every_s: float = 5.0, *, enabled: bool = True) -> None:
        self.enabled = enabled  # False: a GPU run, which neither counts nor is counted
        self.cap = max(1, cap)
        self.every_s = every_s
        self._fd: int | None = None
        self._path: Path | None = None
        self._checked = 0.0
        self._threads = self.cap

    def __enter__(self) -> CoreShare:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): each run assumes it is alone
            return self
        if not self.enabled:
            return self
        folder = _share_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            stem = f"{os.getpid()}-{time.time_ns()}"
            tmp = folder / f"{stem}.new"  # locked before it gets the name others count
            self._fd = os.open(tmp, os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._path = folder / f"{stem}.lock"
            tmp.rename(self._path)
        except OSError:  # an unwritable temp dir must not stop a run: it counts itself only
            if self._fd is not None:
                os.close(self._fd)
            self._fd = self._path = None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            if self._path is not None:
                self._path.unlink(missing_ok=True)
            self._fd = self._path = None

    def runs_alive(self) -> int:
        """Registered runs whose process still holds its lock (this one included)."""
        if self._fd is None or self._path is None:
            return 1
        import fcntl

        alive = 1
        for p in self._path.parent.glob("*.lock"):
            if p == self._path:
                continue
            try:
                fd = os.open(p, os.O_RDWR)
            except OSError:
                continue  # removed meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                alive += 1  # held: that run is alive
            else:
                p.unlink(missing_ok=True)  # left by a killed run
            finally:
                os.close(fd)
        return alive

    def threads(self, *, force: bool = False) -> int:
        """This run's thread count now (recounted when ``every_s`` has passed, or ``force``)."""
        now = time.monotonic()
        if force or now - self._checked >= self.every_s:
            self._checked = now
            self._threads = min(self.cap, threads_per_worker(self.runs_alive()))
        return self._threads
