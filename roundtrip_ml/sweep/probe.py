"""How much work a sweep is: chain-generations and pixels per upscaler, and a time estimate
from a short measured probe (a few generations of each upscaler on a small crop, metrics
included) on the device the sweep will use."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .grid import SweepPlan


@dataclass
class Estimate:
    upscaler: str
    cells: int
    units: int
    chain_generations: int
    megapixel_generations: float  # sum over chains of generations x H x W / 1e6
    s_per_megapixel_generation: float | None = None  # from the probe
    probe_error: str | None = None

    @property
    def seconds(self) -> float | None:
        if self.s_per_megapixel_generation is None:
            return None
        return self.megapixel_generations * self.s_per_megapixel_generation

    def asdict(self) -> dict[str, Any]:
        return {**self.__dict__, "seconds": self.seconds}


def estimate_work(plan: SweepPlan) -> dict[str, Estimate]:
    out: dict[str, Estimate] = {}
    for u in plan.units:
        e = out.setdefault(u.upscaler, Estimate(u.upscaler, 0, 0, 0, 0.0))
        chains = len(u.cells) * (1 + u.config.get("replicas", 0))
        e.cells += len(u.cells)
        e.units += 1
        e.chain_generations += u.work
        e.megapixel_generations += chains * u.config["generations"] * u.size[0] * u.size[1] / 1e6
    return out


def probe(
    plan: SweepPlan, estimates: dict[str, Estimate], *, generations: int = 2, crop: int = 64
) -> None:
    """Time ``generations`` roundtrips (after one warm-up) of each upscaler on a ``crop``-pixel
    crop of the first readable input, at the plan's first scale and codec, on the sweep's
    device; fills ``s_per_megapixel_generation`` or ``probe_error`` in place."""
    import torch

    from ..core.errors import RoundtripError
    from ..core.info import resolve_device
    from ..metrics import DEFAULT_METRICS, resolve_metrics
    from ..pipeline.config import make_config
    from ..pipeline.plan import prepare_image
    from ..pipeline.recipe import step_options
    from ..pipeline.step import generation_step
    from ..upscalers import create_upscaler

    if not plan.units:
        return
    u0 = plan.units[0]
    cfg = make_config({**u0.config, "images": u0.config["images"][:1]})
    device = resolve_device(cfg.device)
    x, _ = prepare_image(cfg.images[0], cfg)
    h, w = x.shape[-2:]
    top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    x = x[..., top : top + crop, left : left + crop].contiguous().to(device)
    codec = cfg.specs().schedules[cfg.codecs[0]].handoff(1)
    options = step_options(cfg, cfg.stabilizers[0])  # the first unit's stabiliser and paths
    names = list(cfg.metrics) if cfg.metrics is not None else list(DEFAULT_METRICS)
    metrics = [m for m in resolve_metrics(names, device) if min(x.shape[-2:]) >= m.min_size]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for spec, est in estimates.items():
        try:
            up = create_upscaler(spec, device, cfg.inference())
            y = x
            with torch.inference_mode():
                for g in range(generations + 1):
                    if g == 1:
                        sync()
                        t0 = time.perf_counter()
                    prev = y
                    y = generation_step(
                        prev, up, cfg.downscalers[0], cfg.scales[0], codec, cfg.fit, **options
                    ).state
                    for m in metrics:
                        for ref in (x, prev, y)[: len(m.references)]:
                            m(y, ref)
                sync()
            dt = (time.perf_counter() - t0) / generations
            est.s_per_megapixel_generation = dt / (x.shape[-2] * x.shape[-1] / 1e6)
        except RoundtripError as e:
            est.probe_error = str(e)
        except Exception as e:  # a model that cannot run is reported, not fatal for the plan
            est.probe_error = f"{type(e).__name__}: {e}"
