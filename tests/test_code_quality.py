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

# The layers, lowest first: a package never imports one above it (function-level imports
# included: a lazy import may keep `--help` fast, it may not hide a dependency that runs the wrong
# way). This list is the one place the layers are written; the README points here.
LAYERS: list[set[str]] = [
    {"core"},  # errors, typed specs, files, weights, machine info
    {"imaging"},  # images, kernels, resampling, codecs, schedules, perturbations
    {"upscalers", "metrics"},  # what a generation runs and what it measures
    {"pipeline"},  # config -> plan -> engine -> measure -> store
    {"analysis"},  # statistics over a run's tables
    {"report"},  # figures, sheets, tables, video: read a run directory
    {"sweep", "studies"},  # many runs: grids, executors, the leaderboard, the demo
    {"api", "figures", "progress"},  # the public API (the package's top level)
    {"cli"},  # the `roundtrip` command
]
CORE_MAX_LINES = 400  # the engine and its neighbours: a newcomer reads one file at a time
CORE = [
    f"pipeline/{m}"
    for m in ("plan", "step", "measure", "manifest", "engine", "experiment", "config", "store")
] + ["api"]


def _layer(module: str) -> int:
    top = module.split(".")[0] or "api"  # `import roundtrip_ml` is the public API
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"roundtrip_ml.{module} is in no layer: add its package to LAYERS")


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported roundtrip_ml module relative to the package) for every import, relative,
    `from roundtrip_ml...` and plain `import roundtrip_ml...` alike."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [
                (node.lineno, a.name.removeprefix("roundtrip_ml").lstrip("."))
                for a in node.names
                if a.name.split(".")[0] == "roundtrip_ml"
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            elif node.module and node.module.split(".")[0] == "roundtrip_ml":
                mod = node.module.removeprefix("roundtrip_ml").lstrip(".")
            else:
                continue
            # each name may be a module (`from . import zoo`): the cycle check resolves it
            out += [(node.lineno, f"{mod}.{a.name}".lstrip(".")) for a in node.names]
    return out


def test_imports_run_one_way() -> None:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue  # the top level re-exports the API lazily
        mine = _layer(_module(path))
        for line, mod in _imports(path):
            if _layer(mod) > mine:
                where = f"{path.relative_to(PACKAGE.parent)}:{line}"
                bad.append(f"{where} imports {mod or 'roundtrip_ml'}")
    assert not bad, "imports that run up the layers:\n" + "\n".join(bad)


def test_no_module_import_cycles() -> None:
    """Inside a layer too, modules import one way: no cycle of any length."""
    mods = {_module(p): p for p in PACKAGE.rglob("*.py")}

    def resolve(mod: str) -> str | None:  # `from .pkg import name` may name a module
        while mod and mod not in mods:
            mod = mod.rpartition(".")[0]
        return mod or None

    graph = {
        m: {r for _, i in _imports(p) if (r := resolve(i)) and r != m} for m, p in mods.items() if m
    }
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, stack: list[str]) -> bool:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycle.extend([*stack[stack.index(n) :], n] if n in stack else [m, n])
                return True
            if n not in state and visit(n, [*stack, n]):
                return True
        state[m] = 2
        return False

    for m in sorted(graph):
        if m not in state and visit(m, [m]):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)


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
    out = subprocess.run(
        [_tool("ruff"), "check", "--output-format", "concise", "roundtrip_ml", "tests", "scripts"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-3000:]


def test_ruff_format_is_applied() -> None:
    """One format, checked rather than hand-kept: run `ruff format roundtrip_ml tests scripts`
    when this fails."""
    root = PACKAGE.parent
    out = subprocess.run(
        [_tool("ruff"), "format", "--check", "roundtrip_ml", "tests", "scripts"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-3000:]


def test_mypy_is_clean() -> None:
    root = PACKAGE.parent
    out = subprocess.run([_tool("mypy"), "roundtrip_ml"], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_no_folder_shadows_a_public_name() -> None:
    """Importing a subpackage sets it as an attribute of roundtrip_ml: a folder named like a
    public name (say run/ beside rt.run) would replace the function with the module."""
    import roundtrip_ml

    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    folders |= {p.stem for p in PACKAGE.glob("*.py")}
    assert not folders & set(roundtrip_ml.__all__), folders & set(roundtrip_ml.__all__)
