"""Learned perceptual metrics: LPIPS (alex, vgg; v0.1), DISTS, and any pyiqa metric by name.

LPIPS and DISTS need torchvision's ImageNet backbones (AlexNet, VGG16). We never substitute a
random backbone: if the verified file is not on disk, the builder returns None and the registry
warns once and drops the metric. The small learned heads (LPIPS linear layers, DISTS alpha/beta)
are pinned by SHA-256 in ``HEADS``: the copies inside the lpips and torchmetrics wheels are used
when their hash matches (so they work offline), else the upstream file is downloaded.

Where the backbones come from, in order: the models' weights cache
(``roundtrip_ml.core.weights.cache_dir()``, $ROUNDTRIP_CACHE_DIR), then torch hub's checkpoint
dir (where torchvision caches ``alexnet(weights="DEFAULT")``). Every file is checked against its
published SHA-256 before use; a mismatch is an error, not a fallback. When neither has it and
offline mode ($ROUNDTRIP_OFFLINE) is off, it is fetched once into the models' cache with pooch
(hash-checked); a failed fetch drops the metric with the same warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import ConfigError, WeightsError
from ..core.weights import cache_dir, download, offline_mode, sha256_file
from .base import device_constant


@dataclass(frozen=True)
class Backbone:
    arch: str
    filename: str
    sha256: str
    taps: tuple[int, ...]  # indices in ``features`` whose outputs the metric compares

    @property
    def url(self) -> str:
        return f"https://download.pytorch.org/models/{self.filename}"


ALEXNET = Backbone(
    "alexnet",
    "alexnet-owt-7be5be79.pth",
    "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
    (1, 4, 7, 9, 11),
)
VGG16 = Backbone(
    "vgg16",
    "vgg16-397923af.pth",
    "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    (3, 8, 15, 22, 29),
)

log = logging.getLogger(__name__)
_VERIFIED: dict[tuple[str, int, int], bool] = {}


def weight_dirs() -> list[Path]:
    """Directories searched for backbone weights, in order (the first is where fetches go)."""

    return [cache_dir(), Path(torch.hub.get_dir()) / "checkpoints"]


def _verified(path: Path, backbone: Backbone) -> bool:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(path) == backbone.sha256
    return _VERIFIED[key]


def find_backbone(backbone: Backbone) -> Path | None:
    """The verified local file for ``backbone``, or None if it is not on disk."""
    for d in weight_dirs():
        path = d / backbone.filename
        if not path.is_file():
            continue
        if not _verified(path, backbone):
            raise WeightsError(
                str(path),
                f"SHA-256 does not match the published {backbone.arch} weights",
                "delete the file and fetch it again",
            )
        return path
    return None


def fetch_backbone(backbone: Backbone) -> Path | None:
    """The verified backbone file, downloading it once unless offline; None if unavailable."""
    path = find_backbone(backbone)
    if path is not None:
        return path

    if offline_mode():
        return None
    dest = weight_dirs()[0] / backbone.filename
    log.warning("fetching %s into %s (once)", backbone.url, dest.parent)
    try:  # a SHA-256 mismatch raises; an unreachable server means "not available"
        download([backbone.url], backbone.sha256, None, dest, what=backbone.arch, progress=False)
    except WeightsError as e:
        if not e.problem.startswith("download failed"):
            raise
        log.warning("cannot fetch %s: %s", backbone.url, e.problem)
        return None
    return find_backbone(backbone)


def missing_backbone_hint(backbone: Backbone) -> str:
    return (
        f"{backbone.arch} ImageNet weights ({backbone.filename}) are not cached; fetch them once "
        f"with: python -c \"import torchvision.models as m; m.{backbone.arch}(weights='DEFAULT')\" "
        f"(or put {backbone.url} in {weight_dirs()[0]}; when online and $ROUNDTRIP_OFFLINE is "
        "unset it is fetched automatically)"
    )


def _load_features(backbone: Backbone, state: dict[str, Tensor]) -> nn.Sequential:
    """The backbone's ``features`` up to the last tap, holding ``state``'s tensors.

    Built on the meta device and assigned, so no random initialisation is ever computed (or
    left behind): every parameter comes from ``state``.
    """
    import torchvision.models as tvm

    with torch.device("meta"):
        features = getattr(tvm, backbone.arch)(weights=None).features[: backbone.taps[-1] + 1]
    prefix = "features."
    own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = {k: v for k, v in own.items() if int(k.split(".")[0]) <= backbone.taps[-1]}
    features.load_state_dict(own, strict=True, assign=True)
    return features


@dataclass(frozen=True)
class HeadWeights:
    """The small learned weights on top of a backbone, pinned by SHA-256 like every file we
    load. Copies inside installed wheels are used only when their hash matches."""

    title: str
    filename: str
    sha256: str
    url: str
    packaged: tuple[tuple[str, str], ...]  # (installed package, path inside it)


HEADS = {
    "alex": HeadWeights(
        "LPIPS v0.1 AlexNet heads (BSD-2-Clause)",
        "lpips-v0.1-alex.pth",
        "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
        "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
        (
            ("lpips", "weights/v0.1/alex.pth"),
            ("torchmetrics", "functional/image/lpips_models/alex.pth"),
        ),
    ),
    "vgg": HeadWeights(
        "LPIPS v0.1 VGG16 heads (BSD-2-Clause)",
        "lpips-v0.1-vgg.pth",
        "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
        (
            ("lpips", "weights/v0.1/vgg.pth"),
            ("torchmetrics", "functional/image/lpips_models/vgg.pth"),
        ),
    ),
    "dists": HeadWeights(
        "DISTS alpha/beta",
        "dists-weights.pt",
        "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
        "https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt",
        (("torchmetrics", "functional/image/dists_models/weights.pt"),),
    ),
}


def head_file(name: str) -> Path:
    """The verified head weights ``name`` (alex, vgg, dists): the cache, then a copy in an
    installed wheel (lpips, torchmetrics) whose SHA-256 matches, else a download (unless
    offline). A copy whose hash differs is never used."""
    import importlib.util

    head = HEADS[name]
    candidates = [cache_dir() / head.filename]
    for package, rel in head.packaged:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            candidates.append(Path(next(iter(spec.submodule_search_locations))) / rel)
    for path in candidates:
        if path.is_file() and sha256_file(path) == head.sha256:
            return path
    return download(
        [head.url], head.sha256, None, cache_dir() / head.filename, what=head.title, progress=False
    )


def normalise(x: Tensor, convention: str) -> Tensor:
    """The one place inputs in [0, 1] are mapped to what a backbone expects.

    ``lpips``: [-1, 1] followed by LPIPS's scaling layer; ``imagenet``: torchvision mean/std.
    """
    if convention == "lpips":
        shift = device_constant((-0.030, -0.088, -0.188), x.device, x.dtype).view(1, 3, 1, 1)
        scale = device_constant((0.458, 0.448, 0.450), x.device, x.dtype).view(1, 3, 1, 1)
        return (x * 2 - 1 - shift) / scale
    if convention == "imagenet":
        mean = device_constant((0.485, 0.456, 0.406), x.device, x.dtype).view(1, 3, 1, 1)
        std = device_constant((0.229, 0.224, 0.225), x.device, x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std
    raise ValueError(convention)


def _tapped(features: nn.Sequential, taps: tuple[int, ...], h: Tensor) -> list[Tensor]:
    out = []
    for i, layer in enumerate(features):
        h = layer(h)
        if i in taps:
            out.append(h)
    return out


class LPIPS(nn.Module):
    """LPIPS v0.1 (Zhang et al. 2018): unit-normalised backbone features, learned 1x1 heads."""

    def __init__(
        self, backbone: Backbone, backbone_state: dict[str, Tensor], heads: dict[str, Tensor]
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.features = _load_features(backbone, backbone_state)
        self.heads = nn.ParameterList(
            [
                nn.Parameter(heads[f"lin{k}.model.1.weight"], requires_grad=False)
                for k in range(len(backbone.taps))
            ]
        )
        self.requires_grad_(False).eval()

    @torch.no_grad()
    def forward(self, x: Tensor, ref: Tensor) -> Tensor:
        n = x.shape[0]
        feats = _tapped(self.features, self.backbone.taps, normalise(torch.cat([x, ref]), "lpips"))
        total = x.new_zeros(n)
        for f, w in zip(feats, self.heads, strict=True):
            f = f / (f.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            d = (f[:n] - f[n:]).square()
            total = total + F.conv2d(d, w).mean(dim=(1, 2, 3))
        return total


class DISTS(nn.Module):
    """DISTS (Ding et al. 2020): VGG16 with L2 pooling; texture (mean) + structure (cov) terms."""

    alpha: Tensor  # buffers: per-channel weights of the two terms
    beta: Tensor

    def __init__(self, backbone_state: dict[str, Tensor], heads: dict[str, Tensor]) -> None:
        super().__init__()
        features = _load_features(VGG16, backbone_state)
        for i, layer in enumerate(features):
            if isinstance(layer, nn.MaxPool2d):
                conv = features[i - 2]
                assert isinstance(conv, nn.Conv2d)
                features[i] = _L2Pool(conv.out_channels)
        self.features = features
        self.channels = (3, 64, 128, 256, 512, 512)
        alpha, beta = heads["alpha"], heads["beta"]
        total = alpha.sum() + beta.sum()
        self.register_buffer("alpha", (alpha / total).flatten())
        self.register_buffer("beta", (beta / total).flatten())
        self.requires_grad_(False).eval()

    @torch.no_grad()
    def forward(self, x: Tensor, ref: Tensor) -> Tensor:
        n = x.shape[0]
        both = torch.cat([x, ref])
        feats = [both, *_tapped(self.features, VGG16.taps, normalise(both, "imagenet"))]
        alphas = self.alpha.split(self.channels)
        betas = self.beta.split(self.channels)
        score = x.new_zeros(n)
        c = 1e-6
        for f, a, b in zip(feats, alphas, betas, strict=True):
            fx, fr = f[:n], f[n:]
            mx, mr = fx.mean(dim=(2, 3)), fr.mean(dim=(2, 3))
            vx = (fx - mx[..., None, None]).square().mean(dim=(2, 3))
            vr = (fr - mr[..., None, None]).square().mean(dim=(2, 3))
            cov = (fx * fr).mean(dim=(2, 3)) - mx * mr
            texture = (2 * mx * mr + c) / (mx * mx + mr * mr + c)
            structure = (2 * cov + c) / (vx + vr + c)
            score = score + (texture * a).sum(dim=1) + (structure * b).sum(dim=1)
        return 1 - score


class _L2Pool(nn.Module):
    """sqrt of a Hann-weighted (3 x 3) blur of x^2, stride 2: DISTS's alias-free max-pool."""

    kernel: Tensor  # a buffer

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([0.5, 1.0, 0.5])
        g = torch.outer(a, a)
        self.register_buffer("kernel", (g / g.sum()).expand(channels, 1, 3, 3).clone())

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv2d(x.square(), self.kernel, stride=2, padding=1, groups=x.shape[1])
        return (y + 1e-12).sqrt()


def _load(path: Path) -> dict[str, Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def build_lpips(net: str, device: torch.device) -> LPIPS | None:
    """LPIPS with verified backbone weights on ``device``; None if the backbone is not cached."""
    backbone = {"alex": ALEXNET, "vgg": VGG16}[net]
    path = fetch_backbone(backbone)
    if path is None:
        return None
    heads = _load(head_file(net))
    return LPIPS(backbone, _load(path), heads).to(device)


def build_dists(device: torch.device) -> DISTS | None:
    path = fetch_backbone(VGG16)
    if path is None:
        return None
    return DISTS(_load(path), _load(head_file("dists"))).to(device)


def build_pyiqa(name: str, device: torch.device) -> tuple[object, bool, bool]:
    """(metric, higher_is_better, is_full_reference) for ``pyiqa:NAME``; pyiqa is optional."""
    try:
        import pyiqa  # type: ignore[import-not-found]
    except ImportError as e:
        raise ConfigError(
            f"metric pyiqa:{name}",
            "pyiqa is not installed",
            "pip install 'roundtrip-ml[pyiqa]' (note: pyiqa is PolyForm Noncommercial)",
        ) from e
    try:
        m = pyiqa.create_metric(name, device=device, as_loss=False)
    except Exception as e:  # pyiqa raises bare exceptions for unknown names and missing weights
        raise ConfigError(
            f"metric pyiqa:{name}",
            f"pyiqa cannot create it ({e})",
            "see pyiqa.list_models() for names",
        ) from e
    return m, not bool(m.lower_better), getattr(m, "metric_mode", "FR") == "FR"
