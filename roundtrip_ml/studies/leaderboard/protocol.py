"""A leaderboard's protocol: everything that decides its numbers, written to protocol.json.

Why strict: two boards are comparable only when their protocols are equal, so the file is
validated field by field (unknown keys, wrong types and a changed photo are refused with one
line) and everything but the model list is hashed; boards merge only when the hashes agree.
The model list is part of the file, so ``--protocol FILE`` reruns exactly the board it came
from: photos (pinned by SHA-256), models, sizes, seed.

Photos: ``skimage:NAME`` names a photo file inside scikit-image's wheel (offline, pinned by
its hash like any other file); ``set:NAME/PHOTO`` one photo of a standard set
(imaging/photosets.py: fetched once into the cache, so a protocol drawn from a set runs on
any machine, and ``photo_set`` records the set); anything else is a path the engine reads.
``backend`` names how the models run (``auto``: the ncnn runtime on a CPU for ncnn weights,
else torch; the runs' manifests record what ran) and ``stabilizer`` what runs on every upscale
before its handoff (``none``, ``colour``, ``histogram``, ``wavelet``, ``backproject:N``): a
board with a stabiliser compares models *with* it.

Upscale paths (``up_steps``, e.g. ``((2, 2),)``): each path adds entries at its total scale
reached in stages (one x4 downscale, then two x2 upscales): every model whose native scale is
the step, and the baselines, labelled ``NAME [2x2]`` and ranked with the one-step x4 models
against the one-step reference. Like the model list, the paths add entries and change no
other entry's numbers, so they are not hashed (boards with other paths merge and extend), and
an empty list is not written (files from before paths existed read and hash as they did).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ...core import specs
from ...core.errors import ConfigError
from ...core.files import read_json

__all__ = [
    "BACKENDS",
    "CPU",
    "FORMAT",
    "PRESETS",
    "QUICK",
    "QUICK_MODELS",
    "SEED",
    "VERSION",
    "ModelRef",
    "Photo",
    "Protocol",
    "check_path",
    "load_protocol",
    "parse_path",
    "protocol_from_json",
    "resolve_photo",
    "skimage_photo",
]

FORMAT = "roundtrip-ml leaderboard protocol"
VERSION = 2  # 1: the pre-paired board (no photo hashes, no model hashes, ranked unpaired)
BACKENDS = specs.BACKENDS  # runtimes a protocol may name (core/specs.py)
METRICS = ("psnr", "ssim", "colour", "ssimulacra2")  # measured every generation, vs the original

# scikit-image photos by name -> file in its wheel (skimage.data names where they differ)
_SKIMAGE_FILES = {
    "immunohistochemistry": "ihc.png",
    "motorcycle": "motorcycle_left.png",
    "colorwheel": "color.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "rocket": "rocket.jpg",
    "retina": "retina.jpg",
}


@dataclass(frozen=True)
class Photo:
    """One photo: where it comes from and the SHA-256 of its file's bytes."""

    source: str
    sha256: str

    @property
    def set_name(self) -> str | None:
        """The standard photo set of a ``set:NAME/PHOTO`` source; None for any other."""
        return self.source[4:].split("/", 1)[0] if self.source.startswith("set:") else None

    @property
    def name(self) -> str:
        """The photo's label in every table: the sample name or the file's stem (a set's
        numbered photo gets the set's name too: ``mcmaster-1``)."""
        if self.source.startswith("skimage:"):
            return self.source.removeprefix("skimage:")
        stem = Path(self.source).stem
        return f"{self.set_name}-{stem}" if self.set_name and stem.isdigit() else stem


@dataclass(frozen=True)
class ModelRef:
    """A model on the board: its label, what the engine loads (registry name, weights file or
    ncnn:PATH.param), the roundtrip scale it runs at and the SHA-256 of its weights file."""

    name: str
    spec: str
    scale: int
    sha256: str


@dataclass(frozen=True)
class Protocol:
    """The measurement design (not the display: --rank-by and --ci only change the table)."""

    name: str
    photos: tuple[Photo, ...]
    crop: int | None  # square centre crop (px) of every photo; None: the photo (max_side)
    generations: int
    max_side: int | None = None
    codecs: tuple[str, ...] = ("png",)
    downscaler: str = "lanczos3"
    baselines: tuple[str, ...] = ("lanczos3", "bicubic")  # the first is the paired reference
    replicas: int = 1  # perturbed copies per chain: the divergence criterion
    perturbation: str = "lsb"
    collapse_drop_db: float = 3.0  # collapse: generations until PSNR is this far below g1's
    x1_scale: int = 2
    seed: int = 0
    backend: str = "auto"
    stabilizer: str = "none"
    photo_set: str | None = None
    metrics: tuple[str, ...] = METRICS
    models: tuple[ModelRef, ...] = ()
    up_steps: tuple[tuple[int, ...], ...] = ()  # upscale paths: entries, like the models
    version: int = VERSION

    @property
    def reference(self) -> str:
        return self.baselines[0]

    def hash(self) -> str:
        """SHA-256 of everything but the entries (models and paths): equal hashes merge."""
        d = self.to_json()
        d.pop("models")
        d.pop("up_steps", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        if not self.up_steps:
            d.pop("up_steps")  # protocol files from before paths existed stay byte-identical
        return d

    def with_models(self, models: list[ModelRef]) -> Protocol:
        return replace(self, models=tuple(sorted(models, key=lambda m: (m.scale, m.name))))

    def with_paths(self, paths: list[tuple[int, ...]]) -> Protocol:
        """The paths deduplicated, in a canonical order (total scale, then steps)."""
        return replace(self, up_steps=tuple(sorted(set(paths), key=lambda s: (math.prod(s), s))))

    def describe(self) -> dict[str, Any]:
        """What protocol.json holds: the fields, their hash and what they mean."""
        about = ABOUT.format(x1_scale=self.x1_scale) + (PATHS_ABOUT if self.up_steps else "")
        return {"format": FORMAT, **self.to_json(), "hash": self.hash(), "about": about}


ABOUT = (
    "Every model runs at its native scale (x1 models in x{x1_scale} roundtrips); the "
    "baselines run at every scale present and the first one is the paired reference. "
    "Per photo: model - reference; mean paired difference with a 95% CI (none under 3 "
    "photos); groups from paired t-tests between all models of a scale and codec, Holm-"
    "corrected. Tables: per_photo.csv (every measurement), leaderboard.csv (ranked)."
)
PATHS_ABOUT = (
    " Paths (up_steps): the upscale reached in stages (one downscale by the product); entered "
    "for the baselines and every model whose native scale is the step, labelled NAME [2x2], "
    "ranked with the one-step models of that scale against the one-step reference."
)


def _path_problem(steps: tuple[int, ...], crop: int | None) -> str | None:
    if len(steps) < 2:
        return "one step is no path (every model already runs at its own scale)"
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 2 for s in steps):
        return f"{list(steps)} must be whole-number steps >= 2"
    total = math.prod(steps)
    if total > 16:
        return f"{list(steps)} multiplies to x{total}, over the largest scale, x16"
    if crop is not None and crop % total:
        return f"{list(steps)} multiplies to x{total}, which does not divide the {crop} px crop"
    return None


def check_path(steps: tuple[int, ...], crop: int | None, what: str) -> None:
    """A path is two or more whole steps >= 2 whose product is a scale the crop divides (so
    every stage keeps whole pixels)."""
    if problem := _path_problem(steps, crop):
        raise ConfigError(
            what, problem, "give two or more steps whose product divides the crop: 2,2 (x4)"
        )


def parse_path(text: str, crop: int | None) -> tuple[int, ...]:
    """``--up-steps 2,2`` as a checked path; the error names the flag."""
    what = f"--up-steps {text}"
    try:
        steps = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise ConfigError(
            what, "is not a comma list of whole numbers", "write the steps as 2,2 (x4 in two x2)"
        ) from None
    check_path(steps, crop, what)
    return steps


def skimage_photo(name: str) -> Path:
    """The file of a photo shipped in scikit-image's wheel (no download)."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    fname = _SKIMAGE_FILES.get(name, f"{name}.png")
    path = folder / fname
    if "/" in name or not path.is_file():
        have = sorted(p.stem for p in folder.glob("*.png") if p.is_file())
        raise ConfigError(
            f"skimage:{name}",
            "not a photo in scikit-image's wheel",
            f"use one of: {', '.join(sorted({*have, *_SKIMAGE_FILES}))}",
        )
    return path


def resolve_photo(source: str) -> Path:
    """The file a protocol's photo source names (a set's photo is fetched once if missing)."""
    if source.startswith("skimage:"):
        return skimage_photo(source.removeprefix("skimage:"))
    if source.startswith("set:"):
        from ...imaging import photosets

        return Path(photosets.expand(source)[0])
    path = Path(source).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"photo {source}",
            "file not found",
            "check the path in --images or the protocol's photos",
        )
    return path


def photo(source: str) -> Photo:
    from ...core.weights import sha256_file

    return Photo(source, sha256_file(resolve_photo(source)))


def _photos(*names: str) -> tuple[Photo, ...]:
    return tuple(Photo(f"skimage:{n}", "") for n in names)


#: --quick: a smoke test (n = 2 photos: no intervals, and the board says so)
QUICK = Protocol("quick", _photos("astronaut", "coffee"), crop=96, generations=3)
QUICK_MODELS = (
    "realcugan-se-x2",
    "waifu2x-upconv-photo-x2",
    "span-x2-ch48",
    "srmd-x2",
    "realesr-animevideov3",
)
#: 12 offline photos: the 8 colour photos in scikit-image's wheel (portrait, food, animal,
#: object, astronomy, medical fundus, microscopy, street scene) and 4 grey ones with natural
#: texture and edges (camera, coins, brick, grass); synthetic images (chessboard, logo, text,
#: colour wheel) are left out: they reward an upscaler for sharp edges no photo has. Sized to
#: the 2-hour budget on a 2-core CPU: 48 generations took 2 h 0 min here (24 took 56 min)
CPU = Protocol(
    "cpu",
    _photos(
        *("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina"),
        *("immunohistochemistry", "motorcycle", "camera", "coins", "brick", "grass"),
    ),
    crop=132,
    generations=48,
)
#: the published experiment's chain: a 2000 px photo -> 500 px -> x4, 200 generations, PNG
#: and JPEG 90 handoffs; for a GPU. Its photos are the first eight of DIV2K validation (2040 px
#: wide, shrunk to 2000 px; the first eight, not picked by eye), fetched once through the
#: pinned archive (set:div2k-valid); offline photos are too small (300-1411 px) for this size
SEED = Protocol(
    "seed",
    tuple(Photo(f"set:div2k-valid/{i:04d}", "") for i in range(801, 809)),
    crop=None,
    max_side=2000,
    generations=200,
    codecs=("png", "jpeg:90"),
    photo_set="div2k-valid",
)
PRESETS = {p.name: p for p in (QUICK, CPU, SEED)}


def pin_photos(p: Protocol) -> Protocol:
    """Fill in (or check) every photo's SHA-256 from its file; a changed photo is refused."""
    out = []
    for ph in p.photos:
        now = photo(ph.source)
        if ph.sha256 and ph.sha256 != now.sha256:
            raise ConfigError(
                f"photo {ph.source}",
                f"its SHA-256 is {now.sha256[:12]}..., the protocol pins {ph.sha256[:12]}...",
                "use the protocol's own file (another scikit-image version?)",
            )
        out.append(now)
    names = [x.name for x in out]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError("photos", f"two photos named {dup[0]!r}", "rename one file")
    return replace(p, photos=tuple(out))


# ---- strict reading -------------------------------------------------------------------------

_TYPES: dict[str, Any] = {
    "name": str,
    "crop": (int, type(None)),
    "generations": int,
    "max_side": (int, type(None)),
    "downscaler": str,
    "replicas": int,
    "perturbation": str,
    "collapse_drop_db": (float, int),
    "x1_scale": int,
    "seed": int,
    "backend": str,
    "stabilizer": str,
    "photo_set": (str, type(None)),
    "version": int,
}
_LISTS = {"codecs": str, "baselines": str, "metrics": str}
_DERIVED = {"format", "hash", "about"}  # written for readers, checked or ignored on reading


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(
        where, problem, "start from a protocol.json written by `roundtrip leaderboard run`"
    )


def _typed(where: str, key: str, value: Any, kind: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise _fail(
            f"{where}: {key}",
            f"must be {names.replace('NoneType', 'null')}, got {json.dumps(value)[:40]}",
        )
    return value


def _records(where: str, key: str, value: Any, shape: dict[str, Any]) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _fail(f"{where}: {key}", f"must be a list of objects, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != set(shape):
            raise _fail(
                f"{where}: {key}[{i}]",
                f"must be an object with exactly the keys {', '.join(shape)}",
            )
        for k, kind in shape.items():
            _typed(where, f"{key}[{i}].{k}", item[k], kind)
    return value


def protocol_from_json(raw: Any, where: str) -> Protocol:
    """A Protocol from parsed JSON, refusing unknown keys and wrong types with one line."""
    if not isinstance(raw, dict):
        raise _fail(where, "not a JSON object")
    if raw.get("version") != VERSION:
        raise ConfigError(
            where,
            f"protocol version {raw.get('version')!r}, this roundtrip-ml reads version {VERSION}",
            "rerun the board with `roundtrip "
            "leaderboard run` (version 1 boards were ranked unpaired)",
        )
    known = {f.name for f in fields(Protocol)} | _DERIVED
    if unknown := sorted(set(raw) - known):
        raise _fail(where, f"unknown key {unknown[0]!r}")
    if missing := sorted({"name", "photos", "crop", "generations"} - set(raw)):
        raise _fail(where, f"missing key {missing[0]!r}")
    kw: dict[str, Any] = {k: _typed(where, k, raw[k], t) for k, t in _TYPES.items() if k in raw}
    for k, t in _LISTS.items():
        if k in raw:
            v = raw[k]
            if not isinstance(v, list) or not v:
                raise _fail(f"{where}: {k}", "must be a non-empty list of strings")
            kw[k] = tuple(_typed(where, f"{k}[{i}]", x, t) for i, x in enumerate(v))
    kw["photos"] = tuple(
        Photo(**d) for d in _records(where, "photos", raw["photos"], {"source": str, "sha256": str})
    )
    if "up_steps" in raw:
        v = raw["up_steps"]
        if not isinstance(v, list) or not all(
            isinstance(x, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in x)
            for x in v
        ):
            raise _fail(f"{where}: up_steps", "must be a list of lists of whole numbers")
        kw["up_steps"] = tuple(tuple(x) for x in v)
    kw["models"] = tuple(
        ModelRef(**d)
        for d in _records(
            where,
            "models",
            raw.get("models", []),
            {"name": str, "spec": str, "scale": int, "sha256": str},
        )
    )
    p = Protocol(**kw)
    check(p, where)
    if "hash" in raw and raw["hash"] != p.hash():
        raise _fail(f"{where}: hash", "does not match the fields (edited by hand?)")
    return p


def check(p: Protocol, where: str = "protocol") -> None:
    """Value checks that need no file: sizes, counts, names."""
    if not p.photos:
        raise _fail(f"{where}: photos", "is empty")
    if p.crop is not None and (p.crop < 12 or p.crop % 12):
        raise ConfigError(
            f"{where}: crop",
            f"{p.crop} is not a multiple of 12 (>= 12)",
            "use 24, 48, 96, ... so x2, x3 and x4 roundtrips keep whole pixels",
        )
    if p.generations < 1 or p.replicas < 0 or p.x1_scale < 2:
        raise _fail(where, "generations >= 1, replicas >= 0 and x1_scale >= 2 are required")
    if p.backend not in BACKENDS:
        raise ConfigError(
            f"{where}: backend", f"{p.backend!r} is not one of {', '.join(BACKENDS)}", "use auto"
        )
    try:
        stabilizer = specs.parse_stabilizer(p.stabilizer)
    except ConfigError as e:
        raise ConfigError(f"{where}: stabilizer", e.problem, e.fix) from None
    if stabilizer.spec != p.stabilizer:
        raise ConfigError(
            f"{where}: stabilizer",
            f"{p.stabilizer!r} is not canonical",
            f"write {stabilizer.spec!r}",
        )
    if "psnr" not in p.metrics or set(p.metrics) - set(METRICS):
        raise ConfigError(
            f"{where}: metrics",
            f"must include psnr and be among {', '.join(METRICS)}",
            "the criteria are defined on these",
        )
    if not p.baselines:
        raise _fail(f"{where}: baselines", "is empty (the first one is the reference)")
    names = [m.name for m in p.models]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise _fail(f"{where}: models", f"{dup[0]!r} is listed twice")
    for steps in p.up_steps:
        check_path(steps, p.crop, f"{where}: up_steps {list(steps)}")
    if len(set(p.up_steps)) != len(p.up_steps):
        raise _fail(f"{where}: up_steps", "lists a path twice")


def load_protocol(path: str | Path) -> Protocol:
    """A protocol file (a board's protocol.json), or a preset name: quick, cpu, seed."""
    if str(path) in PRESETS:
        return PRESETS[str(path)]
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "protocol.json"
    raw = read_json(
        p,
        error=ConfigError,
        fix="give a board's protocol.json (or restore it from the board's copy) or a preset: "
        "quick, cpu, seed",
        expect=None,  # protocol_from_json names a wrong top-level type itself
    )
    return protocol_from_json(raw, str(p))
