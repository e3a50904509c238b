"""Shared pieces of the issue-22 studies (scripts/study_*.py): running a config, paired
statistics over photos, Kaplan-Meier medians, and writing docs/studies/<name>.{md,csv,png}.

Statistics follow /work/shared/DESIGN.md: compare on the same photos (per-photo differences,
their mean, a Student-t 95% CI from n >= 3, wins/ties/losses), and report censored outcomes
("never crossed") by a Kaplan-Meier median with the censoring stated, never as a number.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import roundtrip_ml as rt
from roundtrip_ml.analysis.paired import km_median as paired_km_median
from roundtrip_ml.analysis.paired import paired_t, wins_ties_losses
from roundtrip_ml.report.tables import to_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "studies"
PHOTOS = [
    "skimage:astronaut",
    "skimage:coffee",
    "skimage:chelsea",
    "skimage:rocket",
    "skimage:hubble_deep_field",
    "skimage:retina",
]


def run(config: dict[str, Any], out: Path, reuse: bool = False) -> rt.RunView:
    """Run one config into ``out`` (replacing an earlier run there), or with ``reuse`` read a
    complete run of the same config already there; failures are errors."""
    config = {**config, "output": str(out)}
    if reuse and (out / "manifest.json").is_file():
        old = rt.load_run(out)
        same = old.config.model_dump() == rt.ExperimentConfig.model_validate(config).model_dump()
        if same and old.manifest.status == "complete":
            return old
    view = rt.run(config, overwrite=True)
    if view.manifest.status != "complete":
        raise SystemExit(f"run {out} ended {view.manifest.status}: {view.manifest.failed}")
    return view


def final_values(
    metrics: pd.DataFrame, metric: str, reference: str = "original", generation: int | None = None
) -> pd.DataFrame:
    """One value per chain: ``metric`` vs ``reference`` at ``generation`` (None: the last)."""
    m = metrics[
        (metrics.metric == metric) & (metrics.reference == reference) & (metrics.replica == 0)
    ]
    g = m.generation.max() if generation is None else generation
    return m[m.generation == g][["chain_id", "image_name", "value"]]


def paired(diff: pd.Series | np.ndarray, tie: float = 0.0) -> dict[str, Any]:
    """Mean of per-photo differences, Student-t 95% CI (n >= 3), wins/ties/losses
    (|d| <= tie counts as a tie): the leaderboard's own statistics (analysis/paired.py)."""
    d = np.asarray(diff, dtype=float)
    p = paired_t(d)
    wins, ties, losses = wins_ties_losses(d, tie)
    return {
        "mean": p.mean,
        "ci_low": p.ci_low,
        "ci_high": p.ci_high,
        "n": p.n,
        "wins": wins,
        "ties": ties,
        "losses": losses,
    }


def fmt_paired(p: dict[str, Any], digits: int = 2) -> str:
    """``+1.23 [0.5, 2.0] (n=4; 3/0/1)``; no interval under n = 3."""
    if not p["n"]:
        return "-"
    ci = (
        ""
        if math.isnan(p["ci_low"])
        else f" [{p['ci_low']:+.{digits}f}, {p['ci_high']:+.{digits}f}]"
    )
    return f"{p['mean']:+.{digits}f}{ci} (n={p['n']}; {p['wins']}/{p['ties']}/{p['losses']})"


def km_median(times: list[float], observed: list[bool]) -> float:
    """Kaplan-Meier median of event times with right censoring (analysis/paired.py); inf when
    the estimate never reaches one half (most chains never crossed within the run)."""
    median = paired_km_median(times, [not o for o in observed])
    return math.inf if math.isnan(median) else median


def crossings(summary: pd.DataFrame, threshold: str, generations: int) -> pd.DataFrame:
    """Per chain: the generation a threshold was first crossed, and whether it was (else the
    chain is censored at ``generations``)."""
    col = f"first_{threshold}"
    first = summary[col] if col in summary else pd.Series(pd.NA, index=summary.index)
    return summary.assign(
        crossed=first.notna(), cross_gen=first.astype("Float64").fillna(generations).astype(float)
    )


def command_line() -> str:
    """The command that made a study, less the options that do not change its numbers
    (``--output DIR``, ``--reuse``, ``--docs DIR``)."""
    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a in ("--output", "--docs"):
            skip = True
        elif a != "--reuse" and not a.startswith(("--output=", "--docs=")):
            args.append(a)
    return "python " + " ".join(
        shlex.quote(a) for a in ["scripts/" + Path(sys.argv[0]).name, *args]
    )


def md_table(df: pd.DataFrame) -> str:
    """A markdown table (report.tables.to_markdown) with floats to 3 significant digits."""

    def cell(v: Any) -> Any:
        if v is pd.NA or v is None:
            return "-"
        if isinstance(v, float):
            return "-" if math.isnan(v) else "inf" if math.isinf(v) else f"{v:.3g}"
        return v

    return to_markdown(df.map(cell))


def write_study(
    name: str,
    title: str,
    intro: str,
    tables: dict[str, pd.DataFrame],
    findings: list[str],
    per_photo: pd.DataFrame,
    figure: Path | None,
    size_note: str,
    out_dir: Path = DOCS,
) -> Path:
    """docs/studies/<name>.md (command, findings, tables, figure) and <name>.csv (per-photo
    data every number in the tables is computed from)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    per_photo.to_csv(out_dir / f"{name}.csv", index=False)
    lines = [
        f"# {title}",
        "",
        intro,
        "",
        f"Made by `{command_line()}` ({size_note}). Every "
        f"number below is recomputable from [{name}.csv]({name}.csv) (one row per chain).",
        "",
        "## What it found",
        "",
    ]
    lines += [f"- {f}" for f in findings]
    if figure is not None:
        lines += ["", f"![{title}]({figure.name})"]
    for head, table in tables.items():
        lines += ["", f"## {head}", "", md_table(table)]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def study_args(doc: str, prefix: str, docs: Path) -> tuple[argparse.Namespace, Path]:
    """The options every study script takes, parsed, and its run folder (a temp dir unless
    ``--output`` names one)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="GPU size")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--output", default=None, help="run folder (default: a temp dir)")
    ap.add_argument("--docs", default=str(docs))
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="read a complete run of the same config in --output instead of rerunning",
    )
    args = ap.parse_args()
    return args, Path(args.output or tempfile.mkdtemp(prefix=f"study-{prefix}-"))


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write (110 dpi) and close a study's figure; returns its path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
