"""Run an experiment into its run directory: plan, check, engine, tables. The one entry point
that the CLI, the Python API and sweep units share."""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..core.cpu import CoreShare
from ..core.determinism import deterministic
from ..core.errors import ConfigError, RunStoreError
from ..core.files import atomic_write_json, atomic_write_parquet
from ..core.info import environment, resolve_device
from ..core.weights import sha256_file
from .config import ExperimentConfig, make_config
from .engine import Engine, Progress, RunResult
from .manifest import Manifest, now
from .measure import Measurer
from .plan import Plan, make_plan
from .store import CHAINS_FILE, CONFIG_FILE, MANIFEST_FILE, RunStore


def run_experiment(
    cfg: ExperimentConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    force_resume: bool = False,
    allow_nonempty: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Plan and run ``cfg`` into ``cfg.resolved_output()``, holding the directory's lock.

    ``resume`` continues an interrupted run of the same config; it refuses when an input file
    or a model's weights changed since the run started, unless ``force_resume``.
    ``overwrite`` deletes only what a run wrote; ``allow_nonempty`` writes into a folder that
    holds other files (never touched). Torch's global determinism switches are restored
    afterwards.
    """
    store = RunStore(cfg.resolved_output())
    with store.lock():  # one process per run directory; the OS drops it if the process dies
        return _run_locked(cfg, store, resume, overwrite, force_resume, allow_nonempty, progress)


def _run_locked(
    cfg: ExperimentConfig,
    store: RunStore,
    resume: bool,
    overwrite: bool,
    force_resume: bool,
    allow_nonempty: bool,
    progress: Progress | None,
) -> RunResult:
    if resume and store.exists():
        data = store.read_config()
        # runs from before the `backend` key ran every model on torch: they continue on torch
        legacy = "backend" not in data
        if legacy:
            data["backend"] = "torch"
        stored = make_config(data, str(store.root / CONFIG_FILE))
        same = {"output", "backend"} if legacy else {"output"}
        if stored.model_dump(exclude=same) != cfg.model_dump(exclude=same):
            raise RunStoreError(
                str(store.root),
                "holds a run of a different config",
                "resume with the same config, or use --overwrite",
            )
        cfg = stored
    store.prepare(overwrite=overwrite, resume=resume, allow_nonempty=allow_nonempty)
    plan = make_plan(cfg)
    if not plan.chains:
        raise ConfigError(
            "images",
            "no input could be read: " + "; ".join(plan.image_errors.values()),
        )
    device = resolve_device(cfg.device)
    measurer = Measurer(cfg, device)
    skipped = measurer.check_sizes(plan)  # before anything is written
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings(), deterministic(device, cfg.deterministic) as determinism, \
                CoreShare(threads, enabled=device.type == "cpu") as share:
            if device.type == "cpu":  # concurrent CPU runs split the cores; restored afterwards
                torch.set_num_threads(share.threads(force=True))
                progress = _sharing_cores(progress, share)
            warnings.filterwarnings("ignore", message=".*TorchCodec.*")
            if resume:
                manifest = Manifest.read(store.root / MANIFEST_FILE)
                _check_same_inputs(plan, manifest, store, force_resume)
                manifest.status = "running"
                manifest.resumed_at.append(now())
                manifest.environment_resumed = environment(device)
                for entry in manifest.batches.values():
                    if entry.status == "failed":  # a fixed input or model gets another chance
                        entry.status, entry.error, entry.traceback = "pending", None, None
            else:
                manifest = Manifest.new(
                    cfg,
                    plan,
                    metrics=[m.name for m in measurer.metrics],
                    metric_details=measurer.details(),
                    determinism=determinism,
                    environment=environment(device),
                )
                _write_plan(store, cfg, plan)
            for batch_id, names in skipped.items():
                manifest.batches[batch_id].metrics_skipped = names
            atomic_write_json(store.root / MANIFEST_FILE, manifest.to_json())
            engine = Engine(
                cfg, store, progress, device=device, measurer=measurer,
                allow_changed_weights=force_resume,
            )
            return engine.run(plan, manifest)
    finally:
        torch.set_num_threads(threads)  # what the caller had


def _sharing_cores(progress: Progress | None, share: CoreShare) -> Progress:
    """The run's progress hook, also re-taking this run's share of the cores as other runs
    start and end (``CoreShare`` recounts at most every few seconds)."""

    def hook(event: str, **d: Any) -> None:
        n = share.threads()
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
        if progress is not None:
            progress(event, **d)

    return hook


def _write_plan(store: RunStore, cfg: ExperimentConfig, plan: Plan) -> None:
    atomic_write_json(store.root / CONFIG_FILE, cfg.to_json())
    chains = pd.DataFrame(
        [
            {**asdict(c), "batch_id": b.batch_id, "height": b.size[0], "width": b.size[1]}
            for b in plan.batches
            for c in b.chains
        ]
    )
    atomic_write_parquet(store.root / CHAINS_FILE, chains)


def _check_same_inputs(plan: Plan, manifest: Manifest, store: RunStore, force: bool) -> None:
    """A resumed chain must continue from the same image it started from, and the plan must
    give the same batches (an input that became unreadable would renumber them)."""
    planned = {b.batch_id: [c.chain_id for c in b.chains] for b in plan.batches}
    stored = {k: v.chains for k, v in manifest.batches.items()}
    if planned != stored:
        lost = sorted(set(manifest.inputs) - set(plan.images))
        why = f"{', '.join(lost)} can no longer be read" if lost else "the inputs changed"
        raise RunStoreError(
            str(store.root), f"cannot be resumed: {why}", "restore the inputs or start a new run"
        )
    if force:
        return
    checks = [(src, info.get("sha256"), plan.images[src].sha256)
              for src, info in manifest.inputs.items() if src in plan.images]
    weights = {str(e.upscaler["weights"]): e.upscaler.get("weights_sha256")
               for e in manifest.batches.values()
               if e.status != "complete" and e.upscaler and e.upscaler.get("weights")}
    checks += [(w, sha, _sha256_or_missing(Path(w))) for w, sha in weights.items()]
    for what, before, after in checks:
        if before is not None and before != after:
            raise RunStoreError(
                what,
                f"changed since the run in {store.root} started (sha256 {before[:12]}... then, "
                f"{after[:12]}... now); resuming would mix two versions in one chain",
                "restore the original file, start a new run, or pass --force-resume to mix "
                "them knowingly",
            )


def _sha256_or_missing(path: Path) -> str:
    return sha256_file(path) if path.is_file() else "(missing)"
