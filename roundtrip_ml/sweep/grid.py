"""The sweep grid: config file -> cells -> work units.

A *cell* is one chain recipe on one image (image, upscaler, downscaler, scale, codec, seed,
generations): the smallest thing a study compares. A *unit* is the work one worker does at once:
cells that share upscaler, image size, seed and generations, written as one ordinary engine
config, so the model is loaded once and same-size images are batched on the device. Its id is a
hash of that config, so the same grid always gives the same units, wherever it is planned.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.errors import ConfigError
from ..core.specs import steps_slug
from ..imaging.images import SAMPLE_PREFIX
from ..pipeline.config import ExperimentConfig, expand_images, load_config_file, make_config
from ..pipeline.plan import chain_id, image_name, read_inputs, slug, unique_names
from ..pipeline.recipe import config_identity

# grid axes: the config key (a list) and the key one cell / one rule uses for it
AXES: dict[str, str] = {
    "images": "image",
    "upscalers": "upscaler",
    "downscalers": "downscaler",
    "scales": "scale",
    "codecs": "codec",
    "seeds": "seed",
    "generations": "generations",
    # recipe parts (pipeline/recipe.py); a path is written as its slug ("2x2", "": one stage)
    "stabilizers": "stabilizer",
    "starts": "start",
    "up_steps": "up_steps",
    "downscale_steps": "downscale_steps",
}
PATH_AXES = ("up_steps", "downscale_steps")  # in a sweep file: one path, or a list of paths
CELL_KEYS = tuple(AXES.values())
SWEEP_FILE = "sweep.json"  # not manifest.json: report/ would take the sweep for a run
UNITS_DIR = "units"


class SweepOptions(BaseModel):
    """The ``[sweep]`` table: how the grid is cut into units and run."""

    model_config = ConfigDict(extra="forbid")

    retries: int = Field(default=1, ge=0)  # extra attempts for a unit whose worker crashed
    max_images_per_unit: int = Field(default=16, ge=1)  # smaller units spread over more workers
    threads: int | None = Field(default=None, ge=1)  # torch threads per worker (None: default)


@dataclass(frozen=True)
class Cell:
    image: str
    upscaler: str
    downscaler: str
    scale: float
    codec: str
    seed: int
    generations: int
    stabilizer: str = "none"
    start: str = "image"
    up_steps: str = ""
    downscale_steps: str = ""
    name: str = ""  # the image's short name across the whole grid (expand_cells sets it)

    @property
    def cell_id(self) -> str:
        base = chain_id(
            self.name or image_name(self.image),
            self.upscaler,
            self.downscaler,
            self.scale,
            self.codec,
            stabilizer=self.stabilizer,
            up_steps=self.up_steps,
            downscale_steps=self.downscale_steps,
            start=self.start,
        )
        return f"{base}-s{self.seed}-g{self.generations}"

    def asdict(self) -> dict[str, Any]:
        return {"cell_id": self.cell_id, **{k: getattr(self, k) for k in CELL_KEYS}}


@dataclass
class Unit:
    """One engine run: ``config`` is a complete ExperimentConfig dict (output included)."""

    unit_id: str
    config: dict[str, Any]
    cells: list[Cell]
    size: tuple[int, int]

    @property
    def upscaler(self) -> str:
        return self.config["upscalers"][0]

    @property
    def work(self) -> int:
        """Chain-generations this unit computes (replicas included)."""
        return len(self.cells) * (1 + self.config.get("replicas", 0)) * self.config["generations"]

    def asdict(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "config": self.config,
            "cells": [c.cell_id for c in self.cells],
            "size": list(self.size),
        }


@dataclass
class SweepConfig:
    name: str
    root: Path
    engine: dict[str, Any]  # engine keys shared by every unit
    axes: dict[str, list[Any]]
    include: list[dict[str, list[Any]]] = field(default_factory=list)
    exclude: list[dict[str, list[Any]]] = field(default_factory=list)
    options: SweepOptions = field(default_factory=SweepOptions)
    source: str = "sweep config"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "output": str(self.root),
            "engine": self.engine,
            "axes": self.axes,
            "include": self.include,
            "exclude": self.exclude,
            "sweep": self.options.model_dump(),
        }


@dataclass
class SweepPlan:
    config: SweepConfig
    cells: list[Cell]
    units: list[Unit]
    image_errors: dict[str, str]  # input -> why it cannot be read: its cells fail at once

    def unit_dir(self, unit: Unit) -> Path:
        return Path(unit.config["output"])

    @property
    def work(self) -> int:
        return sum(u.work for u in self.units)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(),
            "cells": [c.asdict() for c in self.cells],
            "units": [u.asdict() for u in self.units],
            "image_errors": self.image_errors,
        }


# ---- config ---------------------------------------------------------------------------------


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list | tuple) else [v]


def _rules(raw: Any, kind: str, source: str) -> list[dict[str, list[Any]]]:
    if raw is None:
        return []
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(r, dict) and r for r in raw):
        raise ConfigError(f"{source}: key {kind!r}", "must be a list of tables", "[[exclude]] ...")
    out = []
    for i, rule in enumerate(raw):
        bad = [k for k in rule if k not in CELL_KEYS]
        if bad:
            raise ConfigError(
                f"{source}: {kind}[{i}] key {bad[0]!r}",
                "is not a grid axis",
                f"use one of: {', '.join(CELL_KEYS)}",
            )
        out.append({k: _as_list(v) for k, v in rule.items()})
    return out


def parse_sweep(data: dict[str, Any], source: str = "sweep config") -> SweepConfig:
    """A dict (from a file) -> SweepConfig; engine keys are checked by the engine's validator."""
    data = dict(data)
    try:
        options = SweepOptions.model_validate(data.pop("sweep", {}) or {})
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"{source}: key 'sweep.{key}'", err["msg"], "see `[sweep]` in the README"
        ) from None
    include = _rules(data.pop("include", None), "include", source)
    exclude = _rules(data.pop("exclude", None), "exclude", source)
    if "seed" in data and "seeds" in data:
        raise ConfigError(f"{source}: key 'seed'", "given together with 'seeds'", "keep one")
    seeds = _as_list(data.pop("seeds", data.pop("seed", 0)))
    paths = {k: _paths(data.pop(k, None), k, source) for k in PATH_AXES}
    generations = _as_list(data.pop("generations", 50))
    name = str(data.get("name", "sweep"))
    data["name"] = name
    root = Path(data.pop("output", None) or Path("sweeps") / name).expanduser()
    if not data.get("images"):
        raise ConfigError(f"{source}: key 'images'", "is missing or empty", "list images or globs")
    probe = {**data, "seed": seeds[0], "generations": generations[0]}
    cfg = make_config(probe, source)  # unknown keys, bad codecs/kernels: one clear error here
    for s in seeds:
        make_config({**probe, "seed": s}, source)
    for g in generations:
        make_config({**probe, "generations": g}, source)
    for key, choices in paths.items():
        for path in choices:
            make_config({**probe, key: path}, source)
    axes: dict[str, list[Any]] = {
        "images": expand_images(cfg.images),
        "upscalers": list(dict.fromkeys(cfg.upscalers)),
        "downscalers": list(dict.fromkeys(cfg.downscalers)),
        "scales": list(dict.fromkeys(float(s) for s in cfg.scales)),
        "codecs": list(dict.fromkeys(cfg.codecs)),
        "seeds": list(dict.fromkeys(int(s) for s in seeds)),
        "generations": list(dict.fromkeys(int(g) for g in generations)),
        "stabilizers": [s.spec for s in cfg.parsed_stabilizers().values()],
        "starts": list(cfg.starts),
        **{k: [steps_slug(p) for p in v] for k, v in paths.items()},
    }
    engine = {k: v for k, v in data.items() if k not in AXES}
    return SweepConfig(name, root, engine, axes, include, exclude, options, source)


def _paths(raw: Any, key: str, source: str) -> list[list[float] | None]:
    """``up_steps = [2, 2]`` is one path; ``[[2, 2], [4]]`` two (an axis); absent: none."""
    if raw is None:
        return [None]
    if isinstance(raw, list) and raw and all(isinstance(p, list) for p in raw):
        return [p or None for p in raw]
    if isinstance(raw, list) and not any(isinstance(p, list) for p in raw):
        return [raw or None]
    raise ConfigError(
        f"{source}: key {key!r}",
        "mixes numbers and lists",
        f"write one path ({key} = [2, 2]) or a list of paths ([[2, 2], [4]])",
    )


def _unslug(path: str) -> list[float] | None:
    """``"2x2"`` -> ``[2.0, 2.0]``; ``""`` -> None (the inverse of ``steps_slug``)."""
    return [float(v) for v in path.split("x")] if path else None


def load_sweep(path: str | Path, overrides: dict[str, Any] | None = None) -> SweepConfig:
    """Read a TOML/YAML sweep file; relative image paths are relative to the file."""
    data = load_config_file(path)
    base = Path(path).parent
    for rule in data.get("include", []) or []:  # rule images follow the same rule as `images`
        if isinstance(rule, dict) and "image" in rule:
            rule["image"] = [
                s
                if s.startswith(SAMPLE_PREFIX) or Path(s).is_absolute() or "*" in s
                else str(base / s)
                for s in _as_list(rule["image"])
            ]
    data.update(overrides or {})
    return parse_sweep(data, str(path))


# ---- cells ----------------------------------------------------------------------------------


def _matches(cell: Cell, rule: dict[str, list[Any]]) -> bool:
    for key, values in rule.items():
        v = getattr(cell, key)
        if key == "image":
            names = (v, Path(v).name, image_name(v))
            if not any(fnmatch.fnmatchcase(n, str(p)) for p in values for n in names):
                return False
        elif key == "scale":
            if float(v) not in {float(x) for x in values}:
                return False
        elif v not in values:
            return False
    return True


def expand_cells(cfg: SweepConfig) -> list[Cell]:
    """The product of the axes minus ``exclude`` rules, plus the cells ``include`` rules add
    (an include rule fixes some axes and takes the others in full; excludes do not apply)."""
    order = list(AXES)

    def product_of(axes: dict[str, list[Any]]) -> list[Cell]:
        return [Cell(*vals) for vals in product(*(axes[a] for a in order))]

    cells = [c for c in product_of(cfg.axes) if not any(_matches(c, r) for r in cfg.exclude)]
    for rule in cfg.include:
        axes = dict(cfg.axes)
        for key, values in rule.items():
            axis = next(a for a, k in AXES.items() if k == key)
            if key == "image":
                values = expand_images([str(v) for v in values])
            elif key == "scale":
                values = [float(v) for v in values]
            axes[axis] = values
        extra = product_of(axes)
        probe = {
            **cfg.engine,
            "images": ["x"],
            "upscalers": axes["upscalers"],
            "downscalers": axes["downscalers"],
            "scales": axes["scales"],
            "codecs": axes["codecs"],
            "stabilizers": axes["stabilizers"],
            "starts": axes["starts"],
        }
        make_config(probe, f"{cfg.source}: include")  # included values are checked too
        cells += extra
    unique = list(dict.fromkeys(cells))
    names = unique_names(list(dict.fromkeys(c.image for c in unique)))
    unique = [replace(c, name=names[c.image]) for c in unique]
    seen: dict[str, Cell] = {}
    for c in unique:  # image names are unique by now; other values can still slug alike
        if (a := seen.setdefault(c.cell_id, c)) is not c:
            key = next(k for k in CELL_KEYS if getattr(a, k) != getattr(c, k))
            raise ConfigError(
                f"{cfg.source}: cell {c.cell_id}",
                f"{key}s {getattr(a, key)!r} and {getattr(c, key)!r} give the same id",
                f"rename one of the two {key}s",
            )
    return unique


# ---- units ----------------------------------------------------------------------------------


def image_sizes(
    sources: list[str], engine: dict[str, Any]
) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    """Each input's size after the engine's preprocessing (max_side, center_crop), or its error."""
    inputs = read_inputs(sources, make_config({**engine, "images": ["x"]}))
    return inputs.sizes, inputs.errors


def unit_id_for(config: dict[str, Any], size: tuple[int, int]) -> str:
    """Readable and deterministic: upscaler, size, and a hash of the config (output excluded)."""
    identity = config_identity(ExperimentConfig.model_validate(config).to_json())
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return f"{slug(config['upscalers'][0])}-{size[1]}x{size[0]}-{digest}"


def _make_unit(cfg: SweepConfig, cells: list[Cell], size: tuple[int, int]) -> Unit:
    def ordered(axis: str, values: set[Any]) -> list[Any]:
        return [v for v in cfg.axes[axis] if v in values] + sorted(
            v for v in values if v not in cfg.axes[axis]
        )

    c0 = cells[0]
    config = {
        **cfg.engine,
        "name": cfg.name,
        "images": list(dict.fromkeys(c.image for c in cells)),
        "upscalers": [c0.upscaler],
        "downscalers": ordered("downscalers", {c.downscaler for c in cells}),
        "scales": ordered("scales", {c.scale for c in cells}),
        "codecs": ordered("codecs", {c.codec for c in cells}),
        "seed": c0.seed,
        "generations": c0.generations,
        "stabilizers": [c0.stabilizer],
        "starts": [c0.start],
        "up_steps": _unslug(c0.up_steps),
        "downscale_steps": _unslug(c0.downscale_steps),
    }
    if any(c.name != image_name(c.image) for c in cells):  # same stems in two folders
        config["image_names"] = {c.image: c.name for c in cells}
    uid = unit_id_for(config, size)
    config["output"] = str(cfg.root / UNITS_DIR / uid)
    return Unit(uid, config, cells, size)


def group_units(
    cfg: SweepConfig, cells: list[Cell], sizes: dict[str, tuple[int, int]]
) -> list[Unit]:
    """Cells -> units. An engine config is a full product of its axes, so within one
    (upscaler, size, seed, generations, stabiliser, start, paths) group, images with the same
    set of recipes share a unit when that set is a product; otherwise each (downscaler, scale)
    gets its own unit."""
    groups: dict[tuple[Any, ...], dict[str, list[Cell]]] = defaultdict(lambda: defaultdict(list))
    for c in cells:
        if c.image in sizes:
            key = (
                c.upscaler,
                sizes[c.image],
                c.seed,
                c.generations,
                c.stabilizer,
                c.start,
                c.up_steps,
                c.downscale_steps,
            )
            groups[key][c.image].append(c)
    units: list[Unit] = []
    for (_, size, *_), by_image in groups.items():
        by_recipes: dict[frozenset[tuple[str, float, str]], list[str]] = defaultdict(list)
        for img, img_cells in by_image.items():
            by_recipes[frozenset((c.downscaler, c.scale, c.codec) for c in img_cells)].append(img)
        for recipes, images in by_recipes.items():
            downs, scales, codecs = ({r[i] for r in recipes} for i in range(3))
            if len(recipes) == len(downs) * len(scales) * len(codecs):
                parts = [recipes]
            else:
                split: dict[tuple[str, float], set[Any]] = defaultdict(set)
                for r in recipes:
                    split[(r[0], r[1])].add(r)
                parts = [frozenset(p) for p in split.values()]
            step = cfg.options.max_images_per_unit
            for part in parts:
                for i in range(0, len(images), step):
                    members = [
                        c
                        for img in images[i : i + step]
                        for c in by_image[img]
                        if (c.downscaler, c.scale, c.codec) in part
                    ]
                    units.append(_make_unit(cfg, members, size))
    return units


def make_sweep_plan(cfg: SweepConfig) -> SweepPlan:
    """Cells, units and unreadable inputs; reads every input once (for its size)."""
    cells = expand_cells(cfg)
    sources = list(dict.fromkeys(c.image for c in cells))
    sizes, errors = image_sizes(sources, cfg.engine)
    return SweepPlan(cfg, cells, group_units(cfg, cells, sizes), errors)
