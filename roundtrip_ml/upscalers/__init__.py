"""Upscalers: classical resamplers and ML super-resolution models behind one interface.

Importing this package (for the registry in ``zoo``, say) does not load torch: the classes
load with the first upscaler, so a config error names its typo before torch starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.specs import InferenceOptions
from ..imaging.kernels import is_classical

if TYPE_CHECKING:
    import torch

    from .base import ClassicalUpscaler, Upscaler, fit_to

__all__ = [
    "ClassicalUpscaler",
    "InferenceOptions",
    "Upscaler",
    "create_upscaler",
    "fit_to",
    "is_classical",
    "list_upscalers",
]


def __getattr__(name: str) -> Any:
    if name in ("ClassicalUpscaler", "Upscaler", "fit_to"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def create_upscaler(
    spec: str,
    device: torch.device | str = "cpu",
    options: InferenceOptions | None = None,
) -> Upscaler:
    """Build the upscaler a config names.

    Args:
        spec: A kernel name, a registry name or alias, a weights path or ``ncnn:PATH.param``.
        device: Where it runs.
        options: How an ML model runs (precision, tiling, ...); classical resamplers ignore it.

    Returns:
        An upscaler whose ``forward`` takes N x 3 x h x w in [0, 1].

    Examples:
        >>> create_upscaler("lanczos3").describe()["kind"]
        'classical'
    """
    from .base import ClassicalUpscaler

    if is_classical(spec):
        return ClassicalUpscaler(spec).to(device)
    from .loading import load_upscaler  # spandrel loads with the first model

    return load_upscaler(spec, device=device, options=options)


def list_upscalers(pattern: str = "*") -> list[str]:
    """Classical kernels and registry models whose name matches a glob.

    Args:
        pattern: A glob over the canonical names (aliases also work in configs).

    Returns:
        The matching names, sorted.

    Examples:
        >>> list_upscalers("lanczos*")
        ['lanczos2', 'lanczos3']
    """
    import fnmatch

    from ..imaging.kernels import KERNELS
    from . import zoo

    names = [*KERNELS, *zoo.load_registry()]  # canonical names; aliases also work in configs
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))
