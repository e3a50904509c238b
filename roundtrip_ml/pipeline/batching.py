"""Batch sizes from memory: how many chains of one recipe and size fit the device at once.

At the start of a run each bucket (chains sharing recipe and image size) gets a batch limit:
``MEMORY_FRACTION`` of the device's free memory (the host's available RAM on a CPU) divided
by what one chain needs during a generation, capped by ``max_batch``. What a chain needs is
measured, not guessed per model: a short probe runs one generation of the real loop (the model
at the run's precision, handoffs, metrics, fingerprint) at two small sizes and fits peak bytes
as ``fixed + per_pixel * pixels``, which holds for convolutional and windowed models alike.
The limits go into the manifest and a resume reuses them, so it batches the same way on any
machine; the out-of-memory back-off (smaller tiles) stays as the safety net.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..core.errors import RoundtripError
from ..core.info import free_memory
from ..imaging.images import quantize8
from ..upscalers import Upscaler
from .chain import ChainLoop, ChainState, Flush
from .config import ExperimentConfig
from .measure import Measurer
from .plan import Batch, BatchLimit, Chain

MEMORY_FRACTION = 0.6  # the rest: decoded inputs, frame copies, allocator slack, the OS
PROBE_SIDES = (64, 128)  # output sides of the probe's square images


class LiveBytes(TorchDispatchMode):
    """Peak bytes of tensor storage alive during a block, for devices whose allocator keeps
    no statistics (the CPU): every op's new storages are counted until their tensor dies."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = self.peak = 0

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(t, self._free, key)
        return out


def peak_bytes(fn: Callable[[], Any], device: torch.device) -> int:
    """Bytes ``fn`` allocates at its peak beyond what was allocated before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    with LiveBytes() as tracker:
        fn()
    return tracker.peak


class _NullSink:
    def frame(self, generation: int, x: Tensor) -> None:
        pass

    def flush(self, flush: Flush) -> None:
        pass


@contextmanager
def _eager(up: Upscaler) -> Iterator[None]:
    """Probe a compiled model eagerly: compiling for two throwaway shapes would cost minutes
    on a GPU, and an eager pass needs at least the memory of a compiled one."""
    compiled = getattr(up, "_compiled", None)
    if compiled is None:
        yield
        return
    up._compiled = None  # type: ignore[attr-defined]
    try:
        yield
    finally:
        up._compiled = compiled  # type: ignore[attr-defined]


def _probe_generation(
    cfg: ExperimentConfig,
    up: Upscaler,
    measurer: Measurer,
    recipe: Chain,
    side: int,
    device: torch.device,
) -> None:
    """One generation of the real loop on a seeded side x side image."""
    chain = replace(recipe, chain_id="probe", image="probe", replica=0, group="probe")
    batch = Batch("probe", [chain], (side, side))
    g = torch.Generator().manual_seed(0)
    x = (quantize8(torch.rand(1, 3, side, side, generator=g)) / 255).to(device)
    loop = ChainLoop(cfg, batch, up, measurer)
    with torch.no_grad(), _eager(up):
        next(loop.steps(x, ChainState(0, x), _NullSink()))


@dataclass
class ChainMemory:
    """What one more chain costs: ``fixed + per_pixel * H * W`` bytes, once for the batch
    (workspace) and per chain (activations, state)."""

    fixed: float
    per_pixel: float

    def batch_bytes(self, n: int, size: tuple[int, int]) -> float:
        return self.fixed + n * self.per_pixel * size[0] * size[1]


def chain_memory(
    cfg: ExperimentConfig, up: Upscaler, measurer: Measurer, recipe: Chain, device: torch.device
) -> ChainMemory:
    """Probe one generation at two sizes and fit bytes against pixels."""
    probe_cfg = cfg.model_copy(
        update={
            "region_metrics": False,
            "replicas": 0,
            "metric_crop": None,
            "generations": 2,
            "checkpoint_stride": 2,
            "frame_stride": 2,
        }
    )
    m = copy.copy(measurer)
    m.cfg = probe_cfg
    points = []
    for side in PROBE_SIDES:

        def probe(side: int = side) -> None:
            _probe_generation(probe_cfg, up, m, recipe, side, device)

        points.append((side * side, peak_bytes(probe, device)))
    (p1, b1), (p2, b2) = points
    per_pixel = max((b2 - b1) / (p2 - p1), b2 / p2 / 4, 1.0)
    return ChainMemory(max(0.0, b2 - per_pixel * p2), per_pixel)


@dataclass
class BatchSizer:
    """The plan's batch limit from free memory, probing each (upscaler, scale, size) once;
    ``details`` is what the manifest records next to the limits."""

    cfg: ExperimentConfig
    device: torch.device
    upscaler: Callable[[str], Upscaler]
    measurer: Measurer
    free: int | None = None
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    _memory: dict[tuple[str, float], ChainMemory | str] = field(default_factory=dict)

    def __call__(self, key: str, recipe: Chain, size: tuple[int, int], chains: int) -> int:
        cap = self.cfg.max_batch
        if chains <= 1:  # nothing to decide: one chain is one batch
            return cap
        if self.free is None:
            self.free = free_memory(self.device)
        budget = MEMORY_FRACTION * self.free
        mem_key = (recipe.upscaler, recipe.scale)
        if mem_key not in self._memory:
            try:
                self._memory[mem_key] = chain_memory(
                    self.cfg, self.upscaler(recipe.upscaler), self.measurer, recipe, self.device
                )
            except (RoundtripError, RuntimeError) as e:  # the batch fails on its own later
                self._memory[mem_key] = f"probe failed ({str(e).splitlines()[0][:200]})"
        mem = self._memory[mem_key]
        detail: dict[str, Any] = {
            "free_bytes": self.free,
            "fraction": MEMORY_FRACTION,
            "max_batch": cap,
        }
        if isinstance(mem, str):
            limit = cap
            detail["note"] = mem
        else:
            one = mem.batch_bytes(1, size)
            fits = math.floor((budget - mem.fixed) / (mem.per_pixel * size[0] * size[1]))
            limit = max(1, min(cap, fits))
            detail |= {
                "chain_bytes": round(one),
                "fixed_bytes": round(mem.fixed),
                "bytes_per_pixel": round(mem.per_pixel, 1),
            }
            if fits < 1:
                detail["note"] = (
                    "one chain exceeds the budget: the out-of-memory back-off "
                    "(smaller tiles) will have to make it fit"
                )
        detail["limit"] = limit
        self.details[key] = detail
        return limit


def stored_limits(limits: dict[str, int], cap: int) -> BatchLimit:
    """A resume batches as the run started: the recorded limits (runs from before limits
    were recorded batched by ``max_batch`` alone)."""
    return lambda key, recipe, size, chains: limits.get(key, cap)
