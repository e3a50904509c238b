"""The plan: a config expanded into chains and device batches, with every input decoded once.

A chain is one image fed through one recipe; chains that share recipe and image size form one
N x 3 x H x W batch (replicas of a chain always share its batch). Planning reads every input
once and keeps the decoded pixels, so the engine never decodes an image again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..core.errors import ConfigError, ImageError
from ..core.specs import START_KINDS, steps_slug
from ..imaging.images import SAMPLE_PREFIX, ImageInfo, load_image
from ..imaging.perturb import replica_generator
from ..imaging.resample import resize
from .config import ExperimentConfig, expand_images
from .recipe import config_identity


@dataclass(frozen=True)
class Chain:
    """One image through one recipe. ``image`` is the source as given; ``image_name`` is the
    short, file-safe name used in ids and figure labels."""

    chain_id: str
    image: str
    image_name: str
    upscaler: str
    downscaler: str
    scale: float
    codec: str
    replica: int  # 0: the unperturbed chain; 1..K: perturbed copies of its start image
    group: str  # chain_id of the unperturbed chain this replica belongs to
    stabilizer: str = "none"  # canonical spec (core.specs.Stabilizer.spec)
    up_steps: str = ""  # "2x2": the upscale in stages; "": one stage
    downscale_steps: str = ""  # the same for the downscale
    start: str = "image"  # image | noise | flat (core.specs.START_KINDS)

    @property
    def recipe_key(self) -> tuple[Any, ...]:
        """What a device batch must share: everything a generation step reads."""
        return (
            self.upscaler,
            self.downscaler,
            self.scale,
            self.codec,
            self.stabilizer,
            self.up_steps,
            self.downscale_steps,
        )


@dataclass
class Batch:
    """Chains that share recipe and size, run together on the device."""

    batch_id: str
    chains: list[Chain]
    size: tuple[int, int]

    @property
    def recipe(self) -> Chain:
        return self.chains[0]


@dataclass
class Inputs:
    """Every input read once: decoded pixels (1 x C x H x W, after preprocessing), their
    provenance, and the error of each unreadable one (it fails its own chains, not the run)."""

    pixels: dict[str, Tensor]
    infos: dict[str, ImageInfo]
    errors: dict[str, str]

    @property
    def sizes(self) -> dict[str, tuple[int, int]]:
        return {src: (int(x.shape[-2]), int(x.shape[-1])) for src, x in self.pixels.items()}


@dataclass
class Plan:
    run_id: str
    chains: list[Chain]
    batches: list[Batch]
    inputs: Inputs
    batch_limits: dict[str, int] = field(default_factory=dict)  # bucket_key -> chains per batch

    @property
    def images(self) -> dict[str, ImageInfo]:
        return self.inputs.infos

    @property
    def image_errors(self) -> dict[str, str]:
        return self.inputs.errors


def slug(text: str) -> str:
    """A file-name-safe token: a path gives its stem, ``jpeg:90`` gives ``jpeg90``."""
    text = Path(text).stem if ("/" in text or "\\" in text) else text
    return re.sub(r"[^A-Za-z0-9]+", "", text).lower() or "x"


def codec_slug(spec: str) -> str:
    """``jpeg:90`` -> ``jpeg90``; a schedule (list, range, stages) also gets a short hash of
    its spec, since ``jpeg:[70,95]`` and ``jpeg:70-95`` would otherwise share a slug."""
    if not any(ch in spec for ch in "[->+"):
        return slug(spec)
    return f"{slug(spec)}{hashlib.sha256(spec.encode()).hexdigest()[:6]}"


def chain_id(
    image_name: str,
    upscaler: str,
    downscaler: str,
    scale: float,
    codec: str,
    *,
    stabilizer: str = "none",
    up_steps: list[float] | tuple[float, ...] | str | None = None,
    downscale_steps: list[float] | tuple[float, ...] | str | None = None,
    start: str = "image",
) -> str:
    """The one chain id (plan, the in-memory API and sweep cells all call this):
    ``image-upscaler-downscaler-xS-codec``, then a token per recipe part that is not at its
    default (``-d2x2``, ``-u2x2``, the stabiliser, ``-noise``), so older ids stay as they were.
    Replicas add ``-rK`` (plan), sweep cells ``-sSEED-gN`` (sweep.grid)."""
    cid = f"{image_name}-{slug(upscaler)}-{slug(downscaler)}-x{scale:g}-{codec_slug(codec)}"
    down = downscale_steps if isinstance(downscale_steps, str) else steps_slug(downscale_steps)
    up = up_steps if isinstance(up_steps, str) else steps_slug(up_steps)
    if down:
        cid += f"-d{down}"
    if up:
        cid += f"-u{up}"
    if stabilizer != "none":
        cid += f"-{slug(stabilizer)}"
    if start != "image":
        cid += f"-{start}"
    return cid


def step_paths(cfg: ExperimentConfig) -> dict[str, str]:
    """The config's stepped paths as Chain fields: ``{"up_steps": "2x2", ...}`` ("" if none)."""
    return {
        "up_steps": steps_slug(cfg.up_steps),
        "downscale_steps": steps_slug(cfg.downscale_steps),
    }


def run_id_for(cfg: ExperimentConfig) -> str:
    """Deterministic: the same config gives the same run_id, so resumed tables match."""
    identity = config_identity(cfg.to_json())
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{slug(cfg.name)}-{digest[:10]}"


def prepare_image(source: str, cfg: ExperimentConfig) -> tuple[Tensor, ImageInfo]:
    """Load one input and apply the config's preprocessing (max_side, then centre crop)."""
    x, info = load_image(
        source, alpha=cfg.alpha, background=cfg.background, max_pixels=cfg.max_pixels
    )
    return preprocess(x, info, cfg)


def preprocess(x: Tensor, info: ImageInfo, cfg: ExperimentConfig) -> tuple[Tensor, ImageInfo]:
    """The config's preprocessing of a decoded image (max_side, then centre crop), noted in
    ``info``: one place for files and in-memory images alike."""
    h, w = x.shape[-2:]
    if cfg.max_side and max(h, w) > cfg.max_side:
        f = cfg.max_side / max(h, w)
        x = resize(x.double(), (max(1, round(h * f)), max(1, round(w * f))), "lanczos3")
        x = x.clamp(0, 1).float()
        info.notes.append(f"shrunk to max side {cfg.max_side} (lanczos3)")
    if cfg.center_crop:
        ch, cw = cfg.center_crop
        h, w = x.shape[-2:]
        if ch > h or cw > w:
            raise ImageError(
                info.source, f"{w}x{h} is smaller than center_crop {cw}x{ch}", "lower center_crop"
            )
        top, left = (h - ch) // 2, (w - cw) // 2
        x = x[..., top : top + ch, left : left + cw]
        info.notes.append(f"centre crop {cw}x{ch} at ({left}, {top})")
    return x.contiguous(), info


def read_inputs(sources: list[str], cfg: ExperimentConfig) -> Inputs:
    """Decode and preprocess every source once; unreadable ones are recorded, not raised."""
    inputs = Inputs({}, {}, {})
    for src in sources:
        try:
            x, info = prepare_image(src, cfg)
        except ImageError as e:
            inputs.errors[src] = str(e)
            continue
        inputs.pixels[src], inputs.infos[src] = x, info
    return inputs


# (bucket key, its recipe, its size, chains in it) -> the most chains per batch
BatchLimit = Callable[[str, Chain, tuple[int, int], int], int]


def bucket_key(chain: Chain, size: tuple[int, int]) -> str:
    """Chains with the same key may share a device batch: same recipe (everything a generation
    step reads, `Chain.recipe_key`), same image size."""
    up, down, scale, codec, *rest = chain.recipe_key
    extra = "".join(f"|{v}" for v in rest if v not in (None, "none", ()))
    return f"{up}|{down}|x{scale:g}|{codec}{extra}|{size[0]}x{size[1]}"


def make_plan(cfg: ExperimentConfig, limit: BatchLimit | None = None) -> Plan:
    """Expand the config into chains and device batches: one bucket per recipe and size (the
    fewest batches that keep every chain's numbers exact: a convolutional model's output near
    an edge depends on any padding, so sizes are never padded together), split by ``limit``
    (default: ``max_batch``; see `batching.BatchSizer` for limits from free memory)."""
    inputs = read_inputs(expand_images(cfg.images), cfg)
    names = unique_names(list(inputs.pixels), cfg.image_names)
    chains: list[Chain] = []
    paths = step_paths(cfg)
    stabilizers = [s.spec for s in cfg.parsed_stabilizers().values()]
    for src, up, down, scale, codec, stab, start in product(
        inputs.pixels,
        cfg.upscalers,
        cfg.downscalers,
        cfg.scales,
        cfg.codecs,
        stabilizers,
        cfg.starts,
    ):
        base = chain_id(names[src], up, down, scale, codec, stabilizer=stab, start=start, **paths)
        for r in range(cfg.replicas + 1):
            cid = base if r == 0 else f"{base}-r{r}"
            chains.append(
                Chain(
                    cid,
                    src,
                    names[src],
                    up,
                    down,
                    scale,
                    codec,
                    r,
                    base,
                    stabilizer=stab,
                    start=start,
                    **paths,
                )
            )
    ids: dict[str, Chain] = {}
    for c in chains:
        if c.chain_id in ids:
            a = ids[c.chain_id]
            both = [
                f"{k}s {x!r} and {y!r}"
                for k, x, y in (
                    ("upscaler", a.upscaler, c.upscaler),
                    ("downscaler", a.downscaler, c.downscaler),
                    ("codec", a.codec, c.codec),
                )
                if x != y
            ] or ["the same entries"]
            raise ConfigError(
                f"chain id {c.chain_id!r}", f"{both[0]} give the same id", "list each recipe once"
            )
        ids[c.chain_id] = c
    return rebatch(Plan(run_id_for(cfg), chains, [], inputs), cfg, limit)


def rebatch(plan: Plan, cfg: ExperimentConfig, limit: BatchLimit | None = None) -> Plan:
    """The plan's chains grouped into buckets and split into batches by ``limit``."""
    sizes = plan.inputs.sizes
    groups: dict[str, list[list[Chain]]] = defaultdict(list)
    by_group: dict[str, list[Chain]] = defaultdict(list)
    for c in plan.chains:
        by_group[c.group].append(c)
    for members in by_group.values():
        # chains of several starts share a batch: a start is not in the step
        groups[bucket_key(members[0], sizes[members[0].image])].append(members)
    batches: list[Batch] = []
    limits: dict[str, int] = {}
    for key, member_lists in groups.items():
        recipe, size = member_lists[0][0], sizes[member_lists[0][0].image]
        n = sum(len(m) for m in member_lists)
        cap = limits[key] = limit(key, recipe, size, n) if limit else cfg.max_batch
        current: list[Chain] = []
        for members in member_lists:  # replicas of one chain always share a batch
            if current and len(current) + len(members) > cap:
                batches.append(Batch(f"b{len(batches):04d}", current, size))
                current = []
            current = current + members
        batches.append(Batch(f"b{len(batches):04d}", current, size))
    return Plan(plan.run_id, plan.chains, batches, plan.inputs, limits)


def start_image(chain: Chain, image: Tensor, seed: int) -> Tensor:
    """A chain's generation-0 image before any replica perturbation: the image itself, seeded
    uniform noise on 8-bit levels (the same noise for every recipe of one image and seed) or
    flat mid grey (128), each of the image's size; an alpha channel is kept."""
    if chain.start not in START_KINDS:
        raise ConfigError(f"start {chain.start!r}", "is no start", f"use {', '.join(START_KINDS)}")
    if chain.start == "image":
        return image
    rgb = image[:, :3]
    if chain.start == "flat":
        new = torch.full_like(rgb, 128 / 255)
    else:
        gen = replica_generator(seed, f"noise/{chain.image_name}", 0)
        levels = torch.randint(0, 256, tuple(rgb.shape), generator=gen)
        new = (levels.to(rgb.dtype) / 255.0).to(rgb.device)
    return torch.cat([new, image[:, 3:]], dim=1)


def image_name(source: str) -> str:
    """The short name of an input: the sample's name or the file's stem; a bare number (a
    numbered test set's ``1.tif``) gets its folder too (``kodak-1``), since "1" alone names
    nothing a reader can find."""
    if source.startswith(SAMPLE_PREFIX):
        return slug(source.removeprefix(SAMPLE_PREFIX))
    stem = slug(Path(source).stem)
    if stem.isdigit():
        return _with_folders(source, stem, 1)
    return stem


def _with_folders(source: str, stem: str, depth: int) -> str:
    """``stem`` prefixed by the last ``depth`` folder names of ``source`` (``a-butterfly``)."""
    parents = Path(source).expanduser().absolute().parent.parts[1:]
    folders = [slug(p) for p in parents[-depth:]] if depth else []
    return "-".join([*folders, stem])


def unique_names(sources: list[str], given: dict[str, str] | None = None) -> dict[str, str]:
    """Short, readable, unique names for figure labels and ids.

    Files that share a stem get the folders that tell them apart (``a/butterfly.png`` and
    ``b/butterfly.png`` become ``a-butterfly`` and ``b-butterfly``); no counter is ever
    appended, so a name cannot collide with another file's. Two inputs that still share a name
    (``a-butterfly.png`` beside ``a/butterfly.png``) are one error naming both files.
    ``given`` names some sources outright (a sweep's grid-wide names).
    """
    out = {s: image_name(s) for s in sources}
    by_name: dict[str, list[str]] = defaultdict(list)
    for s, n in out.items():
        by_name[n].append(s)
    for group in by_name.values():
        if len(group) < 2 or any(s.startswith(SAMPLE_PREFIX) for s in group):
            continue
        deepest = max(len(Path(s).expanduser().absolute().parent.parts) - 1 for s in group)
        for depth in range(1, deepest + 1):
            named = {s: _with_folders(s, slug(Path(s).stem), depth) for s in group}
            if len(set(named.values())) == len(group):
                out.update(named)
                break
    out.update({s: n for s, n in (given or {}).items() if s in out})
    seen: dict[str, str] = {}
    for s, n in out.items():
        if n in seen:
            raise ConfigError(
                f"images: {seen[n]!r} and {s!r}",
                f"both would be named {n!r} in chain ids and figures",
                "rename or move one of the two files",
            )
        seen[n] = s
    return out
