"""Tables: metrics at chosen generations per recipe (mean and 95% bootstrap CI over images),
and the collapse statistics per recipe, as CSV (exact numbers), Markdown and LaTeX (booktabs).

The CSV is tidy, holds every metric and statistic at full precision and parses back to the
stored numbers; the Markdown and LaTeX versions are for reading and pasting into a paper, so
they choose columns that fit a page (the headline metrics, at most DISPLAY_GENERATIONS
generations, the measured thresholds) and show a CI only where n >= 3 images stand behind it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.summary import DEFAULT_THRESHOLDS, parse_thresholds
from ..core.files import atomic_write_bytes
from .data import (
    Runs,
    aggregate,
    collapse_summary,
    format_ranges,
    load_runs,
    measured_thresholds,
    recipe_label,
    select,
)
from .labels import axis_label, expand, label, threshold_label
from .plots import MIN_BAND_N, default_metrics

DEFAULT_AT = (1, 10, 50, 200)
DISPLAY_METRICS = 3  # metrics in the Markdown/LaTeX table when none are named
DISPLAY_GENERATIONS = 6  # generation columns that fit a page beside recipe, metric and n
DISPLAY_FINALS = 2  # "final value" columns in the collapse table


@dataclass
class Tables:
    metrics: pd.DataFrame  # tidy: recipe, metric, reference, generation, mean, ci_low, ...
    collapse: pd.DataFrame  # one row per recipe, numbers
    at: list[int]  # generations in the table
    skipped: list[int] = field(default_factory=list)  # asked for but not stored
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def note(self) -> str:
        if not self.skipped:
            return ""
        return f"generations {format_ranges(self.skipped)} have no stored metrics: left out"


def metrics_at(
    runs: Runs,
    at: Sequence[int] = DEFAULT_AT,
    metrics: Sequence[str] | None = None,
    reference: str = "original",
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, list[int], list[int]]:
    """(tidy table, generations used, generations skipped: not stored, e.g. by the metric
    stride). Asking past the last generation shows the last one instead, so ``--at
    1,10,50,200`` on a 30-generation run shows 1, 10 and 30."""
    stored = sorted(set(runs.metrics.loc[runs.metrics["reference"] == reference, "metric"]))
    metrics = expand(metrics, stored) if metrics else default_metrics(runs, reference)
    by = runs.recipe_columns
    rows = runs.metrics[(runs.metrics["reference"] == reference) & (runs.metrics["replica"] == 0)]
    have = set(rows["generation"].unique())
    last = runs.generations()
    want = sorted({g for g in at if g <= last} | ({last} if any(g > last for g in at) else set()))
    used = [g for g in want if g in have]
    skipped = [g for g in want if g not in have]
    parts = []
    for m in metrics:
        agg = aggregate(select(rows, m, reference), by, generations=used, n_boot=n_boot, seed=seed)
        parts.append(agg.assign(metric=m, reference=reference))
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    df = df.rename(columns={"lo": "ci_low", "hi": "ci_high", "n": "n_images"})
    cols = [*by, "metric", "reference", "generation", "mean", "ci_low", "ci_high", "n_images"]
    return df[cols], used, skipped


def collapse_by_recipe(runs: Runs, thresholds: str = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Collapse statistics (roundtrip_ml.analysis.summary) pooled per recipe: median first
    crossing of each threshold and how many chains crossed, mean final values, median
    half-life, and how many chains reached a fixed point or a cycle. Medians of generations
    are *lower* medians: a generation that occurred (2 chains crossing at 1 and 2 give 1, not
    1.5)."""
    s = collapse_summary(runs, measured_thresholds(runs, thresholds))
    s = s[s["replica"] == 0]
    by = runs.recipe_columns
    out = []
    for key, g in s.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, object] = dict(zip(by, key, strict=True))
        row["chains"] = len(g)
        row["generations"] = int(g["generations"].max())
        for c in g.columns:
            v = pd.to_numeric(g[c], errors="coerce").astype("float64")
            if c.startswith("first_"):
                row[f"{c}_median"] = median_low(v)
                row[f"{c}_crossed"] = int(v.notna().sum())
            elif c.startswith("final_"):
                row[f"{c}_mean"] = float(v.mean())
            elif c.startswith("half_life_"):
                row[f"{c}_median"] = median_low(v)
        ev = g["event"] if "event" in g else pd.Series(dtype=object)
        row["fixed_points"] = int((ev == "fixed_point").sum())
        row["cycles"] = int((ev == "cycle").sum())
        gen = pd.to_numeric(g.get("event_generation"), errors="coerce").dropna()
        row["event_generation_median"] = median_low(gen)
        out.append(row)
    return pd.DataFrame(out)


def median_low(v: pd.Series) -> float:
    """The lower median of the values present (NaN when none): always one of the values, so a
    median generation is a whole generation."""
    import statistics

    vals = sorted(float(x) for x in v.dropna())
    return float(statistics.median_low(vals)) if vals else math.nan


def _num(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.2f}" if abs(v) >= 10 else f"{v:.3f}" if abs(v) >= 0.01 else f"{v:.2e}"


def _db(v: float) -> str:
    """Decibels to 0.01 dB, so a PSNR column lines up whatever its magnitude."""
    return _num(v) if v is None or math.isnan(v) or math.isinf(v) else f"{v:.2f}"


def _gen(v: float) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:g}"


def metrics_display(
    tidy: pd.DataFrame, runs: Runs, metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """Rows = recipe x metric, columns = generations, cells ``mean [low, high]`` (the CI only
    where n >= 3 images); ``n`` = images behind the row. Without ``metrics``, the headline
    ones; at most DISPLAY_GENERATIONS generations (evenly chosen, the last kept)."""
    by = runs.recipe_columns
    varying = runs.varying(by) or ["upscaler"]
    order = (
        list(metrics)
        if metrics
        else [m for m in default_metrics(runs) if m in set(tidy["metric"])][:DISPLAY_METRICS]
    )
    tidy = tidy[tidy["metric"].isin(order)]
    gens = sorted(tidy["generation"].unique())
    if len(gens) > DISPLAY_GENERATIONS:
        idx = np.linspace(0, len(gens) - 1, DISPLAY_GENERATIONS).round().astype(int)
        gens = [gens[i] for i in sorted(set(idx))]
        tidy = tidy[tidy["generation"].isin(gens)]
    recs = []
    rank = {m: i for i, m in enumerate(order)}
    groups = sorted(
        tidy.groupby([*by, "metric"], sort=True),
        key=lambda kv: (kv[0][:-1], rank.get(kv[0][-1], 0)),
    )
    for key, g in groups:
        row = dict(zip([*by, "metric"], key, strict=True))
        rec = {
            "recipe": recipe_label(row, varying),
            "metric": axis_label(row["metric"]),
            "n": str(int(g["n_images"].max())),
        }
        fmt = _db if label(row["metric"]).unit == "dB" else _num  # one precision per column
        for r in g.itertuples():
            cell = fmt(r.mean)
            if r.n_images >= MIN_BAND_N and r.ci_high > r.ci_low:
                cell += f" [{fmt(r.ci_low)}, {fmt(r.ci_high)}]"
            rec[f"gen {r.generation}"] = cell
        recs.append(rec)
    return pd.DataFrame(recs).fillna("-")


def collapse_display(collapse: pd.DataFrame, runs: Runs) -> pd.DataFrame:
    """One row per recipe: first crossing of each measured threshold (median generation and
    how many chains crossed), the final value of the headline metrics, events. Half-lives and
    the other final values stay in collapse.csv."""
    by = runs.recipe_columns
    varying = runs.varying(by) or ["upscaler"]
    finals = [m for m in default_metrics(runs) if f"final_{m}_mean" in collapse][:DISPLAY_FINALS]
    recs = []
    for r in collapse.to_dict("records"):
        rec: dict[str, str] = {"recipe": recipe_label(r, varying), "chains": str(r["chains"])}
        for c in collapse.columns:
            if c.startswith("first_") and c.endswith("_median"):
                name = c[len("first_") : -len("_median")]
                k = r[f"first_{name}_crossed"]
                t = parse_thresholds(name)[0]
                rec[f"first {threshold_label(t.metric, t.op, t.value)}: median gen (crossed)"] = (
                    f"{_gen(r[c])} ({k}/{r['chains']})" if k else f"never (0/{r['chains']})"
                )
        for m in finals:
            fmt = _db if label(m).unit == "dB" else _num
            rec[f"final {axis_label(m)}"] = fmt(r[f"final_{m}_mean"])
        ev = []
        if r["fixed_points"]:
            ev.append(f"fixed point {r['fixed_points']}/{r['chains']}")
        if r["cycles"]:
            ev.append(f"cycle {r['cycles']}/{r['chains']}")
        if ev:
            ev.append(f"from gen {_gen(r['event_generation_median'])} (median)")
        rec["events"] = ", ".join(ev) or "none"
        recs.append(rec)
    return pd.DataFrame(recs)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""

    def cell(v: object) -> str:
        return str(v).replace("|", "\\|")

    lines = [
        "| " + " | ".join(cell(c) for c in df.columns) + " |",
        "|" + "|".join("---" for _ in df.columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "·": r"$\cdot$",
    "↓": r"$\downarrow$",
    "∞": r"$\infty$",
    "Δ": r"$\Delta$",
    "↑": r"$\uparrow$",
    "→": r"$\to$",
    "<": r"$<$",
    ">": r"$>$",
}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX.get(ch, ch) for ch in str(text))
    return out.replace(" inf", r" $\infty$").replace("[inf", r"[$\infty$")


def to_latex(df: pd.DataFrame, caption: str, label: str, group: str | None = None) -> str:
    """A booktabs table; columns starting 'gen ' get a spanning 'generation' header, and rows
    of the same ``group`` value are set off with \\addlinespace."""
    cols = list(df.columns)
    gens = [c for c in cols if c.startswith("gen ")]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        r"\small",
        r"\begin{tabular}{" + "".join("r" if c in gens else "l" for c in cols) + "}",
        r"\toprule",
    ]
    if gens:
        first = cols.index(gens[0]) + 1
        lines.append(
            " & ".join(
                [""] * (first - 1)
                + [
                    rf"\multicolumn{{{len(gens)}}}{{c}}"
                    r"{generation}"
                ]
            )
            + r" \\"
        )
        lines.append(rf"\cmidrule(lr){{{first}-{first + len(gens) - 1}}}")
    head = [c[4:] if c in gens else c for c in cols]
    lines.append(" & ".join(latex_escape(h) for h in head) + r" \\")
    lines.append(r"\midrule")
    prev = None
    for row in df.itertuples(index=False):
        g = getattr(row, group) if group else None
        if group and prev is not None and g != prev:
            lines.append(r"\addlinespace")
        prev = g
        lines.append(" & ".join(latex_escape(v) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(
    run: Runs | str | Path,
    out_dir: str | Path,
    *,
    at: Sequence[int] | None = None,
    metrics: Sequence[str] | None = None,
    reference: str = "original",
    thresholds: str = DEFAULT_THRESHOLDS,
    n_boot: int = 1000,
    seed: int = 0,
) -> Tables:
    """Write metrics.{csv,md,tex} and collapse.{csv,md,tex} into ``out_dir``.

    Args:
        run: A run or sweep directory (or its loaded tables).
        out_dir: Where the tables go.
        at: The generations of the metrics table (past the last: the last).
        metrics: Stored metric names; None takes the headline ones that were measured.
        reference: What each generation is compared with (``original``, ``previous``, ...).
        thresholds: Collapse thresholds for the collapse table, e.g. ``psnr<20,ssim<0.5``.
        n_boot: Bootstrap resamples of each 95% CI (shown where n >= 3 images).
        seed: Seed of the bootstrap.

    Returns:
        The two tables, the paths written and a note on what was left out.
    """
    runs = run if isinstance(run, Runs) else load_runs(run)
    tidy, used, skipped = metrics_at(runs, at or DEFAULT_AT, metrics, reference, n_boot, seed)
    collapse = collapse_by_recipe(runs, thresholds)
    out = Path(out_dir)
    n = runs.chains["image_name"].nunique()
    what = f"mean over {n} image{'s' * (n != 1)}, n per row" + (
        f"; [95% percentile bootstrap CI over images] where n >= {MIN_BAND_N}"
        if n >= MIN_BAND_N
        else ""
    )
    shown = expand(metrics, sorted(set(tidy["metric"]))) if metrics else None
    display = metrics_display(tidy, runs, shown)
    files = {
        "metrics.csv": tidy.to_csv(index=False),
        "metrics.md": to_markdown(display),
        "metrics.tex": to_latex(
            display,
            f"Metrics vs the {reference} image by generation ({what}; "
            "every metric and generation: metrics.csv).",
            "tab:roundtrip-metrics",
            group="recipe",
        ),
        "collapse.csv": collapse.to_csv(index=False),
        "collapse.md": to_markdown(collapse_display(collapse, runs)),
        "collapse.tex": to_latex(
            collapse_display(collapse, runs),
            f"Collapse statistics per recipe (thresholds "
            f"{measured_thresholds(runs, thresholds) or 'none measured'}; "
            "first: lower median of the generation at which the chains that "
            "crossed first did, with crossed/total chains; every statistic: "
            "collapse.csv).",
            "tab:roundtrip-collapse",
        ),
    }
    paths = {}
    for name, text in files.items():
        p = out / name
        atomic_write_bytes(p, text.encode())
        paths[name] = p
    return Tables(tidy, collapse, used, skipped, paths)
