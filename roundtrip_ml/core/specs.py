"""Typed values that configs are parsed into once and that the rest of the package receives.

Torch-free on purpose: the config imports this, and a config error must print before torch
loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from .errors import ConfigError

# The first word of every handoff codec spec (``codecs.parse_codec`` parses the rest) and of
# every perturbation (``perturb.parse_perturbation``): checked before torch loads.
CODEC_KINDS = frozenset({"float", "none", "png", "jpeg", "jpg", "webp", "avif", "jxl", "jpegxl"})
PERTURBATION_KINDS = frozenset({"lsb", "noise", "shift", "jpeg"})

Precision = Literal["fp32", "fp16", "bf16", "auto"]
CompileMode = Literal["default", "max-autotune", "reduce-overhead"]


@dataclass(frozen=True)
class InferenceOptions:
    """How an ML upscaler runs. Classical resamplers ignore all of it.

    precision: weights and activations dtype (fp16 falls back to fp32 on NaN/black output;
    "auto" is bf16 on a GPU that supports it, else fp32);
    tile: 0 = whole image, else the tile side in input pixels (with ``tile_overlap``);
    channels_last / compile: speed options that do not change results on one device;
    compile_mode "reduce-overhead" captures the forward in CUDA graphs (a chain's shapes never
    change between generations, the case CUDA graphs exist for).
    """

    precision: Precision = "fp32"
    tile: int = 0
    tile_overlap: int = 16
    channels_last: bool = False
    compile: bool = False
    compile_mode: CompileMode = "default"

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16", "bf16", "auto"):
            raise ConfigError("precision", f"{self.precision!r} is not fp32, fp16, bf16 or auto")
        if self.compile_mode not in ("default", "max-autotune", "reduce-overhead"):
            raise ConfigError("compile_mode", f"{self.compile_mode!r} is not default, "
                              "max-autotune or reduce-overhead")
        if self.tile < 0 or self.tile_overlap < 0:
            raise ConfigError("tile", "tile and tile_overlap must be >= 0")


def unknown_codec_kinds(spec: str) -> list[str]:
    """The stage kinds of a codec schedule spec (``jpeg:85>webp:[80,90]+shift``) that are no
    codec: a cheap, torch-free first check of a config."""
    stages = re.sub(r"\+shift\d*$", "", spec.strip().lower()).split(">")
    return [k for k in (st.split(":", 1)[0] for st in stages) if k not in CODEC_KINDS]


# ---- recipe parts beyond upscaler/downscaler/scale/codec (issue 22) -------------------------
# Each value set is written here once; config validation, the CLI help and the docs read it.
STABILIZER_KINDS = ("none", "colour", "histogram", "wavelet", "backproject")
StartKind = Literal["image", "noise", "flat"]
START_KINDS: tuple[str, ...] = get_args(StartKind)
_COLOUR_ALIASES = {"color": "colour"}
MAX_BACKPROJECT = 100  # iterations; each costs one down- and one up-resample


@dataclass(frozen=True)
class Stabilizer:
    """What runs on each upscaled image before its handoff, pulling it back toward this
    generation's low-res input. ``iterations`` counts back-projection steps (0 otherwise)."""

    kind: str = "none"
    iterations: int = 0

    @property
    def spec(self) -> str:
        """The canonical spelling (what chain ids, tables and manifests record)."""
        return f"{self.kind}:{self.iterations}" if self.kind == "backproject" else self.kind

    @property
    def active(self) -> bool:
        return self.kind != "none"


def parse_stabilizer(spec: str) -> Stabilizer:
    """``none``, ``colour`` (or ``color``), ``histogram``, ``wavelet``, ``backproject:N``."""
    kind, _, arg = spec.strip().lower().partition(":")
    kind = _COLOUR_ALIASES.get(kind, kind)
    if kind not in STABILIZER_KINDS:
        raise ConfigError(f"stabilizer {spec!r}", "is no stabilizer",
                          f"use one of: {', '.join(STABILIZER_KINDS[:-1])}, backproject:N")
    if kind != "backproject":
        if arg:
            raise ConfigError(f"stabilizer {spec!r}", f"{kind} takes no argument",
                              f"write {kind!r}")
        return Stabilizer(kind)
    if not arg.isdigit() or not 1 <= int(arg) <= MAX_BACKPROJECT:
        raise ConfigError(f"stabilizer {spec!r}", "needs an iteration count",
                          f"write backproject:N with 1 <= N <= {MAX_BACKPROJECT}, e.g. "
                          "backproject:3")
    return Stabilizer(kind, int(arg))


def check_steps(steps: list[float] | tuple[float, ...] | None, scale: float, key: str) -> None:
    """A path of steps (``up_steps = [2, 2]``) must multiply to the chain's scale."""
    if steps is None:
        return
    if not steps or any(s <= 1 for s in steps):
        raise ConfigError(f"key {key!r}", f"{list(steps)} must be factors > 1",
                          f"e.g. {key} = [2, 2] for scale 4")
    product = 1.0
    for s in steps:
        product *= s
    if abs(product - scale) > 1e-6 * scale:
        raise ConfigError(f"key {key!r}", f"{list(steps)} multiplies to {product:g}, not the "
                          f"scale {scale:g}", f"make the steps multiply to the scale, or set "
                          f"scales = [{product:g}]")


def steps_slug(steps: list[float] | tuple[float, ...] | None) -> str:
    """``[2, 2]`` -> ``2x2``; ``[2, 1.5]`` -> ``2x1.5``: the token in chain ids. One step
    (``[4]``) is the plain path and gets no token: its pixels are the default's."""
    return "x".join(f"{s:g}" for s in steps) if steps and len(steps) > 1 else ""
