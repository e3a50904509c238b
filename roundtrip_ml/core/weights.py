"""The weights cache, the offline switch and file hashing: one place for every downloaded file
(SR model weights, the LPIPS/DISTS backbones) and every check of one.

Downloading is pooch's job (temp file in the cache folder, SHA-256 check, atomic move); this
module decides *where* (a per-user cache, overridable), *whether* (the offline switch) and
remembers a successful check in a stamp so that choosing a source does not re-hash 60 MB.
Whoever loads a file hashes the bytes it actually reads (``sha256_file`` / the loader's own
read), never trusting a stamp for that.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import RoundtripError, WeightsError

CACHE_ENV = "ROUNDTRIP_CACHE_DIR"
OFFLINE_ENV = "ROUNDTRIP_OFFLINE"


def cache_dir(override: str | Path | None = None) -> Path:
    """The weights cache: the flag, else $ROUNDTRIP_CACHE_DIR, else the per-user cache dir."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("roundtrip-ml")) / "models"


def offline_mode(override: bool | None = None) -> bool:
    """The flag if given, else $ROUNDTRIP_OFFLINE (1/true/yes)."""
    if override is not None:
        return override
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def forget_verified(path: Path) -> None:
    """Drop the stamp of a file found wrong on load, so nothing trusts it again."""
    _stamp_path(path).unlink(missing_ok=True)


def is_verified(
    path: Path, sha256: str, nbytes: int | None = None, *, rehash: bool = False
) -> bool:
    """True when ``path`` exists with this size and SHA-256; the stamp beside it remembers a
    check until the file's size or mtime changes (``rehash`` always reads the file)."""
    if not path.is_file():
        return False
    stamp = _stamp_path(path)
    if not rehash and stamp.is_file():
        try:
            if json.loads(stamp.read_text()) == {**_stamp(path), "sha256": sha256}:
                return True
        except (OSError, ValueError):
            pass
    ok = (nbytes is None or path.stat().st_size == nbytes) and sha256_file(path) == sha256
    if ok:
        stamp.write_text(json.dumps({**_stamp(path), "sha256": sha256}))
    else:
        stamp.unlink(missing_ok=True)
    return ok


class _RichBar:
    """The progress-bar object pooch drives (total/update/reset/close), drawn with rich."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        self._p = Progress(
            *Progress.get_default_columns(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
        )
        self._task = self._p.add_task(label, total=None)
        self._p.start()

    @property
    def total(self) -> float | None:
        return self._p.tasks[0].total

    @total.setter
    def total(self, value: int) -> None:
        self._p.update(self._task, total=value or None)

    def update(self, n: int) -> None:
        self._p.advance(self._task, n)

    def reset(self) -> None:
        self._p.reset(self._task, total=self.total)

    def close(self) -> None:
        self._p.stop()


def download(
    urls: Sequence[str],
    sha256: str | None,
    nbytes: int | None,
    dest: Path,
    *,
    what: str,
    offline: bool | None = None,
    progress: bool = True,
    error: type[RoundtripError] = WeightsError,
) -> Path:
    """Return ``dest`` verified, downloading it from the first URL that works if needed.

    pooch streams to a temp file beside ``dest``, checks the SHA-256 and only then moves it
    into place, so a failed or corrupted download never leaves a file behind.
    ``sha256=None`` (a file the caller chose to trust unpinned) skips the check: the caller
    hashes what arrived and pins it. ``error`` is the class of what is raised (photo sets raise
    ImageError, weights WeightsError).
    """
    if sha256 is None:
        if dest.is_file():
            return dest
    elif is_verified(dest, sha256, nbytes):
        return dest
    hint = f"download {urls[0]} (sha256 {sha256 or 'unpinned'}) and place it at {dest}"
    if offline_mode(offline):
        raise error(
            what,
            f"offline mode is on and {dest.name} is not in {dest.parent}",
            hint + f", or turn off --offline / {OFFLINE_ENV}",
        )
    import pooch
    import requests

    # our own bar and messages say what happens; pooch's logger keeps the stream it first saw,
    # which may be long closed in a notebook or a test runner
    pooch.get_logger().setLevel("WARNING")
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        bar: Any = _RichBar(dest.name) if progress else False
        try:
            pooch.retrieve(
                url,
                known_hash=f"sha256:{sha256}" if sha256 else None,
                fname=dest.name,
                path=dest.parent,
                downloader=pooch.HTTPDownloader(progressbar=bar),
                progressbar=False,
            )
        except ValueError as e:  # pooch: hash mismatch (temp file already deleted)
            m = re.search(r"got ([0-9a-f]{64})", str(e))
            actual = m.group(1) if m else "unknown"
            raise error(
                url,
                f"SHA-256 mismatch: expected {sha256}, got {actual}; the download was deleted",
                "retry later; if it persists, the upstream file changed: "
                "report it rather than editing the registry hash",
            ) from e
        except requests.RequestException as e:
            failures.append(f"{url}: {e}")
            continue
        finally:
            if bar:
                bar.close()
        if sha256 is not None and not is_verified(dest, sha256, nbytes, rehash=True):
            dest.unlink(missing_ok=True)  # size on top of the hash
            raise error(
                str(dest),
                "downloaded file failed verification (size)",
                "fetch again; if it persists, the upstream file changed",
            )
        return dest
    raise error(what, "download failed: " + "; ".join(failures), hint)
