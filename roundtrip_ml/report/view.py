"""Typed, read-only access to a run directory: what `roundtrip_ml.run` and
`roundtrip_ml.load_run` return (config, manifest, tables, frames), beside the report's own
readers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from ..core.errors import RunStoreError
from ..pipeline.config import ExperimentConfig, make_config
from ..pipeline.manifest import Manifest
from ..pipeline.store import CONFIG_FILE, MANIFEST_FILE, RunStore
from .data import Runs, load_runs


@dataclass
class RunView:
    """Typed, read-only access to a run directory (what `run` and `load_run` return).

    Attributes:
        path: The run directory.
        config: The resolved config the run recorded.
        manifest: Versions, device, seeds, per-batch status and errors.
        store: The directory's tables (metrics, chains, fingerprints).
    """

    path: Path
    config: ExperimentConfig
    manifest: Manifest
    store: RunStore

    @property
    def chains(self) -> pd.DataFrame:
        return self.store.read_chains()

    @property
    def metrics(self) -> pd.DataFrame:
        return self.store.read_metrics()

    @property
    def fingerprints(self) -> pd.DataFrame:
        return self.store.read_fingerprints()

    def frames(self, chain_id: str) -> dict[int, Path]:
        """Saved frame files of one chain, by generation."""
        return self.store.list_frames(chain_id)

    def frame(self, chain_id: str, generation: int = -1) -> Image.Image:
        frames = self.frames(chain_id)
        if not frames:
            raise KeyError(f"no frames saved for chain {chain_id!r}")
        g = max(frames) if generation == -1 else generation
        return Image.open(frames[g])

    def to_runs(self) -> Runs:
        return load_runs(self.path)


def load_run(path: str | Path) -> RunView:
    """Open a run directory written by `run` or `roundtrip run`.

    Args:
        path: The run directory.

    Returns:
        Typed, read-only access to the run's config, manifest and tables.

    Raises:
        RunStoreError: The folder holds no run.
    """
    store = RunStore(Path(path).expanduser())
    if not store.exists():
        raise RunStoreError(
            str(store.root), "holds no run (no manifest.json)", "pass the --output of a run"
        )
    cfg = make_config(store.read_config(), str(store.root / CONFIG_FILE))
    return RunView(store.root, cfg, Manifest.read(store.root / MANIFEST_FILE), store)
