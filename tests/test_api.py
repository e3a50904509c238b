"""The Python API as a notebook user meets it: in-memory chains equal engine runs, any image
type, typed run access, and torch's global flags left as they were."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import photo_u8
from PIL import Image

import roundtrip_ml as rt
from roundtrip_ml.core.errors import ConfigError, ImageError, RunStoreError


@pytest.fixture(scope="module")
def engine_run(tmp_path_factory: pytest.TempPathFactory, device: str) -> rt.RunView:
    out = tmp_path_factory.mktemp("api") / "run"
    return rt.run(
        {
            "images": ["skimage:coffee"],
            "upscalers": ["realesr-animevideov3"],
            "codecs": ["jpeg:90"],
            "generations": 4,
            "center_crop": [48, 64],
            "metrics": ["psnr", "ssim", "colour"],
            "device": device,
            "output": str(out),
        }
    )


def test_in_memory_chain_equals_the_engine_run(engine_run: rt.RunView, device: str) -> None:
    """Same recipe through `roundtrip()` and through a run directory: same rows, same values,
    same fingerprints (a real ML model and a lossy handoff, so nothing is trivially equal)."""
    t = rt.roundtrip(
        "skimage:coffee",
        "realesr-animevideov3",
        codec="jpeg:90",
        generations=4,
        metrics=("psnr", "ssim", "colour"),
        center_crop=[48, 64],
        device=device,
    )
    keys = ["generation", "metric", "reference"]
    mem = t.metrics.sort_values(keys).reset_index(drop=True)
    disk = engine_run.metrics.sort_values(keys).reset_index(drop=True)
    assert len(mem) == len(disk) > 20
    pd.testing.assert_frame_equal(mem[[*keys, "value"]], disk[[*keys, "value"]])
    assert t.fingerprints["fingerprint"].tolist() == (
        engine_run.fingerprints.sort_values("generation")["fingerprint"].tolist()
    )
    saved = np.asarray(engine_run.frame(engine_run.chains["chain_id"][0], 4))
    assert np.array_equal(np.asarray(t.frame(4)), saved)


def test_any_image_type_gives_the_same_chain() -> None:
    """Path, PIL image, uint8 array and float tensor of one photo: identical trajectories."""
    import skimage.data

    arr = skimage.data.astronaut()[100:164, 200:264]
    kw = {"upscaler": "lanczos3", "generations": 3, "metrics": ("psnr",)}
    runs = [
        rt.roundtrip(arr, **kw),
        rt.roundtrip(Image.fromarray(arr), **kw),
        rt.roundtrip(torch.from_numpy(arr).permute(2, 0, 1).float() / 255, **kw),
    ]
    values = [r.metrics["value"].tolist() for r in runs]
    assert values[0] == values[1] == values[2]
    assert runs[0].value("psnr", 1) < 40  # a real, lossy roundtrip
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        rt.roundtrip(torch.full((3, 16, 16), 2.0), **kw)
    with pytest.raises(ConfigError, match="generations"):
        rt.roundtrip(arr, upscaler="lanczos3", generations=0)


def test_run_view_is_typed(engine_run: rt.RunView) -> None:
    assert engine_run.manifest.status == "complete"
    assert engine_run.manifest.format_version >= 2
    assert engine_run.config.generations == 4
    assert list(engine_run.chains["upscaler"]) == ["realesr-animevideov3"]
    assert sorted(engine_run.frames(engine_run.chains["chain_id"][0])) == [0, 1, 4]
    with pytest.raises(RunStoreError, match="no manifest"):
        rt.load_run(engine_run.path / "frames")


def test_two_runs_are_byte_identical(tmp_path, device: str) -> None:
    """Determinism on one device: an ML chain run twice gives the same bytes (tables and
    frames); with `--device cuda` this is the GPU determinism check."""
    cfg = {
        "images": ["skimage:chelsea"],
        "upscalers": ["realesr-animevideov3"],
        "codecs": ["png"],
        "generations": 3,
        "center_crop": 48,
        "metrics": ["psnr", "ssim"],
        "frame_stride": 1,
        "device": device,
    }
    a = rt.run({**cfg, "output": str(tmp_path / "a")})
    b = rt.run({**cfg, "output": str(tmp_path / "b")})
    for name in ("metrics.parquet", "fingerprints.parquet"):
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    cid = a.chains["chain_id"][0]
    assert [p.read_bytes() for p in a.frames(cid).values()] == [
        p.read_bytes() for p in b.frames(cid).values()
    ]
    assert a.manifest.determinism["deterministic"] is True


def test_a_run_leaves_torch_flags_as_they_were(tmp_path) -> None:
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        rt.run(
            {
                "images": ["skimage:chelsea"],
                "generations": 1,
                "center_crop": 32,
                "metrics": ["psnr"],
                "output": str(tmp_path / "r"),
            }
        )
        assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False


def test_listings() -> None:
    assert {"lanczos3", "bicubic", "realesrgan-x4plus"} <= set(rt.list_upscalers())
    assert rt.list_upscalers("realesr*") == sorted(rt.list_upscalers("realesr*"))
    metrics = rt.list_metrics().set_index("name")
    assert bool(metrics.loc["psnr", "higher_is_better"]) is True
    assert bool(metrics.loc["gmsd", "higher_is_better"]) is False
    assert bool(metrics.loc["lpips", "needs_download"]) is True


def test_metric_functions_follow_torchmetrics() -> None:
    from torchmetrics.functional.image import peak_signal_noise_ratio

    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    ours = rt.psnr(a * 255, b * 255, data_range=255.0, reduction="mean")
    theirs = peak_signal_noise_ratio(
        a, b, data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3)
    )
    assert torch.allclose(ours, theirs, atol=1e-4)
    assert rt.ssim(a, b).shape == (2,)
    with pytest.raises(ConfigError, match="shape"):
        rt.ssim(a, b[:, :, :16])


def test_import_is_lazy() -> None:
    """`import roundtrip_ml` must not load torch: the CLI's --help and config errors stay fast."""
    code = "import sys, roundtrip_ml; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_in_memory_images_get_the_engine_s_preprocessing_and_names(tmp_path, monkeypatch) -> None:
    """Arrays go through the same max_side / centre-crop step as files (a crop larger than
    the image is refused, not silently short), and a path names its chain as a run does."""
    import skimage.data

    arr = skimage.data.astronaut()[:80, :88]
    t = rt.roundtrip(arr, "lanczos3", generations=1, metrics=("psnr",), max_side=40)
    assert tuple(t.frames[0].shape) == (3, 36, 40)
    with pytest.raises(ImageError, match="smaller than center_crop"):
        rt.roundtrip(arr, "lanczos3", generations=1, center_crop=100)
    monkeypatch.chdir(tmp_path)
    Image.fromarray(arr).save("my photo.png")
    mem = rt.roundtrip(
        "my photo.png", "lanczos3", codec="jpeg:70-95", generations=2, metrics=("psnr",)
    )
    run = rt.run(
        {
            "images": ["my photo.png"],
            "codecs": ["jpeg:70-95"],
            "generations": 2,
            "metrics": ["psnr"],
            "output": "run",
        }
    )
    assert mem.chain.chain_id == run.chains["chain_id"][0]  # so random schedules draw alike
    assert mem.fingerprints["fingerprint"].tolist() == (
        run.fingerprints.sort_values("generation")["fingerprint"].tolist()
    )


def test_rgba_path_pil_and_array_give_the_same_chain(tmp_path) -> None:
    """Alpha is composited on white for every input type, as the file reader does (before,
    PIL images and arrays dropped it: 24.55 dB against 25.88 at generation 1)."""
    rgb = np.asarray(photo_u8("astronaut", 48, 48))
    alpha = np.tile(np.linspace(0, 255, 48).astype(np.uint8)[None, :, None], (48, 1, 1))
    rgba = np.concatenate([rgb, alpha], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    kw = {"upscaler": "lanczos3", "codec": "jpeg:90", "generations": 2, "metrics": ("psnr",)}
    runs = [
        rt.roundtrip(tmp_path / "rgba.png", **kw),
        rt.roundtrip(Image.fromarray(rgba, "RGBA"), **kw),
        rt.roundtrip(rgba, **kw),
        rt.roundtrip(torch.from_numpy(rgba).permute(2, 0, 1).float() / 255, **kw),
    ]
    first = runs[0].metrics["value"].tolist()
    assert all(r.metrics["value"].tolist() == first for r in runs[1:])
    prints = runs[0].fingerprints["fingerprint"].tolist()
    assert all(r.fingerprints["fingerprint"].tolist() == prints for r in runs[1:])
    white = np.asarray(runs[1].frame(0))[:, 0]  # alpha 0 in the first column: white shows
    assert (white == 255).all() and not (rgb[:, 0] == 255).all()
    dropped = rt.roundtrip(rgba, alpha="drop", **kw)
    assert dropped.value("psnr", 1) != runs[0].value("psnr", 1)
    with pytest.raises(ImageError, match=r"array: values outside \[0, 1\]"):
        rt.roundtrip(np.full((16, 16, 4), 1.5, np.float32), **kw)
