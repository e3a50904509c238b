"""Perceptual metrics that need no download, against their reference packages on real photos
under blur, noise, JPEG and a real ML generation (Real-ESRGAN animevideov3, offline weights).

- SSIMULACRA 2 and FLIP: our batched torch ports vs the ``ssimulacra2`` package (numpy) and
  NVIDIA's ``flip-evaluator`` (C++), per image;
- ColorVideoVDP, VMAF: the registry's batched metric vs the reference called directly on each
  pair; for all, the direction of "better" on graded distortions.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import photo_u8
from PIL import Image
from scipy import ndimage

from roundtrip_ml.metrics import resolve_metrics
from roundtrip_ml.metrics.registry import SPECS

CPU = torch.device("cpu")


def _u8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def _batch(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def _distortions(a: np.ndarray) -> dict[str, np.ndarray]:
    blur = ndimage.gaussian_filter(a.astype(np.float64), (1.2, 1.2, 0))
    noise = a + np.random.default_rng(0).normal(0, 6, a.shape)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=30)
    return {
        "blur": np.clip(blur, 0, 255).round().astype(np.uint8),
        "noise": np.clip(noise, 0, 255).round().astype(np.uint8),
        "jpeg": np.asarray(Image.open(buf).convert("RGB")),
    }


@pytest.fixture(scope="module")
def ml_pair() -> tuple[np.ndarray, np.ndarray]:
    """(original 96 x 96 crop, one real animevideov3 x4 generation of it)."""
    from roundtrip_ml.imaging.resample import resize
    from roundtrip_ml.upscalers import create_upscaler

    a = photo_u8("astronaut", 96, 96)
    x = _batch([a])
    up = create_upscaler("realesr-animevideov3", CPU)
    with torch.inference_mode():
        y = up.upscale(resize(x, (24, 24), "lanczos3", True), (96, 96), eight_bit=True)
    return a, _u8(y[0])


@pytest.fixture(scope="module")
def cases(ml_pair: tuple[np.ndarray, np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, reference, test) pairs: 3 photos x (blur, noise, JPEG q30) + the ML generation."""
    out = [("ml", *ml_pair)]
    for name in ("coffee", "chelsea", "rocket"):
        a = photo_u8(name, 96, 96)
        out += [(f"{name}-{k}", a, b) for k, b in _distortions(a).items()]
    return out


def _registry(name: str, cases: list[tuple[str, np.ndarray, np.ndarray]]) -> np.ndarray:
    (metric,) = resolve_metrics([name], CPU)
    x, ref = _batch([c[2] for c in cases]), _batch([c[1] for c in cases])
    return metric(x, ref)[name].numpy().astype(np.float64)


def test_ssimulacra2_port_matches_reference(cases) -> None:
    from ssimulacra2 import compute_ssimulacra2

    def reference(a: np.ndarray, b: np.ndarray) -> float:
        files = []
        for img in (a, b):
            f = io.BytesIO()
            Image.fromarray(img).save(f, format="PNG")
            f.seek(0)
            files.append(f)
        return compute_ssimulacra2(*files)

    # one crop large enough for all 6 scales, one with odd sizes (partial 2 x 2 blocks)
    big = photo_u8("chelsea", 264, 280)
    odd = photo_u8("rocket", 37, 61)
    more = [
        ("chelsea-264-jpeg", big, _distortions(big)["jpeg"]),
        ("rocket-odd-noise", odd, _distortions(odd)["noise"]),
    ]
    ours = [*_registry("ssimulacra2", cases), *(_registry("ssimulacra2", [c])[0] for c in more)]
    ref = [reference(a, b) for _, a, b in [*cases, *more]]
    dev = np.abs(np.array(ours, dtype=np.float64).ravel() - np.array(ref))
    assert dev.max() < 1e-4, dev
    assert len(set(np.round(ref, 1))) == len(ref)  # the cases really differ
    same = photo_u8("coffee", 40, 40)
    assert _registry("ssimulacra2", [("same", same, same)])[0] == 100.0


def test_cvvdp_batched_equals_reference(cases) -> None:
    import pycvvdp

    cases = cases[:4]  # the ML generation and one photo under blur, noise, JPEG
    ours = _registry("cvvdp", cases)
    m = pycvvdp.cvvdp(display_name=SPECS["cvvdp"].about()["display"], device=CPU, quiet=True)
    for (_, a, b), v in zip(cases, ours, strict=True):
        ref, _ = m.predict(_batch([b]), _batch([a]), dim_order="BCHW")
        assert abs(float(ref) - v) < 1e-4
    assert np.all(ours < 10) and np.all(ours > 0)
    info = SPECS["cvvdp"].about()
    assert "standard_4k" in info["display_model"] and info["version"]


def test_flip_port_matches_reference_and_orders_blur(cases) -> None:
    import flip_evaluator

    from roundtrip_ml.metrics.flip import flip_map

    ours = _registry("flip", cases)
    for (_, a, b), v in zip(cases, ours, strict=True):
        emap, ref, _ = flip_evaluator.evaluate(
            a.astype(np.float32) / 255, b.astype(np.float32) / 255, "LDR", applyMagma=False
        )
        assert abs(ref - v) < 2e-6
    ours_map = flip_map(_batch([b]), _batch([a]))[0].numpy()  # the last case: the whole map
    assert np.abs(ours_map - emap[..., 0]).max() < 1e-4
    a = photo_u8("coffee", 64, 64)
    graded = [
        (
            "b",
            a,
            np.clip(ndimage.gaussian_filter(a.astype(float), (s, s, 0)), 0, 255)
            .round()
            .astype(np.uint8),
        )
        for s in (0.5, 1.0, 2.0)
    ]
    v = _registry("flip", [("same", a, a), *graded])
    assert v[0] < 1e-6 and v[1] < v[2] < v[3]


def test_vmaf_equals_ffmpeg_and_orders_noise(cases) -> None:
    from roundtrip_ml.metrics import vmaf

    ours = _registry("vmaf", cases[:3])
    for (_, a, b), v in zip(cases[:3], ours, strict=True):
        assert abs(vmaf._vmaf(b, a) - v) < 1e-3  # float32 storage of a 6-digit log value
    a = photo_u8("chelsea", 64, 96)
    noisy = [
        (
            "n",
            a,
            np.clip(a + np.random.default_rng(1).normal(0, s, a.shape), 0, 255)
            .round()
            .astype(np.uint8),
        )
        for s in (2, 8, 20)
    ]
    v = _registry("vmaf", [("same", a, a), *noisy])
    assert v[0] > 95 and v[0] > v[1] > v[2] > v[3]
    assert vmaf.describe()["model"] == "vmaf_v0.6.1"


def test_cvvdp_video_of_a_collapsing_chain() -> None:
    """The temporal variant: a chain that drifts further scores lower than one that stays."""
    from roundtrip_ml.metrics.cvvdp import cvvdp_video

    a = _batch([photo_u8("astronaut", 48, 48)])[0]
    stay = torch.stack([a] * 4)
    drift = torch.stack([a, a * 0.97, a * 0.93, a * 0.88])
    assert cvvdp_video(stay, a) == pytest.approx(10.0, abs=1e-3)
    assert cvvdp_video(drift, a) < 9.5


def test_metrics_list_shows_direction_and_cost() -> None:
    from typer.testing import CliRunner

    from roundtrip_ml.cli.app import app

    res = CliRunner().invoke(app, ["metrics", "list"], env={"COLUMNS": "240"})
    assert res.exit_code == 0
    lines = {ln.split("│")[1].strip(): ln for ln in res.stdout.splitlines() if ln.count("│") > 2}
    assert "higher" in lines["ssimulacra2"] and "float64" in lines["ssimulacra2"]
    assert "lower" in lines["flip"] and "host" in lines["vmaf"]
    assert "extra: perceptual" in lines["vmaf"] and "vgg16" in lines["dists"]


def test_collapse_jod_from_a_run_directory(tmp_path) -> None:
    """The temporal ColorVideoVDP over a chain's saved frames: a lossless chain scores 10 JOD,
    a JPEG q30 re-compression chain less."""
    from roundtrip_ml.analysis.video import collapse_jod
    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.experiment import run_experiment

    Image.fromarray(photo_u8("coffee", 48, 64)).save(tmp_path / "c.png")
    cfg = make_config(
        {
            "images": [str(tmp_path / "c.png")],
            "scales": [1],
            "codecs": ["png", "jpeg:30"],
            "generations": 3,
            "frame_stride": 1,
            "metrics": ["psnr"],
            "device": "cpu",
            "output": str(tmp_path / "run"),
        }
    )
    assert not run_experiment(cfg).failed
    chains = {p.name.rsplit("-", 1)[-1]: p.name for p in (tmp_path / "run" / "frames").iterdir()}
    assert collapse_jod(tmp_path / "run", chains["png"]) == pytest.approx(10.0, abs=1e-3)
    assert collapse_jod(tmp_path / "run", chains["jpeg30"]) < 9.5
