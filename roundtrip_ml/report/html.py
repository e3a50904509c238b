"""`roundtrip report RUN`: figures, sheet, video and tables in RUN/report/ with a static
index.html that opens from disk (relative links, no scripts, no server, nothing fetched)."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..analysis.summary import DEFAULT_THRESHOLDS
from ..core.files import atomic_write_bytes
from .data import Runs, load_runs
from .labels import expand
from .plots import plot_drift
from .sheets import SheetResult, contact_sheet
from .tables import Tables, write_tables
from .video import VideoResult, make_video

REPORT_DIR = "report"
CSS = """
body{font-family:"DejaVu Sans",system-ui,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1a1a1a;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
img,video{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0;display:block;overflow-x:auto;
max-width:100%}
th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top;
overflow-wrap:break-word}
code,p,figcaption,summary{overflow-wrap:anywhere}figure{margin:1em 0}
th{background:#f5f5f5}.note{color:#555;font-size:.9em}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.8em;max-height:40em}
.files a{margin-right:1em}img.col1{max-width:520px}
"""


@dataclass
class Report:
    index: Path
    figures: list[Path] = field(default_factory=list)
    sheet: SheetResult | None = None
    video: VideoResult | None = None
    tables: Tables | None = None
    notes: list[str] = field(default_factory=list)


def write_report(
    run: Runs | str | Path,
    out_dir: str | Path | None = None,
    *,
    metrics: Sequence[str] | None = None,
    at: Sequence[int] | None = None,
    generations: Sequence[int] | None = None,
    crop: tuple[int, int, int, int] | None = None,
    fps: float | None = None,
    thresholds: str = DEFAULT_THRESHOLDS,
    seed: int = 0,
) -> Report:
    """Write every report artefact and a static index.html.

    Args:
        run: A run or sweep directory (or its loaded tables).
        out_dir: Where the report goes (default RUN/report).
        metrics: Stored metric names; None takes the headline ones that were measured.
        at: The generations of the tables.
        generations: The contact sheet's columns.
        crop: A zoom region (x, y, w, h) for the sheet and the video.
        fps: The video's frame rate (None: about 6 s of video).
        thresholds: Collapse thresholds to mark, e.g. ``psnr<20,ssim<0.5``.
        seed: Seed of the bootstrap intervals.

    Returns:
        The index page's path, every artefact written and notes on what was left out.
    """
    runs = run if isinstance(run, Runs) else load_runs(run)
    out = Path(out_dir) if out_dir else runs.root / REPORT_DIR
    figs = out / "figures"
    rep = Report(out / "index.html")
    if runs.metrics.empty:  # every chain failed (or none ran yet): the page says so
        rep.notes.append(
            "no metric rows: no chain finished a generation (see the failures "
            "above and the manifest); nothing to plot"
        )
        atomic_write_bytes(rep.index, render_index(runs, rep, out).encode())
        return rep
    for layout in ("double", "single"):
        rep.figures += plot_drift(
            runs, figs, metrics=metrics, layout=layout, thresholds=thresholds, seed=seed
        ).paths
    prev = set(runs.metrics.loc[runs.metrics["reference"] == "previous", "metric"])
    step = [m for m in expand(metrics or ["psnr"]) if m in prev]
    if step:
        rep.figures += plot_drift(
            runs,
            figs,
            metrics=step,
            reference="previous",
            layout="single",
            thresholds=thresholds,
            seed=seed,
        ).paths
    has_frames = any(runs.frames(r.run_id, r.chain_id) for r in runs.chains.head(50).itertuples())
    if has_frames:
        rep.sheet = contact_sheet(runs, out / "sheet", generations=generations, crop=crop)
        rep.video = make_video(runs, out / "video", fps=fps)  # whole frames; the sheet zooms
    else:
        rep.notes.append("no frames saved (frame_stride = 0): no contact sheet or video")
    rep.tables = write_tables(
        runs, out / "tables", at=at, metrics=metrics, thresholds=thresholds, seed=seed
    )
    atomic_write_bytes(rep.index, render_index(runs, rep, out).encode())
    return rep


def _rel(p: Path, base: Path) -> str:
    return p.relative_to(base).as_posix()


def _table_html(df: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.6g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _manifest_summary(runs: Runs) -> pd.DataFrame:
    """One row per run: status, what it held, how far it got and what failed."""
    rows = []
    for run_id, m in runs.manifests.items():
        chains = runs.chains[runs.chains["run_id"] == run_id]
        last = runs.metrics.loc[runs.metrics["run_id"] == run_id, "generation"].max()
        failed = {
            b.get("error", "?"): len(b.get("chains", []))
            for b in m.get("batches", {}).values()
            if b.get("status") == "failed"
        }
        failed.update({f"{k}: {v}": 1 for k, v in (m.get("input_errors") or {}).items()})
        rows.append(
            {
                "run": str(chains["run"].iloc[0]) if len(chains) else run_id,
                "run_id": run_id,
                "status": m.get("status", "?"),
                "chains": len(chains),
                "images": ", ".join(sorted(chains["image_name"].unique())),
                "upscalers": ", ".join(sorted(chains["upscaler"].unique())),
                "codecs": ", ".join(sorted(chains["codec"].unique())),
                "generations": "-" if pd.isna(last) else int(last),
                "failed": "; ".join(f"{n} chain{'s' * (n != 1)}: {e}" for e, n in failed.items())
                or "-",
            }
        )
    return pd.DataFrame(rows)


def _divergence_section(runs: Runs) -> list[str]:
    """Runs with replicas: divergence rate and largest Lyapunov exponent per recipe."""
    from ..analysis.summary import RECIPE_EXTRAS, divergence_table

    if not (runs.metrics["reference"] == "replicas").any():
        return []
    div = divergence_table(runs.metrics, runs.chains)
    extras = {c: c for c in RECIPE_EXTRAS if c in div and div[c].nunique() > 1}
    cols = {
        "upscaler": "upscaler",
        "downscaler": "down",
        "scale": "scale",
        "codec": "codec",
        **extras,
        "images": "images",
        "lyapunov": "λ /gen",
        "lyapunov_ci_low": "λ CI low",
        "lyapunov_ci_high": "λ CI high",
        "rate_db_per_gen": "dB/gen",
        "horizon": "horizon",
    }
    shown = div[list(cols)].rename(columns=cols).round(4)
    shown["horizon"] = shown["horizon"].astype(object).where(shown["horizon"].notna(), "-")
    return [
        "<h2>Divergence of replicas</h2>"
        + _table_html(shown)
        + "<p class=note>λ: largest Lyapunov exponent, per generation (natural log of the "
        "replicas' RMS distance growth), fitted over the exponential phase with a 95% CI "
        "(docs/guide/collapse-science.md); dB/gen: the same in dB of inter-replica PSNR."
        "</p>"
    ]


def render_index(runs: Runs, rep: Report, base: Path) -> str:
    """The page: every path relative to ``base`` so the folder can be moved or zipped."""
    from .tables import collapse_display, metrics_display

    title = f"roundtrip report: {runs.root.name}"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class=note>Made from <code>{html.escape(str(runs.root))}</code> by "
        "<code>roundtrip report</code>; nothing was re-run.</p>",
    ]
    parts.append("<h2>Runs</h2>" + _table_html(_manifest_summary(runs)))
    if rep.figures:
        parts.append("<h2>Drift</h2>")
    # each figure once: the double-column one is shown, its single-column version linked
    pngs = [p for p in rep.figures if p.suffix == ".png"]
    stems = {p.stem for p in pngs}
    for png in pngs:
        if png.stem.endswith("-single") and png.stem.replace("-single", "-double") in stems:
            continue
        links = " ".join(
            f'<a href="{_rel(p, base)}">{p.suffix[1:].upper()}</a>'
            for p in rep.figures
            if p.stem == png.stem
        )
        single = png.stem.replace("-double", "-single")
        if png.stem.endswith("-double") and single in stems:
            links += "; single column: " + " ".join(
                f'<a href="{_rel(p, base)}">{p.suffix[1:].upper()}</a>'
                for p in rep.figures
                if p.stem == single
            )
        cls = " class=col1" if png.stem.endswith("-single") else ""
        parts.append(
            f'<figure><img{cls} src="{_rel(png, base)}" alt="{html.escape(png.stem)}">'
            f"<figcaption class=files>{html.escape(png.stem)}: {links}</figcaption>"
            "</figure>"
        )
    if rep.sheet:
        s = rep.sheet
        png = next(p for p in s.paths if p.suffix == ".png")
        links = " ".join(f'<a href="{_rel(p, base)}">{p.suffix[1:].upper()}</a>' for p in s.paths)
        parts.append(
            "<h2>Contact sheet</h2>"
            f'<img src="{_rel(png, base)}" alt="contact sheet">'
            f"<p class=note>{html.escape(s.note)} <span class=files>{links}</span></p>"
        )
    if rep.video:
        v = rep.video
        gif = f' <a href="{_rel(v.gif, base)}">GIF</a>' if v.gif else ""
        parts.append(
            "<h2>Video</h2>"
            f'<video src="{_rel(v.mp4, base)}" controls muted loop preload="auto" '
            f'width="{v.size[0]}" height="{v.size[1]}"></video>'
            f"<p class=note>{v.frames} video frames at {v.fps:.3g} fps "
            f"({v.duration_s:.1f} s), one per saved generation and chain "
            f"layout; {html.escape(v.note)}. "
            f'<a href="{_rel(v.mp4, base)}">MP4</a>{gif}</p>'
        )
    if rep.tables:
        t = rep.tables
        links = " ".join(
            f'<a href="{_rel(p, base)}">{html.escape(n)}</a>' for n, p in t.paths.items()
        )
        parts.append(
            "<h2>Metrics by generation</h2>"
            + _table_html(metrics_display(t.metrics, runs))
            + (f"<p class=note>{html.escape(t.note)}</p>" if t.note else "")
        )
        parts.append(
            "<h2>Collapse statistics</h2>"
            + _table_html(collapse_display(t.collapse, runs))
            + f"<p class='note files'>{links}</p>"
        )
    parts += _divergence_section(runs)
    for note in rep.notes:
        parts.append(f"<p class=note>{html.escape(note)}</p>")
    parts.append("<h2>Manifest</h2>")
    for run_id, m in runs.manifests.items():
        text = json.dumps(m, indent=2, sort_keys=True, default=str)
        parts.append(
            f"<details><summary>{html.escape(run_id)}</summary>"
            f"<pre>{html.escape(text)}</pre></details>"
        )
    body = "\n".join(parts)
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f'<link rel=icon href="data:,"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
