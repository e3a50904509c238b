"""The run directory: the only thing reports, summaries and sweeps read.

Layout::

    RUN/
      config.json         resolved config (every default filled in)
      manifest.json       versions, device, seeds, input/model hashes, times, per-batch status
      chains.parquet      one row per chain: id, image, upscaler, downscaler, scale, codec, ...
      metrics.parquet     tidy rows (METRIC_COLUMNS), written when the run completes
      fingerprints.parquet  chain_id, generation, fingerprint (64-bit hash of the uint8 state)
      parts/              metrics/fingerprint rows flushed at each checkpoint (resume unit)
      frames/<chain_id>/g000000.png
      checkpoints/<batch_id>.safetensors

Every file is written atomically (temp file + fsync + rename), so a crash leaves either the old
or the new version, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import RunStoreError

METRIC_COLUMNS = [
    "run_id",
    "chain_id",
    "image",
    "upscaler",
    "downscaler",
    "scale",
    "codec",
    "replica",
    "generation",
    "metric",
    "reference",
    "value",
]
REFERENCES = ("original", "previous", "first", "lowres", "replicas", "unperturbed")

CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
CHAINS_FILE = "chains.parquet"
METRICS_FILE = "metrics.parquet"
FINGERPRINTS_FILE = "fingerprints.parquet"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise RunStoreError(
            str(path),
            f"cannot write ({e.strerror or e})",
            "free disk space or pick another --output",
        ) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(
        path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()
    )


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
    atomic_write_bytes(path, buf.getvalue())


class RunStore:
    """Read/write access to one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # --- paths -------------------------------------------------------------------------------
    @property
    def frames_dir(self) -> Path:
        return self.root / "frames"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def parts_dir(self) -> Path:
        return self.root / "parts"

    def frame_path(self, chain_id: str, generation: int) -> Path:
        return self.frames_dir / chain_id / f"g{generation:06d}.png"

    def checkpoint_path(self, batch_id: str) -> Path:
        return self.checkpoints_dir / f"{batch_id}.safetensors"

    # --- state -------------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.root / MANIFEST_FILE).exists()

    def is_complete(self) -> bool:
        return self.exists() and self.read_manifest().get("status") == "complete"

    def prepare(self, *, overwrite: bool, resume: bool) -> None:
        """Create the directory; refuse to clobber finished or partial work unless asked."""
        if self.exists() and not resume:
            if not overwrite:
                state = "a finished" if self.is_complete() else "an unfinished"
                raise RunStoreError(
                    str(self.root),
                    f"already holds {state} run",
                    "pass --resume to continue it, --overwrite to replace it, or another --output",
                )
            shutil.rmtree(self.root)
        if resume and not self.exists():
            raise RunStoreError(str(self.root), "no run to resume here", "drop --resume")
        self.root.mkdir(parents=True, exist_ok=True)

    # --- readers used by report/summarize/sweep -----------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        return json.loads((self.root / MANIFEST_FILE).read_text())

    def read_config(self) -> dict[str, Any]:
        return json.loads((self.root / CONFIG_FILE).read_text())

    def read_chains(self) -> pd.DataFrame:
        return pd.read_parquet(self.root / CHAINS_FILE)

    def read_metrics(self) -> pd.DataFrame:
        """The tidy metrics table; for an unfinished run, the rows flushed so far."""
        path = self.root / METRICS_FILE
        if path.exists():
            return pd.read_parquet(path)
        return self._concat_parts("metrics")

    def read_fingerprints(self) -> pd.DataFrame:
        path = self.root / FINGERPRINTS_FILE
        if path.exists():
            return pd.read_parquet(path)
        return self._concat_parts("fingerprints")

    def list_frames(self, chain_id: str) -> dict[int, Path]:
        """Saved frames of one chain by generation."""
        d = self.frames_dir / chain_id
        if not d.exists():
            return {}
        return {int(p.stem[1:]): p for p in sorted(d.glob("g*.png"))}

    # --- writers used by the engine ---------------------------------------------------------
    def write_part(self, kind: str, batch_id: str, upto: int, df: pd.DataFrame) -> None:
        atomic_write_parquet(self.parts_dir / f"{kind}-{batch_id}-{upto:06d}.parquet", df)

    def drop_parts_after(self, batch_id: str, generation: int) -> None:
        """On resume: forget rows flushed after the checkpoint we restart from."""
        for p in self.parts_dir.glob(f"*-{batch_id}-*.parquet"):
            if int(p.stem.rsplit("-", 1)[1]) > generation:
                p.unlink()

    def _part_files(self, kind: str) -> list[Path]:
        return sorted(self.parts_dir.glob(f"{kind}-*.parquet"))

    def _concat_parts(self, kind: str) -> pd.DataFrame:
        files = self._part_files(kind)
        if not files:
            cols = (
                METRIC_COLUMNS if kind == "metrics" else ["chain_id", "generation", "fingerprint"]
            )
            return pd.DataFrame(columns=cols)
        return pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)

    def finalize_tables(self) -> None:
        """Merge the flushed parts into the final, deterministically sorted tables."""
        metrics = self._concat_parts("metrics")
        if len(metrics):
            metrics = metrics.sort_values(
                ["chain_id", "generation", "reference", "metric"], kind="stable"
            ).reset_index(drop=True)
        atomic_write_parquet(self.root / METRICS_FILE, metrics[METRIC_COLUMNS])
        fps = self._concat_parts("fingerprints")
        if len(fps):
            fps = fps.sort_values(["chain_id", "generation"], kind="stable").reset_index(drop=True)
        atomic_write_parquet(self.root / FINGERPRINTS_FILE, fps)


def rows_to_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=METRIC_COLUMNS)
    return df.astype(
        {"generation": "int64", "value": "float64", "scale": "float64", "replica": "int64"}
    )
