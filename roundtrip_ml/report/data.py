"""What every report reads: one run directory or a sweep of them, recipes, colours, bootstrap.

A *recipe* is a chain's identity minus its image (upscaler, downscaler, scale, codec); the
report averages a recipe over images. Reports read the store only and never re-run anything.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import ConfigError, RunStoreError
from ..pipeline.store import MANIFEST_FILE, RunStore

RECIPE = ["upscaler", "downscaler", "scale", "codec"]
LINESTYLES = ["-", "--", ":", "-."]
MAX_DEPTH = 3  # how deep a sweep directory is searched for run directories


@dataclass
class Runs:
    """One run or a sweep of runs, merged. ``chains`` gains ``run_id``, ``run`` (directory
    relative to ``root``) and ``run_dir``; ``manifests`` is keyed by run_id."""

    root: Path
    metrics: pd.DataFrame
    chains: pd.DataFrame
    manifests: dict[str, dict[str, Any]]
    fingerprints: pd.DataFrame
    stores: dict[str, RunStore] = field(default_factory=dict)

    @property
    def is_sweep(self) -> bool:
        return len(self.stores) > 1

    @property
    def recipe_columns(self) -> list[str]:
        """RECIPE, plus the run when one recipe and image appear in several runs of a sweep
        (they then differ by a setting that is not in the chain table, so never pool them)."""
        dup = self.chains.duplicated(["image_name", *RECIPE, "replica"]).any()
        return [*RECIPE, "run"] if dup else list(RECIPE)

    def varying(self, columns: list[str]) -> list[str]:
        """The columns whose value differs between chains: the ones worth naming in labels."""
        return [c for c in columns if self.chains[c].nunique() > 1]

    def frames(self, run_id: str, chain_id: str) -> dict[int, Path]:
        return self.stores[run_id].list_frames(chain_id)

    def generations(self) -> int:
        """The last generation any chain reached."""
        return int(self.metrics["generation"].max()) if len(self.metrics) else 0


def find_run_dirs(path: Path) -> list[Path]:
    """``path`` itself if it is a run directory, else the run directories below it."""
    if (path / MANIFEST_FILE).is_file():
        return [path]
    found: list[Path] = []
    level = [path]
    for _ in range(MAX_DEPTH):
        nxt: list[Path] = []
        for d in level:
            for sub in sorted(p for p in d.iterdir() if p.is_dir() and p.name != "report"):
                (found if (sub / MANIFEST_FILE).is_file() else nxt).append(sub)
        level = nxt
    return found


def load_runs(path: str | Path) -> Runs:
    """Read a run directory, or every run directory inside a sweep directory, into one Runs."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise RunStoreError(str(root), "no such directory", "pass a run or sweep directory")
    dirs = find_run_dirs(root)
    if not dirs:
        raise RunStoreError(
            str(root), "holds no run (no manifest.json found)", "pass the --output of a run"
        )
    metrics, chains, fps, manifests, stores = [], [], [], {}, {}
    for d in dirs:
        store = RunStore(d)
        manifest = store.read_manifest()
        m = store.read_metrics()
        run_id = str(manifest.get("run_id") or (m["run_id"].iloc[0] if len(m) else d.name))
        c = store.read_chains().assign(
            run_id=run_id, run=str(d.relative_to(root)) if d != root else d.name, run_dir=str(d)
        )
        f = store.read_fingerprints().assign(run_id=run_id)
        m = m.assign(run_id=run_id)
        metrics.append(m)
        chains.append(c)
        fps.append(f)
        manifests[run_id] = manifest
        stores[run_id] = store
    chains_df = pd.concat(chains, ignore_index=True)
    metrics_df = pd.concat(metrics, ignore_index=True)
    # metrics rows name the image by its short name; join the run column for sweeps
    metrics_df = metrics_df.merge(
        chains_df[["run_id", "chain_id", "run"]].drop_duplicates(),
        on=["run_id", "chain_id"],
        how="left",
    )
    return Runs(root, metrics_df, chains_df, manifests, pd.concat(fps, ignore_index=True), stores)


def merge_runs(parts: list[Runs]) -> Runs:
    """Several runs (or in-memory trajectories) as one, for figures and tables that compare
    them. A run id seen twice (every trajectory is ``in-memory``) gets a ``-N`` suffix, so no
    two sources ever pool by accident."""
    if not parts:
        raise ConfigError("runs", "an empty list", "pass at least one run or trajectory")
    seen = Counter(rid for r in parts for rid in r.manifests)
    metrics, chains, fps, manifests, stores = [], [], [], {}, {}
    for i, r in enumerate(parts):
        rename = {rid: f"{rid}-{i + 1}" for rid in r.manifests if seen[rid] > 1}
        metrics.append(_renamed(r.metrics, rename))
        chains.append(_renamed(r.chains, rename))
        fps.append(_renamed(r.fingerprints, rename))
        manifests.update({rename.get(k, k): v for k, v in r.manifests.items()})
        stores.update({rename.get(k, k): v for k, v in r.stores.items()})
    return Runs(
        parts[0].root,
        pd.concat(metrics, ignore_index=True),
        pd.concat(chains, ignore_index=True),
        manifests,
        pd.concat(fps, ignore_index=True),
        stores,
    )


def _renamed(df: pd.DataFrame, rename: dict[str, str]) -> pd.DataFrame:
    """``run_id`` (and the ``run`` label) renamed where ``rename`` says so."""
    if not rename or "run_id" not in df or df.empty:
        return df
    ids = df["run_id"].map(lambda v: rename.get(v, v))
    return df.assign(run_id=ids, **({"run": ids} if "run" in df else {}))


def recipe_label(row: pd.Series | dict[str, Any], columns: list[str]) -> str:
    """A short name for a recipe from the columns that vary, e.g. ``lanczos3 · jpeg:90``."""
    parts = []
    for c in columns:
        v = row[c]
        if c == "scale":
            parts.append(f"x{float(v):g}")
        elif c == "downscaler":
            parts.append(f"↓{v}")
        elif c == "image" and "image_name" in row:  # the source is a path: show its name
            parts.append(str(row["image_name"]))
        else:
            parts.append(str(v))
    return " · ".join(parts) if parts else str(row.get("upscaler", "all"))


# Fixed palette slots for the upscalers and codecs people compare most, so an upscaler keeps its
# colour across runs and sweeps whatever else they hold; other names take the free slots in
# sorted order (stable within a run or sweep).
KNOWN_UPSCALERS = (
    "lanczos3",
    "bicubic",
    "realesrgan-x4plus",
    "realesr-animevideov3",
    "bilinear",
    "nearest",
    "lanczos2",
    "box",
)
KNOWN_CODECS = ("png", "jpeg:90", "float", "webp:90")


def _slots(names: list[str] | pd.Series, known: tuple[str, ...], n_slots: int) -> dict[str, int]:
    present = sorted(set(names))
    slots = {n: known.index(n) for n in present if n in known and known.index(n) < n_slots}
    free = (i for i in range(10 * n_slots) if i not in slots.values())
    for n in present:
        if n not in slots:
            slots[n] = next(free)
    return slots


def upscaler_colours(upscalers: list[str] | pd.Series) -> dict[str, tuple[float, ...]]:
    """One colour per upscaler, the same in every figure (fixed slots for known names)."""
    import matplotlib

    slots = _slots(upscalers, KNOWN_UPSCALERS, 10)
    cmap = matplotlib.colormaps["tab10" if max(slots.values(), default=0) < 10 else "tab20"]
    return {n: tuple(cmap(i % cmap.N)) for n, i in slots.items()}


def codec_linestyles(codecs: list[str] | pd.Series) -> dict[str, str]:
    """One line style per codec, the same in every figure (fixed slots for known names)."""
    return {
        c: LINESTYLES[i % len(LINESTYLES)]
        for c, i in _slots(codecs, KNOWN_CODECS, len(LINESTYLES)).items()
    }


def bootstrap_mean(
    values: np.ndarray, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 (images) and a percentile bootstrap CI, per column (generation).

    NaN cells (a generation one image lacks) are left out of that column; +inf (PSNR of
    identical images) makes every mean that includes it +inf. Resampling uses
    multinomial counts, so memory is n_boot x columns whatever the number of images.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    inf = np.isposinf(v).astype(np.float64)  # a mean over a +inf value is +inf
    vz = np.where(np.isfinite(v), v, 0.0)
    n = v.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(inf.any(0), np.inf, vz.sum(0) / ok.sum(0))
        if n < 2:
            return mean, mean.copy(), mean.copy()
        rng = np.random.default_rng(seed)
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
        boot = np.where(w @ inf > 0, np.inf, (w @ vz) / (w @ ok))
    alpha = (1.0 - ci) / 2
    # percentile CI without interpolation, so a bound among +inf resamples is +inf, not NaN
    lo, hi = np.nanquantile(boot, [alpha, 1 - alpha], axis=0, method="inverted_cdf")
    return mean, lo, hi


def metric_ceiling(values: pd.Series | np.ndarray, metric: str) -> float | None:
    """Where to draw +inf (identical images) for a metric: above every finite value, in whole
    5 dB steps for PSNR-like metrics. None when the values hold no +inf."""
    v = np.asarray(values, dtype=np.float64)
    if not np.isposinf(v).any():
        return None
    finite = v[np.isfinite(v)]
    top = float(finite.max()) if len(finite) else 50.0
    return float(5 * math.ceil((top + 5) / 5)) if metric.startswith("psnr") else top * 1.05 + 1


def select(metrics: pd.DataFrame, metric: str, reference: str = "original") -> pd.DataFrame:
    """Rows of one metric and reference: the unperturbed chains (replica 0); for replica
    studies, the group rows (``replicas``: mean pairwise distance, scope "group") or every
    perturbed copy (``unperturbed``: distance to its unperturbed chain)."""
    m = metrics[(metrics["metric"] == metric) & (metrics["reference"] == reference)]
    if reference == "replicas":
        return m[m["scope"] == "group"]
    if reference == "unperturbed":
        return m[m["replica"] >= 1]
    return m[m["replica"] == 0]


def aggregate(
    rows: pd.DataFrame,
    by: list[str],
    *,
    clip: float | None = None,
    generations: list[int] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean over images with a seeded bootstrap CI, per group ``by`` and generation.

    Chains of one image in one group (e.g. two codecs when ``by`` omits codec) are averaged
    first, so the bootstrap resamples images. ``clip`` caps values (+inf PSNR) before averaging.
    Columns: *by, generation, mean, lo, hi, n (images), clipped (any value capped).
    """
    if generations is not None:
        rows = rows[rows["generation"].isin(generations)]
    vals = rows["value"].astype(np.float64)
    clipped = np.isposinf(vals) if clip is None else vals > clip
    rows = rows.assign(value=vals if clip is None else vals.clip(upper=clip), _clipped=clipped)
    keys = [*by, "generation"] if "image" in by else [*by, "image", "generation"]
    per_image = rows.groupby(keys, sort=True, dropna=False).agg(
        value=("value", "mean"), _clipped=("_clipped", "any")
    )
    out = []
    for key, g in per_image.groupby(level=list(range(len(by))), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        wide = g["value"].unstack("generation")
        mean, lo, hi = bootstrap_mean(wide.to_numpy(), n_boot, ci, seed)
        capped = g["_clipped"].groupby(level="generation").any().reindex(wide.columns)
        for i, gen in enumerate(wide.columns):
            out.append(
                {
                    **dict(zip(by, key, strict=True)),
                    "generation": int(gen),
                    "mean": mean[i],
                    "lo": lo[i],
                    "hi": hi[i],
                    "n": int((~np.isnan(wide[gen].to_numpy())).sum()),
                    "clipped": bool(capped.iloc[i]),
                }
            )
    cols = [*by, "generation", "mean", "lo", "hi", "n", "clipped"]
    return pd.DataFrame(out, columns=cols)


def measured_thresholds(runs: Runs, thresholds: str) -> str:
    """The thresholds whose metric was stored against the original: a threshold on a metric
    that was never measured would only ever read "never"."""
    from ..analysis.summary import parse_thresholds

    stored = set(runs.metrics.loc[runs.metrics["reference"] == "original", "metric"])
    return ",".join(t.name for t in parse_thresholds(thresholds) if t.metric in stored)


def collapse_summary(runs: Runs, thresholds: str) -> pd.DataFrame:
    """Per-chain collapse statistics (roundtrip_ml.analysis.summary), for every run, in memory
    (the report does not write RUN/summary.parquet; `roundtrip summarize` does)."""
    from ..analysis.summary import parse_thresholds, summarize

    parsed = parse_thresholds(thresholds)
    out = []
    for run_id in runs.stores:
        m = runs.metrics[runs.metrics["run_id"] == run_id].drop(columns=["run"])
        if m.empty:
            continue
        f = runs.fingerprints[runs.fingerprints["run_id"] == run_id].drop(columns=["run_id"])
        s = summarize(m, f, parsed).assign(run_id=run_id)
        out.append(s.merge(runs.chains[["run_id", "chain_id", "run"]], on=["run_id", "chain_id"]))
    if not out:
        raise RunStoreError(str(runs.root), "no metric rows yet", "run the experiment first")
    return pd.concat(out, ignore_index=True)


def pick_chains(
    runs: Runs,
    image: str | None = None,
    chains: list[str] | None = None,
    every_image: bool = False,
) -> pd.DataFrame:
    """Chains to show side by side: the named ones (ids or fnmatch patterns), else every
    unperturbed chain of ``image`` (or, ``every_image``, of every image; otherwise the first),
    sorted by image and recipe, with a ``label``."""
    import fnmatch

    c = runs.chains
    if chains:
        keep = np.zeros(len(c), dtype=bool)
        for pat in chains:
            hit = c["chain_id"].map(lambda cid, p=pat: fnmatch.fnmatchcase(cid, p)).to_numpy()
            if not hit.any():
                raise RunStoreError(
                    f"chain {pat!r}",
                    f"not in {runs.root}",
                    f"use one of {', '.join(c['chain_id'].head(8))}, ...",
                )
            keep |= hit
        c = c[keep]
    else:
        names = sorted(c["image_name"].unique())
        if image is not None and image not in names:
            raise RunStoreError(
                f"image {image!r}", f"not in {runs.root}", f"use one of {', '.join(names)}"
            )
        shown = names if every_image and image is None else [image or names[0]]
        c = c[c["image_name"].isin(shown) & (c["replica"] == 0)]
    cols = runs.recipe_columns
    c = c.sort_values(["image_name", *cols, "replica"]).copy()
    extra = ["image_name"] if c["image_name"].nunique() > 1 else []
    varying = [k for k in cols if c[k].nunique() > 1] or ["upscaler", "codec"]
    c["label"] = [recipe_label(r, extra + varying) for _, r in c.iterrows()]
    if c["replica"].nunique() > 1:
        c["label"] = c["label"] + c["replica"].map(lambda r: f" · replica {r}")
    return c.reset_index(drop=True)


def format_ranges(values: list[int]) -> str:
    """[2, 3, 4, 7] -> '2-4, 7'."""
    spans: list[list[int]] = []
    for v in sorted(set(values)):
        if spans and spans[-1][1] == v - 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def parse_ints(text: str | None, flag: str, example: str) -> list[int] | None:
    """A comma-separated list of generations (``--at``, ``--generations``), sorted, unique."""
    if not text:
        return None
    try:
        return sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(f"{flag} {text}", "not integers", f"e.g. {example}") from None
