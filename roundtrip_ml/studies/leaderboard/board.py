"""A board directory: run, add to, merge and read leaderboards; append-safe by construction.

A board directory holds exactly one protocol. Each (model, scale) runs as its own resumable
sweep under ``runs/`` (a killed board continues where it stopped; ``add`` runs only the new
model and, for a new scale, the baselines there). Its measurements are appended to
``per_photo.parquet`` (+ ``.csv``), keyed by (upscaler, scale, codec, photo, metric,
generation): a key is never written twice. An upscale path (``up_steps``) is an entry of its
own (``layout.Entry``: ``span-x2-ch48 [2x2]``, its own sweep). Rows a newer roundtrip-ml
keeps but an older board lacks (the attractor rows, ``ATTRACTOR_ROWS``) are read back from the
finished runs under ``runs/`` by any command that writes the board (``run``, ``add``,
``table``): nothing is recomputed. ``protocol.json`` is written after the table and
is the commit record: rows of a model it does not list (an add killed half-way) are dropped
and re-read from that model's finished runs. Everything that can be refused (protocol, photo
hashes, model names, a foreign board) is refused before anything on disk changes.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from ...core.errors import ConfigError, MeasurementError, RoundtripError, RunStoreError
from .layout import FILES, KEY, Entry, Leaderboard
from .protocol import ModelRef, Protocol, load_protocol, pin_photos, resolve_photo
from .table import ATTRACTOR_ROWS, PER_PHOTO_COLUMNS, rank
from .view import write_tables

__all__ = [
    "FILES",
    "Leaderboard",
    "add_model",
    "merge_boards",
    "model_ref",
    "read_board",
    "run_board",
    "select_models",
    "table_board",
]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}
_AGREE_DB = 1e-4  # merge: one chain measured in two boards must agree to this (abs)


# ---- models ----------------------------------------------------------------------------------


def model_ref(spec: str, x1_scale: int = 2) -> ModelRef:
    """A registry name, a spandrel weights file or an ncnn ``.param`` (with its ``.bin``) as a
    board entry: label, scale and the SHA-256 of the weights file that will run."""
    from ...core.weights import sha256_file
    from ...upscalers import zoo

    path = Path(spec.removeprefix("ncnn:")).expanduser()
    if spec.startswith("ncnn:") or path.suffix.lower() == ".param" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"model {spec}", "file not found", "check the path")
        from ...upscalers import create_upscaler

        up = create_upscaler(str(path) if path.suffix != ".param" else f"ncnn:{path}", "cpu")
        d = up.describe()
        weights = path.with_suffix(".bin") if path.suffix.lower() == ".param" else path
        scale = int(d["scale"])
        spec = f"ncnn:{path.resolve()}" if path.suffix.lower() == ".param" else str(path.resolve())
        return ModelRef(path.stem, spec, scale if scale > 1 else x1_scale, sha256_file(weights))
    e = zoo.get_entry(spec)  # an unknown name fails here with its own hint
    sha = e.weights.sha256 if e.weights else ""
    if not (e.weights and zoo.is_cached(e)):
        found = zoo.find_offline(e, check_hash=False)
        sha = found.source.bin_sha256 if found else sha
    return ModelRef(e.name, e.name, e.scale if e.scale > 1 else x1_scale, sha)


def select_models(pattern: str | None = None, x1_scale: int = 2) -> list[ModelRef]:
    """Every model that runs with no download (x1 models left out), or those a comma list of
    names, fnmatch patterns, weights files or ncnn .param files picks."""
    from ...upscalers import zoo

    offline = [e for e, _ in zoo.offline_models()]
    if not pattern:
        return [model_ref(e.name, x1_scale) for e in offline if e.scale > 1]
    out: dict[str, ModelRef] = {}
    for pat in filter(None, (p.strip() for p in pattern.split(","))):
        if any(c in pat for c in "*?[") and "/" not in pat:
            hits = [e.name for e in offline if fnmatch.fnmatchcase(e.name, pat)]
            if not hits:
                raise ConfigError(
                    f"--models {pat!r}",
                    "matches no model that runs offline here",
                    "see `roundtrip models list`",
                )
        else:
            hits = [pat]
        for h in hits:
            m = model_ref(h, x1_scale)
            out[m.name] = m
    return list(out.values())


@functools.cache
def native_scale(m: ModelRef) -> int:
    """The scale a model's network makes (an x1 model runs at ``m.scale`` only by a resize)."""
    from ...upscalers import zoo

    try:
        return zoo.get_entry(m.spec).scale
    except RoundtripError:  # a weights file or an ncnn .param: ask the loaded model
        from ...upscalers import create_upscaler

        return int(create_upscaler(m.spec, "cpu").describe()["scale"])


def takes_path(m: ModelRef, path: tuple[int, ...]) -> bool:
    """A fixed-scale model makes only stages of its own scale: x2 models take 2,2."""
    return all(s == native_scale(m) for s in path)


# ---- photos ----------------------------------------------------------------------------------


def expand_photos(items: list[str]) -> list[str]:
    """--images: files, folders (their image files, sorted), globs, skimage:NAME and
    set:NAME[/PHOTO] (kept as ``set:NAME/PHOTO`` per photo, so the protocol travels)."""
    from ...imaging import photosets
    from ...pipeline.config import expand_images

    out: list[str] = []
    for item in items:
        p = Path(item).expanduser()
        if item.startswith(photosets.PREFIX):
            name = photosets.check_spec(item)[0].name
            out += [f"{photosets.PREFIX}{name}/{Path(f).stem}" for f in photosets.expand(item)]
            continue
        if not item.startswith("skimage:") and p.is_dir():
            files = sorted(str(f) for f in p.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
            if not files:
                raise ConfigError(
                    f"--images {item}",
                    "folder holds no image file",
                    "give image files, a folder of them or a glob",
                )
            out += files
        else:
            out += [
                s if s.startswith("skimage:") else str(Path(s).expanduser().resolve())
                for s in expand_images([item])
            ]
    return list(dict.fromkeys(out))


def _check_sizes(p: Protocol) -> None:
    """Every photo is at least the crop: refused before any run, not half-way."""
    from PIL import Image

    if p.crop is None:
        return
    for ph in p.photos:
        path = resolve_photo(ph.source)
        try:
            with Image.open(path) as im:
                w, h = im.size
        except OSError as e:
            raise ConfigError(
                f"photo {ph.source}", f"cannot be read as an image ({e})", "remove it from --images"
            ) from None
        if min(w, h) < p.crop:
            raise ConfigError(
                f"photo {ph.source}",
                f"is {w}x{h}, smaller than the {p.crop} px crop",
                "use a smaller --crop or drop the photo",
            )


# ---- reading a board -------------------------------------------------------------------------


def _read_table(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many types on a corrupt file
        raise RunStoreError(
            str(path),
            f"cannot be read as Parquet ({type(e).__name__})",
            "delete it and rerun the board's command (the runs are kept)",
        ) from None
    if "path" not in df:  # a board from before upscale paths: every entry is one step
        df.insert(1, "path", "")
    if missing := [c for c in PER_PHOTO_COLUMNS if c not in df]:
        raise RunStoreError(str(path), f"has no column {missing[0]!r}", "rerun the board")
    return df[PER_PHOTO_COLUMNS]


def read_board(
    directory: str | Path, *, committed_only: bool = True
) -> tuple[Protocol, pd.DataFrame] | None:
    """(protocol, per-photo table) of a board directory; None for a new or empty folder.
    A table that holds models the protocol does not list is refused (``committed_only``) or
    cut to the listed ones."""
    d = Path(directory).expanduser()
    proto = d / FILES["protocol"]
    if not proto.exists():
        if d.is_dir() and (d / FILES["per_photo"]).exists():
            raise RunStoreError(
                str(d),
                "holds a per-photo table but no protocol.json",
                "use a new --output directory",
            )
        return None
    p = load_protocol(proto)
    table = d / FILES["per_photo"]
    per_photo = _read_table(table) if table.exists() else pd.DataFrame(columns=PER_PHOTO_COLUMNS)
    names = {m.name for m in p.models} | set(p.baselines)
    listed = {Entry(ModelRef(n, n, 0, ""), s).label for n in names for s in ((), *p.up_steps)}
    extra = sorted(set(per_photo["upscaler"]) - listed)
    if extra and committed_only:
        raise RunStoreError(
            str(d),
            f"its table holds {extra[0]!r}, which protocol.json does "
            "not list (an add was interrupted)",
            f"rerun `roundtrip leaderboard add {extra[0]} -o {d}`",
        )
    return p, per_photo[per_photo["upscaler"].isin(listed)].reset_index(drop=True)


def _existing_board(
    directory: str | Path, fix: str, *, committed_only: bool = True
) -> tuple[Protocol, pd.DataFrame]:
    """``read_board`` for commands that need a board there: no board is one line with ``fix``."""
    b = read_board(directory, committed_only=committed_only)
    if b is None:
        raise ConfigError(str(directory), "is not a leaderboard (no protocol.json)", fix)
    return b


# ---- running ---------------------------------------------------------------------------------


def _entries(p: Protocol, per_photo: pd.DataFrame, models: list[ModelRef]) -> list[Entry]:
    """What still has to run: new models, the baselines at every scale a model or path uses,
    and on each path the baselines and the models that take it."""
    have = set(zip(per_photo["upscaler"], per_photo["scale"].astype(int), strict=True))
    totals = {math.prod(path) for path in p.up_steps}
    scales = sorted({m.scale for m in models} | {s for _, s in have} | totals or {p.x1_scale})
    todo = [Entry(ModelRef(b, b, s, "")) for s in scales for b in p.baselines]
    todo += [Entry(m) for m in models]
    for path in p.up_steps:
        total = math.prod(path)
        todo += [Entry(ModelRef(b, b, total, ""), path) for b in p.baselines]
        todo += [Entry(replace(m, scale=total), path) for m in models if takes_path(m, path)]
    return [e for e in todo if (e.label, e.scale) not in have]


def _sweep(p: Protocol, e: Entry, root: Path, device: str) -> dict[str, Any]:
    m = e.model
    d: dict[str, Any] = {
        "name": "leaderboard",
        "output": str(root),
        "device": device,
        "images": [str(resolve_photo(ph.source)) for ph in p.photos],
        "upscalers": [m.spec],
        "downscalers": [p.downscaler],
        "scales": [m.scale],
        "codecs": list(p.codecs),
        "generations": p.generations,
        "seeds": [p.seed],
        "replicas": p.replicas,
        "perturbation": p.perturbation,
        "metrics": list(p.metrics),
        "frame_stride": p.generations,
        "checkpoint_stride": p.generations,
        "lowres_consistency": False,
        "backend": p.backend,
        "stabilizers": [p.stabilizer],
        "sweep": {"max_images_per_unit": 16},
    }
    if e.path:
        d["up_steps"] = list(e.path)
    if p.crop is not None:
        d["center_crop"] = [p.crop, p.crop]
    if p.max_side is not None:
        d["max_side"] = p.max_side
    return d


def _rows(p: Protocol, e: Entry, root: Path) -> pd.DataFrame:
    """The per-photo rows of one finished entry, read back from its runs; complete or refused.
    Per chain and generation: the metrics vs the original, ``replica_psnr`` (with replicas)
    and ``step_psnr`` (PSNR to the previous generation); at the last generation ``period``
    (of the first exact repeat of its 8-bit state: 1 a fixed point, k a cycle, 0 none), so
    table.py can say how each chain ends (analysis/attractors.py) from these rows alone."""
    from ...analysis.events import chain_events
    from ...pipeline.store import RunStore
    from ...report.data import find_run_dirs

    by_path = {str(resolve_photo(ph.source)): ph.name for ph in p.photos}
    stores = [RunStore(d) for d in find_run_dirs(root)]
    parts = [s.read_metrics() for s in stores]
    mt = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if mt.empty:
        raise MeasurementError(e.label, "measured nothing", "see the runs under " + str(root))
    mt = mt[mt["replica"] <= 0]
    own = mt[
        (mt["reference"] == "original")
        & mt["metric"].isin(["psnr", "ssim", "ssimulacra2", "de2000_mean"])
    ]
    rep = mt[(mt["reference"] == "replicas") & (mt["metric"] == "psnr")].assign(
        metric="replica_psnr"
    )
    step = mt[(mt["reference"] == "previous") & (mt["metric"] == "psnr")].assign(metric="step_psnr")
    chains = mt.drop_duplicates("chain_id").set_index("chain_id")
    fps = pd.concat([s.read_fingerprints() for s in stores], ignore_index=True)
    events = chain_events(fps[fps["chain_id"].isin(chains.index)], chains["codec"].to_dict())
    period = chains.assign(
        metric="period",
        generation=p.generations,
        value=pd.Series(dict(zip(events["chain_id"], events["period"], strict=True)))
        .reindex(chains.index)
        .fillna(0)
        .astype(float),
    ).reset_index()
    rows = pd.concat([own, rep, step, period], ignore_index=True)
    out = pd.DataFrame(
        {
            "upscaler": e.label,
            "path": e.slug,
            "scale": rows["scale"].round().astype(int),
            "codec": rows["codec"].astype(str),
            "photo": rows["image"].astype(str).map(by_path),
            "metric": rows["metric"].astype(str),
            "generation": rows["generation"].astype(int),
            "value": rows["value"].astype(float),
        }
    )
    per_gen = len(p.metrics) + (p.replicas > 0) + 1  # + step_psnr
    expect = len(p.photos) * len(p.codecs) * (p.generations * per_gen + 1)  # + period
    if out["photo"].isna().any() or len(out.drop_duplicates(KEY)) != expect:
        raise MeasurementError(
            e.label, f"has {len(out)} of {expect} measurements", f"see the runs under {root}"
        )
    if out["value"].isna().any():
        raise MeasurementError(e.label, "has a NaN measurement", f"see the runs under {root}")
    return out.sort_values(KEY).reset_index(drop=True)


def _complete(out: Path, p: Protocol, per_photo: pd.DataFrame) -> pd.DataFrame:
    """The table with the rows an older board lacks (``ATTRACTOR_ROWS``) read back from each
    entry's finished runs; an entry whose runs are not here (a merged board) stays as it is
    and its table cells say "-". Rows already in the table are never changed."""
    if per_photo.empty:
        return per_photo
    new = []
    for (label, scale, path), rows in per_photo.groupby(["upscaler", "scale", "path"], sort=True):
        if set(ATTRACTOR_ROWS) <= set(rows["metric"]):
            continue
        e = Entry.of_row(str(label), int(scale), str(path))
        root = e.runs_dir(out)
        if not root.is_dir():
            continue
        try:
            got = _rows(p, e, root)
        except RoundtripError as err:
            warnings.warn(
                f"{e.label} x{e.scale}: its attractor rows stay missing: {err}", stacklevel=2
            )
            continue
        new.append(got[got["metric"].isin(ATTRACTOR_ROWS) & ~got["metric"].isin(rows["metric"])])
    return _append(per_photo, pd.concat(new, ignore_index=True)) if new else per_photo


def _run_entry(
    p: Protocol,
    e: Entry,
    out: Path,
    *,
    executor: str,
    address: str | None,
    device: str,
    progress: Any,
) -> pd.DataFrame:
    from ...sweep import parse_sweep, run_sweep

    root = e.runs_dir(out)
    cfg = parse_sweep(_sweep(p, e, root, device), f"leaderboard entry {e.label} x{e.scale}")
    res = run_sweep(cfg, executor=executor, address=address, progress=progress)
    if res.failed:
        first = next(iter(res.failed.values()))
        raise MeasurementError(
            f"{e.label} x{e.scale}",
            f"{len(res.failed)} chain(s) failed: {first}",
            None if "(fix:" in first else "fix the model and rerun the same command",
        )
    return _rows(p, e, root)


def _append(per_photo: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    if len(per_photo) and len(new.merge(per_photo[KEY], on=KEY)):
        raise RunStoreError(
            "per_photo", "a chain would be written twice", "this is a bug: report it"
        )  # _entries runs only what is missing
    return pd.concat([per_photo, new], ignore_index=True).sort_values(KEY).reset_index(drop=True)


def _commit(out: Path, p: Protocol, per_photo: pd.DataFrame) -> None:
    """Table first, then the protocol that lists exactly its models (the commit record)."""
    from ...core.files import atomic_write_bytes, atomic_write_json, atomic_write_parquet

    out.mkdir(parents=True, exist_ok=True)
    per_photo = per_photo[PER_PHOTO_COLUMNS]
    atomic_write_parquet(out / FILES["per_photo"], per_photo)
    atomic_write_bytes(out / FILES["per_photo_csv"], per_photo.to_csv(index=False).encode())
    atomic_write_json(out / FILES["protocol"], p.describe())


def _prepare(
    output: Path, protocol: Protocol, models: list[ModelRef]
) -> tuple[Protocol, pd.DataFrame]:
    """Validate everything and decide what runs; touches no file."""
    p = pin_photos(protocol)
    _check_sizes(p)
    existing = read_board(output, committed_only=False)
    per_photo = pd.DataFrame(columns=PER_PHOTO_COLUMNS)
    known: dict[str, ModelRef] = {}
    if existing is not None:
        old, per_photo = existing
        if old.hash() != p.hash():
            raise ConfigError(
                str(output),
                f"holds a board with another protocol (hash "
                f"{old.hash()[:12]}, this one {p.hash()[:12]})",
                "use a new --output directory, or `leaderboard add` to extend it",
            )
        known = {m.name: m for m in old.models}
        p = p.with_paths([*old.up_steps, *p.up_steps])  # paths, like models, accumulate
    for m in models:
        if m.name in p.baselines:
            raise ConfigError(
                f"model {m.name}", "is a baseline (they always run)", "name another model"
            )
        k = known.get(m.name)
        if k is not None and (k.sha256, k.scale) != (m.sha256, m.scale):
            raise ConfigError(
                f"model {m.name}",
                "is on the board with other weights "
                f"(sha256 {k.sha256[:12]}..., now {m.sha256[:12]}...)",
                "rename the file or use a new board",
            )
        known.setdefault(m.name, m)
    return p.with_models(list(known.values())), per_photo


def run_board(
    output: str | Path,
    protocol: Protocol,
    models: list[ModelRef] | None = None,
    *,
    rank_by: str = "psnr",
    ci: str = "t",
    executor: str = "local",
    address: str | None = None,
    device: str = "auto",
    progress: Any = None,
    announce: Callable[[str], None] | None = None,
    figures: bool = True,
) -> Leaderboard:
    """Run (or resume, or extend) the board in ``output`` under ``protocol``: every model in
    ``models`` (default: the protocol's own list) plus the baselines; already measured ones
    are not rerun. Failed models are left off the board and reported as one error after the
    others are written. ``progress`` goes to each entry's sweep (as in ``run_sweep``);
    ``announce`` gets one line per entry before it runs."""
    out = Path(output).expanduser()
    wanted = list(protocol.models) if models is None else models
    p, per_photo = _prepare(out, protocol, wanted)
    if len(per_photo):
        rank(per_photo, p, rank_by, ci)  # a bad --rank-by or --ci is refused before any run
    per_photo = _complete(out, p, per_photo)
    added: list[str] = []
    errors: list[RoundtripError] = []
    todo = _entries(p, per_photo, list(p.models))
    for i, e in enumerate(todo, 1):
        m = e.model
        if m.name not in p.baselines and m.name not in {x.name for x in p.models}:
            continue  # its one-step entry failed above: its paths wait for the fix too
        if announce:
            announce(f"[{i}/{len(todo)}] {e.label} x{e.scale}")
        try:
            rows = _run_entry(
                p, e, out, executor=executor, address=address, device=device, progress=progress
            )
        except RoundtripError as err:
            if m.name in p.baselines:
                raise
            errors.append(err)
            if not e.path:  # a failed path leaves the model's own entry on the board
                p = p.with_models([x for x in p.models if x.name != m.name])
            continue
        per_photo = _append(per_photo, rows)
        listed = [x for x in p.models if x.name in set(per_photo["upscaler"])]
        _commit(out, p.with_models(listed), per_photo)
        added.append(e.label)
    p = p.with_models([x for x in p.models if x.name in set(per_photo["upscaler"])])
    _commit(out, p, per_photo)
    lb = write_tables(out, p, per_photo, rank_by=rank_by, ci=ci, figures=figures)
    lb.added = added
    if errors:
        names = ", ".join(e.what for e in errors)
        e0 = errors[0]
        raise MeasurementError(
            str(out),
            f"left off the board: {names} ({e0.problem}{f'; fix: {e0.fix}' if e0.fix else ''})",
            "the other models are written; rerun the same command once it is fixed",
        )
    return lb


def add_model(output: str | Path, spec: str, **kw: Any) -> Leaderboard:
    """Measure one more model under the board's own protocol and merge its rows."""
    out = Path(output).expanduser()
    p, _ = _existing_board(
        out, "make one with `roundtrip leaderboard run -o DIR` first", committed_only=False
    )
    m = model_ref(spec, p.x1_scale)
    if m.name in {x.name for x in p.models}:
        warnings.warn(f"{m.name} is already on the board in {out}: nothing to run", stacklevel=2)
    return run_board(out, p, [m], **kw)


def merge_boards(
    dirs: list[str | Path],
    output: str | Path,
    *,
    rank_by: str = "psnr",
    ci: str = "t",
    figures: bool = True,
) -> Leaderboard:
    """Boards run elsewhere under the same protocol (hash) as one board; a chain measured in
    several boards must agree; nothing is rerun."""
    boards = []
    for d in dirs:
        p, per_photo = _existing_board(
            d, "give board directories written by `roundtrip leaderboard`"
        )
        boards.append((Path(d), p, _complete(Path(d), p, per_photo)))  # in memory only
    d0, p0, _ = boards[0]
    for d, p, _ in boards[1:]:
        if p.hash() != p0.hash():
            raise ConfigError(
                str(d),
                f"has another protocol than {d0} (hash {p.hash()[:12]} vs {p0.hash()[:12]})",
                "merge only boards run under one protocol",
            )
    out = Path(output).expanduser()
    if (out / FILES["protocol"]).exists() and out.resolve() not in {
        d.resolve() for d, *_ in boards
    }:
        raise ConfigError(str(out), "already holds a board", "merge into a new directory")
    models: dict[str, ModelRef] = {}
    for d, p, _ in boards:
        for m in p.models:
            if m.name in models and models[m.name].sha256 != m.sha256:
                raise ConfigError(
                    str(d),
                    f"{m.name} has other weights than in another board",
                    "rename one of them and rerun it",
                )
            models.setdefault(m.name, m)
    allrows = pd.concat(
        [t.assign(_board=i) for i, (_, _, t) in enumerate(boards)], ignore_index=True
    )
    spread = allrows.groupby(KEY)["value"].agg(lambda v: float(v.max() - v.min()))
    bad = spread[spread > _AGREE_DB]
    if len(bad):
        k = bad.index[0]
        raise ConfigError(
            f"{k[0]} x{k[1]} {k[3]}",
            f"measured differently in two boards ({bad.iloc[0]:.3g} apart)",
            "merge boards whose shared chains (the baselines) ran on the same kind of device",
        )
    merged = (
        allrows.drop_duplicates(KEY).drop(columns="_board").sort_values(KEY).reset_index(drop=True)
    )
    p = p0.with_models(list(models.values())).with_paths(
        [s for _, b, _ in boards for s in b.up_steps]
    )
    _commit(out, p, merged)
    return write_tables(out, p, merged, rank_by=rank_by, ci=ci, figures=figures)


def table_board(
    directory: str | Path, *, rank_by: str = "psnr", ci: str = "t", figures: bool = True
) -> Leaderboard:
    """Re-rank a board from its per-photo table (another criterion or CI); runs nothing. Rows
    an older board lacks are read back from its runs first (and written to its table)."""
    d = Path(directory).expanduser()
    p, per_photo = _existing_board(d, "give a directory written by `roundtrip leaderboard run`")
    rank(per_photo, p, rank_by, ci)  # a bad --rank-by or --ci is refused before any write
    done = _complete(d, p, per_photo)
    if len(done) != len(per_photo):
        _commit(d, p, done)
    return write_tables(d, p, done, rank_by=rank_by, ci=ci, figures=figures)
