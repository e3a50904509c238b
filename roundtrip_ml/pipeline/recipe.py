"""The recipe keys beyond upscaler/downscaler/scale/codec: stabilisers, stepped scale paths and
start images (issue 22), as one self-contained block of config keys.

``ExperimentConfig`` inherits ``RecipeKeys``, so these are ordinary top-level keys of a run
config, a sweep or a leaderboard protocol (``stabilizers = ["colour"]``, ``up_steps = [2, 2]``,
``starts = ["image", "noise"]``). At their defaults they change nothing: not the pixels, not the
chain ids, not the run id (``config_identity`` leaves them out).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from ..core.errors import ConfigError
from ..core.specs import Stabilizer, StartKind, check_steps, parse_stabilizer

Step = Annotated[float, Field(gt=1.0, le=16.0)]
RECIPE_DEFAULTS: dict[str, Any] = {
    "stabilizers": ["none"],
    "up_steps": None,
    "downscale_steps": None,
    "starts": ["image"],
}


class RecipeKeys(BaseModel):
    """Config keys of the recipe parts (each a list is a product axis, like ``upscalers``)."""

    stabilizers: list[str] = Field(default_factory=lambda: ["none"], min_length=1)
    up_steps: list[Step] | None = None  # None: one upscale by the whole scale
    downscale_steps: list[Step] | None = None  # None: one downscale by the whole scale
    starts: list[StartKind] = Field(
        default_factory=lambda: list[StartKind](["image"]), min_length=1
    )

    @field_validator("stabilizers", "starts", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("up_steps", "downscale_steps", mode="before")
    @classmethod
    def _no_bools(cls, v: Any) -> Any:
        if isinstance(v, list) and any(isinstance(x, bool) for x in v):
            raise ValueError("must be numbers, not true/false")
        return v

    def parsed_stabilizers(self) -> dict[str, Stabilizer]:
        """Each ``stabilizers`` entry as its typed value (raises ConfigError on a bad one)."""
        return {s: parse_stabilizer(s) for s in self.stabilizers}


def check_recipe(cfg: RecipeKeys, scales: list[float], upscalers: list[str], source: str) -> None:
    """Stabiliser specs, paths that multiply to every scale, fixed-scale models in a stepped
    path (an x4 model cannot make x2 stages), and one spelling per stabiliser and start."""
    try:
        parsed = cfg.parsed_stabilizers()
    except ConfigError as e:
        raise ConfigError(f"{source}: key 'stabilizers'", f"{e.what}: {e.problem}", e.fix) from None
    for key, values in (
        ("stabilizers", [p.spec for p in parsed.values()]),
        ("starts", list(cfg.starts)),
    ):
        if len(set(values)) != len(values):
            raise ConfigError(
                f"{source}: key {key!r}",
                f"{cfg.model_dump()[key]} names one entry twice",
                "list each once",
            )
    for key in ("up_steps", "downscale_steps"):
        for scale in scales:
            try:
                check_steps(getattr(cfg, key), scale, key)
            except ConfigError as e:
                raise ConfigError(f"{source}: {e.what}", e.problem, e.fix) from None
    if cfg.up_steps:
        from ..upscalers.zoo import load_registry

        registry = {n.lower(): e for e in load_registry().values() for n in (e.name, *e.aliases)}
        for u in upscalers:
            entry = registry.get(u.strip().lower())
            bad = [s for s in cfg.up_steps if entry is not None and float(s) != entry.scale]
            if entry is not None and bad:
                raise ConfigError(
                    f"{source}: key 'up_steps'",
                    f"{entry.name} is an x{entry.scale} model and cannot make an x{bad[0]:g} stage",
                    f"use steps of {entry.scale}, or a model with scale {bad[0]:g}",
                )


# keys added after the first runs were written: left out of the identity at their defaults
_LATER_DEFAULTS: dict[str, Any] = {**RECIPE_DEFAULTS, "image_names": {}}


def config_identity(data: dict[str, Any]) -> dict[str, Any]:
    """A config's JSON without ``output`` and without later keys at their defaults: what run
    and unit ids hash, so configs written before these keys existed keep their ids."""
    return {
        k: v
        for k, v in data.items()
        if k != "output" and not (k in _LATER_DEFAULTS and v == _LATER_DEFAULTS[k])
    }


def step_options(cfg: RecipeKeys, stabilizer: str) -> dict[str, Any]:
    """The keyword arguments ``step.generation_step`` takes for these recipe parts (the engine,
    the in-memory API and the sweep's probe pass them on unchanged)."""
    return {
        "stabilizer": parse_stabilizer(stabilizer),
        "up_steps": tuple(cfg.up_steps) if cfg.up_steps else None,
        "down_steps": tuple(cfg.downscale_steps) if cfg.downscale_steps else None,
    }


def recipe_record(cfg: RecipeKeys, stabilizer: str, starts: list[str]) -> dict[str, Any]:
    """What a batch's manifest entry records about these recipe parts."""
    return {
        "stabilizer": stabilizer,
        "up_steps": cfg.up_steps,
        "downscale_steps": cfg.downscale_steps,
        "starts": list(dict.fromkeys(starts)),
    }
