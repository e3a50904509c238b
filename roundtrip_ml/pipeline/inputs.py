"""What the config's ``images`` key names: files, globs, scikit-image samples (``skimage:NAME``)
and standard photo sets (``set:NAME[/PHOTO]``), checked cheaply at validation and expanded into
the list of inputs when a run is planned."""

from __future__ import annotations

import glob
from pathlib import Path

from ..core.errors import ConfigError
from ..imaging.images import SAMPLE_PREFIX
from ..imaging.photosets import PREFIX as PHOTOSET_PREFIX
from ..imaging.photosets import check_spec, expand

__all__ = ["check_images", "expand_images"]


def check_images(images: list[str], source: str) -> None:
    """Refuse an unknown photo set or photo, or an unpinned set nobody trusted, before any
    download (torch-free: part of config validation)."""
    for im in images:
        if im.startswith(PHOTOSET_PREFIX):
            try:
                check_spec(im)
            except ConfigError as e:
                raise ConfigError(
                    f"{source}: key 'images'", f"{e.what}: {e.problem}", e.fix
                ) from None


def expand_images(patterns: list[str]) -> list[str]:
    """Expand globs (sorted, deterministic) and photo sets (``set:kodak``: its files, fetched
    once into the cache); literal paths and skimage samples pass through."""
    out: list[str] = []
    for pat in patterns:
        if pat.startswith(PHOTOSET_PREFIX):
            out.extend(expand(pat))
            continue
        if pat.startswith(SAMPLE_PREFIX) or not any(ch in pat for ch in "*?["):
            out.append(pat)
            continue
        matches = sorted(glob.glob(pat, recursive=True))
        if not matches:
            raise ConfigError(f"images: {pat!r}", "glob matches no file", "check the pattern")
        out.extend(m for m in matches if Path(m).is_file())
    return list(dict.fromkeys(out))
