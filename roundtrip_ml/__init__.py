"""roundtrip-ml: measure what repeated downscale -> upscale roundtrips do to images.

The package's top level is its API::

    import roundtrip_ml as rt
    t = rt.roundtrip("skimage:astronaut", "realesrgan-x4plus", generations=10)
    t.metrics                      # tidy pandas table, as in a run's metrics.parquet
    rt.plot_drift(t)               # a matplotlib Figure

Names load on first use (PEP 562), so ``import roundtrip_ml`` and the CLI's ``--help`` stay
fast and a config error prints before torch is imported.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("roundtrip-ml")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

_EXPORTS: dict[str, str] = {
    # in-memory chains and run directories
    "roundtrip": "api",
    "Trajectory": "api",
    "run": "api",
    "load_run": "report.view",
    "RunView": "report.view",
    "summarize": "api",
    "run_sweep": "api",
    "list_upscalers": "upscalers",
    "list_metrics": "metrics",
    # building blocks
    "create_upscaler": "upscalers",
    "InferenceOptions": "core.specs",
    "ExperimentConfig": "pipeline.config",
    "load_config": "pipeline.config",
    "deterministic": "core.determinism",
    # metric functions (torchmetrics' vocabulary)
    "psnr": "metrics.functional",
    "psnr_y": "metrics.functional",
    "ssim": "metrics.functional",
    "ms_ssim": "metrics.functional",
    "haarpsi": "metrics.functional",
    "gmsd": "metrics.functional",
    # figures
    "plot_drift": "figures",
    "contact_sheet": "figures",
    "compare": "figures",
    "Comparison": "figures",
    "sweep_progress": "progress",
    "write_tables": "report",
    "make_video": "report",
    "write_report": "report",
    # errors
    "RoundtripError": "core.errors",
    "ConfigError": "core.errors",
    "ImageError": "core.errors",
    "ModelError": "core.errors",
    "WeightsError": "core.errors",
    "RunStoreError": "core.errors",
    "MeasurementError": "core.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'roundtrip_ml' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .api import (
        Trajectory,
        roundtrip,
        run,
        run_sweep,
        summarize,
    )
    from .core.determinism import deterministic
    from .core.errors import (
        ConfigError,
        ImageError,
        MeasurementError,
        ModelError,
        RoundtripError,
        RunStoreError,
        WeightsError,
    )
    from .core.specs import InferenceOptions
    from .figures import Comparison, compare, contact_sheet, plot_drift
    from .metrics import list_metrics
    from .metrics.functional import gmsd, haarpsi, ms_ssim, psnr, psnr_y, ssim
    from .pipeline.config import ExperimentConfig, load_config
    from .progress import sweep_progress
    from .report import make_video, write_report, write_tables
    from .report.view import RunView, load_run
    from .upscalers import create_upscaler, list_upscalers
