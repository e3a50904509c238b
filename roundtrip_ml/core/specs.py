"""Typed values that configs are parsed into once and that the rest of the package receives.

Torch-free on purpose: the config imports this, and a config error must print before torch
loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError

# The first word of every handoff codec spec (``codecs.parse_codec`` parses the rest) and of
# every perturbation (``perturb.parse_perturbation``): checked before torch loads.
CODEC_KINDS = frozenset({"float", "none", "png", "jpeg", "jpg", "webp", "avif", "jxl", "jpegxl"})
PERTURBATION_KINDS = frozenset({"lsb", "noise", "shift", "jpeg"})

Precision = Literal["fp32", "fp16", "bf16", "auto"]
CompileMode = Literal["default", "max-autotune", "reduce-overhead"]
# Which engine runs an ML model: "torch" (any device), "ncnn" (the ncnn runtime on a CPU, for
# models whose weights are ncnn files), "auto" (the fastest measured path for the device: ncnn
# on a CPU where it applies, else torch; see upscalers/loading.choose_backend)
Backend = Literal["auto", "torch", "ncnn"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "ncnn")


@dataclass(frozen=True)
class InferenceOptions:
    """How an ML upscaler runs. Classical resamplers ignore all of it.

    precision: weights and activations dtype (fp16 falls back to fp32 on NaN/black output;
    "auto" is bf16 on a GPU that supports it, else fp32);
    tile: 0 = whole image, else the tile side in input pixels (with ``tile_overlap``);
    channels_last / compile: speed options that do not change results on one device;
    compile_mode "reduce-overhead" captures the forward in CUDA graphs (a chain's shapes never
    change between generations, the case CUDA graphs exist for);
    backend: which engine runs the model (``BACKENDS``); it never changes the weights, only the
    kernels (outputs agree to ~1e-5, so chains diverge after some generations like CPU vs GPU).
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
            raise ConfigError("backend", f"{self.backend!r} is not {', '.join(BACKENDS)}")
        if self.precision not in ("fp32", "fp16", "bf16", "auto"):
            raise ConfigError("precision", f"{self.precision!r} is not fp32, fp16, bf16 or auto")
        if self.compile_mode not in ("default", "max-autotune", "reduce-overhead"):
            raise ConfigError("compile_mode", f"{self.compile_mode!r} is not default, "
                              "max-autotune or reduce-overhead")
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
        return (f"the limit is {getattr(self, name)} because {reasons[name]}; raise it with "
                f"ncnn_limits = {{{name} = N}} only for a file you trust")

    @classmethod
    def of(cls, overrides: tuple[tuple[str, int], ...] | dict[str, int] | None) -> NcnnLimits:
        return cls(**dict(overrides or {}))


NcnnLimitKey = Literal["layers", "param_bytes", "bin_bytes", "activation_bytes_per_pixel"]


def unknown_codec_kinds(spec: str) -> list[str]:
    """The stage kinds of a codec schedule spec (``jpeg:85>webp:[80,90]+shift``) that are no
    codec: a cheap, torch-free first check of a config."""
    stages = re.sub(r"\+shift\d*$", "", spec.strip().lower()).split(">")
    return [k for k in (st.split(":", 1)[0] for st in stages) if k not in CODEC_KINDS]
