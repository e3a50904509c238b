"""Reading a config file, untrusted: TOML or YAML text in, a plain dict out, every error one
line naming the file. Kept apart from config.py (the keys and their checks) and torch-free."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import ConfigError

__all__ = ["MAX_CONFIG_VALUES", "read_mapping", "show_value"]

MAX_CONFIG_VALUES = 1_000_000  # YAML aliases can make a few-line file expand to billions


def read_mapping(p: Path) -> dict[str, Any]:
    """A TOML or YAML file as a dict; every error is one line naming the file (and the line
    and column when the parser knows them)."""
    if not p.is_file():
        raise ConfigError(
            str(p), "config file not found" if not p.exists() else "is not a file", "check the path"
        )
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(str(p), "unknown config format", "use a .toml or .yaml file")
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(str(p), f"cannot read ({e.strerror or e})", "check the file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            str(p), f"is not UTF-8 text (byte {e.start})", "save it as UTF-8 text"
        ) from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(p), f"cannot parse TOML ({e})", "fix the syntax") from None
    except yaml.YAMLError as e:
        raise ConfigError(
            str(p), f"cannot parse YAML ({_yaml_error(e)})", "fix the syntax"
        ) from None
    except RecursionError:
        raise ConfigError(str(p), "cannot parse (nested too deeply)", "fix the syntax") from None
    if data is None:  # an empty YAML file
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(p), "top level must be a table/mapping", "see the README example")
    if _count_values(data, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ConfigError(
            str(p),
            f"expands to more than {MAX_CONFIG_VALUES} values (YAML aliases?)",
            "write the lists out; a config holds a few hundred values",
        )
    return data


def _yaml_error(e: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one clause: where (1-based) and what."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context = getattr(e, "context", None)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    return where + str(problem) + (f", {context}" if context else "")


def _count_values(data: Any, limit: int) -> int:
    """How many values ``data`` holds with shared references counted each time, stopping
    past ``limit`` (what validation would walk)."""
    n, stack = 0, [data]
    while stack and n <= limit:
        x = stack.pop()
        n += 1
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return n


def show_value(v: Any, limit: int = 60) -> str:
    """A refused value as short JSON-like text, built within ``limit`` characters (a YAML alias
    bomb is never expanded to be printed)."""
    out: list[str] = []
    size = 0

    def put(text: str) -> bool:
        nonlocal size
        out.append(text)
        size += len(text)
        return size <= limit

    def walk(x: Any) -> bool:
        if isinstance(x, dict):
            x = list(x.items())
            opening, closing = "{", "}"
        elif isinstance(x, list | tuple):
            opening, closing = "[", "]"
        elif isinstance(x, str | int | float | bool) or x is None:
            return put(json.dumps(x)[: limit + 1])
        else:
            return put(str(x)[: limit + 1])
        if not put(opening):
            return False
        for i, item in enumerate(x):
            if (i and not put(", ")) or not (
                walk(item[0]) and put(": ") and walk(item[1]) if opening == "{" else walk(item)
            ):
                return False
        return put(closing)

    walk(v)
    return "".join(out)[:limit]
