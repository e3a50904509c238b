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


# Which engine runs an ML model: "torch" (any device), "ncnn" (the ncnn runtime on a CPU, for
# models whose weights are ncnn files), "auto" (the fastest measured path for the device: ncnn
# on a CPU where it applies, else torch; see upscalers/loading.choose_backend)
Backend = Literal["auto", "torch", "ncnn"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)


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
        backend: Which engine runs the model (``BACKENDS``); it never changes the weights,
            only the kernels (outputs agree to ~1e-5, so chains diverge after some
            generations, like CPU vs GPU).
        ncnn_limits: Overrides of the ncnn parser's size limits (config ``ncnn_limits``).
    """

    precision: Precision = "fp32"
    tile: int = 0
    tile_overlap: int = 16
    channels_last: bool = False
    compile: bool = False
    compile_mode: CompileMode = "default"
    ncnn_limits: tuple[tuple[str, int], ...] = ()  # NcnnLimits overrides (config ncnn_limits)
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError("backend", f"{self.backend!r} is not {one_of(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError("precision", f"{self.precision!r} is not {one_of(PRECISIONS)}")
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(
                "compile_mode", f"{self.compile_mode!r} is not {one_of(COMPILE_MODES)}"
            )
        if self.tile < 0 or self.tile_overlap < 0:
            raise ConfigError("tile", "tile and tile_overlap must be >= 0")


@dataclass(frozen=True)
class NcnnLimits:
    """What an ncnn file may ask for before anything is allocated for it: a .param/.bin pair is
    untrusted input (a few-kB .param can ask for gigabytes). Each limit is far above every
    model the PyPI wheels ship (largest: 999 layers, a 117 kB .param, a 33 MB .bin, about
    8 kB of live activations per input pixel); config key ``ncnn_limits`` raises them."""

    layers: int = 20_000
    param_bytes: int = 16 << 20
    bin_bytes: int = 2 << 30
    activation_bytes_per_pixel: int = 256 << 10

    def why(self, name: str) -> str:
        """The limit and its reason, for an error's fix."""
        reasons = {
            "layers": "each layer is interpreted in Python every generation; the largest "
            "shipped graph has 999",
            "param_bytes": "the largest shipped .param is 117 kB",
            "bin_bytes": "the .bin is read into memory whole; the largest shipped one is 33 MB",
            "activation_bytes_per_pixel": "a graph that needs more per input pixel would take a "
            "machine's memory on a real image; shipped models need "
            "at most 8 kB",
        }
        return (
            f"the limit is {getattr(self, name)} because {reasons[name]}; raise it with "
            f"ncnn_limits = {{{name} = N}} only for a file you trust"
        )

    @classmethod
    def of(cls, overrides: tuple[tuple[str, int], ...] | dict[str, int] | None) -> NcnnLimits:
        return cls(**dict(overrides or {}))


NcnnLimitKey = Literal["layers", "param_bytes", "bin_bytes", "activation_bytes_per_pixel"]


def unknown_codec_kinds(spec: str) -> list[str]:
    """The stage kinds of a codec schedule spec (``jpeg:85>webp:[80,90]+shift``) that are no
    codec: a cheap, torch-free first check of a config."""
    stages = re.sub(r"\+shift\d*$", "", spec.strip().lower()).split(">")
    kinds = (st.split(":", 1)[0] for st in stages)
    return [k for k in kinds if k not in CODEC_KINDS and k not in CODEC_ALIASES]


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
        raise ConfigError(
            f"stabilizer {spec!r}",
            "is no stabilizer",
            f"use one of: {', '.join(STABILIZER_KINDS[:-1])}, backproject:N",
        )
    if kind != "backproject":
        if arg:
            raise ConfigError(
                f"stabilizer {spec!r}", f"{kind} takes no argument", f"write {kind!r}"
            )
        return Stabilizer(kind)
    if not arg.isdigit() or not 1 <= int(arg) <= MAX_BACKPROJECT:
        raise ConfigError(
            f"stabilizer {spec!r}",
            "needs an iteration count",
            f"write backproject:N with 1 <= N <= {MAX_BACKPROJECT}, e.g. backproject:3",
        )
    return Stabilizer(kind, int(arg))


def check_steps(steps: list[float] | tuple[float, ...] | None, scale: float, key: str) -> None:
    """A path of steps (``up_steps = [2, 2]``) must multiply to the chain's scale."""
    if steps is None:
        return
    if not steps or any(s <= 1 for s in steps):
        raise ConfigError(
            f"key {key!r}", f"{list(steps)} must be factors > 1", f"e.g. {key} = [2, 2] for scale 4"
        )
    product = 1.0
    for s in steps:
        product *= s
    if abs(product - scale) > 1e-6 * scale:
        raise ConfigError(
            f"key {key!r}",
            f"{list(steps)} multiplies to {product:g}, not the scale {scale:g}",
            f"make the steps multiply to the scale, or set scales = [{product:g}]",
        )


def steps_slug(steps: list[float] | tuple[float, ...] | None) -> str:
    """``[2, 2]`` -> ``2x2``; ``[2, 1.5]`` -> ``2x1.5``: the token in chain ids. One step
    (``[4]``) is the plain path and gets no token: its pixels are the default's."""
    return "x".join(f"{s:g}" for s in steps) if steps and len(steps) > 1 else ""
