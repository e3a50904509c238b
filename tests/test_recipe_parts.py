"""Recipe parts of issue 22 on real photos: stabilisers, stepped scale paths, starts, and the
one chain-id function (plan, the in-memory API and sweep cells)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo_u8, to_batch
from PIL import Image
from skimage.exposure import match_histograms

import roundtrip_ml as rt
from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.core.specs import Stabilizer, parse_stabilizer
from roundtrip_ml.imaging.colour import rgb_to_lab
from roundtrip_ml.imaging.images import quantize8
from roundtrip_ml.imaging.resample import resize
from roundtrip_ml.imaging.stabilize import gaussian_blur, stabilize
from roundtrip_ml.imaging.stabilize import match_histograms as ours_match
from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.plan import make_plan, run_id_for
from roundtrip_ml.sweep.grid import make_sweep_plan, parse_sweep
from roundtrip_ml.upscalers import create_upscaler

CROP = {"images": ["skimage:astronaut"], "center_crop": 32, "metrics": ["psnr"], "device": "cpu"}


@functools.cache
def _lowres_and_model_output() -> tuple[torch.Tensor, torch.Tensor]:
    """A real 16 px low-res crop and animevideov3's (real weights, offline) x4 output of it."""
    x = to_batch(photo_u8("astronaut", 64, 64))
    lo = quantize8(resize(x, (16, 16), "lanczos3")) / 255
    up = create_upscaler("realesr-animevideov3", torch.device("cpu"))
    with torch.no_grad():
        return lo, up.upscale(lo, (64, 64))


def test_none_is_todays_chain_bit_for_bit() -> None:
    """Stabiliser "none" and no paths: the step the engine always ran (down, PNG handoff, up,
    PNG handoff), the old chain id and the old run id."""
    plain = make_config(CROP)
    explicit = make_config({**CROP, "stabilizers": ["none"], "starts": ["image"]})
    assert run_id_for(plain) == run_id_for(explicit)
    (chain,) = make_plan(explicit).chains
    assert chain.chain_id == "astronaut-lanczos3-lanczos3-x4-png"
    t = rt.roundtrip(
        "skimage:astronaut",
        "lanczos3",
        generations=3,
        center_crop=32,
        stabilizer="none",
        device="cpu",
    )
    x = to_batch(photo_u8("astronaut", 512, 512))[..., 240:272, 240:272]
    for g in range(1, 4):
        lo = quantize8(resize(x, (8, 8), "lanczos3", True)) / 255
        x = quantize8(resize(lo, (32, 32), "lanczos3", True)) / 255
        assert torch.equal(t.frames[g], (x[0] * 255).round().to(torch.uint8))


def test_backproject_reduces_the_lowres_consistency_error() -> None:
    lo, y = _lowres_and_model_output()

    def err(t: torch.Tensor) -> float:
        return float((resize(t, (16, 16), "lanczos3") - lo).pow(2).mean().sqrt())

    errors = [
        err(stabilize(y, lo, parse_stabilizer(f"backproject:{n}"), "lanczos3") if n else y)
        for n in (0, 1, 3)
    ]
    print("low-res RMS error after 0, 1, 3 back-projections:", errors)
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.5 * errors[0]


def test_colour_moves_the_lab_mean_and_spread_to_the_reference() -> None:
    lo, y = _lowres_and_model_output()
    tinted = (y * torch.tensor([1.15, 0.95, 0.8]).view(1, 3, 1, 1)).clamp(0, 1)
    out = stabilize(tinted, lo, Stabilizer("colour"), "lanczos3")
    ref = rgb_to_lab(resize(lo, (64, 64), "lanczos3").clamp(0, 1))
    before, exact = rgb_to_lab(tinted), rgb_to_lab(out)
    after = rgb_to_lab(out.clamp(0, 1))  # what the handoff keeps: out-of-gamut colours clip
    gap = (before.mean((2, 3)) - ref.mean((2, 3))).abs().max()
    left = (after.mean((2, 3)) - ref.mean((2, 3))).abs().max()
    print(f"Lab mean gap to the reference: {float(gap):.2f} before, {float(left):.3f} after")
    assert gap > 5 and left < 0.5
    assert torch.allclose(exact.mean((2, 3)), ref.mean((2, 3)), atol=0.01)
    assert torch.allclose(exact.std((2, 3)), ref.std((2, 3)), atol=0.01)


def test_histogram_matching_agrees_with_skimage() -> None:
    a = photo_u8("astronaut", 64, 64)
    b = photo_u8("coffee", 64, 64)
    ours = ours_match(to_batch(a), to_batch(b))[0].permute(1, 2, 0).numpy()
    theirs = match_histograms(a / 255.0, b / 255.0, channel_axis=-1)
    diff = np.abs(ours - theirs)
    print(
        f"vs skimage.exposure.match_histograms: max {diff.max() * 255:.2f} levels, "
        f"mean {diff.mean() * 255:.3f}"
    )
    assert diff.mean() * 255 < 0.5 and diff.max() * 255 < 4


def test_wavelet_takes_the_low_band_from_the_reference() -> None:
    lo, y = _lowres_and_model_output()
    tinted = (y * 0.8).clamp(0, 1)
    out = stabilize(tinted, lo, Stabilizer("wavelet"), "lanczos3")
    ref = resize(lo, (64, 64), "lanczos3").clamp(0, 1)

    def low_gap(t: torch.Tensor) -> float:
        return float((gaussian_blur(t, 4) - gaussian_blur(ref, 4)).abs().mean())

    assert low_gap(out) < 0.2 * low_gap(tinted)
    high = tinted - gaussian_blur(tinted, 4)  # the detail is the output's own
    assert torch.allclose(out - gaussian_blur(ref, 4), high, atol=1e-5)


def test_up_steps_2_2_equal_a_pillow_chain(tmp_path: Path) -> None:
    """x4 down, then Lanczos x2 twice, 6 generations: the engine vs Pillow on uint8 images,
    within the engine's Pillow tolerance (tests/test_loop.py: mean abs diff < 0.5 level)."""
    a = photo_u8("astronaut", 96, 96)
    t = rt.roundtrip(a, "lanczos3", generations=6, up_steps=[2, 2], device="cpu")
    assert t.chain.chain_id.endswith("-u2x2")
    im = Image.fromarray(a)
    diffs = []
    for g in range(1, 7):
        im = im.resize((24, 24), Image.Resampling.LANCZOS)
        im = im.resize((48, 48), Image.Resampling.LANCZOS).resize(
            (96, 96), Image.Resampling.LANCZOS
        )
        ours = t.frames[g].permute(1, 2, 0).numpy().astype(float)
        diffs.append(np.abs(ours - np.asarray(im, dtype=float)).mean())
    direct = rt.roundtrip(a, "lanczos3", generations=6, device="cpu")
    print("x2+x2 engine vs Pillow, mean abs diff per generation:", np.round(diffs, 3))
    assert max(diffs) < 0.5
    assert not torch.equal(direct.frames[6], t.frames[6])  # a different path, a different image


def test_downscale_steps_2_2_equal_a_pillow_chain() -> None:
    a = photo_u8("coffee", 96, 96)
    t = rt.roundtrip(a, "bicubic", generations=3, downscale_steps=[2, 2], device="cpu")
    assert t.chain.chain_id.endswith("-d2x2")
    im = Image.fromarray(a)
    for g in range(1, 4):
        im = im.resize((48, 48), Image.Resampling.LANCZOS).resize(
            (24, 24), Image.Resampling.LANCZOS
        )
        im = im.resize((96, 96), Image.Resampling.BICUBIC)
        ours = t.frames[g].permute(1, 2, 0).numpy().astype(float)
        assert np.abs(ours - np.asarray(im, dtype=float)).mean() < 0.5


def test_a_fixed_scale_model_runs_only_at_its_own_scale() -> None:
    with pytest.raises(ConfigError, match="x4 model and cannot make an x2 stage"):
        make_config({**CROP, "upscalers": ["realesr-animevideov3"], "up_steps": [2, 2]})
    with pytest.raises(ConfigError, match="multiplies to 6"):
        make_config({**CROP, "up_steps": [2, 3]})
    with pytest.raises(ConfigError, match="backproject:N"):
        make_config({**CROP, "stabilizers": ["backproject"]})


def test_an_x2_model_twice_makes_x4() -> None:
    t = rt.roundtrip(
        "skimage:astronaut",
        "realcugan-se-x2",
        generations=1,
        center_crop=96,
        up_steps=[2, 2],
        device="cpu",
    )
    assert t.chain.chain_id.endswith("-u2x2") and t.value("psnr", 1) > 15


def test_starts_noise_and_flat_share_a_batch_and_have_their_own_ids() -> None:
    plan = make_plan(
        make_config(
            {**CROP, "starts": ["image", "noise", "flat"], "stabilizers": ["none", "colour"]}
        )
    )
    ids = [c.chain_id for c in plan.chains]
    assert len(set(ids)) == 6 and len(plan.batches) == 2  # one batch per stabiliser
    assert "astronaut-lanczos3-lanczos3-x4-png-colour-noise" in ids
    flat = rt.roundtrip(
        "skimage:astronaut", "lanczos3", generations=1, center_crop=32, start="flat", device="cpu"
    )
    assert torch.all(flat.frames[0] == 128) and torch.all(flat.frames[1] == 128)
    n1 = rt.roundtrip(
        "skimage:astronaut", "bicubic", generations=1, center_crop=32, start="noise", device="cpu"
    )
    n2 = rt.roundtrip(
        "skimage:astronaut", "lanczos3", generations=1, center_crop=32, start="noise", device="cpu"
    )
    assert torch.equal(n1.frames[0], n2.frames[0])  # one noise per image and seed
    assert n1.frames[0].float().std() > 60  # uniform on 0..255


def test_sweep_axes_of_stabilisers_and_paths(tmp_path: Path) -> None:
    cfg = parse_sweep(
        {
            "images": ["skimage:astronaut"],
            "center_crop": 32,
            "generations": 1,
            "stabilizers": ["none", "backproject:2"],
            "up_steps": [[2, 2], [4]],
            "output": str(tmp_path / "s"),
        }
    )
    plan = make_sweep_plan(cfg)
    ids = sorted(c.cell_id for c in plan.cells)
    assert ids == [
        "astronaut-lanczos3-lanczos3-x4-png-backproject2-s0-g1",
        "astronaut-lanczos3-lanczos3-x4-png-s0-g1",
        "astronaut-lanczos3-lanczos3-x4-png-u2x2-backproject2-s0-g1",
        "astronaut-lanczos3-lanczos3-x4-png-u2x2-s0-g1",
    ]  # [4]: the plain path
    configs = {(tuple(u.config["stabilizers"]), str(u.config["up_steps"])) for u in plan.units}
    assert configs == {
        (("none",), "[2.0, 2.0]"),
        (("none",), "None"),
        (("backproject:2",), "[2.0, 2.0]"),
        (("backproject:2",), "None"),
    }


def test_cli_flags_reach_the_recipe(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from roundtrip_ml.cli.app import app
    from roundtrip_ml.pipeline.store import RunStore

    out = tmp_path / "r"
    res = CliRunner().invoke(
        app,
        [
            "run",
            "-i",
            "skimage:astronaut",
            "--center-crop",
            "32",
            "-g",
            "1",
            "-m",
            "psnr",
            "--stabilizer",
            "none,colour",
            "--up-steps",
            "2,2",
            "--start",
            "flat",
            "-o",
            str(out),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    ids = sorted(RunStore(out).read_chains().chain_id)
    assert ids == [
        "astronaut-lanczos3-lanczos3-x4-png-u2x2-colour-flat",
        "astronaut-lanczos3-lanczos3-x4-png-u2x2-flat",
    ]
    bad = CliRunner().invoke(
        app, ["run", "-i", "skimage:astronaut", "--stabilizer", "blur", "-o", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "is no stabilizer" in bad.output


def test_recipe_parts_attractors_and_lyapunov_from_a_sweep_and_the_api(tmp_path: Path) -> None:
    """Stabilisers and paths as sweep axes, with replicas: `summarize` on the sweep directory
    gives every chain its attractor type and each recipe its Lyapunov exponent (pooled over
    units: here one photo each, so equal to the unit's own); the in-memory API runs the same
    chain to the same numbers and type, and refuses replicas with one line."""
    from typer.testing import CliRunner

    from roundtrip_ml.analysis.summary import summarize_run
    from roundtrip_ml.cli.app import app

    root = tmp_path / "s"
    rt.run_sweep(
        {**CROP, "generations": 8, "replicas": 1, "output": str(root),
         "stabilizers": ["none", "backproject:2"], "up_steps": [[2, 2], [4]]},
        progress=False,
    )  # fmt: skip
    df = rt.summarize(root)
    base = df[df["replica"] == 0].set_index(["stabilizer", "up_steps"])
    assert len(base) == 4 and base["unit_id"].nunique() == 4
    assert set(base["attractor"]) <= {"fixed_point", "cycle", "converging", "wandering"}
    div = df.attrs["divergence"].set_index(["stabilizer", "up_steps"])
    assert len(div) == 4 and div["lyapunov"].notna().all()
    for unit in base["unit_id"]:
        own = summarize_run(root / "units" / unit).attrs["divergence"].iloc[0]
        key = (own["stabilizer"], own["up_steps"])
        assert div.loc[key, "lyapunov"] == pytest.approx(own["lyapunov"], rel=1e-12)
    t = rt.roundtrip(
        "skimage:astronaut", "lanczos3", generations=8, center_crop=32, metrics=["psnr"],
        stabilizer="backproject:2", up_steps=[2, 2], device="cpu", progress=False,
    )  # fmt: skip
    chain = base.loc[("backproject:2", "2x2")]
    assert t.chain.chain_id == chain["chain_id"]
    assert t.value("psnr", 8) == pytest.approx(chain["final_psnr"], abs=1e-9)
    assert rt.summarize(t)["attractor"].iloc[0] == chain["attractor"]
    with pytest.raises(ConfigError, match="replicas"):
        rt.roundtrip("skimage:astronaut", "lanczos3", generations=2, replicas=1, device="cpu")
    r = CliRunner().invoke(app, ["summarize", str(root)])
    assert r.exit_code == 0 and "λ" in r.output and (root / "summary.parquet").is_file()
