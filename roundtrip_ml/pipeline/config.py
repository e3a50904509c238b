"""The experiment config: TOML or YAML in, a typed and fully resolved config out.

Every CLI flag of ``roundtrip run`` maps to one key here (``--set key=value`` reaches any key).
A bad key or value raises ConfigError naming the key and what is allowed.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, field_validator

from ..core.errors import ConfigError
from ..core.specs import (
    CODEC_KINDS,
    PERTURBATION_KINDS,
    AlphaPolicy,
    Backend,
    CompileMode,
    FitPolicy,
    InferenceOptions,
    JpegBackend,
    NcnnLimitKey,
    Precision,
    one_of,
    unknown_codec_kinds,
)
from ..imaging.images import SAMPLE_PREFIX
from ..imaging.photosets import PREFIX as PHOTOSET_PREFIX
from .config_errors import format_error
from .config_file import read_mapping
from .inputs import expand_images as expand_images  # its home is inputs.py
from .recipe import RecipeKeys, check_recipe

if TYPE_CHECKING:  # parsed lazily: a config error prints before torch loads
    from ..imaging.perturb import Perturbation
    from ..imaging.schedule import CodecSchedule

# Strict ints: `generations = true` or `4.5` is a mistake, not 1 or 4. Upper bounds carry their
# reason in config_errors.WHY, so an error says why a number is refused, not only that it is.
PositiveInt = Annotated[int, Field(ge=1, strict=True)]
NonNegInt = Annotated[int, Field(ge=0, strict=True)]
Count = Annotated[int, Field(ge=1, le=100_000, strict=True)]  # generations and strides
Side = Annotated[int, Field(ge=1, le=1_000_000, strict=True)]
Offset = Annotated[int, Field(ge=0, le=1_000_000, strict=True)]
Number = Annotated[float, Field(strict=True)]  # an int is a number; "4" (text) is not


def _label(v: str) -> str:
    """An input's short name as ``plan.image_name`` makes them (it goes into file names)."""
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", v):
        raise ValueError("must be lower-case letters and digits joined by single hyphens, like a-x")
    return v


ImageLabel = Annotated[str, AfterValidator(_label)]
LIST_KEYS = ("images", "upscalers", "downscalers", "scales", "codecs", "metrics")


class ExperimentConfig(RecipeKeys):
    """One experiment: the product images x upscalers x downscalers x scales x codecs (and
    the recipe parts of `RecipeKeys`: stabilizers, up/downscale steps, starts).

    Every key, its default and its allowed values are the fields below; the user guide's
    "Running an experiment" page explains each. Validate a dict with `make_config` (or
    `load_config` for a file) to get one clear error naming the key.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    name: str = "run"
    images: list[str] = Field(
        min_length=1,
        description="paths, globs, skimage:NAME samples, or set:NAME[/PHOTO] standard photo sets",
    )
    upscalers: list[str] = Field(default_factory=lambda: ["lanczos3"], min_length=1)
    downscalers: list[str] = Field(default_factory=lambda: ["lanczos3"], min_length=1)
    scales: list[Annotated[float, Field(ge=1.0, le=16.0, strict=True)]] = Field(
        default_factory=lambda: [4.0],
        min_length=1,  # 1: a codec-only chain
    )
    codecs: list[str] = Field(default_factory=lambda: ["png"], min_length=1)
    generations: Count = 50
    frame_stride: Count = 10
    metric_stride: Count = 1
    checkpoint_stride: Count = 10
    metrics: list[str] | None = None  # None: the offline default set
    metric_crop: tuple[Offset, Offset, Side, Side] | None = None  # x, y, w, h: a region study
    lowres_consistency: bool = Field(True, strict=True)
    region_metrics: bool = Field(True, strict=True)  # per-region metrics for chart inputs
    ocr: bool = Field(True, strict=True)  # OCR the chart's text lines (needs tesseract-ocr)
    device: str = "auto"
    seed: Annotated[int, Field(ge=0, lt=2**63, strict=True)] = 0
    output: Path | None = None  # default: runs/<name>
    fit: FitPolicy = "resize"
    deterministic: bool = Field(True, strict=True)
    precision: Precision = "fp32"
    tile: Annotated[int, Field(ge=0, le=65536, strict=True)] = 0
    tile_overlap: Annotated[int, Field(ge=0, le=4096, strict=True)] = 16
    channels_last: bool = Field(False, strict=True)
    compile: bool = Field(False, strict=True)
    compile_mode: CompileMode = "default"
    backend: Backend = "auto"
    jpeg_backend: JpegBackend = "auto"
    alpha: AlphaPolicy = "composite"
    background: tuple[Number, Number, Number] = (1.0, 1.0, 1.0)
    center_crop: tuple[Side, Side] | None = None  # (h, w) crop of each input
    max_side: Side | None = None  # shrink inputs (Pillow Lanczos) to fit first
    max_pixels: Annotated[int, Field(ge=1, le=10**10, strict=True)] = 400_000_000
    replicas: Annotated[int, Field(ge=0, le=1000, strict=True)] = 0  # perturbed copies per chain
    perturbation: str = "lsb"
    max_batch: Annotated[int, Field(ge=1, le=4096, strict=True)] = 16
    # raise what an ncnn file may ask for (core.specs.NcnnLimits: each limit says why)
    ncnn_limits: dict[NcnnLimitKey, PositiveInt] = Field(default_factory=dict)
    # short names of inputs in chain ids and figures (source -> name); default: from the file
    # names (pipeline.plan.unique_names); a sweep sets it so one name means one photo grid-wide
    image_names: dict[str, ImageLabel] = Field(default_factory=dict)

    @field_validator(*LIST_KEYS, mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        """A single value is a one-item list (`images = "x.png"` is one image, not 5 letters)."""
        return as_list(v)

    @field_validator("scales", "background", mode="before")
    @classmethod
    def _no_bools(cls, v: Any) -> Any:
        if any(isinstance(x, bool) for x in (v if isinstance(v, list | tuple) else [v])):
            raise ValueError("must be numbers, not true/false")
        return v

    @field_validator("name")
    @classmethod
    def _file_name(cls, v: str) -> str:
        """The name becomes a folder (runs/<name>) and part of the run id."""
        if not v.strip() or v.strip(".") == "" or any(c in v for c in "/\\\0"):
            raise ValueError("must be a plain folder name (no '/', '\\', or only dots)")
        return v

    @field_validator("center_crop", mode="before")
    @classmethod
    def _square(cls, v: Any) -> Any:
        return (v, v) if isinstance(v, int) else v

    @field_validator("upscalers", "downscalers", "codecs", "images")
    @classmethod
    def _nonempty_strings(cls, v: list[str]) -> list[str]:
        if any(not s.strip() for s in v):
            raise ValueError("entries must be non-empty strings")
        return v

    def specs(self) -> Specs:
        """The codec schedules and the perturbation as typed values, parsed once per process
        (validation parses them; the engine, the API and sweeps receive these objects)."""
        return _parse_specs(tuple(self.codecs), self.jpeg_backend, self.perturbation)

    def inference(self) -> InferenceOptions:
        """The ML upscaler settings as one typed value."""
        return InferenceOptions(
            precision=self.precision,
            tile=self.tile,
            tile_overlap=self.tile_overlap,
            channels_last=self.channels_last,
            compile=self.compile,
            compile_mode=self.compile_mode,
            ncnn_limits=tuple(sorted(self.ncnn_limits.items())),
            backend=self.backend,
        )

    def resolved_output(self) -> Path:
        return self.output if self.output is not None else Path("runs") / self.name

    def to_json(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


def as_list(v: Any) -> Any:
    """A bare string or number as a one-item list; anything else unchanged."""
    return [v] if isinstance(v, str | int | float) and not isinstance(v, bool) else v


def make_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a plain dict (from a file or CLI flags); one ConfigError for the first problem."""
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as e:
        raise format_error(e, source, ExperimentConfig.model_fields) from None
    _check_semantics(cfg, source)
    return cfg


def check_upscaler_spec(spec: str, where: str = "upscalers") -> str:
    """Refuse an upscaler a run could never create (a kernel, a registry name or alias, a
    weights file, ``ncnn:PATH.param`` with its .bin; a typo gets a "did you mean" over both),
    before anything is created. Returns its stored name (``Lanczos3``: ``lanczos3``)."""
    from ..imaging.kernels import ALIASES, KERNELS
    from ..upscalers.zoo import load_registry

    key = spec.strip().lower()
    if key in KERNELS or key in ALIASES:
        return ALIASES.get(key, key)
    if spec.startswith("ncnn:") or key.endswith(".param"):
        param = Path(spec.removeprefix("ncnn:")).expanduser()
        for f in (param, param.with_suffix(".bin")):
            if not f.is_file():
                raise ConfigError(
                    f"{where}: {spec!r}",
                    f"ncnn file {f} not found",
                    "give ncnn:PATH.param with PATH.bin beside it",
                )
        return spec
    p = Path(spec).expanduser()
    if p.is_file():
        return spec
    if p.suffix.lower() in WEIGHTS_SUFFIXES or "/" in spec or "\\" in spec:
        raise ConfigError(f"{where}: {spec!r}", "weights file not found", "check the path")
    registry = load_registry()
    names = {e.name.lower(): e.name for e in registry.values()}
    names |= {a.lower(): e.name for e in registry.values() for a in e.aliases}
    if key in names:
        return names[key]
    import difflib

    known = [*KERNELS, *ALIASES, *names]
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    shown = list(dict.fromkeys(names.get(c, c) for c in close))
    raise ConfigError(
        f"{where}: {spec!r}",
        "is not a kernel, a known model, or an existing weights file",
        f"did you mean {' or '.join(shown)}?"
        if shown
        else "run `roundtrip models list`, or give a weights path or ncnn:PATH.param",
    )


WEIGHTS_SUFFIXES = (".pth", ".ckpt", ".pt", ".bin", ".safetensors")


@dataclass(frozen=True)
class Specs:
    """What the config's spec strings mean, parsed once."""

    schedules: dict[str, CodecSchedule]  # codec spec -> its per-generation schedule
    perturbation: Perturbation


@functools.cache
def _parse_specs(codecs: tuple[str, ...], jpeg_backend: str, perturbation: str) -> Specs:
    from ..imaging.perturb import parse_perturbation
    from ..imaging.schedule import parse_schedule

    schedules = {}
    for c in codecs:
        try:
            schedules[c] = parse_schedule(c, jpeg_backend)
        except ConfigError as e:
            raise ConfigError("key 'codecs'", f"{c!r} {e.problem}", e.fix) from None
    try:
        parsed = parse_perturbation(perturbation)
    except ConfigError as e:
        raise ConfigError("key 'perturbation'", e.problem, e.fix) from None
    return Specs(schedules, parsed)


def _check_semantics(cfg: ExperimentConfig, source: str) -> None:
    """Checks that need the rest of the package (kernel, codec and model names); the parsed
    codec schedules and perturbation are kept on the config (``cfg.specs()``)."""
    from ..imaging.kernels import get_kernel, is_classical
    from .inputs import check_images

    check_images(cfg.images, source)
    # one stored name per upscaler and kernel (Lanczos3 -> lanczos3) in tables, labels and ids
    cfg.upscalers = [check_upscaler_spec(u, f"{source}: key 'upscalers'") for u in cfg.upscalers]
    check_recipe(cfg, cfg.scales, cfg.upscalers, source)  # stabilizers, steps, starts
    for k in cfg.downscalers:
        try:
            get_kernel(k)
        except ConfigError as e:
            raise ConfigError(f"{source}: key 'downscalers'", f"{e.problem} {k!r}", e.fix) from None
    cfg.downscalers = [get_kernel(k).name for k in cfg.downscalers]
    for c in cfg.codecs:  # names first, torch-free: a typo prints before torch loads
        bad = unknown_codec_kinds(c)
        if bad:
            raise ConfigError(
                f"{source}: key 'codecs'",
                f"{c!r}: {', '.join(bad)} is no codec",
                f"use {one_of(CODEC_KINDS)}",
            )
    kind = cfg.perturbation.split(":", 1)[0].strip().lower()
    if kind not in PERTURBATION_KINDS:
        raise ConfigError(
            f"{source}: key 'perturbation'",
            f"{cfg.perturbation!r} is no perturbation",
            f"use {one_of(PERTURBATION_KINDS)}",
        )
    if cfg.alpha == "carry" and not all(is_classical(u) for u in cfg.upscalers):
        ml = [u for u in cfg.upscalers if not is_classical(u)]
        raise ConfigError(
            f"{source}: key 'alpha'",
            f"'carry' needs classical upscalers; {', '.join(ml)} take RGB only",
            "use alpha = 'composite' or 'drop'",
        )
    try:  # the full parse (quality ranges, schedule syntax) needs the codecs: torch loads here
        specs = cfg.specs()
    except ConfigError as e:
        raise ConfigError(f"{source}: {e.what}", e.problem, e.fix) from None
    if cfg.replicas > 1 and specs.perturbation.deterministic:
        raise ConfigError(
            f"{source}: key 'perturbation'",
            f"{cfg.perturbation!r} gives every replica the same image",
            "use replicas = 1 or lsb/noise/shift",
        )


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML file into a dict; every error is one line naming the file."""
    p = Path(path)
    data = read_mapping(p)
    # relative image paths are relative to the config file
    base = p.parent
    images = as_list(data.get("images", []))
    if isinstance(images, list):  # anything else is left for validation to name
        data["images"] = [
            s
            if not isinstance(s, str)
            or s.startswith((SAMPLE_PREFIX, PHOTOSET_PREFIX))
            or Path(s).is_absolute()
            else str(base / s)
            for s in images
        ]
    return data


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read and validate an experiment file.

    Args:
        path: A TOML or YAML file; relative image paths are relative to it.
        overrides: Keys set over the file's (what CLI flags do).

    Returns:
        The validated config, every default filled in.

    Raises:
        ConfigError: The first problem, naming the file and the key.
    """
    data = load_config_file(path)
    data.update(overrides or {})
    return make_config(data, str(path))


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs; values parse as TOML (numbers, lists, strings, booleans)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}", "expected KEY=VALUE", "e.g. --set generations=200")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw
    return out
