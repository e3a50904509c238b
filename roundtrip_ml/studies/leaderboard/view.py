"""What a person reads: the display table, the notes that qualify it, the figures.

Every interval is shown with its n beside it, none under 3 photos, and a quick board says it
is a smoke test; the figure functions live in report/leaderboard.py and take tables only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ...analysis.paired import MIN_N
from .layout import FILES, Leaderboard
from .protocol import Protocol
from .table import ALPHA, CRITERIA, ENDS, curves, rank

_SHORT = {
    "psnr": "PSNR",
    "ssim": "SSIM",
    "ssimulacra2": "SSIMULACRA2",
    "colour": "dE00",
    "lyapunov": "λ",
    "divergence": "replica PSNR",
    "collapse": "collapse gen",
}
_DIGITS = {
    "psnr": 2,
    "ssim": 4,
    "ssimulacra2": 1,
    "colour": 2,
    "divergence": 2,
    "lyapunov": 3,
    "collapse": 1,
}


def _num(v: Any, digits: int, sign: bool = True) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)) or pd.isna(v):
        return "-"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def display_table(table: pd.DataFrame, p: Protocol) -> pd.DataFrame:
    """One row per model: rank, group letters, the paired difference to the reference with its
    interval (or why there is none), wins/ties/losses, dz, the other criteria's differences."""
    rows = []
    with_ci = " [95% CI]" if table["ci_low"].notna().any() else ""
    tied = _tied_ranks(table)
    for _, r in table.iterrows():
        crit = str(r["criterion"])
        dg = _DIGITS[crit]
        is_ref = r["upscaler"] == p.reference
        if is_ref:
            diff = "reference"
        elif math.isfinite(r["ci_low"]):
            diff = (
                f"{_num(r['paired_diff'], dg)} [{_num(r['ci_low'], dg)}, {_num(r['ci_high'], dg)}]"
            )
        else:
            diff = f"{_num(r['paired_diff'], dg)} (no CI: n = {r['n']})"
        d: dict[str, Any] = {
            "scale": f"x{r['scale']}",
            "codec": r["codec"],
            "rank": r["rank"],
            "group": r["group"] or "-",
            "not told apart from (ranks)": tied.get(r.name, "-"),
            "upscaler": r["upscaler"],
            "n": r["n"],
            f"{_SHORT[crit]}": _num(r["model_mean"], dg, sign=False),
            f"Δ{_SHORT[crit]} vs {p.reference}{with_ci}": diff,
            "W/T/L": "-" if is_ref else f"{r['wins']}/{r['ties']}/{r['losses']}",
            "dz": _num(r["dz"], 2),
        }
        for k in CRITERIA:
            if k != crit and f"{k}_diff" in r and k != "collapse":
                d[f"Δ{_SHORT[k]}"] = "0" if is_ref else _num(r[f"{k}_diff"], _DIGITS[k])
        if "collapse_km_median" in r:
            med = r["collapse_km_median"]
            d["collapse median (censored)"] = (
                f"{med:.0f} ({r['collapse_censored']}/{r['n']})"
                if math.isfinite(med)
                else f"not reached ({r['collapse_censored']}/{r['n']})"
            )
        if "ends_wandering" in r:
            d["ends"] = _ends(r)
        rows.append(d)
    return pd.DataFrame(rows)


_ENDS_SHORT = {
    "fixed_point": "fixed",
    "cycle": "cycle",
    "converging": "conv",
    "wandering": "wand",
    "untyped": "untyped",
}


def _ends(r: pd.Series) -> str:
    """How the entry's chains end: ``fixed 3, cycle 1, conv 6, wand 2`` (types no chain has
    left out; "-" when the board lacks the rows for it)."""
    if pd.isna(r["ends_wandering"]):
        return "-"
    return ", ".join(
        f"{_ENDS_SHORT[kind]} {int(r[f'ends_{kind}'])}" for kind in ENDS if r[f"ends_{kind}"]
    )


def _tied_ranks(table: pd.DataFrame) -> dict[Any, str]:
    """Per row: the ranks of the other models of its scale and codec that share a group letter
    (the data cannot tell them apart), as ranges (``2-5, 9``): a long letter string is hard to
    read, a rank range is not."""
    out: dict[Any, str] = {}
    for _, cond in table.groupby(["scale", "codec"], sort=False):
        for i, r in cond.iterrows():
            mine = set(str(r["group"] or ""))
            ranks = sorted(
                int(o["rank"])
                for j, o in cond.iterrows()
                if j != i and mine & set(str(o["group"] or ""))
            )
            out[i] = _ranges(ranks) if ranks else "-"
    return out


def _ranges(ranks: list[int]) -> str:
    parts: list[str] = []
    start = prev = ranks[0]
    for k in [*ranks[1:], None]:
        if k is not None and k == prev + 1:
            prev = k
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if k is not None:
            start = prev = k
    return ", ".join(parts)


def notes(table: pd.DataFrame, p: Protocol) -> list[str]:
    """The sentences that must travel with the table."""
    out = []
    n = int(table["n"].min()) if len(table) else 0
    if p.name == "quick":
        out.append("SMOKE TEST (--quick): it checks that the board runs; it ranks nothing.")
    if n < MIN_N:
        out.append(
            f"n = {n} photos: no confidence intervals, p-values or groups (they need "
            f"at least {MIN_N} photos); the differences shown are single numbers."
        )
    else:
        c = CRITERIA[str(table["criterion"].iloc[0])]
        out.append(
            f"Ranked by the mean paired difference of {c.label} to {p.reference} "
            f"(model - {p.reference} per photo, n = {n}); 95% "
            f"{'Student-t' if table['ci_method'].iloc[0] == 't' else 'bootstrap'} CI. "
            f"Models sharing a letter are not told apart by paired t-tests "
            f"(Holm-corrected, family-wise alpha {ALPHA} per scale and codec)."
        )
    if p.up_steps:
        paths = ", ".join("x".join(map(str, s)) for s in p.up_steps)
        out.append(
            f"Upscale paths ({paths}): NAME [2x2] reaches x4 in two x2 stages after one x4 "
            f"downscale, ranked with the x4 models against one-step {p.reference}; only the "
            "baselines and the models whose native scale is the step are entered on a path."
        )
    if "ends_wandering" in table:
        out.append(
            "ends: how each entry's chains end (fixed point, cycle, converging, wandering; "
            "untyped: too few generations to tell), counted over its photos."
        )
    return out


def markdown(shown: pd.DataFrame, lb: Leaderboard) -> str:
    from ...report.tables import to_markdown

    p = lb.protocol
    head = (
        f"# Collapse leaderboard: protocol {p.name!r} (v{p.version}, hash {p.hash()[:12]})\n\n"
        f"{len(p.photos)} photos, {p.crop or 'native'} px, {p.generations} generations, "
        f"{', '.join(p.codecs)}; {len(p.models)} models plus {', '.join(p.baselines)}.\n\n"
        + "\n>\n".join(f"> {s}" for s in lb.notes)
        + "\n\n"
    )
    parts = [head]
    for (scale, codec), g in shown.groupby(["scale", "codec"], sort=False):
        parts.append(f"## {scale}, {codec}\n\n{to_markdown(g.drop(columns=['scale', 'codec']))}\n")
    return "\n".join(parts)


def write_figures(lb: Leaderboard) -> dict[str, Path]:
    """Forest plot, trade-off scatter and paired-difference curves (report/leaderboard.py),
    as PNG beside the tables (a PDF doubles the time: `roundtrip_ml.report.save_figure`)."""
    from ...report.leaderboard import curves_figure, forest_figure, tradeoff_figure
    from ...report.plots import save_figure

    p, out = lb.protocol, lb.output
    c = CRITERIA[str(lb.table["criterion"].iloc[0])]
    title = (
        f"{p.name} protocol: {len(p.photos)} photos, {p.crop or 'native'} px, "
        f"{p.generations} generations"
    )
    unit = f" ({c.unit})" if c.unit else ""
    figs = {
        "forest": forest_figure(
            lb.table,
            reference=p.reference,
            title=title,
            xlabel=f"{_SHORT[c.name]}: model - {p.reference}{unit}",
        )
    }
    cv = curves(lb.per_photo, p)
    figs["curves"] = curves_figure(cv, reference=p.reference, title=title)
    g1 = cv[cv["generation"] == 1].rename(columns={"paired_diff": "g1_diff"})
    psnr = lb.table if c.name == "psnr" else rank(lb.per_photo, p, "psnr")
    both = psnr.merge(
        g1[["upscaler", "scale", "codec", "g1_diff"]], on=["upscaler", "scale", "codec"]
    )
    figs["tradeoff"] = tradeoff_figure(
        both, reference=p.reference, generations=p.generations, title=title
    )
    return {k: save_figure(f, out, k, formats=("png",))[0] for k, f in figs.items()}


# ---- writing the tables and figures ----------------------------------------------------------


def write_tables(
    out: Path,
    p: Protocol,
    per_photo: pd.DataFrame,
    *,
    rank_by: str = "psnr",
    ci: str = "t",
    figures: bool = True,
) -> Leaderboard:
    """leaderboard.csv/.md and the figures, from the per-photo table alone."""
    from ...core.files import atomic_write_bytes

    table = rank(per_photo, p, rank_by, ci)
    atomic_write_bytes(out / FILES["table"], table.to_csv(index=False).encode())
    lb = Leaderboard(
        table, p, out, per_photo, {k: out / v for k, v in FILES.items()}, notes(table, p)
    )
    shown = display_table(table, p)
    atomic_write_bytes(out / FILES["markdown"], markdown(shown, lb).encode())
    table.attrs["display"] = shown
    if figures and len(table):
        lb.files.update(write_figures(lb))
    return lb
