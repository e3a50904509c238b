"""The board directory's layout and the result type: file names, the table key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .protocol import Protocol

__all__ = ["FILES", "KEY", "RUNS", "Leaderboard"]

FILES = {
    "protocol": "protocol.json",
    "per_photo": "per_photo.parquet",
    "per_photo_csv": "per_photo.csv",
    "table": "leaderboard.csv",
    "markdown": "leaderboard.md",
}
RUNS = "runs"
KEY = ["upscaler", "scale", "codec", "photo", "metric", "generation"]


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
