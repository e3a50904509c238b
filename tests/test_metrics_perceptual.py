"""LPIPS / DISTS: network parity with the reference packages, weights policy, pyiqa option.

The ImageNet backbones cannot be downloaded on this machine. The architecture tests load the
*same* backbone tensors (torchvision's default initialisation, seeded) into our network and the
reference one, with the real shipped heads; the real-weights parity runs when the weights are
cached and is skipped with its reason otherwise.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision.models as tvm
from conftest import photo_u8, to_batch

from roundtrip_ml.core.errors import ConfigError, WeightsError
from roundtrip_ml.metrics import perceptual as pm
from roundtrip_ml.metrics import resolve_metrics

lpips = pytest.importorskip("lpips", reason="the lpips package is the LPIPS reference")


def _pairs() -> tuple[torch.Tensor, torch.Tensor]:
    ref = torch.cat([to_batch(photo_u8(n)[60:124, 100:164]) for n in ("astronaut", "chelsea")])
    gen = torch.Generator().manual_seed(0)
    x = (ref + 0.05 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    return x, ref


def _lpips_reference(net: str, backbone_state: dict[str, torch.Tensor]):
    """The lpips package's LPIPS v0.1 with its own heads and the given backbone tensors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False).eval()
    sliced = {}
    for name in ref.net.state_dict():
        _slice, idx, kind = name.split(".")
        sliced[name] = backbone_state[f"features.{idx}.{kind}"]
    ref.net.load_state_dict(sliced)
    return ref


@pytest.fixture(scope="module")
def seeded_state() -> dict[str, dict[str, torch.Tensor]]:
    """torchvision's default initialisation, seeded (the same tensors go to both sides)."""
    torch.manual_seed(0)
    return {arch: getattr(tvm, arch)().state_dict() for arch in ("alexnet", "vgg16")}


@pytest.mark.parametrize("net, backbone", [("alex", pm.ALEXNET), ("vgg", pm.VGG16)])
def test_lpips_network_matches_lpips_package(net: str, backbone: pm.Backbone, seeded_state) -> None:
    state = seeded_state[backbone.arch]
    ours = pm.LPIPS(backbone, state, pm._load(pm.head_file(net)))
    ref = _lpips_reference(net, state)
    x, y = _pairs()
    with torch.no_grad():
        want = ref(x, y, normalize=True).flatten()  # normalize=True: lpips maps [0,1] -> [-1,1]
    got = ours(x, y)
    assert got.shape == (2,)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert torch.equal(ours(y, y), torch.zeros(2))


def test_dists_network_matches_torchmetrics(monkeypatch: pytest.MonkeyPatch, seeded_state) -> None:
    import torchmetrics.functional.image.dists as tmd

    state = seeded_state["vgg16"]

    def vgg16(weights: object = None) -> torch.nn.Module:
        with torch.device("meta"):
            m = tvm.vgg16()
        m.load_state_dict(state, assign=True)
        return m

    monkeypatch.setattr(tmd, "vgg16", vgg16)  # torchmetrics would download the ImageNet weights
    ref = tmd.DISTSNetwork().eval()
    ours = pm.DISTS(state, pm._load(pm.head_file("dists")))
    x, y = _pairs()
    torch.testing.assert_close(ours(x, y), ref(x, y), atol=1e-5, rtol=1e-5)


@pytest.fixture
def empty_weight_dirs(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ROUNDTRIP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("ROUNDTRIP_OFFLINE", "1")
    return tmp_path


def test_missing_weights_offline_drop_the_metric_with_one_warning(empty_weight_dirs) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = resolve_metrics(["psnr", "lpips", "dists"], torch.device("cpu"))
    assert [m.name for m in metrics] == ["psnr"]
    msgs = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert len(msgs) == 2
    assert "lpips skipped" in msgs[0] and "alexnet-owt-7be5be79.pth" in msgs[0]
    assert "dists skipped" in msgs[1] and "vgg16-397923af.pth" in msgs[1]


def test_corrupt_weights_are_refused(empty_weight_dirs) -> None:
    bad = empty_weight_dirs / "cache" / pm.ALEXNET.filename
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the alexnet weights")
    with pytest.raises(WeightsError, match="SHA-256 does not match"):
        resolve_metrics(["lpips"], torch.device("cpu"))


@pytest.mark.parametrize("net, backbone", [("alex", pm.ALEXNET), ("vgg", pm.VGG16)])
def test_lpips_parity_with_real_weights(net: str, backbone: pm.Backbone) -> None:
    path = pm.find_backbone(backbone)
    if path is None:
        pytest.skip(
            f"{backbone.filename} is not cached (no download here); "
            f"searched {[str(d) for d in pm.weight_dirs()]}"
        )
    state = pm._load(path)
    (metric,) = resolve_metrics(["lpips" if net == "alex" else "lpips_vgg"], torch.device("cpu"))
    x, y = _pairs()
    with torch.no_grad():
        want = _lpips_reference(net, state)(x, y, normalize=True).flatten()
    got = next(iter(metric(x, y).values()))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got > 0.01).all()


def test_pyiqa_names() -> None:
    try:
        import pyiqa  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pyiqa is not installed"):
            resolve_metrics(["pyiqa:niqe"], torch.device("cpu"))
        pytest.skip(
            "pyiqa is not installed (optional extra, 1.5 GB, non-commercial licence); "
            "checked the clear error instead"
        )
    (m,) = resolve_metrics(["pyiqa:psnr"], torch.device("cpu"))
    x, y = _pairs()
    assert m(x, y)["pyiqa:psnr"].shape == (2,)


def test_head_weights_are_pinned_and_a_changed_copy_is_never_used(tmp_path, monkeypatch):
    """The heads load only from a file whose SHA-256 matches the pin; a tampered cache copy is
    passed over for a verified one (here: the copy inside an installed wheel)."""
    from roundtrip_ml.core import weights

    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path))
    (tmp_path / pm.HEADS["alex"].filename).write_bytes(b"not the heads")
    path = pm.head_file("alex")
    assert path.parent != tmp_path and weights.sha256_file(path) == pm.HEADS["alex"].sha256
    heads = pm._load(path)
    assert {k for k in heads if k.endswith("weight")}  # the 1x1 head convolutions
