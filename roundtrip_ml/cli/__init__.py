"""The `roundtrip` command: a thin Typer layer over the API.

Command groups that live in their own module (they import app.py's shared pieces, so app.py
cannot import them back) are registered here, before anyone gets hold of ``app``.
"""

from . import app as _app
from .leaderboard import leaderboard_app as _leaderboard_app

_app.app.add_typer(_leaderboard_app, name="leaderboard")
