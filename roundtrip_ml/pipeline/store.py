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
      .lock               fcntl lock held by the one process writing here (holder pid inside)

Every file is written atomically (temp file + fsync + rename), so a crash leaves either the old
or the new version, never half of one; the temp files a kill leaves are removed at the next
start or resume. Only one process writes a run directory at a time (``RunStore.lock``), and
``--overwrite`` deletes only what a run writes (``RUN_ENTRIES``), never a user's files.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ..core import specs
from ..core.errors import RunStoreError
from ..core.files import TMP_SUFFIX, atomic_write_parquet, path_error, read_json, read_parquet

# One meaning per column in every table: ``image`` is the source as given (a path or
# skimage:NAME), ``image_name`` its short name; ``scope`` is "chain" for a chain's own value and
# "group" for a statistic of a whole replica group (stored on the group's unperturbed chain).
METRIC_COLUMNS = [
    "run_id",
    "chain_id",
    "image",
    "image_name",
    "upscaler",
    "downscaler",
    "scale",
    "codec",
    "replica",
    "scope",
    "generation",
    "metric",
    "reference",
    "value",
]
_METRIC_COLUMNS_V1 = [c for c in METRIC_COLUMNS if c not in ("image_name", "scope")]  # 0.1
CHAIN_COLUMNS = ["chain_id", "image", "upscaler", "downscaler", "scale", "codec"]
FINGERPRINT_COLUMNS = ["chain_id", "generation", "fingerprint"]
REBUILD_FIX = (
    "the file is damaged: delete it and rerun the same command with --resume (which "
    "rebuilds it from parts/), or rerun with --overwrite"
)
REFERENCES = specs.REFERENCES  # the reference column's values

CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
CHAINS_FILE = "chains.parquet"
METRICS_FILE = "metrics.parquet"
FINGERPRINTS_FILE = "fingerprints.parquet"
LOCK_FILE = ".lock"
# Everything a run (and the summaries and reports made from it) writes at the top of its
# directory: what --overwrite may delete, and what does not make a folder "someone else's".
RUN_ENTRIES = frozenset(
    {
        CONFIG_FILE,
        MANIFEST_FILE,
        CHAINS_FILE,
        METRICS_FILE,
        FINGERPRINTS_FILE,
        LOCK_FILE,
        "summary.parquet",
        "summary.csv",
        "divergence.parquet",
        "divergence.csv",  # summarize
        "starts.parquet",
        "starts.csv",  # summarize, runs with several starts
        "parts",
        "frames",
        "checkpoints",
        "report",
    }
)


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

    def check(self, *, overwrite: bool, resume: bool, allow_nonempty: bool = False) -> None:
        """The refusals of ``prepare``, touching nothing: called before a run is planned (so a
        refusal is quick) and again by ``prepare`` under the lock (so it is never stale)."""
        self._check_path()
        had_run = self.exists()  # files beside a run were accepted when that run started
        if had_run and not resume and not overwrite:
            raise RunStoreError(
                str(self.root),
                f"already holds {self._state()} run",
                "pass --resume to continue it, --overwrite to replace it, or another --output",
            )
        if resume and not had_run:
            raise RunStoreError(str(self.root), "no run to resume here", "drop --resume")
        foreign = self.foreign_entries()
        if foreign and not had_run and not allow_nonempty:
            shown = ", ".join(foreign[:3]) + (
                f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            )
            raise RunStoreError(
                str(self.root),
                f"is a non-empty folder that holds no run ({shown})",
                "pick an empty or new --output, or pass --allow-nonempty to write beside them",
            )

    def _state(self) -> str:
        try:
            return "a finished" if self.is_complete() else "an unfinished"
        except RunStoreError:  # an unreadable manifest: still a run, of unknown state
            return "a (damaged)"

    def _check_path(self) -> None:
        """The directory, or its nearest existing ancestor, must be a folder."""
        p = self.root
        while not p.exists() and p != p.parent:
            p = p.parent
        if p.exists() and not p.is_dir():
            no = errno.EEXIST if p == self.root else errno.ENOTDIR
            raise path_error(
                self.root, FileExistsError(no, os.strerror(no)), "cannot create the run directory"
            )

    def prepare(self, *, overwrite: bool, resume: bool, allow_nonempty: bool = False) -> None:
        """Create the directory; refuse to clobber finished or partial work unless asked.

        Call it holding ``lock()``, after everything else was checked. ``overwrite`` deletes
        only what a run wrote; a non-empty folder that holds no run is refused unless
        ``allow_nonempty`` (its files stay).
        """
        self._mkdir()
        self.check(overwrite=overwrite, resume=resume, allow_nonempty=allow_nonempty)
        if self.exists() and not resume:
            self.remove_run_files()
        self.remove_temp_files()

    def _mkdir(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise path_error(self.root, e, "cannot create the run directory") from e
        if not self.root.is_dir():  # mkdir(exist_ok) passes silently over nothing; be explicit
            raise path_error(
                self.root,
                FileExistsError(errno.EEXIST, "is a file"),
                "cannot create the run directory",
            )

    def foreign_entries(self) -> list[str]:
        """Top-level entries a run did not write (user files: never deleted, never mixed in)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.name not in RUN_ENTRIES and not _is_temp(p.name)
        )

    def remove_run_files(self) -> None:
        """--overwrite: delete what a run wrote here (RUN_ENTRIES and temp files), nothing else;
        the lock file stays, since this process holds it."""
        for p in self.root.iterdir():
            if p.name == LOCK_FILE or not (p.name in RUN_ENTRIES or _is_temp(p.name)):
                continue
            try:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            except OSError as e:
                raise path_error(p, e, "cannot delete the old run's file") from e

    def remove_temp_files(self) -> int:
        """Delete the temp files a killed writer left (``.NAME.XXXX.tmp``); returns how many.
        Safe only under ``lock()``: no other process writes here then."""
        n = 0
        for d in (self.root, self.parts_dir, self.checkpoints_dir, *self._frame_dirs()):
            if not d.is_dir():
                continue
            for p in d.iterdir():
                if _is_temp(p.name) and p.is_file():
                    p.unlink(missing_ok=True)
                    n += 1
        return n

    def _frame_dirs(self) -> list[Path]:
        return (
            [d for d in self.frames_dir.iterdir() if d.is_dir()] if self.frames_dir.is_dir() else []
        )

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive OS lock on RUN/.lock while the block runs.

        ``fcntl.flock`` belongs to the open file, so the kernel drops it when the process dies,
        even by SIGKILL: there is never a stale lock to clean up. A second process (or a second
        open in this one) gets a RunStoreError naming the directory and the holder's pid.
        """
        import fcntl

        self._mkdir()
        path = self.root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as e:
            raise path_error(path, e, "cannot create the lock file") from e
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunStoreError(
                    str(self.root),
                    f"is in use by another roundtrip process ({_holder(fd)})",
                    "wait for it to finish or stop it, or pick another --output",
                ) from None
            holder = {
                "pid": os.getpid(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": " ".join(sys.argv)[:500],
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)  # before unlocking: a later holder writes its own line
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # --- readers used by report/summarize/sweep: the files are untrusted (one line each) -------
    def read_manifest(self) -> dict[str, Any]:
        return read_json(self.root / MANIFEST_FILE)

    def read_config(self) -> dict[str, Any]:
        return read_json(self.root / CONFIG_FILE)

    def read_chains(self) -> pd.DataFrame:
        return read_parquet(self.root / CHAINS_FILE, columns=CHAIN_COLUMNS)

    def read_metrics(self) -> pd.DataFrame:
        """The tidy metrics table; for an unfinished run, the rows flushed so far."""
        path = self.root / METRICS_FILE
        table = (
            read_parquet(path, columns=_METRIC_COLUMNS_V1, fix=REBUILD_FIX)
            if path.exists()
            else self._concat_parts("metrics")
        )
        return upgrade_metrics(table)

    def read_fingerprints(self) -> pd.DataFrame:
        path = self.root / FINGERPRINTS_FILE
        if path.exists():
            return read_parquet(path, columns=FINGERPRINT_COLUMNS, fix=REBUILD_FIX)
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
        cols = METRIC_COLUMNS if kind == "metrics" else FINGERPRINT_COLUMNS
        if not files:
            return pd.DataFrame(columns=cols)
        fix = "delete it and resume the run: its batch restarts from its last checkpoint"
        return pd.concat([read_parquet(p, columns=cols, fix=fix) for p in files], ignore_index=True)

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


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def _holder(fd: int) -> str:
    """The lock holder's line (pid, start, command), as well as it can be read."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']}, started {info['started']}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it is just starting"


def upgrade_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Read a format-1 table (roundtrip-ml 0.1: ``image`` held the short name, group rows had
    ``replica = -1``) in today's columns, so old runs still report."""
    if "scope" in df.columns:
        return df
    group = df["replica"] == -1
    df = df.assign(
        image_name=df["image"],
        scope=group.map({True: "group", False: "chain"}),
        replica=df["replica"].where(~group, 0),
    )
    return df[METRIC_COLUMNS]


def rows_to_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=METRIC_COLUMNS)
    return df.astype(
        {"generation": "int64", "value": "float64", "scale": "float64", "replica": "int64"}
    )
