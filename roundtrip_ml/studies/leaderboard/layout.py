"""The board directory's layout and its types: file names, the table key, an entry (what one
row label of the table is and where its runs live), the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...core.specs import steps_slug
from .protocol import ModelRef, Protocol

__all__ = ["FILES", "KEY", "RUNS", "Entry", "Leaderboard"]

FILES = {
    "protocol": "protocol.json",
    "per_photo": "per_photo.parquet",
    "per_photo_csv": "per_photo.csv",
    "table": "leaderboard.csv",
    "markdown": "leaderboard.md",
}
RUNS = "runs"
KEY = ["upscaler", "scale", "codec", "photo", "metric", "generation"]


@dataclass(frozen=True)
class Entry:
    """One board entry: a model or baseline at its roundtrip scale (``model.scale``), upscaled
    in one go or along a path of stages (``path``, e.g. ``(2, 2)`` for x4). Its ``label`` is
    the ``upscaler`` column of the tables (``span-x2-ch48 [2x2]``), ``slug`` the ``path``
    column (``2x2``; ``""`` for one step)."""

    model: ModelRef
    path: tuple[int, ...] = ()

    @property
    def slug(self) -> str:
        return steps_slug(self.path)

    @property
    def label(self) -> str:
        return f"{self.model.name} [{self.slug}]" if self.path else self.model.name

    @property
    def scale(self) -> int:
        return self.model.scale

    def runs_dir(self, board: Path) -> Path:
        """The entry's resumable sweep: ``runs/spanx2ch48-x2``, ``runs/spanx2ch48-x4-2x2``."""
        from ...pipeline.plan import slug

        tail = f"-{self.slug}" if self.path else ""
        return board / RUNS / f"{slug(self.model.name)}-x{self.scale}{tail}"

    @classmethod
    def of_row(cls, label: str, scale: int, path: str) -> Entry:
        """The entry a table row names (enough to find and read its runs)."""
        name = label.removesuffix(f" [{path}]") if path else label
        steps = tuple(int(s) for s in path.split("x")) if path else ()
        return cls(ModelRef(name, name, int(scale), ""), steps)


@dataclass
class Leaderboard:
    """The ranked table, the per-photo table it comes from, and the files written."""

    table: pd.DataFrame
    protocol: Protocol
    output: Path
    per_photo: pd.DataFrame = field(default_factory=pd.DataFrame)
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # models measured by this call
