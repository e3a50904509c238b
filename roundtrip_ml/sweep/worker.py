"""One unit, run in whatever process an executor chose: in-process, a GPU worker, a Ray task.

The outcome is a plain dict (it crosses process boundaries). A unit whose run directory is
complete is skipped without loading anything; a partial one resumes from its checkpoints, so a
crash anywhere costs at most one checkpoint stride of one unit.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

WORKER_ENV = {"ROUNDTRIP_OFFLINE": "1"}  # workers never download: the driver fetched weights


def run_unit(
    config: dict[str, Any],
    *,
    threads: int | None = None,
    on_work: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run, resume or skip one unit; ``on_work(n)`` hears of n chain-generations done."""
    import torch

    from ..core.errors import RoundtripError
    from ..pipeline.config import make_config
    from ..pipeline.experiment import run_experiment
    from ..pipeline.store import RunStore

    t0 = time.perf_counter()
    out: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "work": 0}
    if threads:
        torch.set_num_threads(threads)
    out["threads"] = torch.get_num_threads()  # the cap; a CPU run lowers it to its core share
    store = RunStore(config["output"])
    try:
        if store.is_complete():
            return {**out, "status": "skipped", "wall_s": 0.0}
    except RoundtripError as e:  # a damaged manifest: one line, no retry
        return {**out, "status": "failed", "error": str(e), "retryable": False, "wall_s": 0.0}

    def progress(event: str, **d: Any) -> None:
        if event == "generation":
            n = len(d["batch"].chains)
            out["work"] += n
            if on_work is not None:
                on_work(n)

    try:
        cfg = make_config(config, f"unit {store.root.name}")
        resumed = store.exists()
        result = run_experiment(cfg, resume=resumed, progress=progress)
    except RoundtripError as e:  # the same inputs would fail the same way: no retry
        return {
            **out,
            "status": "failed",
            "error": str(e),
            "retryable": False,
            "wall_s": time.perf_counter() - t0,
        }
    except Exception as e:  # a crash or a bug: worth another attempt
        return {
            **out,
            "status": "failed",
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
            "retryable": True,
            "wall_s": time.perf_counter() - t0,
        }
    return {
        **out,
        "status": store.read_manifest()["status"],
        "resumed": resumed,
        "failed": result.failed,
        "image_errors": result.image_errors,
        "wall_s": time.perf_counter() - t0,
    }
