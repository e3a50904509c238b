"""Paired comparisons of upscalers over photos: the statistics a reviewer expects.

Why paired: photo-to-photo variation dominates every quality metric, so the interval of a
model's mean says little about whether it beats another model measured on the same photos.
Each function here takes per-photo values (already paired by photo) and is torch-free and
small enough to check against scipy (tests/test_leaderboard_stats.py):

- ``paired_t``: mean paired difference, Student-t CI, effect size dz, two-sided p;
- ``bootstrap_ci``: a percentile bootstrap interval of the mean difference (seeded);
- ``holm``: Holm's step-down adjustment of many p-values;
- ``letter_groups``: compact letters ("a", "ab", ...) for models the tests cannot tell apart;
- ``km_median``: the Kaplan-Meier median of right-censored times (chains that never crossed a
  threshold are censored, never turned into "> G" strings).

Under ``MIN_N`` photos no interval, p-value or group is given: the numbers are NaN and the
caller says so.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MIN_N",
    "Paired",
    "bootstrap_ci",
    "holm",
    "km_median",
    "letter_groups",
    "paired_t",
    "wins_ties_losses",
]

MIN_N = 3  # no interval below this many photos (the report's rule, DESIGN.md)


@dataclass(frozen=True)
class Paired:
    """Summary of per-photo differences d_i = model_i - baseline_i."""

    n: int
    mean: float
    sd: float  # sample standard deviation of the differences (ddof=1)
    ci_low: float
    ci_high: float
    dz: float  # effect size: mean / sd (Cohen's d for paired samples)
    t: float
    p: float  # two-sided, H0: mean difference 0


def _finite(values: Iterable[float]) -> np.ndarray:
    v = np.asarray(list(values), dtype=float)
    if not np.isfinite(v).all():
        raise ValueError("paired statistics need finite values (a NaN or inf is not a measurement)")
    return v


def paired_t(diffs: Iterable[float], level: float = 0.95) -> Paired:
    """Mean of the differences with a Student-t interval; NaN interval/p/dz under ``MIN_N``."""
    from scipy import stats

    d = _finite(diffs)
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    if n < MIN_N:
        sd = float(d.std(ddof=1)) if n > 1 else math.nan
        return Paired(n, mean, sd, math.nan, math.nan, math.nan, math.nan, math.nan)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    if se == 0.0:  # every photo gave the same difference: exact, and p is 0 or 1
        t = math.copysign(math.inf, mean) if mean else math.nan
        p = 0.0 if mean else 1.0
        dz = math.copysign(math.inf, mean) if mean else math.nan
    else:
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), n - 1))
        dz = mean / sd
    return Paired(n, mean, sd, mean - half, mean + half, dz, t, p)


def bootstrap_ci(
    diffs: Iterable[float], level: float = 0.95, *, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean difference (numpy's PCG64 seeded with
    ``seed``: resamples of photo indices, so the result is reproducible from the table)."""
    d = _finite(diffs)
    if len(d) < MIN_N:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(resamples, len(d)))
    means = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def wins_ties_losses(
    diffs: Iterable[float], tie: float = 0.0, *, higher_is_better: bool = True
) -> tuple[int, int, int]:
    """Photos where the model beat, tied (|d| <= tie) and lost to the baseline."""
    d = _finite(diffs) * (1 if higher_is_better else -1)
    ties = int((np.abs(d) <= tie).sum())
    return int((d > tie).sum()), ties, int((d < -tie).sum())


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values: reject H_i at level a iff adjusted_i <= a.
    NaN p-values stay NaN and do not count towards the number of tests."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def letter_groups(
    names: Sequence[Hashable], different: Iterable[tuple[Hashable, Hashable]]
) -> dict[Hashable, str]:
    """Compact letter display (insert-absorb, Piepho 2004): models sharing a letter are not
    significantly different. ``names`` are ordered best first, so "a" marks the best group;
    ``different`` lists the pairs the (corrected) tests separated."""
    index = {n: i for i, n in enumerate(names)}
    columns: list[set[int]] = [set(range(len(names)))]
    for a, b in different:
        i, j = index[a], index[b]
        split = []
        for col in columns:
            if i in col and j in col:
                split += [col - {i}, col - {j}]
            else:
                split.append(col)
        # absorb: a column inside another adds no information
        uniq = [c for k, c in enumerate(split) if c and c not in split[:k]]
        columns = [c for c in uniq if not any(c < o for o in uniq)]
    columns.sort(key=lambda c: (min(c), sorted(c)))
    letters = [_letter(k) for k in range(len(columns))]
    return {n: "".join(letters[k] for k, c in enumerate(columns) if index[n] in c) for n in names}


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZαβγδεζηθικλμνξοπρστυφχψω"


def _letter(k: int) -> str:
    """One character per group (a..z, A..Z, then Greek: 74 groups), so a model's letters
    read unambiguously; past that, ``[k]``."""
    return _LETTERS[k] if k < len(_LETTERS) else f"[{k + 1}]"


def km_median(times: Iterable[float], censored: Iterable[bool]) -> float:
    """Kaplan-Meier median of right-censored times: the first time at which the estimated
    survival drops to 0.5 or below; NaN when it never does (too many chains censored)."""
    t = np.asarray(list(times), dtype=float)
    c = np.asarray(list(censored), dtype=bool)
    if len(t) != len(c):
        raise ValueError("times and censored differ in length")
    surv = 1.0
    for u in np.unique(t[~c]):
        at_risk = int((t >= u).sum())
        events = int(((t == u) & ~c).sum())
        surv *= 1.0 - events / at_risk
        if surv <= 0.5 + 1e-12:
            return float(u)
    return math.nan
