"""analysis/paired.py against scipy on real numbers: per-photo PSNR of Pillow's Lanczos and
bicubic x4 roundtrips of scikit-image's photos (no torch, well under a second)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from roundtrip_ml.analysis.paired import (
    bootstrap_ci,
    holm,
    km_median,
    letter_groups,
    paired_t,
    wins_ties_losses,
)

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "camera",
)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(float) - b.astype(float)) ** 2))
    return 10 * math.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def psnr() -> dict[str, np.ndarray]:
    """PSNR (dB) of one x4 roundtrip per photo and resampler, 128 px centre crops."""
    import skimage.data

    out: dict[str, list[float]] = {"lanczos": [], "bicubic": [], "bilinear": [], "nearest": []}
    for name in PHOTOS:
        arr = getattr(skimage.data, name)()
        h, w = arr.shape[:2]
        crop = arr[(h - 128) // 2 : (h + 128) // 2, (w - 128) // 2 : (w + 128) // 2]
        img = Image.fromarray(crop)
        for k, f in (
            ("lanczos", Image.LANCZOS),
            ("bicubic", Image.BICUBIC),
            ("bilinear", Image.BILINEAR),
            ("nearest", Image.NEAREST),
        ):
            back = img.resize((32, 32), f).resize((128, 128), f)
            out[k].append(_psnr(crop, np.asarray(back)))
    return {k: np.array(v) for k, v in out.items()}


def test_paired_t_matches_scipy(psnr: dict[str, np.ndarray]) -> None:
    a, b = psnr["bicubic"], psnr["lanczos"]
    r = paired_t(a - b)
    ref = stats.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert r.n == len(PHOTOS)
    assert r.mean == pytest.approx(float(np.mean(a - b)), abs=1e-12)
    assert r.t == pytest.approx(ref.statistic, rel=1e-9)
    assert r.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert r.dz == pytest.approx(np.mean(a - b) / np.std(a - b, ddof=1), rel=1e-12)


def test_pairing_is_tighter_than_two_unpaired_means(psnr: dict[str, np.ndarray]) -> None:
    """Why the board pairs: photo variance dominates, so the unpaired interval is far wider."""
    a, b = psnr["bicubic"], psnr["lanczos"]
    paired = paired_t(a - b)
    unpaired = stats.ttest_ind(a, b).confidence_interval(0.95)
    assert paired.ci_high - paired.ci_low < (unpaired.high - unpaired.low) / 3


def test_under_three_photos_there_is_no_interval(psnr: dict[str, np.ndarray]) -> None:
    d = (psnr["bicubic"] - psnr["lanczos"])[:2]
    r = paired_t(d)
    assert r.n == 2 and math.isfinite(r.mean)
    assert all(math.isnan(x) for x in (r.ci_low, r.ci_high, r.p, r.dz))
    assert all(math.isnan(x) for x in bootstrap_ci(d))
    with pytest.raises(ValueError, match="finite"):
        paired_t([1.0, math.nan, 2.0])


def test_bootstrap_agrees_with_scipy_percentile(psnr: dict[str, np.ndarray]) -> None:
    d = psnr["bilinear"] - psnr["lanczos"]
    lo, hi = bootstrap_ci(d, resamples=20_000, seed=1)
    ref = stats.bootstrap(
        (d,),
        np.mean,
        n_resamples=20_000,
        method="percentile",
        random_state=np.random.default_rng(2),
    ).confidence_interval
    width = ref.high - ref.low
    assert lo == pytest.approx(ref.low, abs=0.05 * width)
    assert hi == pytest.approx(ref.high, abs=0.05 * width)
    assert bootstrap_ci(d, resamples=2000, seed=3) == bootstrap_ci(d, resamples=2000, seed=3)


def test_wins_ties_losses(psnr: dict[str, np.ndarray]) -> None:
    d = psnr["nearest"] - psnr["lanczos"]
    w, t, lo = wins_ties_losses(d)
    assert (w, t, lo) == (int((d > 0).sum()), 0, int((d < 0).sum()))
    assert wins_ties_losses(d, higher_is_better=False) == (lo, t, w)
    assert sum(wins_ties_losses(d, tie=float(np.abs(d).max()))[1:2]) == len(d)


def test_holm_equals_its_sequential_definition(psnr: dict[str, np.ndarray]) -> None:
    names = list(psnr)
    pvals = [
        stats.ttest_rel(psnr[x], psnr[y]).pvalue
        for i, x in enumerate(names)
        for y in names[i + 1 :]
    ]
    adj = holm(pvals)
    m = len(pvals)
    order = np.argsort(pvals)
    for alpha in (0.001, 0.01, 0.05, 0.2):
        rejected = set()
        for k, i in enumerate(order):  # Holm's procedure as he wrote it
            if pvals[i] > alpha / (m - k):
                break
            rejected.add(int(i))
        assert {i for i in range(m) if adj[i] <= alpha} == rejected, alpha
    assert (adj >= np.asarray(pvals)).all() and (adj <= 1).all()
    with_nan = holm([0.01, math.nan, 0.02])
    assert math.isnan(with_nan[1]) and with_nan[0] == pytest.approx(0.02)


def test_letter_groups() -> None:
    # a, b, c, d best first; a differs from c and d, b from d: a b | b c | c d chains
    g = letter_groups(["a", "b", "c", "d"], [("a", "c"), ("a", "d"), ("b", "d")])
    assert g == {"a": "a", "b": "ab", "c": "bc", "d": "c"}
    assert letter_groups(["x", "y"], []) == {"x": "a", "y": "a"}
    many = [f"m{i}" for i in range(30)]
    every = [(x, y) for i, x in enumerate(many) for y in many[i + 1 :]]
    g = letter_groups(many, every)
    assert len(set(g.values())) == 30 and g["m0"] == "a" and g["m26"] == "A"
    assert all(len(v) == 1 for v in g.values())  # one character per group: letters read apart
    # shared letter <=> not separated, for every pair
    sep = {("a", "c"), ("a", "d"), ("b", "d")}
    g = letter_groups(["a", "b", "c", "d"], sorted(sep))
    for x in "abcd":
        for y in "abcd":
            if x < y:
                assert bool(set(g[x]) & set(g[y])) == ((x, y) not in sep)


def test_km_median_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = rng.integers(1, 9, size=12).astype(float)
        c = rng.random(12) < 0.3
        t[c] = 8.0  # censored at the horizon, as the leaderboard's chains are
        res = stats.ecdf(stats.CensoredData(uncensored=t[~c], right=t[c]))
        below = res.sf.quantiles[res.sf.probabilities <= 0.5 + 1e-12]
        expect = float(below.min()) if len(below) else math.nan
        got = km_median(t, c)
        assert (math.isnan(got) and math.isnan(expect)) or got == expect
    assert math.isnan(km_median([8, 8, 8, 3], [True, True, True, False]))
    assert km_median([1, 2, 3], [False, False, False]) == 2.0


def test_cli_rank_choices_are_the_criteria() -> None:
    """The CLI's --rank-by choices are written beside the command (so --help stays fast); they
    must be exactly the table's criteria."""
    from roundtrip_ml.cli.leaderboard import RankBy
    from roundtrip_ml.studies.leaderboard.table import CRITERIA

    assert [r.value for r in RankBy] == list(CRITERIA)


def test_lyapunov_criterion_is_the_slope_of_log_replica_distance() -> None:
    """Per chain, lambda = OLS slope over generations of ln(RMS distance to the replica), the
    distance read back from the replica PSNR (data range 1): a chain whose replica distance
    grows by e per generation has lambda = 1."""
    import math

    import pandas as pd

    from roundtrip_ml.studies.leaderboard.protocol import QUICK
    from roundtrip_ml.studies.leaderboard.table import chain_values

    rows = []
    for g in range(1, QUICK.generations + 1):
        d = 1e-3 * math.exp(g)  # RMS distance growing by e per generation
        for metric, value in (("psnr", 30.0 - g), ("replica_psnr", -20 * math.log10(d))):
            rows.append(("m", 2, "png", "p", metric, g, value))
    per_photo = pd.DataFrame(
        rows, columns=["upscaler", "scale", "codec", "photo", "metric", "generation", "value"]
    )
    lam = chain_values(per_photo, QUICK)["lyapunov"].iloc[0]
    assert abs(lam - 1.0) < 1e-9


def test_lyapunov_is_fitted_over_the_growth_phase_not_the_plateau() -> None:
    """Replicas of an ML chain stop drifting apart after 10-20 generations; a slope over all
    48 would shrink as the board grows longer. Growth by e per generation for 12 generations,
    then a plateau for 36: lambda stays near 1 (the window stops short of the bend), where the
    slope over all 48 is under 0.35."""
    import math
    from dataclasses import replace

    import pandas as pd

    from roundtrip_ml.studies.leaderboard.protocol import CPU
    from roundtrip_ml.studies.leaderboard.table import chain_values

    p = replace(CPU, generations=48)
    rows = []
    for g in range(1, 49):
        d = 1e-6 * math.exp(min(g, 12))
        for metric, value in (("psnr", 30.0 - g / 10), ("replica_psnr", -20 * math.log10(d))):
            rows.append(("m", 2, "png", "p", metric, g, value))
    per_photo = pd.DataFrame(
        rows, columns=["upscaler", "scale", "codec", "photo", "metric", "generation", "value"]
    )
    lam = chain_values(per_photo, p)["lyapunov"].iloc[0]
    g = np.arange(1, 49, dtype=float)
    whole = np.polyfit(g, np.minimum(g, 12), 1)[0]  # the slope over every generation
    assert whole < 0.35 and 0.85 < lam <= 1.0, (whole, lam)
