"""The documentation builds and the public API keeps one docstring convention.

The site (user guide + API reference from the docstrings) is built with warnings as errors, so
a broken link, a missing page or a docstring naming a parameter that does not exist fails CI.
Every public name (``roundtrip_ml.__all__``) has a Google-style docstring: each parameter under
``Args:``, and ``Returns:`` (or ``Yields:``) unless it returns None.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "docs" / "config" / "mkdocs.yml"


def test_docs_build_with_warnings_as_errors(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs packages come with the test extra")
    pytest.importorskip(
        "mkdocstrings_handlers.python", reason="mkdocstrings[python] comes with the test extra"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(CONFIG),
            "-d",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    import roundtrip_ml

    missing = [n for n in roundtrip_ml.__all__[1:] if f'id="roundtrip_ml.{n}"' not in api]
    assert not missing, f"public names missing from the API reference: {missing}"


def test_public_names_have_google_style_docstrings() -> None:
    griffe = pytest.importorskip("griffe", reason="griffe comes with mkdocstrings[python]")
    import roundtrip_ml

    pkg = griffe.load(
        "roundtrip_ml",
        search_paths=[str(ROOT)],
        resolve_aliases=True,
        resolve_external=False,
        docstring_parser="google",
    )
    problems = []
    for name in roundtrip_ml.__all__[1:]:
        obj = pkg[name]
        obj = obj.final_target if obj.is_alias else obj
        if obj.docstring is None or not obj.docstring.value.strip():
            problems.append(f"{name}: no docstring")
            continue
        if not obj.is_function:
            continue
        sections = {s.kind.value: s for s in obj.docstring.parsed}
        documented = (
            {p.name.lstrip("*") for p in sections["parameters"].value}
            if "parameters" in sections
            else set()
        )
        params = {p.name for p in obj.parameters if p.name not in ("self", "cls")}
        if params - documented:
            problems.append(f"{name}: Args misses {sorted(params - documented)}")
        returns = obj.returns
        if str(returns) != "None" and not {"returns", "yields"} & set(sections):
            problems.append(f"{name}: no Returns section")
    assert not problems, "\n".join(problems)
