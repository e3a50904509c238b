"""The engine's metric dispatch: which metrics, against which references, for which chains.

Values stay on the device as `MetricRows` (one metric x reference for some chains of a batch)
until a checkpoint turns them into tidy table rows; nothing here syncs with the host except the
region metrics of chart inputs (OCR), which run at the metric stride only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import torch
from torch import Tensor

from ..core.errors import ConfigError, MeasurementError
from ..imaging.resample import resize
from ..metrics import DEFAULT_METRICS, SPECS, Metric, psnr, resolve_metrics
from ..metrics.regions import RegionSet, load_region_set
from .config import ExperimentConfig
from .plan import Batch, Plan


@dataclass(frozen=True)
class MetricRows:
    """One metric against one reference for some chains of a batch, values on the device.

    ``chains`` indexes the batch. ``group`` marks statistics of a whole replica group (the
    mean pairwise distance), stored on the group's unperturbed chain with ``group = True``.
    """

    generation: int
    metric: str
    reference: str
    values: Tensor  # (k,) on the device
    chains: Tensor  # (k,) int64 indices into batch.chains
    group: bool = False


class Measurer:
    """Builds the run's metrics once and measures one generation of a batch."""

    def __init__(self, cfg: ExperimentConfig, device: torch.device) -> None:
        self.cfg = cfg
        names = list(cfg.metrics) if cfg.metrics is not None else list(DEFAULT_METRICS)
        self.metrics: list[Metric] = resolve_metrics(names, device)
        self._region_sets: dict[str, RegionSet | None] = {}

    def details(self) -> dict[str, dict[str, Any]]:
        """Implementation facts of the metrics that have them (cvvdp's display model, the
        VMAF model, ...), for the manifest."""
        out: dict[str, dict[str, Any]] = {}
        for m in self.metrics:
            spec = SPECS.get(m.name.partition(":")[0])
            if spec is not None and spec.about is not None:
                out[m.name] = dict(spec.about())
        return out

    def due(self, g: int) -> bool:
        """Metrics are taken at the stride, at generation 1 and at the last generation."""
        return g % self.cfg.metric_stride == 0 or g in (1, self.cfg.generations)

    def crop(self, t: Tensor) -> Tensor:
        if self.cfg.metric_crop is None:
            return t
        cx, cy, cw, ch = self.cfg.metric_crop
        return t[..., cy : cy + ch, cx : cx + cw]

    def check_sizes(self, plan: Plan) -> dict[str, list[str]]:
        """A metric the user asked for by name must fit every image (ConfigError); a default
        one that does not fit is skipped for that batch: returns batch_id -> skipped names."""
        skipped: dict[str, list[str]] = {}
        crop = self.cfg.metric_crop
        for b in plan.batches:
            h, w = b.size
            if crop is not None and (crop[0] + crop[2] > w or crop[1] + crop[3] > h):
                raise ConfigError(
                    "metric_crop",
                    f"{crop[0]},{crop[1]} {crop[2]}x{crop[3]} reaches outside the "
                    f"{b.size[1]}x{b.size[0]} images of batch {b.batch_id}",
                    "fit it inside every image",
                )
            probe = torch.empty(1, 3, *b.size, device="meta")
            h, w = self.crop(probe).shape[-2:]
            small = [m.name for m in self.metrics if min(h, w) < m.min_size]
            if small and self.cfg.metrics is not None:
                raise ConfigError(
                    "metric_crop" if crop is not None else "metrics",
                    f"{', '.join(small)} cannot measure {w}x{h} images (batch {b.batch_id})",
                    "drop them or use larger images",
                )
            if small:
                skipped[b.batch_id] = small
        return skipped

    def measure(
        self,
        batch: Batch,
        g: int,
        x: Tensor,
        original: Tensor,
        prev: Tensor,
        first: Tensor,
        lo: Tensor,
    ) -> list[MetricRows]:
        """All rows of generation ``g``. Metrics see RGB (a carried alpha is left out); plain
        metrics see the unperturbed chains only (replicas get the sensitivity rows)."""
        x, original, prev, first, lo = (t[:, :3] for t in (x, original, prev, first, lo))
        idx = [i for i, c in enumerate(batch.chains) if c.replica == 0]
        base = torch.tensor(idx, device=x.device)

        def pick(t: Tensor) -> Tensor:
            return t if len(idx) == len(t) else t.index_select(0, base)

        xb = pick(x)
        refs = {"original": pick(original), "previous": pick(prev)}
        if g > 1:
            refs["first"] = pick(first)
        h, w = self.crop(xb).shape[-2:]
        rows: list[MetricRows] = []
        for m in self.metrics:
            if min(h, w) < m.min_size:
                continue
            for ref_name in m.references:
                if ref_name in refs:
                    for key, vals in m(self.crop(xb), self.crop(refs[ref_name])).items():
                        rows.append(MetricRows(g, key, ref_name, vals, base))
        if self.cfg.region_metrics:
            rows += self._region_rows(batch, g, x, original, idx)
        if self.cfg.lowres_consistency and batch.recipe.scale != 1:
            back = resize(xb, (lo.shape[-2], lo.shape[-1]), batch.recipe.downscaler)
            rows.append(MetricRows(g, "psnr", "lowres", psnr(back.clamp(0, 1), pick(lo)), base))
        if self.cfg.replicas:
            rows += _replica_rows(batch, g, x, original)
        return rows

    def _region_rows(
        self, batch: Batch, g: int, x: Tensor, original: Tensor, idx: list[int]
    ) -> list[MetricRows]:
        """Per-region metrics (text CER by OCR, MTF50, patch CIEDE2000, spectral) for inputs that
        carry a chart sidecar (``roundtrip chart``); a host round trip, so metric stride only."""
        rows: list[MetricRows] = []
        for i in idx:
            src = batch.chains[i].image
            if src not in self._region_sets:
                self._region_sets[src] = load_region_set(src)
            regions = self._region_sets[src]
            if regions is None:
                continue
            at = torch.tensor([i], device=x.device)
            values = regions.compute(x[i : i + 1], original[i : i + 1], ocr=self.cfg.ocr)
            rows += [MetricRows(g, name, "original", v, at) for name, v in values.items()]
        return rows


def _replica_rows(batch: Batch, g: int, x: Tensor, original: Tensor) -> list[MetricRows]:
    """Sensitivity: each member's MSE to the original, each replica's distance to its
    unperturbed chain, and the mean pairwise distance within each group."""
    dev = x.device
    everyone = torch.arange(len(x), device=dev)
    members: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(batch.chains):
        members[c.group].append(i)
    rep_idx: list[int] = []
    unp_idx: list[int] = []
    heads: list[int] = []
    pair_mse: list[Tensor] = []
    pair_psnr: list[Tensor] = []
    for idxs in members.values():
        head = idxs[0]  # the unperturbed chain comes first in its group
        rep_idx += idxs[1:]
        unp_idx += [head] * (len(idxs) - 1)
        a = torch.tensor([i for i, _ in combinations(idxs, 2)], device=dev)
        b = torch.tensor([j for _, j in combinations(idxs, 2)], device=dev)
        xa, xb = x.index_select(0, a), x.index_select(0, b)
        heads.append(head)
        pair_mse.append(mse(xa, xb).mean())
        pair_psnr.append(psnr(xa, xb).mean())
    ri, ui = torch.tensor(rep_idx, device=dev), torch.tensor(unp_idx, device=dev)
    xr, xu = x.index_select(0, ri), x.index_select(0, ui)
    hi = torch.tensor(heads, device=dev)
    return [
        MetricRows(g, "mse", "original", mse(x, original), everyone),
        MetricRows(g, "mse", "unperturbed", mse(xr, xu), ri),
        MetricRows(g, "psnr", "unperturbed", psnr(xr, xu), ri),
        MetricRows(g, "mse", "replicas", torch.stack(pair_mse), hi, group=True),
        MetricRows(g, "psnr", "replicas", torch.stack(pair_psnr), hi, group=True),
    ]


def mse(a: Tensor, b: Tensor) -> Tensor:
    return ((a - b) ** 2).mean(dim=(1, 2, 3))


def undefined_allowed(metric: str) -> bool:
    """Per-region chart measures (``name@region``) can be undefined by definition (MTF50 of an
    edge still sharper than the highest frequency measured): no row is written for them, and
    the engine counts them in the manifest. Any other NaN is an error."""
    return "@" in metric


def table_rows(
    run_id: str, batch: Batch, rows: list[MetricRows], undefined: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """Tidy rows (store.METRIC_COLUMNS) from device rows: one host copy per row group.

    A NaN value is refused here, before anything is written: a research instrument never
    records a number it did not measure (PSNR's +inf for identical images is kept). Region
    measures that are undefined are left out and counted in ``undefined``."""
    out: list[dict[str, Any]] = []
    for r in rows:
        values = r.values.double().tolist()
        for v, i in zip(values, r.chains.tolist(), strict=True):
            c = batch.chains[i]
            if v != v and undefined is not None and undefined_allowed(r.metric):
                undefined[r.metric] = undefined.get(r.metric, 0) + 1
                continue
            if v != v:  # NaN
                raise MeasurementError(
                    f"metric {r.metric} vs {r.reference}",
                    f"is NaN for chain {c.chain_id} at generation {r.generation}",
                    "check the inputs (constant images?) or drop this metric",
                )
            out.append(
                {
                    "run_id": run_id,
                    "chain_id": c.chain_id,
                    "image": c.image,
                    "image_name": c.image_name,
                    "upscaler": c.upscaler,
                    "downscaler": c.downscaler,
                    "scale": c.scale,
                    "codec": c.codec,
                    "replica": c.replica,
                    "scope": "group" if r.group else "chain",
                    "generation": r.generation,
                    "metric": r.metric,
                    "reference": r.reference,
                    "value": v,
                }
            )
    return out
