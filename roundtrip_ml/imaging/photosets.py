"""Standard photo sets by name (``set:kodak``, ``set:kodak/kodim05``), fetched once into the cache.

Why: a comparison is only comparable to others when it runs on photos others use (Kodak, Set5,
Set14, BSD100, Urban100, McMaster, DIV2K validation). The registry (photosets.toml beside this
module) names each set's canonical source, licence and published SHA-256 pins; downloading goes
through ``core.weights.download`` (pooch: temp file, hash check, atomic move; the offline switch).
A set without a published pin is refused unless the user trusts it by name
($ROUNDTRIP_TRUST_UNPINNED); its files' hashes are then recorded at the first download and
checked at every later use, so a file that changes upstream is noticed (trust on first use).

Torch-free: the config checks set names with this module before torch loads.
"""

from __future__ import annotations

import fnmatch
import json
import os
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, ImageError
from ..core.weights import cache_dir, download, is_verified, offline_mode, sha256_file

__all__ = [
    "MIRROR_ENV",
    "PREFIX",
    "REGISTRY_ENV",
    "TRUST_ENV",
    "PhotoFile",
    "PhotoSet",
    "check_spec",
    "expand",
    "fetch_set",
    "get_set",
    "load_photosets",
    "photoset_rows",
    "set_dir",
]

PREFIX = "set:"
REGISTRY_ENV = "ROUNDTRIP_PHOTOSETS"  # another registry TOML (tests, private sets)
MIRROR_ENV = "ROUNDTRIP_PHOTOSETS_MIRROR"  # a base URL serving <set>/<file> for every set
TRUST_ENV = "ROUNDTRIP_TRUST_UNPINNED"  # comma list of set names (or "all") trusted unpinned
_PINS = "pins.json"  # per set folder: {file: sha256} recorded for unpinned or extracted files


@dataclass(frozen=True)
class PhotoFile:
    """One downloadable file; ``sha256 == ""`` means no published pin exists."""

    name: str
    url: str
    bytes: int | None = None
    sha256: str = ""


@dataclass(frozen=True)
class PhotoSet:
    """One registry entry: where its photos come from and under which terms."""

    name: str
    title: str
    page: str
    license: str
    citation: str
    count: int
    pin_source: str
    files: tuple[PhotoFile, ...] = ()
    archive: PhotoFile | None = None
    members: str = ""  # glob of the photos inside the archive

    @property
    def pinned(self) -> bool:
        """Every byte fetched is checked against a published SHA-256."""
        if self.archive is not None:
            return bool(self.archive.sha256)
        return bool(self.files) and all(f.sha256 for f in self.files)


def registry_path() -> Path:
    env = os.environ.get(REGISTRY_ENV)
    return Path(env).expanduser() if env else Path(__file__).with_name("photosets.toml")


def _file(d: dict[str, Any], base: str, where: str) -> PhotoFile:
    name = d.get("name")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ConfigError(where, f"file name {name!r} must be a plain file name")
    sha = d.get("sha256", "")
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise ConfigError(where, f"sha256 of {name} is not 64 lowercase hex digits")
    url = d.get("url") or (base + name if base else "")
    if not url:
        raise ConfigError(where, f"{name} has no url and the set no base_url")
    return PhotoFile(name, url, d.get("bytes"), sha)


def _parse(name: str, d: dict[str, Any], where: str) -> PhotoSet:
    where = f"{where} [{name}]"
    missing = [k for k in ("title", "page", "license", "count") if k not in d]
    if missing:
        raise ConfigError(where, f"missing {', '.join(missing)}", "see photosets.toml")
    base = d.get("base_url", "")
    files = [_file(f, base, where) for f in d.get("files", [])]
    if "template" in d:
        t = d["template"]
        files += [
            _file({"name": t["pattern"].format(i=i)}, base, where)
            for i in range(1, int(t["count"]) + 1)
        ]
    archive = _file(d["archive"], "", where) if "archive" in d else None
    if bool(files) == (archive is not None):
        raise ConfigError(where, "needs exactly one of files/template or archive")
    if archive is not None and not d.get("members"):
        raise ConfigError(where, "an archive set needs members (a glob inside the archive)")
    return PhotoSet(
        name=name,
        title=d["title"],
        page=d["page"],
        license=d["license"],
        citation=d.get("citation", ""),
        count=int(d["count"]),
        pin_source=d.get("pin_source", ""),
        files=tuple(files),
        archive=archive,
        members=d.get("members", ""),
    )


@cache
def _load(path: Path) -> dict[str, PhotoSet]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(
            str(path),
            f"cannot read the photo-set registry ({e})",
            f"fix the file or unset {REGISTRY_ENV}",
        ) from e
    if data.get("format_version") != 1:
        raise ConfigError(str(path), "format_version must be 1")
    return {k: _parse(k, v, str(path)) for k, v in data.items() if isinstance(v, dict)}


def load_photosets(path: Path | None = None) -> dict[str, PhotoSet]:
    """Every known set by name (the packaged registry, or $ROUNDTRIP_PHOTOSETS)."""
    return _load((path or registry_path()).resolve())


def get_set(name: str) -> PhotoSet:
    sets = load_photosets()
    key = name.strip().lower()
    if key in sets:
        return sets[key]
    import difflib

    close = difflib.get_close_matches(key, list(sets), n=2, cutoff=0.5)
    raise ConfigError(
        f"{PREFIX}{name}",
        "not a known photo set",
        f"did you mean {' or '.join(PREFIX + c for c in close)}?"
        if close
        else f"use one of: {', '.join(PREFIX + s for s in sets)}",
    )


def _trusted(s: PhotoSet, trust: bool | None) -> bool:
    if trust is not None:
        return trust
    names = {n.strip().lower() for n in os.environ.get(TRUST_ENV, "").split(",")}
    return s.name in names or "all" in names


def set_dir(s: PhotoSet, cache: str | Path | None = None) -> Path:
    """Where a set's photos live: <cache>/photosets/<name>/ (see core.weights.cache_dir)."""
    return cache_dir(cache) / "photosets" / s.name


def _pins(folder: Path) -> dict[str, str]:
    p = folder / _PINS
    try:
        return dict(json.loads(p.read_text())) if p.is_file() else {}
    except (OSError, ValueError):
        return {}


def _write_pins(folder: Path, pins: dict[str, str]) -> None:
    tmp = folder / (_PINS + ".tmp")
    tmp.write_text(json.dumps(dict(sorted(pins.items())), indent=1))
    tmp.replace(folder / _PINS)


def check_spec(spec: str, trust: bool | None = None) -> tuple[PhotoSet, str | None]:
    """(set, photo or None) of ``set:NAME[/PHOTO]``, refusing before anything is fetched: an
    unknown set or photo, or an unpinned set that is neither trusted nor already recorded."""
    body = spec.strip()[len(PREFIX) :]
    name, _, photo = body.partition("/")
    s = get_set(name)
    if (
        photo
        and s.files
        and photo not in {f.name for f in s.files} | {Path(f.name).stem for f in s.files}
    ):
        shown = ", ".join(Path(f.name).stem for f in s.files[:4])
        raise ConfigError(spec, f"{s.name} has no photo {photo!r}", f"e.g. {shown}, ...")
    if not s.pinned and not _trusted(s, trust) and not _pins(set_dir(s)):
        raise ConfigError(
            spec,
            f"{s.name} has no published SHA-256 pin, so its download cannot be verified",
            f"set {TRUST_ENV}={s.name} to trust "
            f"{s.page} as first downloaded (hashes are then recorded and "
            "checked), or use a pinned set (set:kodak, set:div2k-valid)",
        )
    return s, photo or None


def _mirror_url(s: PhotoSet, f: PhotoFile) -> str:
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{s.name}/{f.name}" if mirror else f.url


def _fetch_file(
    s: PhotoSet, f: PhotoFile, folder: Path, offline: bool | None, progress: bool
) -> Path:
    dest = folder / f.name
    what = f"{PREFIX}{s.name}/{f.name}"
    url = _mirror_url(s, f)
    if f.sha256:
        return download(
            [url],
            f.sha256,
            f.bytes,
            dest,
            what=what,
            offline=offline,
            progress=progress,
            error=ImageError,
        )
    pins = _pins(folder)
    if f.name in pins:  # trusted earlier: the recorded hash is the pin now
        if is_verified(dest, pins[f.name]):
            return dest
        if dest.is_file():
            raise ImageError(
                str(dest),
                f"changed since its first download (recorded sha256 "
                f"{pins[f.name]}, now {sha256_file(dest)})",
                f"delete {folder} to fetch the set afresh",
            )
    download(
        [url], None, None, dest, what=what, offline=offline, progress=progress, error=ImageError
    )
    pins[f.name] = sha256_file(dest)
    _write_pins(folder, pins)
    return dest


def _extract(s: PhotoSet, archive: Path, folder: Path) -> list[Path]:
    """The archive's photos (``members``) as plain files in ``folder``; their hashes pinned."""
    import tarfile
    import zipfile

    out: dict[str, bytes] = {}
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for n in z.namelist():
                if fnmatch.fnmatch(n, s.members):
                    out[Path(n).name] = z.read(n)
    else:
        try:
            with tarfile.open(archive) as t:
                for m in t.getmembers():
                    if m.isfile() and fnmatch.fnmatch(m.name, s.members):
                        fh = t.extractfile(m)
                        if fh is not None:
                            out[Path(m.name).name] = fh.read()
        except tarfile.TarError as e:
            raise ImageError(
                str(archive),
                f"not a zip or tar archive ({e})",
                f"delete it and fetch {PREFIX}{s.name} again",
            ) from e
    if len(out) != s.count:
        raise ImageError(
            str(archive),
            f"holds {len(out)} photos matching {s.members!r}, the registry expects {s.count}",
            "the archive changed: report it",
        )
    import hashlib

    pins = {}
    for name, data in sorted(out.items()):
        tmp = folder / (name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(folder / name)
        pins[name] = hashlib.sha256(data).hexdigest()
    _write_pins(folder, pins)
    return [folder / n for n in sorted(out)]


def _local(s: PhotoSet, folder: Path) -> list[Path]:
    """Photos already in the set's folder, each checked against its recorded hash."""
    pins = _pins(folder)
    files = sorted(p for p in folder.glob("*") if p.is_file() and p.name in pins)
    for p in files:
        if not is_verified(p, pins[p.name]):
            raise ImageError(
                str(p),
                f"changed since it was extracted (recorded sha256 {pins[p.name]})",
                f"delete {folder} to fetch the set afresh",
            )
    return files


def fetch_set(
    s: PhotoSet,
    *,
    photo: str | None = None,
    cache: str | Path | None = None,
    offline: bool | None = None,
    trust: bool | None = None,
    progress: bool = True,
) -> list[Path]:
    """The set's photos as verified local files (downloaded once), sorted by name; ``photo``
    restricts a file-list set to one photo (only that file is fetched)."""
    check_spec(f"{PREFIX}{s.name}" + (f"/{photo}" if photo else ""), trust)
    folder = set_dir(s, cache)
    folder.mkdir(parents=True, exist_ok=True)
    if s.archive is not None:
        paths = _local(s, folder)
        if len(paths) != s.count:
            arc = folder / ".archive" / s.archive.name
            if offline_mode(offline) and not arc.is_file():
                raise ImageError(
                    f"{PREFIX}{s.name}",
                    f"offline mode is on and the set is not in {folder}",
                    f"fetch it once online, or put "
                    f"{s.archive.name} (sha256 {s.archive.sha256}) in {arc.parent}",
                )
            _fetch_file(s, s.archive, arc.parent, offline, progress)
            paths = _extract(s, arc, folder)
            arc.unlink()  # its photos are pinned by the hashes just recorded
    else:
        wanted = [f for f in s.files if photo in (None, f.name, Path(f.name).stem)]
        paths = [_fetch_file(s, f, folder, offline, progress) for f in wanted]
    if photo and not s.files:
        paths = [p for p in paths if photo in (p.name, p.stem)]
        if not paths:
            raise ConfigError(f"{PREFIX}{s.name}/{photo}", f"{s.name} has no photo {photo!r}")
    return paths


def expand(spec: str, **kwargs: Any) -> list[str]:
    """``set:NAME[/PHOTO]`` -> local file paths (fetching what is missing)."""
    s, photo = check_spec(spec, kwargs.get("trust"))
    return [str(p) for p in fetch_set(s, photo=photo, **kwargs)]


def photoset_rows() -> list[dict[str, Any]]:
    """One plain dict per known set (name, photos, pinned, licence, source page)."""
    return [
        {
            "name": s.name,
            "photos": s.count,
            "pinned": s.pinned,
            "license": s.license,
            "page": s.page,
            "title": s.title,
        }
        for s in load_photosets().values()
    ]
