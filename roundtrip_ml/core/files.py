"""Files written so that a crash never leaves half of one, readable by whoever the umask allows.

Every write goes through a temp file in the same folder, fsync, rename. An OSError becomes one
RunStoreError line naming the path and what the user can do. Parquet tables carry the on-disk
``format_version`` in their metadata, since they are meant to be read without roundtrip-ml.
"""

from __future__ import annotations

import errno
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import RoundtripError, RunStoreError

FORMAT_VERSION = 2  # of every table and manifest a run writes (1: roundtrip-ml 0.1)
TMP_SUFFIX = ".tmp"

_FIXES = {  # errno -> what the user can do about it
    errno.ENOSPC: "free disk space (or inodes) or pick another --output",
    errno.EDQUOT: "free space within your quota or pick another --output",
    errno.EROFS: "the filesystem is read-only: pick another --output",
    errno.EACCES: "fix the folder's permissions or pick another --output",
    errno.EPERM: "fix the folder's permissions or pick another --output",
    errno.ENOTDIR: "a part of the path is a file, not a folder: pick another --output",
    errno.EEXIST: "the path is a file, not a folder: pick another --output",
    errno.ENAMETOOLONG: "use a shorter --output path",
}


def path_error(path: Path, e: OSError, doing: str = "cannot write") -> RunStoreError:
    """One line for an OSError on a run path: what failed, why (strerror), and the fix."""
    fix = _FIXES.get(e.errno or -1, "check the path or pick another --output")
    return RunStoreError(str(path), f"{doing} ({e.strerror or e})", fix)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory, fsync, rename.

    The temp file is created with mode 0666 minus the umask (as a plain ``open`` would), not
    mkstemp's 0600, so a shared run directory stays readable by whoever the umask allows.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{TMP_SUFFIX}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        raise path_error(path, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise path_error(path, e) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(
        path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()
    )


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    """A Parquet table with ``roundtrip_ml.format_version`` in its schema metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = {**(table.schema.metadata or {}), b"roundtrip_ml.format_version": str(FORMAT_VERSION)}
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf, compression="zstd")
    atomic_write_bytes(path, buf.getvalue())


# ---- readers: every file the tool reads back is untrusted --------------------------------------

DAMAGED_FIX = "the file is damaged: restore it from a backup, or rerun with --overwrite"


def read_json(
    path: Path,
    *,
    error: type[RoundtripError] = RunStoreError,
    fix: str = DAMAGED_FIX,
    expect: type | None = dict,
) -> Any:
    """A JSON file as Python values; a missing, unreadable, non-JSON or wrongly-shaped file
    (``expect``: the top-level type) is one ``error`` line naming the file and ``fix``."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error(str(path), "file not found", fix) from None
    except OSError as e:
        raise error(str(path), f"cannot read ({e.strerror or e})", fix) from None
    except UnicodeDecodeError as e:
        raise error(str(path), f"is not JSON (not UTF-8 text at byte {e.start})", fix) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        why = "it is empty" if not text.strip() else f"line {e.lineno} column {e.colno}: {e.msg}"
        raise error(str(path), f"is not valid JSON ({why})", fix) from None
    except RecursionError:
        raise error(str(path), "is not usable JSON (nested too deeply)", fix) from None
    if expect is not None and not isinstance(data, expect):
        raise error(
            str(path), f"holds a JSON {_json_kind(data)}, not an {_json_kind(expect())}", fix
        )
    return data


def _json_kind(v: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(v), type(v).__name__)


def read_parquet(
    path: Path,
    *,
    error: type[RoundtripError] = RunStoreError,
    fix: str = DAMAGED_FIX,
    columns: tuple[str, ...] | list[str] = (),
) -> pd.DataFrame:
    """A Parquet table (a file or a dataset folder); an empty, truncated or garbage file, or
    one that lacks ``columns``, is one ``error`` line naming the file and ``fix``."""
    path = Path(path)
    try:
        df = pd.read_parquet(path, engine="pyarrow")
    except FileNotFoundError:
        raise error(str(path), "file not found", fix) from None
    except (pa.ArrowException, OSError, ValueError, TypeError, EOFError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        why = why.split("': ", 1)[-1] if why.startswith("Could not open") else why
        raise error(str(path), f"is not a readable Parquet table ({why[:160]})", fix) from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise error(
            str(path), f"lacks the column(s) {', '.join(missing)}: not a table this tool wrote", fix
        )
    return df
