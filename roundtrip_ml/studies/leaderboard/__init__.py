"""The collapse leaderboard: one written protocol over many upscalers, compared in pairs.

"Which upscaler survives repetition best?" has an answer only when every model runs the same
chains on the same photos, and a ranking means something only when it says which differences
the data supports. So: a strict protocol (protocol.py), boards that run, extend and merge
without recomputing what is measured (board.py), a ranked table computed from the per-photo
table alone with paired statistics (table.py, analysis/paired.py), and what a reader sees
(view.py: the display table, its notes, the figures).
"""

from .board import (
    Leaderboard,
    add_model,
    merge_boards,
    model_ref,
    read_board,
    run_board,
    select_models,
    table_board,
)
from .layout import Entry
from .protocol import (
    CPU,
    PRESETS,
    QUICK,
    QUICK_MODELS,
    SEED,
    ModelRef,
    Photo,
    Protocol,
    load_protocol,
)
from .table import CRITERIA, ENDS, chain_values, rank

__all__ = [
    "CPU",
    "CRITERIA",
    "ENDS",
    "PRESETS",
    "QUICK",
    "QUICK_MODELS",
    "SEED",
    "Entry",
    "Leaderboard",
    "ModelRef",
    "Photo",
    "Protocol",
    "add_model",
    "chain_values",
    "load_protocol",
    "merge_boards",
    "model_ref",
    "rank",
    "read_board",
    "run_board",
    "select_models",
    "table_board",
]
