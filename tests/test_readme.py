"""The README and docs/ tell the truth about the package: every extra they name exists in
pyproject.toml, and every `roundtrip` command they show is a command of the CLI."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import typer

from roundtrip_ml.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXTRA = re.compile(r"(?:roundtrip-ml|\.)\[([a-z0-9_,\- ]+)\]")
COMMAND = re.compile(r"(?<![\w./-])roundtrip((?: +[a-z][a-z0-9-]*)+)")
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
INLINE = re.compile(r"`([^`\n]+)`")


def _code(text: str) -> list[str]:
    """Code only: fenced blocks and inline spans (prose says "a roundtrip" as a noun)."""
    blocks = FENCE.findall(text)
    prose = FENCE.sub("", text)
    return [line for b in blocks for line in b.splitlines()] + INLINE.findall(prose)


def test_every_extra_named_exists():
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    named: dict[str, set[str]] = {}
    for page in PAGES:
        for group in EXTRA.findall(page.read_text()):
            for e in group.split(","):
                named.setdefault(e.strip(), set()).add(page.name)
    assert {"notebook", "test", "ray"} <= set(named)  # the README's own installs are found
    missing = {e: sorted(p) for e, p in named.items() if e not in extras}
    assert not missing, f"extras named but not in pyproject.toml: {missing}"


def test_every_roundtrip_command_shown_exists():
    cli = typer.main.get_command(app)
    shown: dict[tuple[str, ...], set[str]] = {}
    for page in PAGES:
        for line in _code(page.read_text()):
            for words in COMMAND.findall(line):
                shown.setdefault(tuple(words.split()[:2]), set()).add(page.name)
    assert ("run",) in {k[:1] for k in shown} and ("models", "list") in shown
    bad = []
    for words, pages in sorted(shown.items()):
        cmd = cli.commands.get(words[0])  # type: ignore[attr-defined]
        if cmd is None:
            bad.append(f"roundtrip {words[0]} ({', '.join(sorted(pages))})")
        elif len(words) > 1 and hasattr(cmd, "commands") and words[1] not in cmd.commands:
            bad.append(f"roundtrip {' '.join(words)} ({', '.join(sorted(pages))})")
    assert not bad, "commands shown but not in the CLI: " + "; ".join(bad)


def test_every_summary_column_is_defined_in_help_and_docs():
    from typer.testing import CliRunner

    from roundtrip_ml.analysis.columns import SUMMARY_DEFINITIONS, SUMMARY_HEADERS

    assert set(SUMMARY_HEADERS.values()) <= set(SUMMARY_DEFINITIONS)
    result = CliRunner().invoke(app, ["summarize", "--help"], env={"COLUMNS": "300"})
    guide = (ROOT / "docs" / "guide" / "notebook.md").read_text()
    for header in [*SUMMARY_DEFINITIONS, "psnr<20"]:
        assert f"{header}:" in result.output, header
        assert f"`{header}`" in guide, header
