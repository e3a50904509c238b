"""Parity with Real-ESRGAN's own RealESRGANer (optional extra `reference`: basicsr + realesrgan).

Both sides get the same real weights (the official .pth if cached, else the offline ncnn weights
saved in the official {'params_ema': ...} layout) and the same real photo; outputs, rounded to
8 bits as RealESRGANer does, must agree within 1/255.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from conftest import photo_u8, to_batch

from roundtrip_ml.core.specs import InferenceOptions
from roundtrip_ml.upscalers import zoo
from roundtrip_ml.upscalers.loading import load_upscaler
from roundtrip_ml.upscalers.ncnn.parser import load_ncnn

pytestmark = [
    pytest.mark.reference,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]  # basicsr's scipy imports
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def realesrgan():
    """Import the reference packages, aliasing the torchvision module they still expect."""
    try:
        import torchvision.transforms._functional_tensor as ft
    except ImportError:
        ft = None
    if ft is not None:
        sys.modules.setdefault("torchvision.transforms.functional_tensor", ft)
    try:
        import realesrgan
        from basicsr.archs.rrdbnet_arch import RRDBNet
        from realesrgan.archs.srvgg_arch import SRVGGNetCompact
    except ImportError as e:
        pytest.skip(f"reference extra not installed (pip install roundtrip-ml[reference]): {e}")
    return realesrgan.RealESRGANer, RRDBNet, SRVGGNetCompact


def _weights_for_reference(name: str, tmp_path) -> tuple[object, str]:
    """Our upscaler, and a .pth path holding exactly the weights it runs."""
    up = load_upscaler(name, device=CPU, options=InferenceOptions(backend="torch"))
    d = up.describe()
    if d["weights"].endswith(".pth"):
        return up, d["weights"]
    found = zoo.find_offline(zoo.get_entry(name))
    assert found is not None
    path = tmp_path / f"{name}.pth"
    torch.save({"params_ema": load_ncnn(found.param, found.bin).state_dict}, path)
    return up, str(path)


@pytest.mark.parametrize(
    ("name", "photo", "size"),
    [("realesr-animevideov3", "coffee", 64), ("realesrgan-x4plus", "astronaut", 32)],
)
def test_matches_realesrganer(realesrgan, tmp_path, name, photo, size):
    RealESRGANer, RRDBNet, SRVGGNetCompact = realesrgan
    torch.set_num_threads(2)
    up, pth = _weights_for_reference(name, tmp_path)
    if name == "realesrgan-x4plus":
        net = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4)
    else:
        net = SRVGGNetCompact(
            num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"
        )
    ref = RealESRGANer(
        scale=4, model_path=pth, model=net, tile=0, pre_pad=0, half=False, device=CPU
    )
    rgb = photo_u8(photo)[100 : 100 + size, 120 : 120 + size].copy()
    out_bgr, _ = ref.enhance(np.ascontiguousarray(rgb[..., ::-1]), outscale=4)
    theirs = out_bgr[..., ::-1].astype(np.int16)
    y = up.forward(to_batch(rgb))[0].permute(1, 2, 0).numpy()
    ours = np.round(y * 255).astype(np.int16)
    assert ours.shape == theirs.shape == (size * 4, size * 4, 3)
    assert int(np.abs(ours - theirs).max()) <= 1
