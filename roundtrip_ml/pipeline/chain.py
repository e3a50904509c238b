"""The chain iterator: the one generation loop that every driver runs (the engine writes a run
directory, `roundtrip_ml.roundtrip` keeps a chain in memory), each through its own sink.

Written once so the drivers cannot drift: both check finiteness at the same points (every
flush: the checkpoint stride and the last generation, where the engine syncs with the host
anyway), measure at the same generations, and fingerprint every state. A driver that must
interleave batches (several size buckets in flight on one device) takes the generator
`ChainLoop.steps`; one that runs a batch to the end calls `ChainLoop.run`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from ..imaging.images import to_uint8
from ..imaging.perturb import replica_generator
from ..imaging.schedule import chain_seed
from ..upscalers import Upscaler
from .config import ExperimentConfig
from .measure import Measurer, MetricRows
from .plan import Batch, start_image
from .recipe import step_options
from .step import Fingerprinter, check_finite, generation_step


def start_images(
    cfg: ExperimentConfig, batch: Batch, pixels: dict[str, Tensor]
) -> tuple[Tensor, Tensor]:
    """(true originals, start images) of a batch's chains from the decoded inputs: each chain
    starts from its ``start`` (the photo, seeded noise or flat grey), replicas from seeded
    perturbed copies of it; an opaque input in an ``alpha = "carry"`` run gets an
    opaque alpha channel."""
    perturbation = cfg.specs().perturbation
    originals, starts = [], []
    for c in batch.chains:
        img = pixels[c.image]
        if cfg.alpha == "carry" and img.shape[1] == 3:
            img = torch.cat([img, torch.ones_like(img[:, :1])], dim=1)
        originals.append(img)
        img = start_image(c, img, cfg.seed)  # the photo, seeded noise or flat grey
        if c.replica:
            gen = replica_generator(cfg.seed, c.group, c.replica)
            img = torch.cat([perturbation.apply(img[:, :3], gen), img[:, 3:]], dim=1)
        starts.append(img)
    return torch.cat(originals), torch.cat(starts)


class ChainSink(Protocol):
    """Where a batch's results go. Frames arrive at the frame stride (plus 0, 1 and the last
    generation); everything else at a flush, after the finiteness check has passed."""

    def frame(self, generation: int, x: Tensor) -> None: ...

    def flush(self, flush: Flush) -> None: ...


@dataclass
class Flush:
    """What a sink records at a flush: the checked state and the rows since the last one."""

    generation: int
    state: Tensor
    first: Tensor
    rows: list[MetricRows]
    fingerprints: list[tuple[int, Tensor]]  # (generation, (N,) int64 on the device)


@dataclass
class ChainState:
    """Where a batch starts: generation 0 (``first`` is None) or a checkpoint."""

    generation: int
    x: Tensor
    first: Tensor | None = None


@dataclass
class ChainLoop:
    """One batch's chains through ``cfg.generations`` generations of one recipe."""

    cfg: ExperimentConfig
    batch: Batch
    upscaler: Upscaler
    measurer: Measurer
    fingerprint: Fingerprinter = field(default_factory=Fingerprinter)

    def seeds(self) -> list[int]:
        """One seed per chain; replicas share their group's codec draws."""
        return [chain_seed(self.cfg.seed, c.group) for c in self.batch.chains]

    def flushes_at(self, g: int) -> bool:
        return g % self.cfg.checkpoint_stride == 0 or g == self.cfg.generations

    def frames_at(self, g: int) -> bool:
        return g % self.cfg.frame_stride == 0 or g in (1, self.cfg.generations)

    def steps(self, original: Tensor, start: ChainState, sink: ChainSink) -> Iterator[int]:
        """Run the generations after ``start``, yielding each generation number once its
        work is enqueued (no host sync between flushes, so a driver may interleave batches)."""
        cfg, rec = self.cfg, self.batch.recipe
        schedule = cfg.specs().schedules[rec.codec]
        seeds = self.seeds()
        options = step_options(cfg, rec.stabilizer)  # stabiliser and stepped paths (recipe.py)
        x, first = start.x, start.first
        rows: list[MetricRows] = []
        prints: list[tuple[int, Tensor]] = []
        if start.generation == 0:
            prints.append((0, self.fingerprint(x)))
            sink.frame(0, x)
        finite = torch.ones((), dtype=torch.bool, device=x.device)
        for g in range(start.generation + 1, cfg.generations + 1):
            prev = x
            step = generation_step(
                prev,
                self.upscaler,
                rec.downscaler,
                rec.scale,
                schedule.handoff(g, seeds),
                cfg.fit,
                **options,
            )
            x, finite = step.state, finite & step.finite
            first = x if first is None else first
            prints.append((g, self.fingerprint(x)))
            if self.measurer.due(g):
                rows += self.measurer.measure(self.batch, g, x, original, prev, first, step.lowres)
            if self.frames_at(g):
                sink.frame(g, x)
            if self.flushes_at(g):
                check_finite(finite, self.upscaler.name, g)
                sink.flush(Flush(g, x, first, rows, prints))
                rows, prints = [], []
            yield g

    def run(self, original: Tensor, start: ChainState, sink: ChainSink) -> None:
        """All remaining generations of the batch, in order."""
        for _ in self.steps(original, start, sink):
            pass


class MemorySink:
    """rt.roundtrip's sink: frames and rows kept in memory (frames copied to the host)."""

    def __init__(self) -> None:
        self.frames: dict[int, Tensor] = {}
        self.rows: list[MetricRows] = []
        self.prints: list[tuple[int, Tensor]] = []

    def frame(self, generation: int, x: Tensor) -> None:
        self.frames[generation] = to_uint8(x)[0].cpu()

    def flush(self, flush: Flush) -> None:
        self.rows += flush.rows
        self.prints += flush.fingerprints
