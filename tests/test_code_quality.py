"""The code keeps its shape: imports run one way through the layers, core modules stay small,
and ruff and mypy are clean (run here so CI runs them with the README's test command)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "roundtrip_ml"

# Lower layers never import higher ones (function-level imports included: a lazy import may
# keep `--help` fast, it may not hide a dependency that runs the wrong way).
LAYERS: list[set[str]] = [
    {"errors", "specs", "kernels"},
    {"files", "images", "resample", "codecs", "schedule", "perturb", "info", "determinism", "chart",
     "weights"},
    {"upscalers", "metrics"},
    {"config", "functional"},
    {"plan", "step", "measure", "manifest", "store"},
    {"engine", "experiment"},
    {"analysis"},
    {"report"},
    {"sweep", "leaderboard", "demo"},
    {"api", "figures"},
    {"cli", "progress", "__main__"},
]
CORE_MAX_LINES = 400  # the engine and its neighbours: a newcomer reads one file at a time
CORE = ["plan", "step", "measure", "manifest", "engine", "experiment", "config", "store", "api"]


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"roundtrip_ml.{module} is in no layer: add it to LAYERS")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported roundtrip_ml module relative to the package) for every import."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            elif node.module and node.module.startswith("roundtrip_ml."):
                mod = node.module.removeprefix("roundtrip_ml.")
            else:
                continue
            if not mod:  # `from . import x`
                mod = node.names[0].name
            out.append((node.lineno, mod))
    return out


def test_imports_run_one_way() -> None:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        if me == "__init__":
            continue  # the top level re-exports the API lazily
        mine = _layer(me)
        for line, mod in _imports(path):
            if _layer(mod) > mine:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {mod}")
    assert not bad, "imports that run up the layers:\n" + "\n".join(bad)


def test_core_modules_stay_small() -> None:
    sizes = {m: len((PACKAGE / f"{m}.py").read_text().splitlines()) for m in CORE}
    big = {m: n for m, n in sizes.items() if n > CORE_MAX_LINES}
    assert not big, f"core modules over {CORE_MAX_LINES} lines: {big}"


def _tool(name: str) -> str:
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (it comes with the test extra)")
    return exe


def test_ruff_is_clean() -> None:
    root = PACKAGE.parent
    out = subprocess.run([_tool("ruff"), "check", "--output-format", "concise", "roundtrip_ml",
                          "tests", "scripts"], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_mypy_is_clean() -> None:
    root = PACKAGE.parent
    out = subprocess.run([_tool("mypy"), "roundtrip_ml"], cwd=root, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout[-3000:]
