"""Contracts every registry entry keeps, parametrised from the registries themselves (as pyiqa
tests its metrics and spandrel its architectures): a new metric row or model TOML is tested by
adding it, with no test to write.

Metrics (``roundtrip_ml.metrics.registry.SPECS``): every stored key has a label and a unit that
plots read from the registry, the direction the registry states is the one the numbers take,
a batch gives (N,) finite values, identical images score the perfect value, and a batch equals
its images run one by one. Models (``models/*.toml`` with an offline source): each loads from
its installed package with the recorded hashes, runs at its native scale on a small real crop
and on a 7 px one, and gives the same bytes twice; each ncnn family object names its files as
the registry does. Inputs are tiny real photo crops: the file takes about 50 s on a loaded
2-core CPU, most of it RealSR and x4plus.
"""

from __future__ import annotations

import functools
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import photo_u8, to_batch
from torch import Tensor

from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.core.weights import sha256_file
from roundtrip_ml.metrics import perceptual
from roundtrip_ml.metrics.base import Metric
from roundtrip_ml.metrics.registry import KEYS, SPECS, key_info, resolve_metrics
from roundtrip_ml.report.labels import MetricLabel, axis_label, label
from roundtrip_ml.upscalers import zoo
from roundtrip_ml.upscalers.loading import ModelUpscaler, load_upscaler

# Units a reader can interpret; "" is a dimensionless score. A new unit is added here on purpose.
UNITS = {"", "dB", "JOD", "cycles/px"}
PHOTOS = ("astronaut", "coffee")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors on a shared 2-core machine: one thread avoids OpenMP spin contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---- metrics ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(KEYS))
def test_every_stored_key_is_labelled_from_the_registry(key: str) -> None:
    info = KEYS[key]
    assert info.label.strip(), f"{key}: no display label"
    assert info.unit in UNITS, f"{key}: unit {info.unit!r} is not one of {sorted(UNITS)}"
    assert info.direction in ("higher", "lower", "zero")
    assert label(key) == MetricLabel(info.label, info.unit, info.direction)
    arrow = {"higher": "↑", "lower": "↓", "zero": "→0"}[info.direction]
    assert axis_label(key).endswith(arrow) and axis_label(key).startswith(info.label)
    region = label(f"{key}@patch_orange")  # a chart region keeps the key's unit and direction
    assert (region.unit, region.direction) == (info.unit, info.direction)


def test_flip_points_down_and_the_no_download_metrics_have_labels() -> None:
    assert axis_label("flip") == "FLIP ↓"
    assert axis_label("cvvdp") == "ColorVideoVDP (JOD) ↑"
    assert axis_label("ssimulacra2") == "SSIMULACRA 2 ↑" and axis_label("vmaf") == "VMAF ↑"


@functools.cache
def _metric(name: str) -> Metric | str:
    """The registry's metric built once on the CPU, or why it cannot be built here."""
    spec = SPECS[name]
    if spec.backbone is not None and perceptual.find_backbone(spec.backbone) is None:
        return perceptual.missing_backbone_hint(spec.backbone)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return resolve_metrics([name], torch.device("cpu"))[0]
    except ConfigError as e:
        if spec.extra:  # an optional package is missing: the error says which
            return f"needs the `{spec.extra}` extra: {e}"
        raise


def _built(name: str) -> Metric:
    m = _metric(name)
    if isinstance(m, str):
        pytest.skip(f"{name}: {m}")
    return m


def _pair(name: str) -> tuple[Tensor, Tensor]:
    """Two real photo crops at the metric's smallest useful size, and a damaged copy of them
    (half-size bilinear roundtrip plus seeded noise: clearly worse, never identical)."""
    size = max(SPECS[name].min_size, 32)
    ref = torch.cat([to_batch(photo_u8(p, size, size)) for p in PHOTOS])
    low = F.interpolate(ref, scale_factor=0.5, mode="bilinear", antialias=True)
    blur = F.interpolate(low, size=(size, size), mode="bilinear")
    noise = 0.03 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(0))
    return (blur + noise).clamp(0, 1), ref


@functools.cache
def _scores(name: str) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
    """(damaged vs ref, ref vs ref, each damaged image alone stacked) for one metric."""
    m = _built(name)
    x, ref = _pair(name)
    one = [m(x[i : i + 1], ref[i : i + 1]) for i in range(len(x))]
    alone = {k: torch.cat([o[k] for o in one]) for k in one[0]}
    return m(x, ref), m(ref, ref), alone


@pytest.mark.parametrize("name", list(SPECS))
def test_metric_returns_finite_n_values_per_key(name: str) -> None:
    damaged, _, _ = _scores(name)
    assert set(damaged) == set(SPECS[name].keys) or set(damaged) == {name}
    for key, v in damaged.items():
        assert v.shape == (len(PHOTOS),) and v.dtype == torch.float32, (key, v.shape, v.dtype)
        assert torch.isfinite(v).all(), (key, v)


@pytest.mark.parametrize("name", list(SPECS))
def test_metric_direction_is_the_registrys(name: str) -> None:
    """The stated direction is what the numbers do: the damaged copy scores worse."""
    spec = SPECS[name]
    assert _built(name).higher_is_better == spec.higher_is_better
    damaged, same, _ = _scores(name)
    for key, v in damaged.items():
        info = KEYS[key.partition(":")[0]]
        d, s = v.double(), same[key].double()
        if info.direction == "higher":
            assert (d < s).all(), (key, d, s)
        elif info.direction == "lower":
            assert (d > s).all(), (key, d, s)
        else:  # signed: identical images sit at 0, damage moves away from it
            assert (s.abs() <= d.abs()).all() and d.abs().max() > 0, (key, d, s)


@pytest.mark.parametrize("name", list(SPECS))
def test_identical_images_score_the_perfect_value(name: str) -> None:
    _, same, _ = _scores(name)
    for key, v in same.items():
        perfect = KEYS[key.partition(":")[0]].perfect
        if math.isnan(perfect):  # the registry states no perfect value: none may be assumed
            assert torch.isfinite(v).all() and key_info(key) is None, (key, v)
        elif math.isinf(perfect):
            assert (v == perfect).all(), (key, v)
        else:
            assert torch.allclose(v, torch.full_like(v, perfect), atol=1e-4), (key, v, perfect)


@pytest.mark.parametrize("name", list(SPECS))
def test_a_batch_equals_its_images_one_by_one(name: str) -> None:
    damaged, _, alone = _scores(name)
    for key, v in damaged.items():
        assert torch.allclose(v, alone[key], rtol=1e-5, atol=1e-5), (key, v, alone[key])


# ---- models -------------------------------------------------------------------------------------

OFFLINE = sorted(e.name for e in zoo.load_registry().values() if e.offline)
CROP = (100, 200, 24)  # y, x, side of the coffee photo: textured, and wide enough for every
# family's prepadding (Real-CUGAN x4 reflects 19 px; reflection needs a larger input)


@functools.cache
def _model_run(name: str) -> tuple[ModelUpscaler, Tensor, Tensor, Tensor]:
    """The model loaded from its installed package (hashes checked), and two forwards."""
    found = zoo.find_offline(zoo.get_entry(name), check_hash=False)
    if found is None:
        pkgs = " or ".join(s.package for s in zoo.get_entry(name).offline)
        pytest.skip(f"{name}: no offline package installed (pip install {pkgs})")
    y, x, side = CROP
    inp = to_batch(photo_u8("coffee")[y : y + side, x : x + side])
    up = load_upscaler(name, device="cpu", source="ncnn")
    return up, inp, up.forward(inp), up.forward(inp)


@pytest.mark.parametrize("name", [n for n in OFFLINE if zoo.get_entry(n).family])
def test_family_object_recognises_its_files_as_the_registry_does(name: str) -> None:
    """The family object's file patterns give each shipped file the family, variant, scale (or
    none: loading measures it) and noise its registry entry states (what an
    ``ncnn:PATH.param`` of that file runs with)."""
    from roundtrip_ml.upscalers.ncnn.families import FAMILY_TABLE, spec_for_file

    e = zoo.get_entry(name)
    fam = FAMILY_TABLE[e.family]
    assert fam.license and fam.page and fam.packages and fam.patterns
    assert {s.package for s in e.offline} <= {p.name for p in fam.packages}
    for src in e.offline:
        family, variant, scale, noise = spec_for_file(src.param)
        assert (family, variant) == (e.family, e.family_variant), src.param
        assert scale in (None, e.scale) and noise == e.noise, src.param  # None: measured


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_model_loads_with_its_recorded_hashes(name: str) -> None:
    up, _, _, _ = _model_run(name)  # loading re-hashes the .bin against the registry pin
    entry = zoo.get_entry(name)
    found = zoo.find_offline(entry, check_hash=False)
    assert found is not None
    assert up.describe()["weights_sha256"] == found.source.bin_sha256 == sha256_file(found.bin)
    if found.source.param_sha256:
        assert sha256_file(found.param) == found.source.param_sha256, found.param
    assert up.describe()["arch"] == entry.arch


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_model_runs_at_its_native_scale(name: str) -> None:
    up, inp, y, _ = _model_run(name)
    s = zoo.get_entry(name).scale
    assert up.native_scale == s
    assert y.shape == (1, 3, inp.shape[2] * s, inp.shape[3] * s)
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    # an upscale of this input, not noise: shrunk back it is close to the input (all 55
    # models measured 27-56 dB here)
    back = F.avg_pool2d(y, s) if s > 1 else y
    psnr = -10 * torch.log10(((back - inp) ** 2).mean())
    assert psnr > 24, f"{name}: {float(psnr):.1f} dB from its own input"


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_model_is_deterministic(name: str) -> None:
    _, _, y1, y2 = _model_run(name)
    assert torch.equal(y1, y2)


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_model_takes_an_input_smaller_than_its_padding(name: str) -> None:
    """A 7 px crop (a thumbnail's low-res side) is padded up to the model's minimum and cropped
    back: Real-CUGAN x2 once failed inside torch's reflect padding at 16 px."""
    up, _, _, _ = _model_run(name)
    x = to_batch(photo_u8("coffee")[100:107, 200:207])
    s = zoo.get_entry(name).scale
    y = up.forward(x)
    assert y.shape == (1, 3, 7 * s, 7 * s) and torch.isfinite(y).all()


# ---- value sets ---------------------------------------------------------------------------------


def test_figure_styles_and_layouts_are_the_specs_value_sets() -> None:
    """`plot --style/--layout` offer core.specs' values; the figure code must draw every one."""
    from typing import get_args

    from roundtrip_ml.core.specs import Layout, Style
    from roundtrip_ml.report import plots

    assert set(plots.STYLES) == set(get_args(Style))
    assert set(plots.WIDTHS) == set(get_args(Layout))
