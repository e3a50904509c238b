"""Per-region drift on the test chart: inputs that carry a chart sidecar measure themselves.

An image written by ``roundtrip chart OUT.png`` has ``OUT.json`` beside it, listing its regions
and their ground truth. ``load_region_set`` finds that sidecar for an image source, and
``RegionSet.compute`` turns one chain's current image into stored metric names, one per region:

- ``cer@R``, ``word_accuracy@R``, ``ocr_confidence@R``: text lines, OCR against the known
  string (tesseract; skipped with one warning where it is missing). OCR costs 0.1-0.5 s a line,
  so by default only the ``max_text_lines`` smallest lines of at least ``min_text_px`` are read;
- ``mtf50@R``: slanted edges, cycles/px (NaN while sharper than measurable, as at generation 0);
- ``deltae@R``: colour patches, mean CIEDE2000 against the patch's known sRGB colour;
- ``spectral_high@R`` / ``spectral_mid@R``: Siemens star and zone plate, band power vs the
  original's region in dB (0 = same, < 0 = detail lost).

Boxes are in the chart's own pixels, so they only apply while the chain keeps the chart's size:
an input shrunk (``max_side``) or cropped by the config is skipped with one warning.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..core.errors import ConfigError
from ..imaging.chart import Region, read_regions
from .diagnostics import ciede2000, rgb_to_lab, spectral
from .mtf import mtf50

GENERATOR = "roundtrip_ml.imaging.chart"
MIN_TEXT_PX = 16
MAX_TEXT_LINES = 4
SPECTRAL_KINDS = ("star", "zone_plate")
PATCH_SAMPLES = 32  # ΔE00 per patch from at most 32 x 32 evenly spaced pixels


def ocr_available() -> str | None:
    """None when OCR can run; else why not (the missing piece and how to get it)."""
    try:
        import pytesseract
    except ImportError:
        return "pytesseract is not installed (pip install 'roundtrip-ml[ocr]')"
    cmd = pytesseract.pytesseract.tesseract_cmd
    if shutil.which(cmd) is None:
        return f"tesseract ({cmd}) is not on PATH (Debian: apt-get install tesseract-ocr)"
    return None


@dataclass
class RegionSet:
    """The measurable regions of one chart image (``size`` = (H, W)) and the text lines to OCR."""

    regions: list[Region]
    size: tuple[int, int]
    text: list[Region] = field(default_factory=list)
    _warned: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def from_regions(
        cls,
        regions: Sequence[Region],
        size: tuple[int, int],
        *,
        min_text_px: int = MIN_TEXT_PX,
        max_text_lines: int | None = MAX_TEXT_LINES,
    ) -> RegionSet:
        """Pick the text lines to OCR: the smallest ``max_text_lines`` (None: all) of at least
        ``min_text_px``; smaller text is what fails first, the 32 px line is the shop sign."""
        lines = sorted(
            (r for r in regions if r.kind == "text" and r.truth.get("size_px", 0) >= min_text_px),
            key=lambda r: r.truth["size_px"],
        )
        if max_text_lines is not None:
            lines = lines[:max_text_lines]
        return cls(list(regions), size, lines)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def compute(self, x: Tensor, ref: Tensor, *, ocr: bool = True) -> dict[str, Tensor]:
        """Metric name -> (1,) float32 tensor on ``x``'s device, for one image ``x`` (1 x 3 x H x W)
        and its original ``ref``; empty if ``x`` is not the chart's size."""
        if x.ndim != 4 or x.shape[0] != 1 or x.shape != ref.shape:
            raise ConfigError(
                "chart region metrics",
                f"expected one image and its original, 1 x 3 x H x W each; got "
                f"{tuple(x.shape)} and {tuple(ref.shape)}",
            )
        if tuple(x.shape[-2:]) != self.size:
            self._warn_once(
                "size",
                (
                    f"chart region metrics skipped: the image is {x.shape[-1]}x{x.shape[-2]}, "
                    f"the chart {self.size[1]}x{self.size[0]} (drop max_side/center_crop for "
                    "chart runs)"
                ),
            )
            return {}
        out: dict[str, float | Tensor] = {}
        xf, rf = x.detach().float(), ref.detach().float()
        patches = [r for r in self.regions if r.kind == "patch"]
        if patches:
            out.update(
                zip((f"deltae@{r.name}" for r in patches), _patch_deltae(xf, patches), strict=True)
            )
        for r in self.regions:
            if r.kind == "edge":
                out[f"mtf50@{r.name}"] = mtf50(xf, r.box)[0]
            elif r.kind in SPECTRAL_KINDS:
                s = spectral(r.crop(xf).contiguous(), r.crop(rf).contiguous())
                out[f"spectral_high@{r.name}"] = s["spectral_high"]
                out[f"spectral_mid@{r.name}"] = s["spectral_mid"]
        if ocr and self.text:
            missing = ocr_available()
            if missing:
                self._warn_once("ocr", f"chart text lines not measured: {missing}")
            else:
                out.update(self._ocr(xf))
        return {
            k: torch.as_tensor(v, dtype=torch.float32).reshape(1).to(x.device)
            for k, v in out.items()
        }

    def _ocr(self, x: Tensor) -> dict[str, float]:
        from .ocr import ocr_scores

        out: dict[str, float] = {}
        for r in self.text:
            scores = ocr_scores(x, r.truth["text"], r.box)[0]
            out.update({f"{k}@{r.name}": v for k, v in scores.items()})
        return out


def _patch_deltae(x: Tensor, patches: Sequence[Region]) -> Tensor:
    """Mean CIEDE2000 of each patch of ``x`` (1 x 3 x H x W) against its known 8-bit sRGB
    colour, over an even grid of at most PATCH_SAMPLES^2 pixels per patch; all patches go
    through one call (on a busy CPU each tiny op costs milliseconds)."""
    crops = [_subsample(r.crop(x)[0]).reshape(3, -1) for r in patches]
    pixels = torch.cat(crops, dim=1)
    counts = [c.shape[1] for c in crops]
    known = torch.tensor([r.truth["srgb8"] for r in patches], dtype=x.dtype, device=x.device)
    known = known.T.repeat_interleave(torch.tensor(counts, device=x.device), dim=1) / 255.0
    de = ciede2000(rgb_to_lab(known[None, :, None]), rgb_to_lab(pixels.clamp(0, 1)[None, :, None]))
    return torch.stack([d.mean() for d in de.flatten().split(counts)])


def _subsample(crop: Tensor) -> Tensor:
    h, w = crop.shape[-2:]
    return crop[:, :: math.ceil(h / PATCH_SAMPLES), :: math.ceil(w / PATCH_SAMPLES)]


def sidecar_path(image_source: str) -> Path | None:
    """The chart metadata beside an image file (same path, ``.json``), if there is one."""
    if ":" in image_source and not Path(image_source).exists():
        return None  # skimage:NAME and other non-file sources
    path = Path(image_source).with_suffix(".json")
    return path if path.is_file() else None


def load_region_set(
    image_source: str,
    *,
    min_text_px: int = MIN_TEXT_PX,
    max_text_lines: int | None = MAX_TEXT_LINES,
) -> RegionSet | None:
    """The chart regions of ``image_source``, or None when it carries no chart sidecar (a
    JSON beside it that the chart generator did not write counts as none)."""
    path = sidecar_path(image_source)
    if path is None:
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("generator") != GENERATOR:
        return None
    size = meta.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise ConfigError(
            str(path),
            "chart metadata has no valid 'size'",
            "regenerate it with `roundtrip chart OUT.png`",
        )
    w, h = size
    regions = read_regions(path)
    return RegionSet.from_regions(
        regions, (h, w), min_text_px=min_text_px, max_text_lines=max_text_lines
    )
