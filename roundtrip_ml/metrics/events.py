"""Convergence events from the per-generation fingerprints (64-bit hash of a chain's uint8 state).

A chain's step is deterministic, so the first time a state repeats, the chain loops for ever:
period 1 is a fixed point (bit-identical to the previous generation), period p >= 2 a cycle.
Events assume fingerprints for every generation (the engine writes them all); with gaps, the
reported period is a multiple of the true one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

EVENT_COLUMNS = ["chain_id", "event", "event_generation", "period", "cycle_start"]


@dataclass(frozen=True)
class Event:
    """``generation``: first generation whose state equals an earlier one; the loop is
    generations ``start .. generation - 1`` and repeats with ``period = generation - start``."""

    kind: str  # "fixed_point" | "cycle"
    generation: int
    period: int

    @property
    def start(self) -> int:
        return self.generation - self.period


def first_repeat(states: Iterable[tuple[int, int]]) -> Event | None:
    """The first repeated state in ``(generation, fingerprint)`` pairs (any order), or None."""
    seen: dict[int, int] = {}
    for gen, fp in sorted(states):
        if fp in seen:
            period = gen - seen[fp]
            return Event("fixed_point" if period == 1 else "cycle", gen, period)
        seen[fp] = gen
    return None


def detect_events(fingerprints: pd.DataFrame) -> pd.DataFrame:
    """One row (EVENT_COLUMNS) per chain that converged or cycled; the others are absent."""
    rows = []
    for chain_id, g in fingerprints.groupby("chain_id", sort=True):
        ev = first_repeat(zip(g["generation"].tolist(), g["fingerprint"].tolist(), strict=True))
        if ev is not None:
            rows.append((chain_id, ev.kind, ev.generation, ev.period, ev.start))
    return pd.DataFrame(rows, columns=EVENT_COLUMNS).astype(
        {"event_generation": "int64", "period": "int64", "cycle_start": "int64"}
    )
