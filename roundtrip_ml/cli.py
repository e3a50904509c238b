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
