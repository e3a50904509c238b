"""The engine's batch loop: many chains on one device for hundreds of generations, resumable.

Nothing leaves the device inside a generation except frames (copied to the host at the frame
stride and encoded on writer threads); metric values and the finiteness check stay on the device
until a checkpoint, where they are checked, turned into table rows and written with the state.

Exact resume: the handoff rule makes a chain's current image its whole state, so a checkpoint
(state, first upscale, generation) written atomically at every checkpoint stride, together with
the metric rows flushed just before it, lets a killed run continue and end byte-identical to an
uninterrupted one on the same device.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import Tensor

from ..core.errors import RoundtripError, RunStoreError
from ..core.files import atomic_write_bytes, atomic_write_json
from ..core.info import resolve_device
from ..imaging.codecs import Codec, JpegCodec
from ..imaging.images import save_png, to_uint8
from ..upscalers import Upscaler, create_upscaler
from .chain import ChainLoop, ChainState, Flush, start_images
from .config import ExperimentConfig
from .manifest import BatchEntry, Manifest, now
from .measure import Measurer, MetricRows, table_rows
from .plan import Batch, Plan
from .recipe import recipe_record
from .step import Fingerprinter
from .store import MANIFEST_FILE, RunStore, rows_to_frame

Progress = Callable[..., None]


def _write_frames(host: Tensor, paths: list[Path], ready: torch.cuda.Event | None) -> None:
    if ready is not None:
        ready.synchronize()
    for img, path in zip(host, paths, strict=True):
        save_png(img, path)


class _StoreSink:
    """The engine's sink: frames to PNG writer threads; at each flush the rows and
    fingerprints as parts, then the checkpoint, then the manifest (the resume unit)."""

    def __init__(
        self,
        engine: Engine,
        run_id: str,
        batch: Batch,
        manifest: Manifest,
        ckpt: Path,
        codec: Codec,
        g0: int,
    ) -> None:
        self.engine, self.run_id, self.batch, self.manifest = engine, run_id, batch, manifest
        self.ckpt, self.codec = ckpt, codec
        self.entry = manifest.batches[batch.batch_id]
        self.t0, self.g_last = time.perf_counter(), g0

    def frame(self, generation: int, x: Tensor) -> None:
        self.engine._save_frames(self.batch, generation, x)

    def flush(self, f: Flush) -> None:
        e, entry, g = self.engine, self.entry, f.generation
        e._flush(self.run_id, self.batch, g, f.rows, f.fingerprints, entry.metrics_undefined)
        e._save_checkpoint(self.ckpt, g, f.state, f.first, self.codec)
        wall = (time.perf_counter() - self.t0) / (g - self.g_last)
        entry.wall_s_per_generation += [wall] * (g - self.g_last)
        self.t0, self.g_last = time.perf_counter(), g
        entry.generations_done = g
        e._write_manifest(self.manifest)


@dataclass
class RunResult:
    """What a finished (or partly failed) run reports back to its caller."""

    run_dir: Path
    run_id: str
    chains: int
    failed: dict[str, str] = field(default_factory=dict)  # chain_id -> error
    image_errors: dict[str, str] = field(default_factory=dict)  # input -> error
    wall_s: float = 0.0


class Engine:
    """Runs a plan into a run directory. One instance per run."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        store: RunStore,
        progress: Progress | None = None,
        *,
        device: torch.device | None = None,
        measurer: Measurer | None = None,
        allow_changed_weights: bool = False,
        upscalers: dict[str, Upscaler | RoundtripError] | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.progress: Progress = progress or (lambda *a, **k: None)
        self.device = device if device is not None else resolve_device(cfg.device)
        self.measurer = measurer if measurer is not None else Measurer(cfg, self.device)
        self.allow_changed_weights = allow_changed_weights
        # loaded before the run directory was touched (pipeline.experiment), else on first use
        self._upscalers: dict[str, Upscaler | RoundtripError] = dict(upscalers or {})
        self._fingerprint = Fingerprinter()
        self._writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="frames")
        self._pending: list[Future[None]] = []

    def upscaler(self, spec: str) -> Upscaler:
        """Loaded once per run; a failure is remembered and fails each of its batches."""
        if spec not in self._upscalers:
            try:
                self._upscalers[spec] = create_upscaler(spec, self.device, self.cfg.inference())
            except RoundtripError as e:
                self._upscalers[spec] = e
        u = self._upscalers[spec]
        if isinstance(u, RoundtripError):
            raise u
        return u

    # -- one batch, from its checkpoint if there is one
    def run_batch(self, plan: Plan, batch: Batch, manifest: Manifest) -> None:
        """Drive the batch's chain loop into the store, from its checkpoint if it has one."""
        for _ in self.batch_steps(plan, batch, manifest):
            pass

    def batch_steps(self, plan: Plan, batch: Batch, manifest: Manifest) -> Iterator[int]:
        """The batch's generations as a generator (see `ChainLoop.steps`)."""
        cfg, dev, rec = self.cfg, self.device, batch.recipe
        entry = manifest.batches[batch.batch_id]
        schedule = cfg.specs().schedules[rec.codec]
        upscaler = self.upscaler(rec.upscaler)
        entry.recipe = recipe_record(cfg, rec.stabilizer, [c.start for c in batch.chains])
        described = upscaler.describe()
        self._check_same_weights(batch, entry, described)
        entry.upscaler = described
        entry.codec = schedule.describe()
        entry.codec["resolved_backends"] = {
            s: c.resolve_backend(dev)
            for s, c in schedule.codecs.items()
            if isinstance(c, JpegCodec)
        }
        loop = ChainLoop(cfg, batch, upscaler, self.measurer, self._fingerprint)
        # lossless_state (the checkpoint format) is the same for any generation's handoff
        codec = schedule.handoff(1, loop.seeds())
        original, start_x = (t.to(dev) for t in start_images(cfg, batch, plan.inputs.pixels))
        ckpt = self.store.checkpoint_path(batch.batch_id)
        if ckpt.exists():
            g0, x, first = self._load_checkpoint(ckpt)
            start = ChainState(g0, x, first)
            self.store.drop_parts_after(batch.batch_id, g0)
        else:
            start = ChainState(0, start_x)
            self.store.drop_parts_after(batch.batch_id, -1)
        sink = _StoreSink(self, plan.run_id, batch, manifest, ckpt, codec, start.generation)
        self.progress(
            "batch_start", batch=batch, start=start.generation, generations=cfg.generations
        )
        del entry.wall_s_per_generation[start.generation :]
        t_gen = time.perf_counter()
        for g in loop.steps(original, start, sink):
            # host time since the last generation: no sync (on CUDA it is the enqueue rate,
            # which the frame and checkpoint syncs keep honest)
            t_now = time.perf_counter()
            self.progress("generation", batch=batch, generation=g, wall_s=t_now - t_gen)
            t_gen = t_now
            yield g

    def _check_same_weights(self, batch: Batch, entry: BatchEntry, now_: dict[str, Any]) -> None:
        """On resume, the weights must be the bytes the batch started with."""
        before = (entry.upscaler or {}).get("weights_sha256")
        after = now_.get("weights_sha256")
        if before and after and before != after and not self.allow_changed_weights:
            raise RunStoreError(
                str(now_.get("weights")),
                f"weights changed since batch {batch.batch_id} started (sha256 {before[:12]}... "
                f"then, {after[:12]}... now)",
                "restore the original file, or resume with --force-resume to mix them knowingly",
            )

    # -- storage
    def _save_frames(self, batch: Batch, g: int, x: Tensor) -> None:
        """Copy to the host without stalling the device: on CUDA into pinned memory with a
        non-blocking copy; the writer thread waits for the copy, then encodes the PNGs."""
        u8 = to_uint8(x)
        ready: torch.cuda.Event | None = None
        if u8.is_cuda:
            host = torch.empty(u8.shape, dtype=torch.uint8, pin_memory=True)
            host.copy_(u8, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record()
        else:
            host = u8
        paths = [self.store.frame_path(c.chain_id, g) for c in batch.chains]
        self._pending.append(self._writer.submit(_write_frames, host, paths, ready))

    def _forget_frames_after(self, batch: Batch, generation: int) -> None:
        """A failed batch keeps nothing past its last checkpoint: those frames may show a
        state that was never checked (a NaN output quantized to black)."""
        for c in batch.chains:
            for g, path in self.store.list_frames(c.chain_id).items():
                if g > generation:
                    path.unlink(missing_ok=True)

    def _drain_frames(self, *, quiet: bool = False) -> None:
        """Wait for frame writes; re-raise a write error (a full disk) unless ``quiet``."""
        pending, self._pending = self._pending, []
        for f in pending:
            if quiet:
                f.exception()
            else:
                f.result()

    def _flush(
        self,
        run_id: str,
        batch: Batch,
        g: int,
        rows: list[MetricRows],
        fingerprints: list[tuple[int, Tensor]],
        undefined: dict[str, int],
    ) -> None:
        table = rows_to_frame(table_rows(run_id, batch, rows, undefined))  # NaN refused here
        self._drain_frames()
        self.store.write_part("metrics", batch.batch_id, g, table)
        fp_rows = [
            {"chain_id": c.chain_id, "generation": gen, "fingerprint": int(v)}
            for gen, vals in fingerprints
            for c, v in zip(batch.chains, vals.tolist(), strict=True)
        ]
        self.store.write_part(
            "fingerprints",
            batch.batch_id,
            g,
            pd.DataFrame(fp_rows, columns=["chain_id", "generation", "fingerprint"]),
        )

    def _save_checkpoint(self, path: Path, g: int, x: Tensor, first: Tensor, codec: Codec) -> None:
        def pack(t: Tensor) -> Tensor:  # a copy each: at generation 1 state and first are one
            t = to_uint8(t) if codec.lossless_state else t.float()
            return t.detach().to("cpu", copy=True).contiguous()

        data = save({"state": pack(x), "first": pack(first)}, metadata={"generation": str(g)})
        atomic_write_bytes(path, data)

    def _load_checkpoint(self, path: Path) -> tuple[int, Tensor, Tensor]:
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

    def _write_manifest(self, manifest: Manifest) -> None:
        atomic_write_json(self.store.root / MANIFEST_FILE, manifest.to_json())

    # -- the whole run
    def run(self, plan: Plan, manifest: Manifest) -> RunResult:
        t_start = time.perf_counter()
        failed: dict[str, str] = {}
        todo = [b for b in plan.batches if manifest.batches[b.batch_id].status != "complete"]
        total = sum(
            len(b.chains) * (self.cfg.generations - manifest.batches[b.batch_id].generations_done)
            for b in todo
        )
        self.progress("run_start", total=total)
        try:
            for batch in todo:
                entry = manifest.batches[batch.batch_id]
                entry.status = "running"
                try:
                    self.run_batch(plan, batch, manifest)
                    entry.status = "complete"
                except (RoundtripError, torch.OutOfMemoryError) as e:
                    self._drain_frames(quiet=True)
                    entry.status, entry.error = "failed", str(e)
                except Exception as e:  # an unexpected bug fails this batch, not the run
                    self._drain_frames(quiet=True)
                    entry.status, entry.error = "failed", f"{type(e).__name__}: {e}"
                    entry.traceback = traceback.format_exc()
                if entry.status == "failed":
                    self._forget_frames_after(batch, entry.generations_done)
                    failed.update({c.chain_id: str(entry.error) for c in batch.chains})
                    self.progress("batch_failed", batch=batch, error=entry.error)
                self.progress("batch_end", batch=batch, status=entry.status)
                self._write_manifest(manifest)
        finally:
            self._writer.shutdown(wait=True)
            self.progress("run_end")
        self.store.finalize_tables()
        failed_any = failed or plan.image_errors
        manifest.status = "complete" if not failed_any else "complete_with_failures"
        manifest.failed = failed
        manifest.finished_at = now()
        manifest.wall_s += time.perf_counter() - t_start
        self._write_manifest(manifest)
        return RunResult(
            self.store.root,
            plan.run_id,
            len(plan.chains),
            failed,
            dict(plan.image_errors),
            manifest.wall_s,
        )
