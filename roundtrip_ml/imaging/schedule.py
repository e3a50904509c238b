"""Codec schedules: which handoff codec a chain's generation ``g`` goes through.

A re-sharing chain is rarely one fixed codec: platforms re-encode at varying quality, a picture
goes from JPEG to WebP and back, and each re-upload may move it by a pixel. A schedule spec says
which, parsed once (config validation, the engine) into a ``CodecSchedule``::

    jpeg:75                 fixed (any codec spec of ``roundtrip_ml.imaging.codecs``)
    jpeg:[90,85,95]         a list that cycles: g = 1, 2, 3, 4, ... -> 90, 85, 95, 90, ...
    jpeg:70-95              a quality drawn uniformly in 70..95 per generation, seeded
    jpeg:85>webp:80         stages that alternate (g odd: JPEG, g even: WebP); any stage may be
                            a list or range itself, advancing once per round of stages
    ...+shift / +shiftN     the codec grid moves by N px (default 1) right and down per
                            generation relative to the content (see ``grid_offset``)

Random qualities are a pure function of (chain seed, generation): a resumed chain draws the
same codecs without any stored RNG state. ``chain_seed(run_seed, chain_id)`` gives each chain
its own stream; chains in one batch may therefore use different codecs in one generation, and
``apply`` groups them by codec.

The grid shift pads the image by ``o`` px at the top and left (edge pixels repeated), encodes
and decodes the (H + o) x (W + o) image and crops the H x W content back: the content never
moves and nothing is lost, but every block boundary (JPEG 8/16 px, WebP 16, AVIF up to 128,
JPEG XL 8-256) falls somewhere new, as when a platform crops or offsets a re-upload by a pixel.
The offset ``(g * N) mod SHIFT_PERIOD`` cycles, so the padding stays small.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.errors import ConfigError
from .codecs import CODEC_SYNTAX, Codec, parse_codec

SHIFT_PERIOD = 64
SCHEDULE_SYNTAX = (
    f"a codec ({CODEC_SYNTAX}); a quality list jpeg:[90,85,95], a seeded range jpeg:70-95, "
    "stages joined by '>' (jpeg:85>webp:80), optionally ending in +shift or +shiftN"
)
_STAGE = re.compile(r"(?P<kind>[a-z]+):(?P<q>\[[^\]]*\]|\d+-\d+)(?P<tail>:.*)?")
_SHIFT = re.compile(r"\+shift(?P<n>\d*)")


def chain_seed(run_seed: int, chain_id: str) -> int:
    """A chain's own 63-bit seed for random schedules: stable across runs, resumes, machines."""
    digest = hashlib.blake2b(f"{run_seed}:{chain_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class Stage:
    """One stage: ``fixed`` (one spec), ``cycle`` (specs in turn) or ``random`` (one of the
    specs, uniformly, per use)."""

    mode: str
    specs: tuple[str, ...]

    def pick(self, use: int, generation: int, seed: int) -> str:
        """The spec for this stage's ``use``-th use (0-based), at ``generation``."""
        if self.mode == "random":
            rng = np.random.default_rng([seed, generation])
            return self.specs[int(rng.integers(len(self.specs)))]
        return self.specs[use % len(self.specs)]


class CodecSchedule:
    """A parsed schedule spec: ``at(g, seed)`` is generation g's codec, ``apply`` its handoff."""

    def __init__(
        self, spec: str, stages: tuple[Stage, ...], shift: int, jpeg_backend: str = "auto"
    ) -> None:
        self.spec = spec
        self.stages = stages
        self.shift = shift
        self.jpeg_backend = jpeg_backend
        self._codecs = {s: parse_codec(s, jpeg_backend) for st in stages for s in st.specs}

    @property
    def codecs(self) -> dict[str, Codec]:
        """Every codec the schedule may use, by spec (e.g. to record resolved JPEG backends)."""
        return dict(self._codecs)

    @property
    def is_fixed(self) -> bool:
        """One codec for every generation and no grid shift: a plain handoff codec."""
        return len(self._codecs) == 1 and self.shift == 0

    @property
    def period(self) -> int | None:
        """Generations after which the step repeats exactly (None: seeded random draws).

        Fixed-point and cycle detection on fingerprints needs it (``analysis.events``)."""
        k = len(self.stages)
        if any(st.mode == "random" for st in self.stages):
            return None
        p = math.lcm(*(k * len(st.specs) for st in self.stages))
        if self.shift:
            p = math.lcm(p, SHIFT_PERIOD // math.gcd(self.shift, SHIFT_PERIOD))
        return p

    @property
    def lossless_state(self) -> bool:
        """The chain's state is exact uint8 when every codec it may use yields uint8."""
        return all(c.lossless_state for c in self._codecs.values())

    def at(self, generation: int, seed: int = 0) -> Codec:
        """The codec of ``generation`` (1, 2, ...) for a chain seeded with ``seed``."""
        if generation < 1:
            raise ValueError(f"generations start at 1, got {generation}")
        k = len(self.stages)
        stage = self.stages[(generation - 1) % k]
        return self._codecs[stage.pick((generation - 1) // k, generation, seed)]

    def grid_offset(self, generation: int) -> int:
        """Pixels of padding (top and left) under the codec grid at ``generation``."""
        return (generation * self.shift) % SHIFT_PERIOD

    def apply(self, x: Tensor, generation: int, seeds: Sequence[int] | None = None) -> Tensor:
        """Generation ``generation``'s handoff of a batch; ``seeds``: one per image (0s)."""
        seeds = [0] * x.shape[0] if seeds is None else list(seeds)
        if len(seeds) != x.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for a batch of {x.shape[0]}")
        o = self.grid_offset(generation)
        if o:
            x = F.pad(x, (o, 0, o, 0), mode="replicate")
        codecs = [self.at(generation, s) for s in seeds]
        if all(c is codecs[0] for c in codecs):
            y = codecs[0](x)
        else:  # per-chain random draws: one call per distinct codec
            y = torch.empty_like(x)
            for c in {id(c): c for c in codecs}.values():
                idx = [i for i, ci in enumerate(codecs) if ci is c]
                y[idx] = c(x[idx])
        return y[..., o:, o:] if o else y

    def handoff(self, generation: int, seeds: Sequence[int] | None = None) -> Codec:
        """Generation ``generation``'s handoff as a ``Codec`` (for ``generation_step``)."""
        return _GenerationHandoff(self, generation, seeds)

    def describe(self) -> dict[str, Any]:
        """For the manifest: the spec, its stages, the shift, every codec it may use."""
        return {
            "name": self.spec,
            "stages": [{"mode": s.mode, "codecs": list(s.specs)} for s in self.stages],
            "shift_px_per_generation": self.shift,
            "shift_period": SHIFT_PERIOD,
            "random_seed": "chain_seed(run seed, chain id) and the generation",
            "codecs": {s: c.describe() for s, c in self.codecs.items()},
        }


class _GenerationHandoff(Codec):
    """A schedule bound to one generation and a batch's seeds, usable wherever a Codec is."""

    def __init__(
        self, schedule: CodecSchedule, generation: int, seeds: Sequence[int] | None
    ) -> None:
        self.schedule, self.generation, self.seeds = schedule, generation, seeds
        self.name = schedule.spec
        self.lossless_state = schedule.lossless_state

    def __call__(self, x: Tensor) -> Tensor:
        return self.schedule.apply(x, self.generation, self.seeds)

    def describe(self) -> dict[str, Any]:
        return self.schedule.describe()


def _stage(text: str) -> Stage:
    m = _STAGE.fullmatch(text)
    if m is None:
        return Stage("fixed", (text,))
    kind, q, tail = m["kind"], m["q"], m["tail"] or ""
    if q.startswith("["):
        items = [t.strip() for t in q[1:-1].split(",") if t.strip()]
        if not items:
            raise ValueError("empty quality list")
        return Stage("cycle", tuple(f"{kind}:{t}{tail}" for t in items))
    lo, hi = (int(t) for t in q.split("-"))
    if lo > hi:
        raise ValueError(f"empty range {lo}-{hi}")
    return Stage("random", tuple(f"{kind}:{v}{tail}" for v in range(lo, hi + 1)))


def step_period(codec_spec: str) -> int | None:
    """The period of a chain's generation step, from its codec spec (1 for a plain codec, or
    for a spec this version cannot parse: an older run's events keep their meaning)."""
    try:
        return parse_schedule(codec_spec).period
    except ConfigError:
        return 1


def parse_schedule(spec: str, jpeg_backend: str = "auto") -> CodecSchedule:
    """Parse a schedule spec once into a ``CodecSchedule``; ConfigError names the spec."""
    text = spec.strip().lower().replace(" ", "")
    shift = 0
    m = _SHIFT.search(text)
    if m is not None and m.end() == len(text):
        shift = int(m["n"] or 1)
        text = text[: m.start()]
    try:
        stages = tuple(_stage(t) for t in text.split(">"))
        return CodecSchedule(spec.strip(), stages, shift, jpeg_backend)
    except ValueError as e:
        problem = f"not a codec schedule ({e})"
    except ConfigError as e:
        if ">" not in text and not shift and _STAGE.fullmatch(text) is None:
            raise  # a plain codec spec: parse_codec's own message says it best
        problem = f"not a codec schedule ({e.what}: {e.problem})"
    raise ConfigError(f"codec {spec!r}", problem, f"use {SCHEDULE_SYNTAX}")
