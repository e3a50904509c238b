"""Typed values that configs are parsed into once and that the rest of the package receives.

Torch-free on purpose: the config imports this, and a config error must print before torch
loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from .errors import ConfigError

# Every option with a fixed set of values, written once: the config validates against these
# types, the CLI offers them as choices, and the rest of the package types its arguments with
# them. A Literal is the definition; the tuple beside it is the same set for code and messages.
Precision = Literal["fp32", "fp16", "bf16", "auto"]  # auto: bf16 on a GPU that supports it
CompileMode = Literal["default", "max-autotune", "reduce-overhead"]
JpegBackend = Literal["auto", "torchvision", "nvjpeg", "pillow", "imagecodecs"]
AlphaPolicy = Literal["composite", "drop", "carry"]  # carry: a 4th channel, classical only
FitPolicy = Literal["resize", "crop"]  # how a fixed-scale model's output reaches H x W
Reference = Literal["original", "previous", "first", "lowres", "replicas", "unperturbed"]
Executor = Literal["local", "local-gpus", "ray"]  # where a sweep's units run
Style = Literal["paper", "slides"]  # figure fonts and size
Layout = Literal["single", "double"]  # journal column widths
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
COMPILE_MODES: tuple[CompileMode, ...] = get_args(CompileMode)
JPEG_BACKENDS: tuple[JpegBackend, ...] = get_args(JpegBackend)
ALPHA_POLICIES: tuple[AlphaPolicy, ...] = get_args(AlphaPolicy)
FIT_POLICIES: tuple[FitPolicy, ...] = get_args(FitPolicy)
REFERENCES: tuple[Reference, ...] = get_args(Reference)
EXECUTORS: tuple[Executor, ...] = get_args(Executor)

# The first word of every handoff codec spec (``codecs.parse_codec`` parses the rest; the
# aliases name the same codec) and of every perturbation (``perturb.parse_perturbation``):
# checked before torch loads, and shown in errors and the CLI help.
CODEC_KINDS = ("float", "png", "jpeg", "webp", "avif", "jxl")
CODEC_ALIASES = {"none": "float", "jpg": "jpeg", "jpegxl": "jxl"}
CODEC_SYNTAX = (
    "float, png, jpeg:Q[:420|422|444[:BACKEND]] (Q in 1..100), webp:Q|lossless, "
    "avif:Q[:444]|lossless, jxl:Q|lossless"
)
PERTURBATION_KINDS = ("lsb", "noise", "shift", "jpeg")
PERTURBATION_SYNTAX = "lsb | noise:SIGMA (in 8-bit levels) | jpeg:Q | shift:PX"


def one_of(values: tuple[str, ...] | list[str]) -> str:
    """``a, b or c``: an allowed set in an error message or a help text."""
    items = [str(v) for v in values]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


@dataclass(frozen=True)
class InferenceOptions:
    """How an ML upscaler runs. Classical resamplers ignore all of it.

    Attributes:
        precision: Weights and activations dtype (fp16 falls back to fp32 on NaN/black
            output; "auto" is bf16 on a GPU that supports it, else fp32).
        tile: 0 = whole image, else the tile side in input pixels.
        tile_overlap: Pixels each tile shares with its neighbours (blended smoothly).
        channels_last: A memory layout that speeds up convolutions; results do not change.
        compile: ``torch.compile`` the forward; results do not change on one device.
        compile_mode: "reduce-overhead" captures the forward in CUDA graphs (a chain's shapes
            never change between generations, the case CUDA graphs exist for).
    """

    precision: Precision = "fp32"
    tile: int = 0
    tile_overlap: int = 16
    channels_last: bool = False
    compile: bool = False
    compile_mode: CompileMode = "default"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError("precision", f"{self.precision!r} is not {one_of(PRECISIONS)}")
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError("compile_mode",
                              f"{self.compile_mode!r} is not {one_of(COMPILE_MODES)}")
        if self.tile < 0 or self.tile_overlap < 0:
            raise ConfigError("tile", "tile and tile_overlap must be >= 0")


def unknown_codec_kinds(spec: str) -> list[str]:
    """The stage kinds of a codec schedule spec (``jpeg:85>webp:[80,90]+shift``) that are no
    codec: a cheap, torch-free first check of a config."""
    stages = re.sub(r"\+shift\d*$", "", spec.strip().lower()).split(">")
    kinds = (st.split(":", 1)[0] for st in stages)
    return [k for k in kinds if k not in CODEC_KINDS and k not in CODEC_ALIASES]
