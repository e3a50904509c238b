"""The manifest: what a run is, what ran, and how far each batch got (RUN/manifest.json).

A typed model, built from the config, the plan and the environment (never by reaching into a
live engine), and updated by the engine as batches progress. The JSON is meant to be read
without roundtrip-ml, so it carries ``format_version``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.errors import RunStoreError
from ..core.files import (  # one version for the manifest and the tables
    DAMAGED_FIX,
    FORMAT_VERSION,
    read_json,
)
from .config import ExperimentConfig
from .plan import Plan

BatchStatus = Literal["pending", "running", "complete", "failed"]
RunStatus = Literal["running", "complete", "complete_with_failures"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class BatchEntry(BaseModel):
    """One device batch: its chains, what ran it, and how far it got."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    chains: list[str]
    size: tuple[int, int]
    status: BatchStatus = "pending"
    generations_done: int = 0
    upscaler: dict[str, Any] | None = None  # Upscaler.describe(): weights path, sha256, ...
    codec: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None  # stabilizer, up/downscale steps, starts (recipe.py)
    metrics_skipped: list[str] = Field(default_factory=list)
    # region measures that were undefined (e.g. MTF50 of an edge sharper than measured): no row
    metrics_undefined: dict[str, int] = Field(default_factory=dict)
    wall_s_per_generation: list[float] = Field(default_factory=list)
    error: str | None = None
    traceback: str | None = None


class FileChange(BaseModel):
    """An input or weights file whose SHA-256 differs from the one the run started with."""

    model_config = ConfigDict(extra="forbid")

    before: str
    after: str  # "(missing)" when the file is gone


class ForcedResume(BaseModel):
    """One ``--force-resume``: when, and which files it let change (empty: none had)."""

    model_config = ConfigDict(extra="forbid")

    at: str
    changed: dict[str, FileChange] = Field(default_factory=dict)


class Manifest(BaseModel):
    """RUN/manifest.json."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    format_version: int = FORMAT_VERSION
    run_id: str
    status: RunStatus = "running"
    started_at: str = Field(default_factory=now)
    finished_at: str | None = None
    resumed_at: list[str] = Field(default_factory=list)
    # every --force-resume with the old and new hashes of what it mixed: a record that tells
    # the truth about a chain that continued from changed bytes
    forced_resumes: list[ForcedResume] = Field(default_factory=list)
    seed: int
    determinism: dict[str, Any]
    environment: dict[str, Any]
    environment_resumed: dict[str, Any] | None = None
    inputs: dict[str, dict[str, Any]]  # source -> ImageInfo (sha256 of the file, size, notes)
    input_errors: dict[str, str] = Field(default_factory=dict)
    metrics: list[str]
    metric_details: dict[str, dict[str, Any]] = Field(default_factory=dict)  # display model, ...
    size_rule: dict[str, str]
    batches: dict[str, BatchEntry]
    # bucket (recipe|size) -> most chains per batch, fixed at the start so a resume batches
    # the same way; batch_sizing says how each was derived (free memory, probe, cap)
    batch_limits: dict[str, int] = Field(default_factory=dict)
    batch_sizing: dict[str, dict[str, Any]] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)  # chain_id -> error
    wall_s: float = 0.0

    @classmethod
    def new(
        cls,
        cfg: ExperimentConfig,
        plan: Plan,
        *,
        metrics: list[str],
        metric_details: dict[str, dict[str, Any]] | None = None,
        batch_sizing: dict[str, dict[str, Any]] | None = None,
        determinism: dict[str, Any],
        environment: dict[str, Any],
    ) -> Manifest:
        return cls(
            run_id=plan.run_id,
            seed=cfg.seed,
            determinism=determinism,
            environment=environment,
            inputs={src: info.asdict() for src, info in plan.images.items()},
            input_errors=dict(plan.image_errors),
            metrics=metrics,
            metric_details=metric_details or {},
            size_rule={"lowres": "round(H/s) x round(W/s)", "fit": cfg.fit},
            batches={
                b.batch_id: BatchEntry(chains=[c.chain_id for c in b.chains], size=b.size)
                for b in plan.batches
            },
            batch_limits=dict(plan.batch_limits),
            batch_sizing=batch_sizing or {},
        )

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """RUN/manifest.json, checked: a damaged or foreign file is one RunStoreError line."""
        data = read_json(Path(path))
        data.setdefault("format_version", 1)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise RunStoreError(
                str(path),
                f"is not a manifest this tool wrote (key {key!r}: {err['msg'].lower()})",
                DAMAGED_FIX,
            ) from None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
