"""`roundtrip leaderboard run|add|merge|table`: boards of upscalers compared in pairs.

Thin: parse, call studies/leaderboard, print. `roundtrip leaderboard --quick -o DIR` (the
old form, with no subcommand) is kept as an alias of `roundtrip leaderboard run`.
"""

from __future__ import annotations

import enum
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from ..core.errors import ConfigError
from .app import Executor, Flag, _Command, _Group, _list, console, out

leaderboard_app = typer.Typer(
    help="Rank upscalers by collapse under one written protocol, in pairs with Lanczos-3: "
    "run, add a model, merge boards, re-rank.",
    cls=_Group,
    invoke_without_command=True,
)


class RankBy(enum.StrEnum):
    """The ranking criteria (studies/leaderboard/table.py CRITERIA; a test keeps them equal)."""

    psnr = "psnr"
    ssim = "ssim"
    ssimulacra2 = "ssimulacra2"
    colour = "colour"
    divergence = "divergence"
    lyapunov = "lyapunov"
    collapse = "collapse"


class CI(enum.StrEnum):
    t = "t"
    bootstrap = "bootstrap"


OutOpt = Annotated[
    Path,
    typer.Option(
        "--output",
        "-o",
        metavar="DIR",
        help="Board directory (resumable: rerun the same command after a crash; one protocol per directory).",
    ),
]
RankOpt = Annotated[
    RankBy,
    typer.Option(
        "--rank-by",
        help="Ranking criterion; the others are shown. (default: psnr at the last generation)",
    ),
]
CIOpt = Annotated[
    CI,
    typer.Option(
        "--ci", help="Interval of the mean paired difference: Student-t or percentile bootstrap."
    ),
]
ExecOpt = Annotated[
    Executor, typer.Option("--executor", "-e", help="Where each model's units run.")
]
DeviceOpt = Annotated[
    str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", **Flag, help="No progress display.")]
ModelsOpt = Annotated[
    str | None,
    typer.Option(
        "--models",
        metavar="NAMES",
        help="Comma list of registry names, glob patterns, weights files or ncnn .param files. (default: the protocol's models, else every offline model; the baselines always run)",
    ),
]
ProtocolOpt = Annotated[
    str | None,
    typer.Option(
        "--protocol",
        metavar="FILE|NAME",
        help="A board's protocol.json (reruns exactly its photos, models, sizes and seed) or a preset: quick, cpu, seed.",
    ),
]
QuickOpt = Annotated[
    bool,
    typer.Option(
        "--quick",
        **Flag,
        help="The quick preset: a smoke test (2 photos, 96 px, 3 generations, 5 fast models); ranks nothing.",
    ),
]


def _progress(quiet: bool) -> Any:
    from ..progress import sweep_progress

    return sweep_progress(not quiet, console=console)


def _announce(quiet: bool) -> Any:
    return None if quiet else lambda line: console.print(line, highlight=False)


def _show(lb: Any) -> None:
    from ..report.tables import to_markdown

    for note in lb.notes:
        out.print(f"note: {note}", highlight=False, soft_wrap=True)
    shown = lb.table.attrs.get("display")
    if shown is not None and len(shown):
        out.print(to_markdown(shown), highlight=False, soft_wrap=True)
    for kind, path in lb.files.items():
        out.print(f"{kind}: {path}", highlight=False, soft_wrap=True)


def _run(
    output: Path,
    *,
    images: list[str] | None = None,
    models: str | None = None,
    crop: int | None = None,
    generations: int | None = None,
    codecs: list[str] | None = None,
    seed: int | None = None,
    stabilizer: str | None = None,
    backend: str | None = None,
    up_steps: list[str] | None = None,
    protocol: str | None = None,
    quick: bool = False,
    rank_by: str = "psnr",
    ci: str = "t",
    executor: str = "local",
    device: str = "auto",
    quiet: bool = False,
) -> None:
    from ..studies.leaderboard import (
        CPU,
        QUICK,
        QUICK_MODELS,
        load_protocol,
        run_board,
        select_models,
    )
    from ..studies.leaderboard.board import expand_photos, read_board
    from ..studies.leaderboard.protocol import Photo, parse_path

    if protocol and quick:
        raise ConfigError("--quick", "and --protocol both name a protocol", "give one of them")
    existing = None if protocol or quick else read_board(output.expanduser(), committed_only=False)
    p = (
        load_protocol(protocol)
        if protocol
        else QUICK
        if quick
        else existing[0]
        if existing
        else CPU
    )
    changes: dict[str, Any] = {}
    if images:
        changes["photos"] = tuple(Photo(s, "") for s in expand_photos(images))
        sets = {ph.set_name for ph in changes["photos"]}
        changes["photo_set"] = sets.pop() if len(sets) == 1 else None  # drawn from one set
        changes["name"] = "custom"
    for key, value in (
        ("crop", crop),
        ("generations", generations),
        ("seed", seed),
        ("stabilizer", stabilizer),
        ("backend", backend),
    ):
        if value is not None:
            changes[key], changes["name"] = value, "custom"
    if codecs:
        changes["codecs"], changes["name"] = tuple(codecs), "custom"
    if changes:
        p = replace(p, **changes)
    if up_steps:  # entries, like --models: the protocol's name and hash stay
        p = p.with_paths([*p.up_steps, *(parse_path(s, p.crop) for s in up_steps)])
    from ..studies.leaderboard.protocol import check

    check(p, "flags")
    if models:
        chosen = select_models(models, p.x1_scale)
    elif p.models or existing:
        chosen = list(p.models)
    else:
        chosen = select_models(",".join(QUICK_MODELS) if p.name == "quick" else None, p.x1_scale)
    lb = run_board(
        output.expanduser(),
        p,
        chosen,
        rank_by=rank_by,
        ci=ci,
        executor=executor,
        device=device,
        progress=_progress(quiet),
        announce=_announce(quiet),
    )
    _show(lb)


@leaderboard_app.callback()
def leaderboard_main(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="DIR",
            help="Alias of `leaderboard run -o DIR` (the form before subcommands).",
        ),
    ] = None,
    models: ModelsOpt = None,
    quick: QuickOpt = False,
    protocol: ProtocolOpt = None,
    executor: ExecOpt = "local",
    device: DeviceOpt = "auto",
) -> None:
    """Rank upscalers by collapse, paired with Lanczos-3 photo by photo."""
    if ctx.invoked_subcommand is not None:
        return
    if output is None:
        console.print(ctx.get_help(), highlight=False)
        raise typer.Exit(0)
    _run(
        output, models=models, quick=quick, protocol=protocol, executor=str(executor), device=device
    )


@leaderboard_app.command("run")
def run_cmd(
    output: OutOpt,
    images: Annotated[
        list[str] | None,
        typer.Option(
            "--images",
            metavar="PATH",
            help="Your photos: files, folders, globs, skimage:NAME or set:NAME[/PHOTO] (repeat). Their SHA-256 go into the protocol. (default: the protocol's)",
        ),
    ] = None,
    models: ModelsOpt = None,
    crop: Annotated[
        int | None,
        typer.Option("--crop", metavar="N", help="Square centre crop in px, a multiple of 12."),
    ] = None,
    generations: Annotated[
        int | None, typer.Option("--generations", "-g", metavar="N", help="Roundtrips per chain.")
    ] = None,
    codec: Annotated[
        list[str] | None,
        typer.Option(
            "--codec",
            "-c",
            metavar="C",
            help="Handoff codec(s), e.g. png, jpeg:90 (repeat or comma list).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", metavar="N", help="Seed of every random draw.")
    ] = None,
    stabilizer: Annotated[
        str | None,
        typer.Option(
            "--stabilizer",
            metavar="NAME",
            help="Run every chain with this stabiliser: colour, histogram, wavelet, "
            "backproject:N (the board compares models with it). (default: none)",
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            metavar="NAME",
            help="auto (the ncnn runtime on a CPU where it applies), torch or ncnn. "
            "(default: the protocol's)",
        ),
    ] = None,
    up_steps: Annotated[
        list[str] | None,
        typer.Option(
            "--up-steps",
            metavar="STEPS",
            help="Also enter an upscale path (repeat): 2,2 runs the x2 models and the "
            "baselines as two x2 stages after one x4 downscale, ranked with the x4 models "
            "(as 'NAME [2x2]'). Models of another native scale are not entered on it.",
        ),
    ] = None,
    protocol: ProtocolOpt = None,
    quick: QuickOpt = False,
    rank_by: RankOpt = RankBy.psnr,
    ci: CIOpt = CI.t,
    executor: ExecOpt = "local",
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Run (or resume, or extend) a board: the models plus the baselines on every photo."""
    _run(
        output,
        images=images,
        models=models,
        crop=crop,
        generations=generations,
        codecs=_list(codec),
        seed=seed,
        stabilizer=stabilizer,
        backend=backend,
        up_steps=up_steps,
        protocol=protocol,
        quick=quick,
        rank_by=str(rank_by),
        ci=str(ci),
        executor=str(executor),
        device=device,
        quiet=quiet,
    )


@leaderboard_app.command("add")
def add_cmd(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="Registry name, spandrel weights file, or ncnn .param (with its .bin beside it).",
        ),
    ],
    output: OutOpt,
    rank_by: RankOpt = RankBy.psnr,
    ci: CIOpt = CI.t,
    executor: ExecOpt = "local",
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Measure one more model under the board's own protocol; nothing else is recomputed."""
    from ..studies.leaderboard import add_model

    _show(
        add_model(
            output.expanduser(),
            model,
            rank_by=str(rank_by),
            ci=str(ci),
            executor=str(executor),
            device=device,
            progress=_progress(quiet),
            announce=_announce(quiet),
        )
    )


@leaderboard_app.command("merge")
def merge_cmd(
    boards: Annotated[
        list[Path],
        typer.Argument(metavar="DIR...", help="Boards run under one protocol (same hash)."),
    ],
    output: OutOpt,
    rank_by: RankOpt = RankBy.psnr,
    ci: CIOpt = CI.t,
) -> None:
    """Combine boards run elsewhere under the same protocol into one; nothing is rerun."""
    from ..studies.leaderboard import merge_boards

    _show(
        merge_boards(
            [b.expanduser() for b in boards], output.expanduser(), rank_by=str(rank_by), ci=str(ci)
        )
    )


@leaderboard_app.command("table")
def table_cmd(
    board: Annotated[Path, typer.Argument(metavar="DIR", help="A board directory.")],
    rank_by: RankOpt = RankBy.psnr,
    ci: CIOpt = CI.t,
) -> None:
    """Re-rank a board from its per-photo table (another criterion or CI); runs nothing. Rows
    a board from an older roundtrip-ml lacks (how chains end) are read back from its runs/."""
    from ..studies.leaderboard import table_board

    _show(table_board(board, rank_by=str(rank_by), ci=str(ci)))


for _info in leaderboard_app.registered_commands:  # no <bool> after --help
    _info.cls = _Command
