"""The collapse leaderboard: one fixed protocol over many upscalers, ranked, with 95% CIs.

Why a fixed protocol: "which upscaler survives repetition best?" only has an answer when every
model runs the same chain on the same photos, and two leaderboards are only comparable when the
protocol is written next to the numbers. Underneath it is an ordinary sweep (resumable; local or
Ray), so a killed leaderboard continues where it stopped, and every number below is read back
from the sweep's run directories with the project's own summaries (analysis/summary.py,
divergence.py, the chart's OCR rows); nothing here computes a metric itself.

Scale handling: every model runs at its native scale (an x2 model in x2 roundtrips, an x4 model
in x4 roundtrips); the classical baselines run at every scale that appears. x1 models (waifu2x
CUNet denoise-only) are left out unless named; named, they run in x2 roundtrips where the
engine's fit policy (Lanczos-3) brings their low-res output to full size. Rankings are within
one scale: an x4 roundtrip discards 4x more pixels than an x2 one.
"""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import ConfigError

__all__ = ["FULL", "QUICK", "Leaderboard", "Protocol", "load_protocol", "run_leaderboard",
           "select_models"]

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class Protocol:
    """Everything that decides the numbers; written to DIR/protocol.json."""

    photos: tuple[str, ...]
    crop: int  # centre crop (px, square) of every photo; divisible by 2, 3 and 4
    generations: int
    codec: str = "png"
    downscaler: str = "lanczos3"
    replicas: int = 1  # perturbed copies per chain: the divergence rate
    perturbation: str = "lsb"
    chart_size: int = 512  # the OCR chart, run uncropped (>= 512: OCR reads lines >= 16 px)
    baselines: tuple[str, ...] = ("lanczos3", "bicubic")
    x1_scale: int = 2
    thresholds: str = "psnr<20,ssim<0.5"
    seed: int = 0
    version: int = PROTOCOL_VERSION

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "scale_handling": (
            "native scale per model; classical baselines at every scale present; x1 models "
            f"(only when named) in x{self.x1_scale} roundtrips with Lanczos-3 fit"),
            "ranking": "within a scale, by PSNR to the original at the last generation "
                       "(collapse resistance), higher first",
            "ci": "95% Student-t interval of the mean over photos (n = number of photos)"}


def load_protocol(path: str | Path) -> Protocol:
    """A protocol from JSON: a leaderboard's protocol.json reruns its exact protocol (the keys
    it derives, such as ``models`` and ``ranking``, are ignored)."""
    from dataclasses import fields

    try:
        raw = json.loads(Path(path).expanduser().read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(str(path), f"cannot read protocol JSON ({e})") from e
    names = {f.name for f in fields(Protocol)}
    if not isinstance(raw, dict) or not {"photos", "crop", "generations"} <= set(raw):
        raise ConfigError(str(path), "not a leaderboard protocol (needs photos, crop, generations)",
                          "pass a protocol.json written by `roundtrip leaderboard`")
    if raw.get("version", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise ConfigError(str(path), f"protocol version {raw.get('version')}, this is "
                          f"{PROTOCOL_VERSION}", "rerun with the roundtrip-ml that wrote it")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names}
    return Protocol(**kw)  # type: ignore[arg-type]  # fields checked by name above


QUICK = Protocol(photos=("skimage:astronaut", "skimage:coffee"), crop=96, generations=3,
                 chart_size=512)
#: --quick without --models: one fast model per family (all of them take too long for "quick")
QUICK_MODELS = ("realcugan-se-x2", "waifu2x-upconv-photo-x2", "span-x2-ch48", "srmd-x2",
                "realesr-animevideov3")
FULL = Protocol(photos=("skimage:astronaut", "skimage:coffee", "skimage:chelsea",
                        "skimage:rocket", "skimage:hubble_deep_field"),
                crop=144, generations=12, chart_size=768)


def select_models(pattern: str | None = None) -> list[tuple[str, int]]:
    """(registry name, native scale) of the models to rank: every model that runs with no
    download (x1 models left out), or those a comma list of names / fnmatch patterns picks."""
    from ..upscalers import zoo

    offline = [e for e, _ in zoo.offline_models()]
    if not pattern:
        return [(e.name, e.scale) for e in offline if e.scale > 1]
    out: dict[str, int] = {}
    for pat in filter(None, (p.strip() for p in pattern.split(","))):
        hits = [e for e in offline if fnmatch.fnmatchcase(e.name, pat)]
        if not hits and not any(c in pat for c in "*?["):
            e = zoo.get_entry(pat)  # a model that is not installed fails with its own hint
            hits = [e]
        if not hits:
            raise ConfigError(f"--models {pat!r}", "matches no model that runs offline here",
                              "see `roundtrip models list`")
        out.update({e.name: e.scale for e in hits})
    return list(out.items())


def _sweep_dict(p: Protocol, models: list[tuple[str, int]], name: str, images: list[str],
                output: Path, crop: int | None) -> dict[str, Any]:
    by_scale: dict[int, list[str]] = {}
    for m, s in models:
        by_scale.setdefault(s if s > 1 else p.x1_scale, []).append(m)
    scales = sorted(by_scale) or [2]
    d: dict[str, Any] = {
        "name": name, "output": str(output), "images": images,
        "upscalers": list(p.baselines), "downscalers": [p.downscaler],
        "scales": scales, "codecs": [p.codec], "generations": p.generations,
        "seeds": [p.seed], "replicas": p.replicas, "perturbation": p.perturbation,
        "frame_stride": p.generations, "checkpoint_stride": p.generations,
        "include": [{"upscaler": ms, "scale": [s]} for s, ms in sorted(by_scale.items())],
        "sweep": {"max_images_per_unit": 16},
    }
    if crop:
        d["center_crop"] = [crop, crop]
    return d


def _ci(values: pd.Series) -> tuple[float, float, float, int]:
    """Mean and 95% t-interval half-width over photos (NaN width for one photo)."""
    from scipy import stats

    v = pd.to_numeric(values, errors="coerce").astype(float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n == 1:
        return mean, math.nan, math.nan, 1
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


# per-chain quantities: (column in the leaderboard, how to read it)
_LAST_METRICS = {"final_psnr": ("psnr", "original"), "final_ssim": ("ssim", "original"),
                 "de2000": ("de2000_mean", "original"), "lab_shift_L": ("lab_shift_L", "original"),
                 "lab_shift_a": ("lab_shift_a", "original"),
                 "lab_shift_b": ("lab_shift_b", "original"),
                 "lowres_psnr": ("psnr", "lowres")}
_FIRST_METRICS = {"g1_psnr": ("psnr", "original"), "g1_ssim": ("ssim", "original")}


def _chain_values(root: Path, p: Protocol) -> pd.DataFrame:
    """One row per unperturbed chain: every quantity the table ranks, read from the runs."""
    from ..analysis.divergence import summarize_divergence
    from ..analysis.summary import parse_thresholds, summarize
    from ..pipeline.store import RunStore
    from ..report.data import find_run_dirs

    rows = []
    for d in find_run_dirs(root):
        store = RunStore(d)
        m = store.read_metrics()
        if m.empty:
            continue
        s = summarize(m, store.read_fingerprints(), parse_thresholds(p.thresholds))
        s = s[s["replica"] <= 0] if "replica" in s else s
        div = (summarize_divergence(m, per="chain") if (m["reference"] == "replicas").any()
               else pd.DataFrame())
        own = m[m["replica"] <= 0] if "replica" in m else m
        for _, r in s.iterrows():
            c = own[own["chain_id"] == r["chain_id"]]
            last = int(c["generation"].max())
            row: dict[str, Any] = {k: r[k] for k in ("chain_id", "image", "upscaler", "scale")}
            row["last_generation"] = last
            for col, (metric, ref) in {**_LAST_METRICS, **_FIRST_METRICS}.items():
                gen = 1 if col in _FIRST_METRICS else last
                v = c[(c["metric"] == metric) & (c["reference"] == ref)
                      & (c["generation"] == gen)]["value"]
                row[col] = float(v.iloc[0]) if len(v) else math.nan
            for t in parse_thresholds(p.thresholds):
                first = r.get(f"first_{t.name}")
                row[f"gens_{t.name}"] = float(last + 1) if pd.isna(first) else float(first)
                row[f"censored_{t.name}"] = bool(pd.isna(first))
            row["half_life_psnr"] = float(r.get("half_life_psnr", math.nan))
            ev = r.get("event")
            row["fixed_or_cycle"] = float(isinstance(ev, str) and ev in ("fixed_point", "cycle"))
            if len(div):
                dr = div[div["chain_id"] == r["chain_id"]]
                row["divergence_db_per_gen"] = (float(dr["rate_db_per_gen"].iloc[0])
                                                if len(dr) else math.nan)
            cer = c[c["metric"].str.startswith("cer@") & (c["generation"] == last)]["value"]
            row["ocr_cer"] = float(cer.mean()) if len(cer) else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


_RANKED = ["g1_psnr", "g1_ssim", "final_psnr", "final_ssim", "half_life_psnr",
           "divergence_db_per_gen", "de2000", "lab_shift_L", "lab_shift_a", "lab_shift_b",
           "lowres_psnr", "fixed_or_cycle"]


@dataclass
class Leaderboard:
    """The ranked table (one row per model and scale) and the files written."""

    table: pd.DataFrame
    protocol: Protocol
    output: Path
    files: dict[str, Path] = field(default_factory=dict)


def _aggregate(photos: pd.DataFrame, chart: pd.DataFrame, p: Protocol) -> pd.DataFrame:
    from ..analysis.summary import parse_thresholds

    tnames = [t.name for t in parse_thresholds(p.thresholds)]
    out = []
    for (up, scale), g in photos.groupby(["upscaler", "scale"], sort=True):
        row: dict[str, Any] = {"upscaler": up, "scale": int(scale),
                               "n_photos": g["image"].nunique()}
        for col in [*_RANKED, *(f"gens_{t}" for t in tnames)]:
            if col not in g:
                continue
            mean, lo, hi, _ = _ci(g[col])
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = mean, lo, hi
        for t in tnames:
            row[f"censored_{t}"] = int(g[f"censored_{t}"].sum())
        ch = chart[(chart["upscaler"] == up) & (chart["scale"] == scale)] if len(chart) else chart
        row["ocr_cer"] = float(ch["ocr_cer"].mean()) if len(ch) else math.nan
        out.append(row)
    df = pd.DataFrame(out)
    if df.empty:
        return df
    df["rank"] = (df.groupby("scale")["final_psnr"].rank(ascending=False, method="min")
                  .astype("Int64"))
    return df.sort_values(["scale", "rank", "upscaler"]).reset_index(drop=True)


def _fmt(mean: float, lo: float, hi: float, digits: int = 2) -> str:
    if not np.isfinite(mean):
        return "-"
    if not np.isfinite(lo):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ±{(hi - lo) / 2:.{digits}f}"


def display_table(df: pd.DataFrame, p: Protocol) -> pd.DataFrame:
    """The human table: mean ± CI half-width; censored threshold counts as '>G (k/n)'."""
    from ..analysis.summary import parse_thresholds

    rows = []
    for _, r in df.iterrows():
        d: dict[str, Any] = {"scale": f"x{r['scale']}", "rank": r["rank"],
                             "upscaler": r["upscaler"],
                             "PSNR g1": _fmt(r["g1_psnr"], r["g1_psnr_lo"], r["g1_psnr_hi"]),
                             "SSIM g1": _fmt(r["g1_ssim"], r["g1_ssim_lo"], r["g1_ssim_hi"], 3),
                             f"PSNR g{p.generations}": _fmt(r["final_psnr"], r["final_psnr_lo"],
                                                           r["final_psnr_hi"])}
        for t in parse_thresholds(p.thresholds):
            k = f"gens_{t.name}"
            cens, n = int(r[f"censored_{t.name}"]), int(r["n_photos"])
            d[f"gens {t.name}"] = (f">{p.generations}" if cens == n else
                                   _fmt(r[k], r[f"{k}_lo"], r[f"{k}_hi"], 1)
                                   + (f" ({cens}/{n} >{p.generations})" if cens else ""))
        d["half-life"] = _fmt(r["half_life_psnr"], r["half_life_psnr_lo"], r["half_life_psnr_hi"],
                              1)
        d["div dB/gen"] = _fmt(r.get("divergence_db_per_gen", math.nan),
                               r.get("divergence_db_per_gen_lo", math.nan),
                               r.get("divergence_db_per_gen_hi", math.nan))
        d["dE00"] = _fmt(r["de2000"], r["de2000_lo"], r["de2000_hi"])
        d["Lab shift (L,a,b)"] = (f"{r['lab_shift_L']:+.2f},{r['lab_shift_a']:+.2f},"
                                  f"{r['lab_shift_b']:+.2f}" if np.isfinite(r["lab_shift_L"])
                                  else "-")
        d["low-res PSNR"] = _fmt(r["lowres_psnr"], r["lowres_psnr_lo"], r["lowres_psnr_hi"])
        d["fixed/cycle"] = f"{r['fixed_or_cycle']:.0%}" if np.isfinite(r["fixed_or_cycle"]) \
            else "-"
        d["chart CER"] = f"{r['ocr_cer']:.2f}" if np.isfinite(r["ocr_cer"]) else "-"
        rows.append(d)
    return pd.DataFrame(rows)


LABEL_ALL_UP_TO = 16  # more points than this and every label would overlap another
LABEL_ENDS = 3


def tradeoff_figure(df: pd.DataFrame, p: Protocol, out_dir: Path) -> list[Path]:
    """First-generation fidelity against collapse resistance, one point per model, CI bars."""
    from matplotlib.figure import Figure

    from ..report.plots import save_figure, style_context

    with style_context("paper"):
        fig = Figure(figsize=(7.16, 4.8), layout="constrained")
        ax = fig.subplots()
        markers = {2: "o", 3: "s", 4: "^", 1: "D"}
        crowded = len(df) > LABEL_ALL_UP_TO  # then name the baselines and each scale's ends
        for scale, g in df.groupby("scale"):
            last = int(g["rank"].max())
            for _, r in g.iterrows():
                classical = r["upscaler"] in p.baselines
                xerr = np.nan_to_num([[r["g1_psnr"] - r["g1_psnr_lo"]],
                                      [r["g1_psnr_hi"] - r["g1_psnr"]]])
                yerr = np.nan_to_num([[r["final_psnr"] - r["final_psnr_lo"]],
                                      [r["final_psnr_hi"] - r["final_psnr"]]])
                ax.errorbar(r["g1_psnr"], r["final_psnr"], xerr=xerr, yerr=yerr,
                            fmt=markers.get(int(scale), "o"), ms=4, capsize=2, lw=0.7,
                            color="k" if classical else f"C{int(scale)}", alpha=0.85)
                ends = r["rank"] <= LABEL_ENDS or r["rank"] > last - LABEL_ENDS
                if not crowded or classical or ends:
                    ax.annotate(f"{r['upscaler']} x{scale}", (r["g1_psnr"], r["final_psnr"]),
                                fontsize=5, xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel("first-generation PSNR to the original (dB)")
        ax.set_ylabel(f"PSNR to the original after {p.generations} generations (dB)")
        named = (f"\nnamed: the baselines and each scale's {LABEL_ENDS} best and worst "
                 "(every model is in leaderboard.md)" if crowded else "")
        ax.set_title(f"Fidelity vs collapse resistance ({len(p.photos)} photos, "
                     f"{p.crop} px, {p.codec}; 95% CI; black: classical){named}", fontsize=8)
        return save_figure(fig, out_dir, "tradeoff", formats=("png", "pdf"))


def run_leaderboard(
    output: str | Path,
    *,
    models: str | None = None,
    quick: bool = False,
    protocol: Protocol | None = None,
    executor: str = "local",
    address: str | None = None,
    device: str = "auto",
    progress: Any = None,
) -> Leaderboard:
    """Run (or resume) the leaderboard sweeps into ``output`` and write the ranked table, the
    trade-off figure, the contact sheet and protocol.json."""
    from ..core.files import atomic_write_bytes, atomic_write_json
    from ..imaging.chart import write_chart
    from ..report.sheets import contact_sheet
    from ..report.tables import to_markdown
    from ..sweep import parse_sweep, run_sweep

    p = protocol or (QUICK if quick else FULL)
    if any(p.crop % s for s in (2, 3, 4)):
        raise ConfigError("protocol.crop", f"{p.crop} is not divisible by 2, 3 and 4",
                          "use a multiple of 12")
    out = Path(output).expanduser()
    chosen = select_models(models if models or not quick else ",".join(QUICK_MODELS))
    out.mkdir(parents=True, exist_ok=True)
    desc = {**p.describe(), "models": [{"name": n, "native_scale": s} for n, s in chosen]}
    if (out / "protocol.json").is_file():
        old = json.loads((out / "protocol.json").read_text())
        if {k: v for k, v in old.items() if k != "models"} != \
                {k: v for k, v in json.loads(json.dumps(desc)).items() if k != "models"}:
            raise ConfigError(str(out), "holds a leaderboard with another protocol",
                              "use a new --output directory")
    atomic_write_json(out / "protocol.json", desc)
    chart_png, _ = write_chart(out / "chart" / "chart.png", p.chart_size)
    engine = {"device": device}
    photos = parse_sweep({**_sweep_dict(p, chosen, "leaderboard-photos", list(p.photos),
                                        out / "photos", p.crop), **engine}, "leaderboard")
    # the chart only feeds the OCR column: measured at the last generation, nothing else
    chart = parse_sweep({**_sweep_dict(replace(p, replicas=0), chosen, "leaderboard-chart",
                                       [str(chart_png)], out / "chart-runs", None), **engine,
                         "metrics": ["psnr"], "metric_stride": p.generations,
                         "lowres_consistency": False}, "leaderboard")
    for cfg in (photos, chart):
        run_sweep(cfg, executor=executor, address=address, progress=progress)
    per_chain = _chain_values(out / "photos", p)
    chart_chains = _chain_values(out / "chart-runs", replace(p, replicas=0))
    table = _aggregate(per_chain, chart_chains, p)
    files: dict[str, Path] = {}
    per_chain.to_csv(out / "chains.csv", index=False)
    table.to_csv(out / "leaderboard.csv", index=False)
    shown = display_table(table, p)
    atomic_write_bytes(out / "leaderboard.md", (
        f"# Collapse leaderboard (protocol v{p.version})\n\n"
        f"{json.dumps(p.describe(), indent=1)}\n\n{to_markdown(shown)}\n").encode())
    files.update(csv=out / "leaderboard.csv", markdown=out / "leaderboard.md",
                 chains=out / "chains.csv", protocol=out / "protocol.json")
    if len(table):
        files["figure"] = tradeoff_figure(table, p, out)[0]
        from ..report.data import load_runs

        runs = load_runs(out / "photos")
        first = sorted(runs.chains["image_name"].unique())[0]
        sheet = contact_sheet(runs, out, generations=[0, 1, p.generations], image=first,
                              formats=("png",), stem="contact_sheet")
        files["contact_sheet"] = sheet.paths[0] if hasattr(sheet, "paths") else out
    lb = Leaderboard(table, p, out, files)
    lb.table.attrs["display"] = shown
    return lb
