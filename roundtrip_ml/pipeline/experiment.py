"""Run an experiment into its run directory: check everything, then lock, then engine and
tables. The one entry point that the CLI, the Python API and sweep units share."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..core.cpu import CoreShare
from ..core.determinism import deterministic
from ..core.errors import ConfigError, RoundtripError, RunStoreError
from ..core.files import atomic_write_json, atomic_write_parquet
from ..core.info import environment, resolve_device
from ..core.weights import sha256_file
from ..upscalers import Upscaler, create_upscaler
from .batching import BatchSizer, stored_limits
from .config import ExperimentConfig, make_config
from .engine import Engine, Progress, RunResult
from .manifest import FileChange, ForcedResume, Manifest, now
from .measure import Measurer
from .plan import Plan, make_plan, rebatch
from .store import CHAINS_FILE, CONFIG_FILE, MANIFEST_FILE, RunStore


@dataclass
class Checked:
    """Everything a run needs that could fail, built before the disk is touched."""

    cfg: ExperimentConfig
    plan: Plan
    device: torch.device
    measurer: Measurer
    upscalers: dict[str, Upscaler | RoundtripError]


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
    or a model's weights changed since the run started, unless ``force_resume`` (recorded in
    the manifest with both hashes). ``overwrite`` deletes only what a run wrote;
    ``allow_nonempty`` writes into a folder that holds other files (never touched). Every check
    that can fail (inputs, crops, device, metric names and sizes, weights) runs before the
    directory is created, locked or cleaned, so a typo never costs a finished run. Torch's
    global determinism switches are restored afterwards.
    """
    store = RunStore(cfg.resolved_output())
    store.check(overwrite=overwrite, resume=resume, allow_nonempty=allow_nonempty)
    if resume and store.exists():
        cfg = _stored_config(cfg, store)
    started = Manifest.read(store.root / MANIFEST_FILE) if resume and store.exists() else None
    checked = check_experiment(cfg, started)
    with store.lock():  # one process per run directory; the OS drops it if the process dies
        if resume and store.exists() and _stored_config(cfg, store) != cfg:
            raise RunStoreError(
                str(store.root), "changed while this run was being checked", "run the command again"
            )
        return _run_locked(
            checked, store, resume, overwrite, force_resume, allow_nonempty, progress
        )


def check_experiment(cfg: ExperimentConfig, started: Manifest | None = None) -> Checked:
    """Plan ``cfg`` and build what its run needs (device, metrics, models), writing nothing.

    A ConfigError/ImageError/ModelError here leaves the disk as it was. Models are loaded here
    too: one that fails is kept as its error and fails its own chains (as a bad input does),
    unless every model fails, which refuses the run. A resumed run (``started``: its manifest)
    is planned with the batch limits it recorded, so its batch ids are the stored ones, and the
    models of its finished batches are not loaded.
    """
    limit = stored_limits(started.batch_limits, cfg.max_batch) if started else None
    finished = (
        {b for b, e in started.batches.items() if e.status == "complete"} if started else set()
    )
    plan = make_plan(cfg, limit)
    if not plan.chains:
        raise ConfigError(
            "images",
            "no input could be read: " + "; ".join(plan.image_errors.values()),
        )
    device = resolve_device(cfg.device)
    measurer = Measurer(cfg, device)
    measurer.check_sizes(plan)  # a named metric too large for an image is refused here
    loaded: dict[str, Upscaler | RoundtripError] = {}
    needed = dict.fromkeys(b.recipe.upscaler for b in plan.batches if b.batch_id not in finished)
    for spec in needed:
        try:
            loaded[spec] = create_upscaler(spec, device, cfg.inference())
        except RoundtripError as e:
            loaded[spec] = e
    errors = [u for u in loaded.values() if isinstance(u, RoundtripError)]
    if loaded and len(errors) == len(loaded):
        raise errors[0]
    return Checked(cfg, plan, device, measurer, loaded)


def _stored_config(cfg: ExperimentConfig, store: RunStore) -> ExperimentConfig:
    """The config a resumed run started with; refused if ``cfg`` differs from it."""
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
    return stored


def _run_locked(
    checked: Checked,
    store: RunStore,
    resume: bool,
    overwrite: bool,
    force_resume: bool,
    allow_nonempty: bool,
    progress: Progress | None,
) -> RunResult:
    cfg, plan, device, measurer = checked.cfg, checked.plan, checked.device, checked.measurer
    store.prepare(overwrite=overwrite, resume=resume, allow_nonempty=allow_nonempty)
    threads = torch.get_num_threads()
    started = Manifest.read(store.root / MANIFEST_FILE) if resume else None
    try:
        with (
            warnings.catch_warnings(),
            deterministic(device, cfg.deterministic) as determinism,
            CoreShare(threads, enabled=device.type == "cpu") as share,
        ):
            if device.type == "cpu":  # concurrent CPU runs split the cores; restored afterwards
                torch.set_num_threads(_cpu_threads(cfg, share, started))
                if not cfg.deterministic:
                    progress = _sharing_cores(progress, share)
            warnings.filterwarnings("ignore", message=".*TorchCodec.*")
            engine = Engine(
                cfg,
                store,
                progress,
                device=device,
                measurer=measurer,
                allow_changed_weights=force_resume,
                upscalers=checked.upscalers,
            )
            if started is not None:
                manifest = started
                # the id the run started with: a config key added since (its default filled in)
                # changes the hash, and one table must never carry two ids
                plan.run_id = manifest.run_id
                changed = _check_same_inputs(plan, manifest, store, force_resume)
                if force_resume:
                    manifest.forced_resumes.append(ForcedResume(at=now(), changed=changed))
                manifest.status = "running"
                manifest.resumed_at.append(now())
                manifest.environment_resumed = environment(device)
                for entry in manifest.batches.values():
                    if entry.status == "failed":  # a fixed input or model gets another chance
                        entry.status, entry.error, entry.traceback = "pending", None, None
            else:
                sizer = BatchSizer(cfg, device, engine.upscaler, measurer)
                plan = rebatch(plan, cfg, sizer)  # batch sizes from free device memory
                manifest = Manifest.new(
                    cfg,
                    plan,
                    metrics=[m.name for m in measurer.metrics],
                    metric_details=measurer.details(),
                    batch_sizing=sizer.details,
                    determinism=determinism,
                    environment=environment(device),
                )
                _write_plan(store, cfg, plan)
            for batch_id, names in measurer.check_sizes(plan).items():  # the final batch ids
                manifest.batches[batch_id].metrics_skipped = names
            atomic_write_json(store.root / MANIFEST_FILE, manifest.to_json())
            return engine.run(plan, manifest)
    finally:
        torch.set_num_threads(threads)  # what the caller had


def _cpu_threads(cfg: ExperimentConfig, share: CoreShare, started: Manifest | None) -> int:
    """The run's CPU thread count. A CPU convolution's sums depend on how it is split between
    threads, so a deterministic run holds one count from start to end: its share of the cores
    when it starts, and on resume the count it started with (its manifest's), so the resumed
    generations are computed as the first ones were. Others follow the share as it changes."""
    if started is not None and cfg.deterministic:
        held = started.environment.get("torch_threads")
        if isinstance(held, int) and held >= 1:
            return held
    return share.threads(force=True)


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


def _check_same_inputs(
    plan: Plan, manifest: Manifest, store: RunStore, force: bool
) -> dict[str, FileChange]:
    """A resumed chain must continue from the same image it started from, and the plan must
    give the same batches (an input that became unreadable would renumber them). Returns the
    files that changed (all of them refused unless ``force``)."""
    planned = {b.batch_id: [c.chain_id for c in b.chains] for b in plan.batches}
    stored = {k: v.chains for k, v in manifest.batches.items()}
    if planned != stored:
        lost = sorted(set(manifest.inputs) - set(plan.images))
        why = f"{', '.join(lost)} can no longer be read" if lost else "the inputs changed"
        raise RunStoreError(
            str(store.root), f"cannot be resumed: {why}", "restore the inputs or start a new run"
        )
    checks = [
        (src, info.get("sha256"), plan.images[src].sha256)
        for src, info in manifest.inputs.items()
        if src in plan.images
    ]
    weights = {
        str(e.upscaler["weights"]): e.upscaler.get("weights_sha256")
        for e in manifest.batches.values()
        if e.status != "complete" and e.upscaler and e.upscaler.get("weights")
    }
    checks += [(w, sha, _sha256_or_missing(Path(w))) for w, sha in weights.items()]
    changed = {
        what: FileChange(before=before, after=after)
        for what, before, after in checks
        if before is not None and before != after
    }
    if changed and not force:
        what, c = next(iter(changed.items()))
        raise RunStoreError(
            what,
            f"changed since the run in {store.root} started (sha256 {c.before[:12]}... then, "
            f"{c.after[:12]}... now); resuming would mix two versions in one chain",
            "restore the original file, start a new run, or pass --force-resume to mix "
            "them knowingly",
        )
    return changed


def _sha256_or_missing(path: Path) -> str:
    return sha256_file(path) if path.is_file() else "(missing)"
