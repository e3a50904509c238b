"""Tables from real runs: the CSV parses back to the stored numbers, the Markdown is a table,
the LaTeX is syntactically sound booktabs, and the collapse statistics count real events."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from roundtrip_ml.report.data import load_runs
from roundtrip_ml.report.tables import latex_escape, write_tables


def check_latex(text: str) -> list[str]:
    """What would stop a booktabs table from compiling: unbalanced braces or environments,
    missing or repeated rules, rows whose cell count differs from the column spec."""
    problems, depth, prev = [], 0, ""
    for ch in text:
        if prev != "\\":
            depth += {"{": 1, "}": -1}.get(ch, 0)
            if depth < 0:
                problems.append("unbalanced }")
                break
        prev = ch if prev != "\\" else ""
    if depth > 0:
        problems.append("unclosed {")
    if text.count("$") % 2 - text.count(r"\$") % 2:
        problems.append("unbalanced $")
    for env in ("table", "tabular"):
        if text.count(rf"\begin{{{env}}}") != 1 or text.count(rf"\end{{{env}}}") != 1:
            problems.append(f"{env} environment not opened and closed once")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        if text.count(rule) != 1:
            problems.append(f"{rule} x{text.count(rule)}")
    if not text.index(r"\toprule") < text.index(r"\midrule") < text.index(r"\bottomrule"):
        problems.append("rules out of order")
    spec = text.split(r"\begin{tabular}{", 1)[1].split("}", 1)[0]
    body = text.split(r"\toprule", 1)[1].split(r"\bottomrule", 1)[0]
    for line in body.splitlines():
        if line.endswith(r"\\") and r"\multicolumn" not in line:
            cells = line.replace(r"\&", "").count("&") + 1
            if cells != len(spec):
                problems.append(f"{cells} cells for {len(spec)} columns: {line[:50]}")
    return problems


def test_csv_parses_back_to_the_stored_numbers(study, tmp_path):
    t = write_tables(study, tmp_path, at=[1, 5, 50])
    assert t.at == [1, 5, 10] and t.skipped == []  # 50 > last: the last generation instead
    back = pd.read_csv(t.paths["metrics.csv"])
    stored = load_runs(study).metrics
    stored = stored[(stored["reference"] == "original") & (stored["replica"] == 0)]
    want = stored.groupby(["upscaler", "codec", "metric", "generation"])["value"].agg(
        ["mean", "min", "max", "count"]
    )
    assert len(back) == 4 * 7 * 3  # recipes x metrics (psnr, ssim, 5 colour) x generations
    for row in back.itertuples():
        w = want.loc[(row.upscaler, row.codec, row.metric, row.generation)]
        assert row.mean == w["mean"]  # exact: the CSV keeps full precision
        assert row.n_images == w["count"] == 2
        assert w["min"] <= row.ci_low <= row.mean <= row.ci_high <= w["max"]
    assert {"psnr", "ssim", "de2000_mean"} <= set(back["metric"])  # the CSV holds every one
    assert (back["reference"] == "original").all()


def test_markdown_and_latex_are_well_formed(study, tmp_path):
    t = write_tables(study, tmp_path, at=[1, 10])
    md = t.paths["metrics.md"].read_text().strip().splitlines()
    assert md[0].startswith("| recipe | metric | n | gen 1 | gen 10 |")
    assert len({line.count(" | ") for line in md if not line.startswith("|---")}) == 1
    assert len(md) == 2 + 4 * 3  # the three headline metrics; the CSV has all seven
    assert "| PSNR (dB) ↑ | 2 |" in "".join(md) and "[" not in "".join(md)  # n=2: no CI
    assert "lanczos3 · png" in "".join(md)
    for name in ("metrics.tex", "collapse.tex"):
        tex = t.paths[name].read_text()
        assert check_latex(tex) == [], (name, tex)
    tex = t.paths["metrics.tex"].read_text()
    assert r"\multicolumn{2}{c}{generation}" in tex and r"lanczos3 $\cdot$ png" in tex
    assert (
        check_latex(
            r"\begin{table}\begin{tabular}{ll}\toprule a & b \\ \midrule"
            r" 1 & {2 \\ \bottomrule\end{tabular}\end{table}"
        )
        != []
    )
    assert latex_escape("psnr_y<20 & 5% #1 inf") == r"psnr\_y$<$20 \& 5\% \#1 $\infty$"


def test_collapse_statistics_count_threshold_crossings_and_fixed_points(study, fixed, tmp_path):
    t = write_tables(study, tmp_path)
    c = pd.read_csv(io.StringIO(t.paths["collapse.csv"].read_text()))
    assert len(c) == 4 and (c["chains"] == 2).all() and (c["generations"] == 10).all()
    # lpips was not measured, so its threshold is left out rather than reported as "never"
    assert "first_lpips>0.4_crossed" not in c and "first_psnr<20_crossed" in c
    stored = load_runs(study).metrics.query("metric == 'psnr' and reference == 'original'")
    crossed = stored[stored["value"] < 20].groupby(["upscaler", "codec"])["chain_id"].nunique()
    got = c.set_index(["upscaler", "codec"])["first_psnr<20_crossed"]
    pd.testing.assert_series_equal(
        got.sort_index(),
        crossed.reindex(got.index, fill_value=0).sort_index(),
        check_names=False,
        check_dtype=False,
    )
    f = write_tables(fixed, tmp_path / "fixed").collapse
    assert f["fixed_points"].tolist() == [1] and f["event_generation_median"].tolist() == [2.0]
    assert "fixed point" not in t.paths["collapse.md"].read_text()  # lanczos: no fixed point
    md = (tmp_path / "fixed" / "collapse.md").read_text()
    assert "fixed point 1/1, from gen 2 (median)" in md
    assert np.isfinite(c["final_psnr_mean"]).all()


def test_tables_fit_a_page_and_accept_group_names(study, tmp_path):
    """At most DISPLAY_GENERATIONS generation columns; the collapse table has a handful of
    columns (full statistics in the CSV); `colour` names the five values it stores."""
    from roundtrip_ml.report.tables import DISPLAY_GENERATIONS

    t = write_tables(study, tmp_path, at=list(range(1, 11)), metrics=["colour"])
    md = t.paths["metrics.md"].read_text().splitlines()
    assert md[0].count("gen ") == DISPLAY_GENERATIONS and "gen 10" in md[0]
    assert len(md) == 2 + 4 * 5 and "ΔE00 mean" in "".join(md)
    collapse_cols = t.paths["collapse.md"].read_text().splitlines()[0].count(" | ") + 1
    assert collapse_cols <= 8 < len(pd.read_csv(t.paths["collapse.csv"]).columns)
    tex = t.paths["collapse.tex"].read_text()
    assert check_latex(tex) == [] and "lpips" not in tex  # not measured: not in the table
