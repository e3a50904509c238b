"""The experiment config: TOML or YAML in, a typed and fully resolved config out.

Every CLI flag of ``roundtrip run`` maps to one key here (``--set key=value`` reaches any key).
A bad key or value raises ConfigError naming the key and what is allowed.
"""

from __future__ import annotations

import glob
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError
from .images import SAMPLE_PREFIX
from .specs import InferenceOptions

PositiveInt = Annotated[int, Field(ge=1)]


class ExperimentConfig(BaseModel):
    """One experiment: the product images x upscalers x downscalers x scales x codecs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = "run"
    images: list[str] = Field(min_length=1, description="paths, globs, or skimage:NAME samples")
    upscalers: list[str] = Field(default_factory=lambda: ["lanczos3"], min_length=1)
    downscalers: list[str] = Field(default_factory=lambda: ["lanczos3"], min_length=1)
    scales: list[Annotated[float, Field(ge=1.0, le=16.0)]] = Field(  # 1: codec-only chain
        default_factory=lambda: [4.0], min_length=1
    )
    codecs: list[str] = Field(default_factory=lambda: ["png"], min_length=1)
    generations: PositiveInt = 50
    frame_stride: PositiveInt = 10
    metric_stride: PositiveInt = 1
    checkpoint_stride: PositiveInt = 10
    metrics: list[str] | None = None  # None: the offline default set
    metric_crop: tuple[int, int, int, int] | None = None  # x, y, w, h: a region study (a sign)
    lowres_consistency: bool = True
    region_metrics: bool = True  # per-region metrics for chart inputs (a .json sidecar)
    ocr: bool = True  # OCR the chart's text lines (needs tesseract-ocr)
    device: str = "auto"
    seed: int = 0
    output: Path | None = None  # default: runs/<name>
    fit: Literal["resize", "crop"] = "resize"
    deterministic: bool = True
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    tile: Annotated[int, Field(ge=0)] = 0
    tile_overlap: Annotated[int, Field(ge=0)] = 16
    channels_last: bool = False
    compile: bool = False
    jpeg_backend: Literal["auto", "torchvision", "nvjpeg", "pillow", "imagecodecs"] = "auto"
    alpha: Literal["composite", "drop", "carry"] = "composite"  # carry: classical upscalers only
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    center_crop: tuple[PositiveInt, PositiveInt] | None = None  # (h, w) crop of each input
    max_side: PositiveInt | None = None  # shrink inputs (Pillow Lanczos) to fit first
    max_pixels: PositiveInt = 400_000_000
    replicas: Annotated[int, Field(ge=0)] = 0  # perturbed copies per chain (0: none)
    perturbation: str = "lsb"
    max_batch: PositiveInt = 16

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

    def inference(self) -> InferenceOptions:
        """The ML upscaler settings as one typed value."""
        return InferenceOptions(
            precision=self.precision,
            tile=self.tile,
            tile_overlap=self.tile_overlap,
            channels_last=self.channels_last,
            compile=self.compile,
        )

    def resolved_output(self) -> Path:
        return self.output if self.output is not None else Path("runs") / self.name

    def to_json(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


def _format_error(e: ValidationError, source: str) -> ConfigError:
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(ExperimentConfig.model_fields)
        return ConfigError(
            f"{source}: key {key!r}", "is not a config key", f"use one of: {allowed}"
        )
    field = ExperimentConfig.model_fields.get(str(err["loc"][0])) if err["loc"] else None
    hint = f"expected {field.annotation}" if field is not None else None
    hint = str(hint).replace("typing.", "") if hint else None
    return ConfigError(f"{source}: key {key!r}", err["msg"], hint)


def make_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a plain dict (from a file or CLI flags); one ConfigError for the first problem."""
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as e:
        raise _format_error(e, source) from None
    _check_semantics(cfg, source)
    return cfg


def _check_semantics(cfg: ExperimentConfig, source: str) -> None:
    """Checks that need the rest of the package (kernel and codec names, metric names)."""
    from .resample import get_kernel
    from .schedule import parse_schedule

    for k in cfg.downscalers:
        try:
            get_kernel(k)
        except ConfigError as e:
            raise ConfigError(
                f"{source}: key 'downscalers'", e.problem + f" {k!r}", e.fix
            ) from None
    for c in cfg.codecs:
        try:
            parse_schedule(c)
        except ConfigError as e:
            raise ConfigError(f"{source}: key 'codecs'", f"{c!r} {e.problem}", e.fix) from None
    from .upscalers import is_classical

    if cfg.alpha == "carry" and not all(is_classical(u) for u in cfg.upscalers):
        ml = [u for u in cfg.upscalers if not is_classical(u)]
        raise ConfigError(f"{source}: key 'alpha'", f"'carry' needs classical upscalers; "
                          f"{', '.join(ml)} take RGB only", "use alpha = 'composite' or 'drop'")
    from .perturb import parse_perturbation

    try:
        perturbation = parse_perturbation(cfg.perturbation)
    except ConfigError as e:
        raise ConfigError(f"{source}: key 'perturbation'", e.problem, e.fix) from None
    if cfg.replicas > 1 and perturbation.deterministic:
        raise ConfigError(f"{source}: key 'perturbation'",
                          f"{cfg.perturbation!r} gives every replica the same image",
                          "use replicas = 1 or lsb/noise/shift")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML file into a dict; errors name the file and the line when known."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(str(p), "config file not found", "check the path")
    text = p.read_text()
    try:
        if p.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif p.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(str(p), "unknown config format", "use a .toml or .yaml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ConfigError(str(p), f"cannot parse ({e})", "fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(str(p), "top level must be a table/mapping", "see the README example")
    # relative image paths are relative to the config file
    base = p.parent
    data["images"] = [
        s if s.startswith(SAMPLE_PREFIX) or Path(s).is_absolute() else str(base / s)
        for s in data.get("images", [])
    ]
    return data


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
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


def expand_images(patterns: list[str]) -> list[str]:
    """Expand globs (sorted, deterministic); literal paths and skimage samples pass through."""
    out: list[str] = []
    for pat in patterns:
        if pat.startswith(SAMPLE_PREFIX) or not any(ch in pat for ch in "*?["):
            out.append(pat)
            continue
        matches = sorted(glob.glob(pat, recursive=True))
        if not matches:
            raise ConfigError(f"images: {pat!r}", "glob matches no file", "check the pattern")
        out.extend(m for m in matches if Path(m).is_file())
    return list(dict.fromkeys(out))
