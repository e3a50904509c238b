"""Convergence events from the per-generation fingerprints (64-bit hash of a chain's uint8 state).

A chain's step is deterministic, so the first time a state repeats, the chain loops for ever:
period 1 is a fixed point (bit-identical to the previous generation), period p >= 2 a cycle.
Events assume fingerprints for every generation (the engine writes them all); with gaps, the
reported period is a multiple of the true one.

Re-compression chains with a codec schedule have a step that depends on the generation: with
a schedule of period P (``CodecSchedule.period``: ``jpeg:[90,85,95]`` has P = 3) a repeat is
conclusive only between generations a and b with b - a a multiple of P; the reported period is
then the shortest one of the images themselves (1: a fixed point of every codec in the
schedule). A seeded random schedule (P = None) never proves a loop, so it gets no events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from ..imaging.schedule import step_period

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


def first_repeat(states: Iterable[tuple[int, int]], step_period: int | None = 1) -> Event | None:
    """The first conclusive repeat in ``(generation, fingerprint)`` pairs (any order), or None.

    ``step_period``: the period of the generation step (1 for a fixed recipe, a schedule's
    period, None when the step never repeats)."""
    if step_period is None:
        return None
    ordered = sorted(states)
    seen: dict[int, list[int]] = {}
    for i, (gen, fp) in enumerate(ordered):
        earlier = [j for j in seen.get(fp, []) if (gen - ordered[j][0]) % step_period == 0]
        if earlier:
            j = earlier[0]
            loop = [f for _, f in ordered[j:i]]
            period = next(
                p
                for p in range(1, len(loop) + 1)
                if len(loop) % p == 0 and loop == loop[p:] + loop[:p]
            )
            start = ordered[j][0]
            return Event("fixed_point" if period == 1 else "cycle", start + period, period)
        seen.setdefault(fp, []).append(i)
    return None


def detect_events(
    fingerprints: pd.DataFrame, step_periods: Mapping[str, int | None] | None = None
) -> pd.DataFrame:
    """One row (EVENT_COLUMNS) per chain that converged or cycled; the others are absent.
    ``step_periods``: chain_id -> period of its generation step (default 1)."""
    rows = []
    periods = step_periods or {}
    for chain_id, g in fingerprints.groupby("chain_id", sort=True):
        states = zip(g["generation"].tolist(), g["fingerprint"].tolist(), strict=True)
        ev = first_repeat(states, periods.get(str(chain_id), 1))
        if ev is not None:
            rows.append((chain_id, ev.kind, ev.generation, ev.period, ev.start))
    return pd.DataFrame(rows, columns=EVENT_COLUMNS).astype(
        {"event_generation": "int64", "period": "int64", "cycle_start": "int64"}
    )


def chain_events(fingerprints: pd.DataFrame, codecs: Mapping[str, str]) -> pd.DataFrame:
    """``detect_events`` with each chain's step period read from its codec spec (``codecs``:
    chain_id -> codec; a codec schedule repeats only a whole schedule period apart)."""
    return detect_events(fingerprints, {str(c): step_period(str(s)) for c, s in codecs.items()})
