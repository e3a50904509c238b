"""The `roundtrip` command. Thin: parse, call the API, print. No experiment logic here."""

from __future__ import annotations

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
console = Console(stderr=True)
out = Console()

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
        "metrics": metrics.split(",") if metrics else None, "device": device, "seed": seed,
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
    if quiet:
        return
    ok = result.chains - len(result.failed)
    console.print(f"[bold green]done[/] {ok}/{result.chains} chains in {result.wall_s:.1f} s -> "
                  f"[bold]{result.run_dir}[/]")
    for what, err in {**result.image_errors, **result.failed}.items():
        console.print(f"[red]failed[/] {what}: {err}", highlight=False)


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("runs/demo"),
    device: Annotated[str, typer.Option("--device")] = "auto",
    full: Annotated[bool | None, typer.Option("--full/--small", help="Full-size study (default on GPU).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run the built-in study: real photos and real Real-ESRGAN weights, no download."""
    from .demo import demo_config, torch_threads_for_demo
    from .loop import run_experiment

    torch_threads_for_demo()
    cfg = demo_config(output, device, full)
    console.print(f"demo: {len(cfg.images)} photos x {', '.join(cfg.upscalers)} x "
                  f"{', '.join(cfg.codecs)}, {cfg.generations} generations on {cfg.device}")
    result = run_experiment(cfg, overwrite=True, progress=_run_progress(quiet, False))
    _print_result(result, False)
    out.print(f"results: {result.run_dir}  (metrics.parquet, frames/, manifest.json)")


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


# ---- models: the weights registry and cache (roundtrip_ml.upscalers.zoo) ----------------------

models_app = typer.Typer(help="Known ML models: list, inspect, fetch, verify.", no_args_is_help=True)
app.add_typer(models_app, name="models")
CacheOpt = Annotated[Path | None, typer.Option(
    "--cache-dir", help="Weights cache (default: $ROUNDTRIP_CACHE_DIR or the user cache dir).")]
OfflineOpt = Annotated[bool | None, typer.Option(
    "--offline/--online", help="Never download (default: $ROUNDTRIP_OFFLINE=1).")]


@models_app.command("list")
def models_list(cache_dir: CacheOpt = None) -> None:
    """Registry entries, whether the official weights are cached, and offline sources found."""
    from rich.table import Table

    from .upscalers import zoo

    t = Table("arch", "scale", "license", "cached", "offline source (ncnn)")
    t.add_column("name", no_wrap=True)
    t.columns.insert(0, t.columns.pop())
    for e in zoo.load_registry().values():
        found = zoo.find_offline(e, check_hash=False)
        t.add_row(e.name, e.arch, f"x{e.scale}", e.license,
                  "yes" if zoo.cached_path(e, cache_dir).is_file() else "-",
                  found.source.package if found else "-")
    out.print(t)


@models_app.command("info")
def models_info(name: str, cache_dir: CacheOpt = None) -> None:
    """Everything the registry knows about NAME, and where its weights are on this machine."""
    from .upscalers import zoo

    e = zoo.get_entry(name)
    w, found = e.weights, zoo.find_offline(e, check_hash=False)
    rows = {"name": e.name, "title": e.title, "aliases": ", ".join(e.aliases) or "-",
            "arch": f"{e.arch} x{e.scale}", "license": e.license, "page": e.page,
            "url": "\n".join(w.urls), "bytes": str(w.bytes), "sha256": w.sha256,
            "cache path": str(zoo.cached_path(e, cache_dir)),
            "cached": "yes" if zoo.cached_path(e, cache_dir).is_file() else "no",
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
