"""The ncnn runtime as a CPU backend: numerical agreement with the torch path on real photos (the
shipped weights of Real-ESRGAN and of each ncnn family), the `auto` choice and its reasons,
refusals of `ncnn` where it cannot run, thread-count changes, and what the manifest records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import photo_u8, to_batch

from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.core.specs import InferenceOptions
from roundtrip_ml.upscalers import create_upscaler
from roundtrip_ml.upscalers.ncnn import runtime

pytestmark = pytest.mark.skipif(
    not runtime.available(), reason="needs the ncnn extra (pip install 'roundtrip-ml[ncnn]')"
)


@pytest.mark.parametrize(
    "model",
    [
        "realesrgan-x4plus",
        "realesr-animevideov3",
        "realcugan-se-x2",
        "waifu2x-cunet-x2",
        "span-x4-ch48",
        "srmd-x2",
    ],
)
def test_ncnn_runtime_agrees_with_the_torch_path(model):
    """Same weights, fp32 in both engines: only summation order differs (measured 1e-6..3e-6).
    Real photos, non-square, a batch of two (x4plus, ~1 s per tiny forward here: one small)."""
    h, w = (12, 16) if model == "realesrgan-x4plus" else (24, 28)  # Real-CUGAN pads 18: > 18
    x = torch.cat([to_batch(photo_u8("astronaut", h, w)), to_batch(photo_u8("coffee", h, w))])
    torch_up = create_upscaler(model, "cpu", InferenceOptions(backend="torch"))
    ncnn_up = create_upscaler(model, "cpu", InferenceOptions(backend="ncnn"))
    assert (torch_up.backend, ncnn_up.backend) == ("torch", "ncnn")
    a, b = torch_up.forward(x), ncnn_up.forward(x)
    assert a.shape == b.shape == (2, 3, h * torch_up.scale, w * torch_up.scale)
    assert float((a - b).abs().max()) < 5e-5
    assert float((a - x.new_zeros(())).abs().mean()) > 0.05  # a real image, not zeros


def test_auto_picks_ncnn_on_a_cpu_and_says_why(monkeypatch):
    up = create_upscaler("realesr-animevideov3", "cpu")  # default options: backend auto
    d = up.describe()
    assert d["backend"] == "ncnn" and "fastest measured" in d["backend_reason"]
    assert d["runtime"]["runtime"] == "ncnn" and d["runtime"]["fp16"] is False
    forced = create_upscaler("realesr-animevideov3", "cpu", InferenceOptions(backend="torch"))
    assert forced.describe()["backend"] == "torch"
    monkeypatch.setattr(runtime, "available", lambda: False)
    up = create_upscaler("realesr-animevideov3", "cpu")
    assert up.backend == "torch" and "ncnn package is not installed" in up.backend_reason
    with pytest.raises(ConfigError, match="ncnn package is not installed"):
        create_upscaler("realesr-animevideov3", "cpu", InferenceOptions(backend="ncnn"))


def test_ncnn_refused_where_it_cannot_run(tmp_path: Path):
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_file(
        {
            k: v.contiguous()
            for k, v in Compact(num_feat=8, num_conv=2, upscale=4).state_dict().items()
        },
        str(path),
    )
    auto = create_upscaler(str(path), "cpu")  # not ncnn files: auto stays on torch, says why
    assert auto.backend == "torch" and "not ncnn files" in auto.backend_reason
    with pytest.raises(
        ConfigError,
        match=r"backend: 'ncnn' cannot run this model: the "
        r"weights are not ncnn files",
    ):
        create_upscaler(str(path), "cpu", InferenceOptions(backend="ncnn"))
    with pytest.raises(ConfigError, match=r"it computes in fp32 \(precision is fp16\)"):
        create_upscaler(
            "realesr-animevideov3", "cpu", InferenceOptions(backend="ncnn", precision="fp16")
        )
    up = create_upscaler("realesr-animevideov3", "cpu", InferenceOptions(precision="bf16"))
    assert up.backend == "torch"  # auto: bf16 is torch's


def test_runtime_follows_the_torch_thread_count_with_identical_results():
    """The net reloads for a new thread count (a sweep or a concurrent run changed the split),
    and its output is bit-identical across thread counts (measured here: torch's Real-CUGAN and
    SPAN outputs are not, by ~1e-6), so a run whose share of the cores changes stays exact."""
    up = create_upscaler("realcugan-se-x2", "cpu", InferenceOptions(backend="ncnn"))
    x = to_batch(photo_u8("astronaut", 40, 40))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        y1 = up.forward(x)
        assert up.runtime.graph.threads == 1
        torch.set_num_threads(2)
        y2 = up.forward(x)
        assert up.runtime.graph.threads == 2
    finally:
        torch.set_num_threads(before)
    assert torch.equal(y1, y2)


def test_a_run_records_the_backend_in_its_manifest(tmp_path: Path):
    from roundtrip_ml.pipeline.config import make_config
    from roundtrip_ml.pipeline.experiment import run_experiment

    cfg = make_config(
        {
            "images": ["skimage:astronaut"],
            "upscalers": ["realesr-animevideov3"],
            "generations": 1,
            "center_crop": 16,
            "metrics": ["psnr"],
            "device": "cpu",
            "output": str(tmp_path / "run"),
        }
    )
    assert cfg.backend == "auto"
    run_experiment(cfg)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    (entry,) = manifest["batches"].values()
    assert entry["status"] == "complete"
    assert entry["upscaler"]["backend"] == "ncnn"
    assert entry["upscaler"]["runtime"]["threads"] >= 1
