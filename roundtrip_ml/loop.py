"""The engine: many chains, batched on one device, for hundreds of generations, resumable.

A chain is one image fed through one recipe ``down(s) -> codec -> up(s) -> codec`` again and
again. Chains that share recipe and image size run as one N x 3 x H x W batch; nothing leaves the
device inside a generation except frames (copied to the host only at the frame stride and
encoded on a writer thread) and metric values (kept on the device and flushed at checkpoints).

Exact resume: the handoff rule makes a chain's current image its whole state, so a checkpoint
(state, first upscale, generation) written atomically at every checkpoint stride, together with
the metric rows flushed just before it, lets a killed run continue and end byte-identical to an
uninterrupted one on the same device.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import traceback
import warnings
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import combinations, product
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load_file, save
from torch import Tensor

from .codecs import Codec, parse_codec
from .config import ExperimentConfig, expand_images, make_config
from .errors import ConfigError, ImageError, RoundtripError, RunStoreError
from .images import ImageInfo, load_image, quantize8, save_png, to_uint8
from .info import configure_determinism, environment, resolve_device
from .perturb import parse_perturbation, replica_generator
from .resample import lowres_size, resize
from .store import (
    CHAINS_FILE,
    CONFIG_FILE,
    MANIFEST_FILE,
    RunStore,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    rows_to_frame,
)
from .upscalers import Upscaler, create_upscaler

Progress = Callable[..., None]


# ---- plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    chain_id: str
    image: str  # source as given (path or skimage:NAME)
    image_name: str
    upscaler: str
    downscaler: str
    scale: float
    codec: str
    replica: int  # 0: the unperturbed chain; 1..K: perturbed copies of its start image
    group: str  # chain_id of the unperturbed chain this replica belongs to


@dataclass
class Batch:
    batch_id: str
    chains: list[Chain]
    size: tuple[int, int]

    @property
    def recipe(self) -> Chain:
        return self.chains[0]


@dataclass
class Plan:
    run_id: str
    chains: list[Chain]
    batches: list[Batch]
    images: dict[str, ImageInfo]
    image_errors: dict[str, str]


def _slug(text: str) -> str:
    """A file-name-safe token: a path gives its stem, ``jpeg:90`` gives ``jpeg90``."""
    text = Path(text).stem if ("/" in text or "\\" in text) else text
    return re.sub(r"[^A-Za-z0-9]+", "", text).lower() or "x"


def run_id_for(cfg: ExperimentConfig) -> str:
    """Deterministic: the same config gives the same run_id, so resumed tables match."""
    identity = {k: v for k, v in cfg.to_json().items() if k != "output"}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{_slug(cfg.name)}-{digest[:10]}"


def prepare_image(source: str, cfg: ExperimentConfig) -> tuple[Tensor, ImageInfo]:
    """Load one input and apply the config's preprocessing (max_side, then centre crop)."""
    x, info = load_image(
        source, alpha=cfg.alpha, background=cfg.background, max_pixels=cfg.max_pixels
    )
    h, w = x.shape[-2:]
    if cfg.max_side and max(h, w) > cfg.max_side:
        f = cfg.max_side / max(h, w)
        x = resize(x.double(), (max(1, round(h * f)), max(1, round(w * f))), "lanczos3")
        x = x.clamp(0, 1).float()
        info.notes.append(f"shrunk to max side {cfg.max_side} (lanczos3)")
    if cfg.center_crop:
        ch, cw = cfg.center_crop
        h, w = x.shape[-2:]
        if ch > h or cw > w:
            raise ImageError(
                info.source, f"{w}x{h} is smaller than center_crop {cw}x{ch}", "lower center_crop"
            )
        top, left = (h - ch) // 2, (w - cw) // 2
        x = x[..., top : top + ch, left : left + cw]
        info.notes.append(f"centre crop {cw}x{ch} at ({left}, {top})")
    return x.contiguous(), info


def probe_inputs(
    sources: list[str], cfg: ExperimentConfig
) -> tuple[dict[str, ImageInfo], dict[str, tuple[int, int]], dict[str, str]]:
    """Read every input once: (info, size after preprocessing) per readable source, and the
    error of each unreadable one (it fails its own chains, not the run)."""
    infos: dict[str, ImageInfo] = {}
    sizes: dict[str, tuple[int, int]] = {}
    errors: dict[str, str] = {}
    for src in sources:
        try:
            x, info = prepare_image(src, cfg)
        except ImageError as e:
            errors[src] = str(e)
            continue
        infos[src], sizes[src] = info, (int(x.shape[-2]), int(x.shape[-1]))
    return infos, sizes, errors


def make_plan(cfg: ExperimentConfig) -> Plan:
    """Expand the config into chains and device batches (same recipe and size, max_batch)."""
    infos, sizes, errors = probe_inputs(expand_images(cfg.images), cfg)
    names = _unique_names(list(infos))
    chains: list[Chain] = []
    for src, up, down, scale, codec in product(
        infos, cfg.upscalers, cfg.downscalers, cfg.scales, cfg.codecs
    ):
        base = f"{names[src]}-{_slug(up)}-{_slug(down)}-x{scale:g}-{_slug(codec)}"
        for r in range(cfg.replicas + 1):
            cid = base if r == 0 else f"{base}-r{r}"
            chains.append(Chain(cid, src, names[src], up, down, scale, codec, r, base))
    if len({c.chain_id for c in chains}) != len(chains):
        raise ConfigError(
            "images/upscalers",
            "two chains would share an id",
            "remove duplicate entries from the config",
        )
    groups: dict[tuple[Any, ...], list[list[Chain]]] = defaultdict(list)
    by_group: dict[str, list[Chain]] = defaultdict(list)
    for c in chains:
        by_group[c.group].append(c)
    for members in by_group.values():
        c = members[0]
        key = (c.upscaler, c.downscaler, c.scale, c.codec, sizes[c.image])
        groups[key].append(members)
    batches: list[Batch] = []
    for key, member_lists in groups.items():
        current: list[Chain] = []
        for members in member_lists:  # replicas of one chain always share a batch
            if current and len(current) + len(members) > cfg.max_batch:
                batches.append(Batch(f"b{len(batches):04d}", current, key[-1]))
                current = []
            current = current + members
        batches.append(Batch(f"b{len(batches):04d}", current, key[-1]))
    return Plan(run_id_for(cfg), chains, batches, infos, errors)


def _unique_names(sources: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    seen: dict[str, int] = defaultdict(int)
    for s in sources:
        stem = _slug(s.split(":", 1)[1] if s.startswith("skimage:") else Path(s).stem)
        seen[stem] += 1
        out[s] = stem if seen[stem] == 1 else f"{stem}{seen[stem]}"
    return out


# ---- the generation step ---------------------------------------------------------------------


def generation_step(
    x: Tensor,
    upscaler: Upscaler,
    downscaler: str,
    scale: float,
    codec: Codec,
    fit: str = "resize",
) -> tuple[Tensor, Tensor]:
    """One roundtrip: down -> handoff -> up -> handoff. Returns (low-res input, new state)."""
    size = (x.shape[-2], x.shape[-1])
    eight_bit = codec.lossless_state  # 8-bit handoffs: resample like Pillow on 8-bit images
    lo = _handoff(codec, resize(x, lowres_size(size, scale), downscaler, eight_bit))
    up = upscaler.upscale(
        lo,
        size,
        fit=fit,
        fit_kernel=downscaler,  # type: ignore[arg-type]
        eight_bit=eight_bit,
    )
    return lo, _handoff(codec, up)


def _handoff(codec: Codec, x: Tensor) -> Tensor:
    """The codec on RGB; a carried alpha channel is stored as PNG would (JPEG has no alpha)."""
    if x.shape[1] == 3:
        return codec(x)
    return torch.cat([codec(x[:, :3]), quantize8(x[:, 3:]) / 255.0], dim=1)


class _Fingerprinter:
    """64-bit hash of each chain's uint8 state (int64 arithmetic wraps, so it is exact and
    independent of reduction order): cheap fixed-point and cycle detection on the device."""

    def __init__(self) -> None:
        self._weights: dict[tuple[int, torch.device], Tensor] = {}

    def __call__(self, x: Tensor) -> Tensor:
        n = x[0].numel()
        key = (n, x.device)
        if key not in self._weights:
            g = torch.Generator().manual_seed(0x5EED)
            self._weights[key] = torch.randint(1, 2**31 - 1, (n,), generator=g).to(x.device)
        w = self._weights[key]
        u8 = to_uint8(x).reshape(x.shape[0], -1)
        rows = max(1, (256 << 20) // (8 * n))  # keep the int64 temporary under ~256 MB
        return torch.cat([(u8[i : i + rows].long() * w).sum(1) for i in range(0, len(u8), rows)])


# ---- the engine ----------------------------------------------------------------------------


@dataclass
class RunResult:
    run_dir: Path
    run_id: str
    chains: int
    failed: dict[str, str] = field(default_factory=dict)  # chain_id -> error
    image_errors: dict[str, str] = field(default_factory=dict)  # input -> error
    wall_s: float = 0.0


class Engine:
    """Runs a plan into a run directory. One instance per run."""

    def __init__(self, cfg: ExperimentConfig, store: RunStore, progress: Progress | None = None):
        self.cfg = cfg
        self.store = store
        self.progress = progress or (lambda *a, **k: None)
        self.device = resolve_device(cfg.device)
        self.determinism = configure_determinism(self.device, cfg.deterministic)
        self._upscalers: dict[str, Upscaler | RoundtripError] = {}
        self._fingerprint = _Fingerprinter()
        self._region_sets: dict[str, Any] = {}
        self._writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="frames")
        self._pending: list[Future[None]] = []
        self.metrics = self._resolve_metrics()
        self.perturbation = parse_perturbation(cfg.perturbation)

    def _resolve_metrics(self) -> list[Any]:
        from .metrics import DEFAULT_METRICS, resolve_metrics

        names = list(self.cfg.metrics) if self.cfg.metrics is not None else list(DEFAULT_METRICS)
        return list(resolve_metrics(names, self.device))

    # -- upscalers are loaded once per run; a failure is remembered and fails its chains
    def upscaler(self, spec: str) -> Upscaler:
        if spec not in self._upscalers:
            try:
                self._upscalers[spec] = create_upscaler(
                    spec,
                    self.device,
                    precision=self.cfg.precision,
                    tile=self.cfg.tile,
                    tile_overlap=self.cfg.tile_overlap,
                    channels_last=self.cfg.channels_last,
                    compile=self.cfg.compile,
                )
            except RoundtripError as e:
                self._upscalers[spec] = e
        u = self._upscalers[spec]
        if isinstance(u, RoundtripError):
            raise u
        return u

    # -- one batch, from its checkpoint if there is one
    def run_batch(self, batch: Batch, manifest: dict[str, Any]) -> None:
        cfg, dev, rec = self.cfg, self.device, batch.recipe
        codec = parse_codec(rec.codec, cfg.jpeg_backend)
        upscaler = self.upscaler(rec.upscaler)
        entry = manifest["batches"][batch.batch_id]
        entry["upscaler"] = upscaler.describe()
        entry["codec"] = codec.describe()
        if hasattr(codec, "resolve_backend"):
            entry["codec"]["resolved_backend"] = codec.resolve_backend(dev)
        original, start = self._start_images(batch)
        original, start = original.to(dev), start.to(dev)
        ckpt = self.store.checkpoint_path(batch.batch_id)
        first: Tensor | None = None
        if ckpt.exists():
            g0, x, first = self._load_checkpoint(ckpt, codec)
            self.store.drop_parts_after(batch.batch_id, g0)
        else:
            g0, x = 0, start
            self.store.drop_parts_after(batch.batch_id, -1)
        metric_rows: list[tuple[int, str, str, Tensor, Tensor | None]] = []
        fingerprints: list[tuple[int, Tensor]] = []
        if g0 == 0:
            fingerprints.append((0, self._fingerprint(x)))
            self._save_frames(batch, 0, x)
        G = cfg.generations
        self.progress("batch_start", batch=batch, start=g0, generations=G)
        times: list[float] = entry.setdefault("wall_s_per_generation", [])
        del times[g0:]
        for g in range(g0 + 1, G + 1):
            t0 = time.perf_counter()
            prev = x
            lo, x = generation_step(prev, upscaler, rec.downscaler, rec.scale, codec, cfg.fit)
            if g == 1:
                first = x
            fingerprints.append((g, self._fingerprint(x)))
            if g % cfg.metric_stride == 0 or g == G or g == 1:
                assert first is not None
                metric_rows += self._metrics(batch, g, x, original, prev, first, lo)
            if g % cfg.frame_stride == 0 or g in (1, G):
                self._save_frames(batch, g, x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - t0)
            self.progress("generation", batch=batch, generation=g, wall_s=times[-1])
            if g % cfg.checkpoint_stride == 0 or g == G:
                assert first is not None
                self._flush(batch, g, metric_rows, fingerprints)
                metric_rows, fingerprints = [], []
                self._save_checkpoint(ckpt, g, x, first, codec)
                entry["generations_done"] = g
                atomic_write_json(self.store.root / MANIFEST_FILE, manifest)

    def _start_images(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(true originals, start images): replicas start from seeded perturbed copies."""
        cache: dict[str, Tensor] = {}
        originals, starts = [], []
        for c in batch.chains:
            if c.image not in cache:
                cache[c.image] = prepare_image(c.image, self.cfg)[0]
            img = cache[c.image]
            if self.cfg.alpha == "carry" and img.shape[1] == 3:  # opaque input in a carry run
                img = torch.cat([img, torch.ones_like(img[:, :1])], dim=1)
            originals.append(img)
            if c.replica:
                gen = replica_generator(self.cfg.seed, c.group, c.replica)
                img = torch.cat([self.perturbation.apply(img[:, :3], gen), img[:, 3:]], dim=1)
            starts.append(img)
        return torch.cat(originals), torch.cat(starts)

    def _metrics(
        self,
        batch: Batch,
        g: int,
        x: Tensor,
        original: Tensor,
        prev: Tensor,
        first: Tensor,
        lo: Tensor,
    ) -> list[tuple[int, str, str, Tensor, Tensor | None]]:
        """Metric values stay on the device: rows of (generation, metric, reference, values,
        chain index or None for all chains). Metrics see RGB (a carried alpha is left out)."""
        x, original, prev, first, lo = (t[:, :3] for t in (x, original, prev, first, lo))
        rows: list[tuple[int, str, str, Tensor, Tensor | None]] = []
        idx = [i for i, c in enumerate(batch.chains) if c.replica == 0]
        base = torch.tensor(idx, device=x.device)

        def pick(t: Tensor) -> Tensor:  # the unperturbed chains (all of them without replicas)
            return t if len(idx) == len(t) else t.index_select(0, base)

        xb, crop = pick(x), self._crop
        refs = {"original": pick(original), "previous": pick(prev)}
        if g > 1:
            refs["first"] = pick(first)
        for m in self._metrics_for(xb):
            for ref_name in m.references:
                if ref_name in refs:
                    for name, vals in m(crop(xb), crop(refs[ref_name])).items():
                        rows.append((g, name, ref_name, vals, base))
        if self.cfg.region_metrics:
            rows += self._region_metrics(batch, g, x, original, idx)
        if self.cfg.lowres_consistency:
            from .metrics import psnr

            lo_b = pick(lo)
            back = resize(xb, (lo.shape[-2], lo.shape[-1]), batch.recipe.downscaler)
            rows.append((g, "psnr", "lowres", psnr(back.clamp(0, 1), lo_b), base))
        if self.cfg.replicas:
            rows += self._replica_metrics(batch, g, x, original)
        return rows

    def _region_metrics(self, batch: Batch, g: int, x: Tensor, original: Tensor, idx: list[int]
                        ) -> list[tuple[int, str, str, Tensor, Tensor | None]]:
        """Per-region metrics (text CER by OCR, MTF50, patch CIEDE2000, spectral) for inputs that
        carry a chart sidecar (``roundtrip chart``); a host round trip, so metric stride only."""
        from .metrics.regions import load_region_set

        rows: list[tuple[int, str, str, Tensor, Tensor | None]] = []
        for i in idx:
            src = batch.chains[i].image
            if src not in self._region_sets:
                self._region_sets[src] = load_region_set(src)
            regions = self._region_sets[src]
            if regions is None:
                continue
            at = torch.tensor([i], device=x.device)
            values = regions.compute(x[i : i + 1], original[i : i + 1], ocr=self.cfg.ocr)
            rows += [(g, name, "original", v, at) for name, v in values.items()]
        return rows

    def _metrics_for(self, x: Tensor) -> list[Any]:
        """Metrics that accept this batch's (cropped) size; MS-SSIM needs >= 161 px."""
        h, w = self._crop(x).shape[-2:]
        return [m for m in self.metrics if min(h, w) >= m.min_size]

    def check_sizes(self, plan: Plan, manifest: dict[str, Any]) -> None:
        """A metric the user asked for by name must fit every image; a default one that does
        not fit an image is skipped for it, and the manifest says so."""
        for b in plan.batches:
            probe = torch.empty(1, 3, *b.size, device="meta")
            h, w = self._crop(probe).shape[-2:]
            small = [m.name for m in self.metrics if min(h, w) < m.min_size]
            if small and self.cfg.metrics is not None:
                raise ConfigError(
                    "metrics",
                    f"{', '.join(small)} cannot measure {w}x{h} images (batch {b.batch_id})",
                    "drop them or use larger images",
                )
            if small:
                manifest["batches"][b.batch_id]["metrics_skipped"] = small

    def _crop(self, t: Tensor) -> Tensor:
        if self.cfg.metric_crop is None:
            return t
        cx, cy, cw, ch = self.cfg.metric_crop
        return t[..., cy : cy + ch, cx : cx + cw]

    def _replica_metrics(
        self, batch: Batch, g: int, x: Tensor, original: Tensor
    ) -> list[tuple[int, str, str, Tensor, Tensor | None]]:
        """Sensitivity: each member's MSE to the original, each replica's distance to its
        unperturbed chain, and the mean pairwise distance within each group."""
        from .metrics import psnr

        rows: list[tuple[int, str, str, Tensor, Tensor | None]] = []
        dev = x.device
        all_idx = torch.arange(len(batch.chains), device=dev)
        rows.append((g, "mse", "original", _mse(x, original), all_idx))
        members: dict[str, list[int]] = defaultdict(list)
        for i, c in enumerate(batch.chains):
            members[c.group].append(i)
        rep_idx, unp_idx, heads, pair_mse, pair_psnr = [], [], [], [], []
        for idxs in members.values():
            head = idxs[0]  # the unperturbed chain comes first in its group
            rep_idx += idxs[1:]
            unp_idx += [head] * (len(idxs) - 1)
            a = torch.tensor([i for i, _ in combinations(idxs, 2)], device=dev)
            b = torch.tensor([j for _, j in combinations(idxs, 2)], device=dev)
            mse = _mse(x.index_select(0, a), x.index_select(0, b))
            heads.append(head)
            pair_mse.append(mse.mean())
            pair_psnr.append(psnr(x.index_select(0, a), x.index_select(0, b)).mean())
        ri, ui = torch.tensor(rep_idx, device=dev), torch.tensor(unp_idx, device=dev)
        xr, xu = x.index_select(0, ri), x.index_select(0, ui)
        rows.append((g, "mse", "unperturbed", _mse(xr, xu), ri))
        rows.append((g, "psnr", "unperturbed", psnr(xr, xu), ri))
        hi = torch.tensor(heads, device=dev)
        rows.append((g, "mse", "replicas", torch.stack(pair_mse), -hi - 1))  # replica = -1
        rows.append((g, "psnr", "replicas", torch.stack(pair_psnr), -hi - 1))
        return rows

    # -- storage
    def _save_frames(self, batch: Batch, g: int, x: Tensor) -> None:
        host = to_uint8(x).cpu()
        for c, img in zip(batch.chains, host, strict=True):
            path = self.store.frame_path(c.chain_id, g)
            self._pending.append(self._writer.submit(save_png, img, path))

    def _drain_frames(self) -> None:
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()  # re-raises a write error (e.g. a full disk) here, before the checkpoint

    def _flush(
        self, batch: Batch, g: int, metric_rows: list[Any], fingerprints: list[tuple[int, Tensor]]
    ) -> None:
        self._drain_frames()
        chains = batch.chains
        rows = []
        for gen, metric, ref, vals, idx in metric_rows:
            idx_list = idx.tolist()
            for v, i in zip(vals.double().tolist(), idx_list, strict=True):
                replica = -1 if i < 0 else chains[i].replica
                c = chains[-i - 1] if i < 0 else chains[i]
                rows.append(
                    {
                        "run_id": self._run_id,
                        "chain_id": c.chain_id,
                        "image": c.image_name,
                        "upscaler": c.upscaler,
                        "downscaler": c.downscaler,
                        "scale": c.scale,
                        "codec": c.codec,
                        "replica": replica,
                        "generation": gen,
                        "metric": metric,
                        "reference": ref,
                        "value": v,
                    }
                )
        self.store.write_part("metrics", batch.batch_id, g, rows_to_frame(rows))
        fp_rows = [
            {"chain_id": c.chain_id, "generation": gen, "fingerprint": int(v)}
            for gen, vals in fingerprints
            for c, v in zip(chains, vals.tolist(), strict=True)
        ]
        self.store.write_part(
            "fingerprints",
            batch.batch_id,
            g,
            pd.DataFrame(fp_rows, columns=["chain_id", "generation", "fingerprint"]),
        )

    def _save_checkpoint(self, path: Path, g: int, x: Tensor, first: Tensor, codec: Codec) -> None:
        def pack(t: Tensor) -> Tensor:
            return (to_uint8(t) if codec.lossless_state else t.float()).cpu().contiguous()

        data = save({"state": pack(x), "first": pack(first)}, metadata={"generation": str(g)})
        atomic_write_bytes(path, data)

    def _load_checkpoint(self, path: Path, codec: Codec) -> tuple[int, Tensor, Tensor]:
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                g = int((f.metadata() or {})["generation"])
            t = load_file(str(path))
        except Exception as e:
            raise RunStoreError(
                str(path),
                f"unreadable checkpoint ({e})",
                "delete it to restart this batch from generation 0",
            ) from e

        def unpack(v: Tensor) -> Tensor:
            v = v.to(self.device)
            return v.float() / 255.0 if v.dtype == torch.uint8 else v

        return g, unpack(t["state"]), unpack(t["first"])

    # -- the whole run
    def run(self, plan: Plan, manifest: dict[str, Any]) -> RunResult:
        self._run_id = plan.run_id
        t_start = time.perf_counter()
        failed: dict[str, str] = {}
        todo = [b for b in plan.batches if manifest["batches"][b.batch_id]["status"] != "complete"]
        total = sum(
            len(b.chains)
            * (self.cfg.generations - manifest["batches"][b.batch_id]["generations_done"])
            for b in todo
        )
        self.progress("run_start", total=total)
        try:
            for batch in plan.batches:
                entry = manifest["batches"][batch.batch_id]
                if entry["status"] == "complete":
                    continue
                entry["status"] = "running"
                try:
                    self.run_batch(batch, manifest)
                    entry["status"] = "complete"
                except (RoundtripError, torch.OutOfMemoryError) as e:
                    self._drain_frames_quietly()
                    entry["status"], entry["error"] = "failed", str(e)
                    for c in batch.chains:
                        failed[c.chain_id] = str(e)
                    self.progress("batch_failed", batch=batch, error=str(e))
                except Exception as e:  # an unexpected bug fails this batch, not the run
                    self._drain_frames_quietly()
                    entry["status"] = "failed"
                    entry["error"] = f"{type(e).__name__}: {e}"
                    entry["traceback"] = traceback.format_exc()
                    for c in batch.chains:
                        failed[c.chain_id] = entry["error"]
                    self.progress("batch_failed", batch=batch, error=entry["error"])
                self.progress("batch_end", batch=batch, status=entry["status"])
                atomic_write_json(self.store.root / MANIFEST_FILE, manifest)
        finally:
            self._writer.shutdown(wait=True)
            self.progress("run_end")
        self.store.finalize_tables()
        failed_any = failed or plan.image_errors
        manifest["status"] = "complete" if not failed_any else "complete_with_failures"
        manifest["failed"] = failed
        manifest["finished_at"] = _now()
        manifest["wall_s"] = manifest.get("wall_s", 0.0) + time.perf_counter() - t_start
        atomic_write_json(self.store.root / MANIFEST_FILE, manifest)
        return RunResult(
            self.store.root,
            plan.run_id,
            len(plan.chains),
            failed,
            dict(plan.image_errors),
            manifest["wall_s"],
        )

    def _drain_frames_quietly(self) -> None:
        for f in self._pending:
            f.exception()
        self._pending = []


def _mse(a: Tensor, b: Tensor) -> Tensor:
    return ((a - b) ** 2).mean(dim=(1, 2, 3))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_manifest(cfg: ExperimentConfig, plan: Plan, engine: Engine) -> dict[str, Any]:
    return {
        "run_id": plan.run_id,
        "status": "running",
        "started_at": _now(),
        "seed": cfg.seed,
        "determinism": engine.determinism,
        "environment": environment(engine.device),
        "inputs": {src: info.asdict() for src, info in plan.images.items()},
        "input_errors": plan.image_errors,
        "metrics": [m.name for m in engine.metrics],
        "size_rule": {"lowres": "round(H/s) x round(W/s)", "fit": cfg.fit},
        "batches": {
            b.batch_id: {
                "chains": [c.chain_id for c in b.chains],
                "size": list(b.size),
                "status": "pending",
                "generations_done": 0,
            }
            for b in plan.batches
        },
    }


def run_experiment(
    cfg: ExperimentConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    allow_nonempty: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Plan and run an experiment into ``cfg.resolved_output()``; the public entry point.

    ``allow_nonempty``: write into a folder that holds other files (never deleted)."""
    store = RunStore(cfg.resolved_output())
    with store.lock():  # reliability (issue 10 item 1): one process per run directory
        return _run_locked(cfg, store, resume, overwrite, allow_nonempty, progress)


def _run_locked(cfg: ExperimentConfig, store: RunStore, resume: bool, overwrite: bool,
                allow_nonempty: bool, progress: Progress | None) -> RunResult:
    """run_experiment's body, run while holding the directory's lock."""
    if resume and store.exists():
        stored = make_config(store.read_config(), str(store.root / CONFIG_FILE))
        if stored.model_dump(exclude={"output"}) != cfg.model_dump(exclude={"output"}):
            raise RunStoreError(
                str(store.root),
                "holds a run of a different config",
                "resume with the same config, or use --overwrite",
            )
        cfg = stored
    store.prepare(overwrite=overwrite, resume=resume, allow_nonempty=allow_nonempty)  # item 6
    plan = make_plan(cfg)
    if not plan.chains:
        raise ConfigError(
            "images",
            "no input could be read: " + "; ".join(plan.image_errors.values()),
        )
    engine = Engine(cfg, store, progress)
    if resume:
        manifest = store.read_manifest()
        manifest["status"] = "running"
        manifest.setdefault("resumed_at", []).append(_now())
        manifest["environment_resumed"] = environment(engine.device)
        for entry in manifest["batches"].values():
            if entry["status"] == "failed":  # a fixed input or model gets another chance
                entry["status"] = "pending"
    else:
        manifest = _new_manifest(cfg, plan, engine)
    engine.check_sizes(plan, manifest)  # before anything is written: a too-small image fails here
    if not resume:
        atomic_write_json(store.root / CONFIG_FILE, cfg.to_json())
        chains = pd.DataFrame(
            [
                {**asdict(c), "batch_id": b.batch_id, "height": b.size[0], "width": b.size[1]}
                for b in plan.batches
                for c in b.chains
            ]
        )
        atomic_write_parquet(store.root / CHAINS_FILE, chains)
    atomic_write_json(store.root / MANIFEST_FILE, manifest)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TorchCodec.*")
        return engine.run(plan, manifest)
