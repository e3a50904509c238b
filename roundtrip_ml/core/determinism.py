"""Deterministic kernels for the length of a run, and the user's torch settings back after it.

ML chains are chaotic: two runs are comparable pixel by pixel only when every kernel is
deterministic, so runs switch it on by default. But torch's switches are process-global, and a
library that leaves them changed surprises a notebook user: `deterministic` restores them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def _flags() -> dict[str, Any]:
    return {
        "algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def _apply(f: dict[str, Any]) -> None:
    if torch.are_deterministic_algorithms_enabled() != f["algorithms"] or (
        torch.is_deterministic_algorithms_warn_only_enabled() != f["warn_only"]
    ):
        torch.use_deterministic_algorithms(f["algorithms"], warn_only=f["warn_only"])
    torch.backends.cudnn.deterministic = f["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = f["cudnn_benchmark"]
    torch.backends.cuda.matmul.allow_tf32 = f["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = f["cudnn_tf32"]
    if f["cublas"] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = f["cublas"]


@contextmanager
def deterministic(device: torch.device | str = "cpu", enabled: bool = True) -> Iterator[dict]:
    """Set torch's determinism switches for ``device`` inside the block; restore them after.

    Args:
        device: The device whose switches matter (CUDA: cuDNN, TF32, deterministic
            algorithms).
        enabled: False trades determinism for speed knowingly (cuDNN autotuning, TF32).

    Yields:
        What was set (the manifest records it).

    Examples:
        >>> import torch
        >>> before = torch.backends.cudnn.benchmark
        >>> with deterministic("cpu") as record:
        ...     record["deterministic"]
        True
        >>> torch.backends.cudnn.benchmark == before
        True
    """
    device = torch.device(device)
    saved = _flags()
    wanted = dict(saved)
    wanted.update(
        cudnn_deterministic=enabled,
        cudnn_benchmark=not enabled,
        matmul_tf32=not enabled,
        cudnn_tf32=not enabled,
    )
    if device.type == "cuda":  # CPU kernels are deterministic already (and the call costs ~2 s)
        wanted.update(algorithms=enabled, warn_only=True)
        if enabled and saved["cublas"] is None:
            wanted["cublas"] = ":4096:8"
    _apply(wanted)
    try:
        yield {
            "deterministic": enabled,
            "cudnn_benchmark": not enabled,
            "tf32": not enabled,
            "deterministic_algorithms": wanted["algorithms"],
            "cublas_workspace_config": wanted["cublas"],
        }
    finally:
        _apply(saved)
