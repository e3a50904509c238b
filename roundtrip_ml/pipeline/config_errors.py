"""A pydantic validation error as the one line a user reads: the key, the constraint in words,
and why a bound is there (the config's own messages, kept apart from its keys)."""

from __future__ import annotations

import difflib

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from ..core.errors import ConfigError
from .config_file import show_value

WHY = {
    "generations": "100000 generations already take weeks for one ML chain and write ~10^6 "
    "metric rows per chain",
    "frame_stride": "a stride above the generation limit (100000) never triggers",
    "metric_stride": "a stride above the generation limit (100000) never triggers",
    "checkpoint_stride": "a stride above the generation limit (100000) never triggers",
    "max_batch": "more chains than that per batch do not fit any device's memory",
    "replicas": "each replica is a whole chain; use a sweep for more",
    "max_pixels": "10^10 pixels is 120 GB as float32 on the device",
    "seed": "torch generators take seeds in [0, 2^63)",
    "tile": "a tile is at most 65536 px on a side",
    "tile_overlap": "an overlap is at most 4096 px",
    "max_side": "an image side is at most 10^6 px",
    "center_crop": "an image side is at most 10^6 px",
    "metric_crop": "an image side is at most 10^6 px",
}


_WORDS = {  # pydantic error type -> the constraint in words
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number (not nan or inf)",
    "string_type": "must be text (a quoted string)",
    "list_type": "must be a list (or a single value)",
    "tuple_type": "must be a list of numbers",
    "path_type": "must be a folder path (text)",
    "missing": "is required",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def format_error(e: ValidationError, source: str, fields: dict[str, FieldInfo]) -> ConfigError:
    """The first validation error as one line: the key, the constraint in words, the reason."""
    err = e.errors()[0]
    loc = [str(p) for p in err["loc"]]
    top = loc[0] if loc else "(top level)"
    key = top + "".join(f"[{p}]" for p in loc[1:])
    what = f"{source}: key {key!r}"
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(fields)
        close = difflib.get_close_matches(top, list(fields), n=1)
        fix = f"did you mean {close[0]!r}?" if close else f"use one of: {allowed}"
        return ConfigError(what, "is not a config key", fix)
    got = err.get("input")
    shown = "" if err["type"] == "missing" else f", got {show_value(got)}"
    ctx = err.get("ctx") or {}
    if err["type"] in _BOUNDS:
        bound = next(iter(ctx.values()))
        problem = f"must be {_BOUNDS[err['type']]} {bound}{shown}"
        why = WHY.get(top) if err["type"].startswith("less") else None
        return ConfigError(
            what, problem, f"lower it; the limit is there because {why}" if why else None
        )
    if top in _EXAMPLES and (
        (len(loc) > 1 and err["type"] == "missing") or err["type"] in ("too_short", "too_long")
    ):
        return ConfigError(
            f"{source}: key {top!r}",
            "has the wrong number of values",
            f"write it as {_EXAMPLES[top]}",
        )
    if err["type"] in ("too_short", "too_long"):
        want = ctx.get("min_length") if err["type"] == "too_short" else ctx.get("max_length")
        if err["type"] == "too_short" and want == 1:
            return ConfigError(what, "must not be empty")
        field = fields.get(top)
        return ConfigError(
            what, f"must have {want} values{shown}", str(field.annotation) if field else ""
        )
    if err["type"] == "value_error":
        return ConfigError(what, str(ctx.get("error", err["msg"])) + shown)
    words = _WORDS.get(err["type"])
    if words:
        return ConfigError(what, words + shown)
    return ConfigError(what, err["msg"][:1].lower() + err["msg"][1:] + shown)


_EXAMPLES = {
    "metric_crop": "metric_crop = [x, y, w, h]",
    "center_crop": "center_crop = [h, w]",
    "background": "background = [1.0, 1.0, 1.0]",
}
