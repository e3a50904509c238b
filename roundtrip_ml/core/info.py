"""What machine and software a run used: for the manifest and `roundtrip info`."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError

PACKAGES = (
    "roundtrip-ml",
    "torch",
    "torchvision",
    "numpy",
    "pillow",
    "spandrel",
    "piq",
    "torchmetrics",
    "scikit-image",
    "pandas",
    "pyarrow",
    "safetensors",
    "av",
    "ncnn",
    "lpips",
    "pyiqa",
    "ray",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_revision() -> str | None:
    """The source tree's commit (and '+dirty'), when the package runs from a git checkout."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "-uno"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> the first CUDA device if there is one, else the CPU; checks cuda:N exists."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ConfigError(
            f"device {spec!r}", "not a device", "use auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r}", "CUDA is not available here", "use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {spec!r}",
                f"only {torch.cuda.device_count()} GPUs visible",
                "pick a lower index",
            )
    elif dev.type not in ("cpu", "mps"):
        raise ConfigError(f"device {spec!r}", "unsupported device type", "use cpu or cuda[:N]")
    return dev


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def environment(device: torch.device | None = None) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "torch_threads": torch.get_num_threads(),
        "git_revision": git_revision(),
    }
    if device is not None:
        env["device"] = str(device)
        env["device_name"] = device_name(device)
    return env


def free_memory(device: torch.device) -> int:
    """Bytes a run may still allocate on ``device``: on CUDA the driver's free memory plus what
    torch's caching allocator holds but does not use; elsewhere the host's available RAM
    (MemAvailable: free plus reclaimable caches), since CPU tensors live there."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(0, cached))
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # no way to tell: assume a small machine
        return 2 << 30
