"""Codec schedules: parsing, per-generation codecs, seeded ranges identical on resume, the grid
shift, batches whose chains draw different codecs, and the re-compression fixed point."""

from __future__ import annotations

import pytest
import torch
from conftest import photo_u8, to_batch

from roundtrip_ml.analysis.events import first_repeat
from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.imaging.schedule import SHIFT_PERIOD, chain_seed, parse_schedule
from roundtrip_ml.pipeline.config import make_config


def _names(spec: str, gens: int, seed: int = 0) -> list[str]:
    s = parse_schedule(spec)
    return [s.at(g, seed).name for g in range(1, gens + 1)]


def test_fixed_cycle_and_alternating() -> None:
    assert _names("jpeg:75", 3) == ["jpeg:75"] * 3
    assert parse_schedule("jpeg:75").is_fixed and not parse_schedule("jpeg:75+shift").is_fixed
    assert _names("jpeg:[90,85,95]", 5) == ["jpeg:90", "jpeg:85", "jpeg:95", "jpeg:90", "jpeg:85"]
    assert _names("jpeg:85>webp:80", 4) == ["jpeg:85", "webp:80"] * 2
    # a list inside a stage advances once per round of stages
    assert _names("jpeg:[90,80]:444>webp:80", 4) == [
        "jpeg:90:444",
        "webp:80",
        "jpeg:80:444",
        "webp:80",
    ]


def test_random_range_is_seeded_per_chain_and_stateless() -> None:
    """The draw depends on (chain seed, generation) only: a resumed chain (asked from
    generation 30 on, in any order) gets the same codecs; another chain gets others."""
    seed = chain_seed(0, "astronaut-lanczos3-lanczos3-x1-jpeg7095")
    assert seed == chain_seed(0, "astronaut-lanczos3-lanczos3-x1-jpeg7095")
    full = _names("jpeg:70-95", 60, seed)
    s = parse_schedule("jpeg:70-95")
    assert [s.at(g, seed).name for g in range(60, 29, -1)] == full[29:][::-1]
    qualities = {int(n.split(":")[1]) for n in full}
    assert min(qualities) >= 70 and max(qualities) <= 95 and len(qualities) > 10
    assert full != _names("jpeg:70-95", 60, chain_seed(0, "coffee-x1-jpeg7095"))
    other_run = chain_seed(1, "astronaut-lanczos3-lanczos3-x1-jpeg7095")
    assert full != _names("jpeg:70-95", 60, other_run)


def test_apply_groups_chains_by_their_draw() -> None:
    a = to_batch(photo_u8("astronaut", 32, 48))
    x = torch.cat([a, a, a])
    s = parse_schedule("jpeg:20-95")
    seeds = [chain_seed(0, c) for c in ("a", "b", "c")]
    g = next(g for g in range(1, 50) if len({s.at(g, k).name for k in seeds}) == 3)
    y = s.apply(x, g, seeds)
    for i, k in enumerate(seeds):
        assert torch.equal(y[i : i + 1], s.at(g, k)(a))
    assert torch.equal(s.handoff(g, seeds)(x), y)


def test_shift_moves_the_grid_not_the_content() -> None:
    x = to_batch(photo_u8("coffee", 40, 56))
    s = parse_schedule("jpeg:90+shift")
    assert [s.grid_offset(g) for g in (1, 2, SHIFT_PERIOD, SHIFT_PERIOD + 3)] == [1, 2, 0, 3]
    assert parse_schedule("png+shift3").apply(x, 5).equal(parse_schedule("png").apply(x, 5))
    y1, y0 = s.apply(x, 1), s.apply(x, SHIFT_PERIOD)
    assert y1.shape == x.shape and not torch.equal(y1, y0)
    assert torch.equal(y0, parse_schedule("jpeg:90").apply(x, 1))  # offset 0: no padding
    # still aligned: the shifted handoff is about as close to x as the unshifted one
    assert (y1 - x).abs().mean() < 2 * (y0 - x).abs().mean()


def test_describe_records_every_codec_and_library() -> None:
    d = parse_schedule("jpeg:85>avif:[40,60]+shift2").describe()
    assert d["shift_px_per_generation"] == 2 and len(d["stages"]) == 2
    assert d["codecs"]["avif:40"]["library"] == "imagecodecs"
    assert d["codecs"]["jpeg:85"]["quality"] == 85


@pytest.mark.parametrize(
    "spec",
    ["jpeg:[]", "jpeg:95-70", "jpeg:[90,x]", "jpeg:50-101", "gif>png", "jpeg:85>", "jpeg:9+shiftx"],
)
def test_bad_schedules(spec: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_schedule(spec)
    assert spec in str(e.value)


def test_config_accepts_schedules_and_scale_one() -> None:
    cfg = make_config(
        {"images": ["skimage:coffee"], "scales": [1], "codecs": ["jpeg:[90,85]>webp:80+shift"]}
    )
    assert cfg.scales == [1.0]
    with pytest.raises(ConfigError, match="codecs"):
        make_config({"images": ["skimage:coffee"], "codecs": ["jpeg:[90,,"]})


def test_jpeg_recompression_reaches_a_fixed_point() -> None:
    """q75 re-encoding of a real photo becomes bit-identical within a few dozen generations,
    and the fingerprint-based detector (events.first_repeat) reports it as a fixed point."""
    x = to_batch(photo_u8("astronaut", 64, 64))
    s = parse_schedule("jpeg:75")
    states = []
    for g in range(1, 61):
        x = s.apply(x, g)
        states.append((g, hash(x.numpy().tobytes())))
    ev = first_repeat(states)
    assert ev is not None and ev.kind == "fixed_point" and ev.generation < 60


def test_schedule_period() -> None:
    assert parse_schedule("jpeg:75").period == 1
    assert parse_schedule("jpeg:[90,85,95]").period == 3
    assert parse_schedule("jpeg:[90,80]>webp:80").period == 4
    assert parse_schedule("jpeg:75+shift").period == SHIFT_PERIOD
    assert parse_schedule("jpeg:75+shift16").period == 4
    assert parse_schedule("jpeg:70-95").period is None


def test_events_respect_the_schedule_period() -> None:
    """With a step of period 3, states equal one or two generations apart prove nothing; equal
    three apart they do, and the reported period is the images' own (1: a fixed point)."""
    alternating = list(enumerate([9, 1, 2, 1, 2, 1, 2]))
    assert first_repeat(alternating, 1).period == 2
    assert first_repeat(alternating, 3) is None  # no equal states 3 or 6 generations apart
    ev = first_repeat(list(enumerate([9, 1, 2, 1, 2, 1, 2, 1])), 3)
    assert (ev.kind, ev.start, ev.period) == ("cycle", 1, 2)
    ev = first_repeat(list(enumerate([9, 8, 5, 5, 5, 5])), 3)
    assert (ev.kind, ev.start, ev.generation) == ("fixed_point", 2, 3)
    assert first_repeat(list(enumerate([9, 5, 5, 5, 5])), None) is None


def test_recompression_chain_through_the_engine(tmp_path) -> None:
    """scale = 1 with a classical upscaler: the engine's step is the handoff codec alone (here
    twice per generation until the engine runs one encode for scale 1); summarize reports the
    generation from which the JPEG chain is a fixed point, bit-identical from then on."""
    from PIL import Image

    from roundtrip_ml.analysis.summary import summarize_run
    from roundtrip_ml.pipeline.experiment import run_experiment
    from roundtrip_ml.pipeline.store import RunStore

    Image.fromarray(photo_u8("coffee", 48, 64)).save(tmp_path / "c.png")
    cfg = make_config(
        {
            "images": [str(tmp_path / "c.png")],
            "scales": [1],
            "codecs": ["jpeg:75"],
            "generations": 40,
            "metrics": ["psnr"],
            "device": "cpu",
            "output": str(tmp_path / "run"),
        }
    )
    assert not run_experiment(cfg).failed
    row = summarize_run(tmp_path / "run").iloc[0]
    assert row["event"] == "fixed_point" and 1 <= row["fixed_point_generation"] < 40
    fp = RunStore(tmp_path / "run").read_fingerprints().sort_values("generation")
    after = fp[fp["generation"] >= row["fixed_point_generation"]]["fingerprint"]
    assert after.nunique() == 1 and fp["fingerprint"].iloc[0] != after.iloc[0]


def test_summarize_reads_each_chains_schedule_period() -> None:
    """The same fingerprints mean a fixed point under a fixed codec, nothing under a
    seeded random schedule (equal states prove no loop there)."""
    import pandas as pd

    from roundtrip_ml.analysis.summary import summarize

    rows, fps = [], []
    for cid, codec in (("fixed", "jpeg:75"), ("random", "jpeg:70-80"), ("cycle", "jpeg:[70,80]")):
        for g, fp in enumerate([9, 5, 7, 7, 7, 7]):
            fps.append((cid, g, fp))
            rows.append(
                {
                    "chain_id": cid,
                    "image": "a",
                    "codec": codec,
                    "generation": g,
                    "metric": "psnr",
                    "reference": "original",
                    "value": 30.0,
                }
            )
    df = summarize(
        pd.DataFrame(rows), pd.DataFrame(fps, columns=["chain_id", "generation", "fingerprint"]), []
    )
    by = df.set_index("chain_id")
    assert by.loc["fixed", "fixed_point_generation"] == 2
    assert by.loc["fixed", "event"] == "fixed_point"
    assert pd.isna(by.loc["random", "event"])
    assert pd.isna(by.loc["random", "fixed_point_generation"])
    assert by.loc["cycle", "fixed_point_generation"] == 2  # 7 == 7 two generations apart
