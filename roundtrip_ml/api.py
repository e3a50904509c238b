"""The Python API: what a notebook needs, re-exported from the package top level.

- `roundtrip` runs one chain in memory (no run directory) and returns a `Trajectory`;
- `run` runs an experiment into a run directory, `load_run` reads one back as a `RunView`;
- `summarize`, `list_upscalers`, `list_metrics` answer the usual questions.

The in-memory chain uses the engine's own generation step and metric dispatch, so its numbers
equal a `roundtrip run` of the same recipe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import Tensor

from .analysis.summary import DEFAULT_THRESHOLDS, parse_thresholds, summarize_run
from .analysis.summary import summarize as summarize_chains
from .core.determinism import deterministic
from .core.errors import ConfigError
from .core.info import resolve_device
from .imaging.images import memory_image
from .pipeline.chain import ChainLoop, ChainState, MemorySink, start_images
from .pipeline.config import ExperimentConfig, load_config, make_config
from .pipeline.engine import RunResult
from .pipeline.experiment import run_experiment
from .pipeline.measure import Measurer, table_rows
from .pipeline.plan import (
    Batch,
    Chain,
    chain_id,
    image_name,
    prepare_image,
    preprocess,
    step_paths,
)
from .progress import EngineProgress, run_progress, skipped_metrics_note, sweep_progress
from .report.data import Runs
from .report.view import RunView, load_run
from .sweep import SweepResult, SweepTracker, load_sweep, parse_sweep
from .sweep import run_sweep as sweep_runner
from .sweep.summary import is_sweep, summarize_sweep
from .upscalers import create_upscaler

ImageLike = str | Path | Image.Image | np.ndarray | Tensor
MEMORY_RUN_ID = "in-memory"


@dataclass
class Trajectory:
    """One chain's generations, in memory (what `roundtrip` returns).

    Attributes:
        config: The resolved config the chain ran under.
        chain: The chain's recipe and id.
        frames: Generation -> uint8 3 x H x W tensor (at the frame stride, plus 0, 1 and the
            last).
        metrics: The engine's tidy table (columns as in a run's metrics.parquet).
        fingerprints: One 64-bit hash of the 8-bit state per generation.
        upscaler: What the upscaler reported about itself (weights, precision, ...).
    """

    config: ExperimentConfig
    chain: Chain
    frames: dict[int, Tensor]
    metrics: pd.DataFrame
    fingerprints: pd.DataFrame
    upscaler: dict[str, Any] = field(default_factory=dict)

    @property
    def generations(self) -> int:
        return self.config.generations

    def frame(self, generation: int = -1) -> Image.Image:
        """The saved frame of ``generation`` (-1: the last) as a PIL image."""
        g = max(self.frames) if generation == -1 else generation
        if g not in self.frames:
            raise KeyError(f"generation {g} was not kept (kept: {sorted(self.frames)})")
        return Image.fromarray(self.frames[g].permute(1, 2, 0).numpy())

    def value(self, metric: str, generation: int, reference: str = "original") -> float:
        """One metric value, e.g. ``t.value("psnr", 10)``."""
        m = self.metrics
        hit = m[(m.metric == metric) & (m.generation == generation) & (m.reference == reference)]
        if hit.empty:
            raise KeyError(f"no {metric} vs {reference} at generation {generation}")
        return float(hit["value"].iloc[0])

    def to_runs(self) -> Runs:
        """The trajectory as the report functions' input (figures and tables work on it)."""
        h, w = self.frames[0].shape[-2:]
        chains = pd.DataFrame(
            [
                {
                    **self.chain.__dict__,
                    "batch_id": "b0000",
                    "height": int(h),
                    "width": int(w),
                    "run_id": MEMORY_RUN_ID,
                    "run": "memory",
                    "run_dir": "",
                }
            ]
        )
        metrics = self.metrics.assign(run="memory")
        fps = self.fingerprints.assign(run_id=MEMORY_RUN_ID)
        manifest = {"run_id": MEMORY_RUN_ID, "status": "complete"}
        return Runs(Path("."), metrics, chains, {MEMORY_RUN_ID: manifest}, fps)


def _as_tensor(image: ImageLike, cfg: ExperimentConfig) -> Tensor:
    """1 x C x H x W float32 in [0, 1], as a run would read it: paths through the engine's
    reader; PIL images, arrays and tensors through the same alpha policy (``alpha``,
    ``background``), gray expansion and preprocessing, so an RGBA image gives the same chain
    whichever way it is passed."""
    if isinstance(image, (str, Path)):
        return prepare_image(str(image), cfg)[0]
    x, info = memory_image(image, cfg.alpha, cfg.background)
    return preprocess(x, info, cfg)[0]


def roundtrip(
    image: ImageLike,
    upscaler: str = "realesrgan-x4plus",
    scale: float = 4,
    codec: str = "png",
    generations: int = 50,
    metrics: tuple[str, ...] | list[str] | None = ("psnr", "ssim"),
    *,
    downscaler: str = "lanczos3",
    device: str = "auto",
    frame_stride: int = 1,
    progress: bool | EngineProgress | None = True,
    stabilizer: str = "none",
    start: str = "image",
    **config: Any,
) -> Trajectory:
    """Run one chain in memory and return its `Trajectory` (no run directory).

    It drives the engine's own generation step and metric dispatch, so its numbers equal those
    of `run` with the same settings.

    Args:
        image: A path or ``skimage:NAME``, a PIL image, an H x W x C array (C = 1 to 4;
            uint8, uint16 or float in [0, 1]) or a C x H x W tensor in [0, 1]; alpha follows
            the ``alpha`` policy (default: composited on ``background``, white) exactly as
            for a file.
        upscaler: A kernel (``lanczos3``), a registry model, a weights path or
            ``ncnn:PATH.param``.
        scale: The roundtrip factor (1: a codec-only chain).
        codec: The handoff codec or codec schedule (``png``, ``jpeg:90``, ``jpeg:70-95``).
        generations: How many roundtrips to run.
        metrics: Metric names to measure every generation; None takes the default set.
        downscaler: The kernel of the downscale.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        frame_stride: Keep every k-th generation's image (plus 0, 1 and the last).
        progress: A bar with generation, rate and ETA (a widget in Jupyter), plus one line
            with the estimated time when a CPU job will be long; False silences it.
        stabilizer: One stabiliser (``none``, ``colour``, ``histogram``, ``wavelet``,
            ``backproject:N``), as the ``stabilizers`` key with one entry.
        start: What generation 0 is: ``image``, ``noise`` or ``flat`` (key ``starts``).
        **config: Any other `ExperimentConfig` key by name (``center_crop``, ``precision``,
            ``fit``, ``up_steps``, ...).

    Returns:
        The chain's frames, tidy metric table and fingerprints.

    Raises:
        ConfigError: A bad key or value; ``replicas`` (one chain has none: use `run`).

    Examples:
        >>> t = roundtrip("skimage:astronaut", "lanczos3", generations=3, center_crop=64,
        ...               progress=False)
        >>> sorted(t.frames), round(t.value("psnr", 1), 1) > 20
        ([0, 1, 2, 3], True)
    """
    source = str(image) if isinstance(image, (str, Path)) else "memory:image"
    cfg = make_config(
        {
            "images": [source],
            "upscalers": [upscaler],
            "downscalers": [downscaler],
            "scales": [scale],
            "codecs": [codec],
            "generations": generations,
            "metrics": None if metrics is None else list(metrics),
            "device": device,
            "frame_stride": frame_stride,
            "stabilizers": [stabilizer],
            "starts": [start],
            **config,
        },
        "roundtrip()",
    )
    if cfg.replicas:  # a Trajectory is one chain; replicas are a run's (and summarize's)
        raise ConfigError(
            "roundtrip(): replicas",
            "one in-memory chain has no perturbed replicas",
            "use rt.run({..., 'replicas': K}); rt.summarize(run).attrs['divergence'] then "
            "has the divergence rate and the largest Lyapunov exponent",
        )
    upscaler, downscaler = cfg.upscalers[0], cfg.downscalers[0]  # canonical names
    name = image_name(source) if source != "memory:image" else "image"
    stab = cfg.parsed_stabilizers()[stabilizer].spec
    paths = step_paths(cfg)
    cid = chain_id(name, upscaler, downscaler, scale, codec, stabilizer=stab, start=start, **paths)
    chain = Chain(
        cid,
        source,
        name,
        upscaler,
        downscaler,
        float(scale),
        codec,
        0,
        cid,
        stabilizer=stab,
        start=start,
        **paths,
    )
    x0 = _as_tensor(image, cfg)  # the photo; start_images makes the chain's start from it
    batch = Batch("b0000", [chain], (int(x0.shape[-2]), int(x0.shape[-1])))
    dev = resolve_device(cfg.device)
    report = run_progress(progress, str(dev)) or (lambda *a, **k: None)
    with deterministic(dev, cfg.deterministic), torch.no_grad():
        up = create_upscaler(upscaler, dev, cfg.inference())
        sink = MemorySink()
        original, x_start = (t.to(dev) for t in start_images(cfg, batch, {source: x0}))
        loop = ChainLoop(cfg, batch, up, Measurer(cfg, dev))
        report("run_start", total=cfg.generations)
        report("batch_start", batch=batch, start=0, generations=cfg.generations)
        t_gen = time.perf_counter()
        for g in loop.steps(original, ChainState(0, x_start), sink):
            t_now = time.perf_counter()
            report("generation", batch=batch, generation=g, wall_s=t_now - t_gen)
            t_gen = t_now
        report("run_end")
    table = pd.DataFrame(table_rows(MEMORY_RUN_ID, batch, sink.rows, {}))
    fps = pd.DataFrame(
        [
            {"chain_id": chain.chain_id, "generation": g, "fingerprint": int(v)}
            for g, v in ((g, t[0]) for g, t in sink.prints)
        ]
    )
    frames = sink.frames
    return Trajectory(cfg, chain, frames, table, fps, up.describe())


def run(
    config: ExperimentConfig | dict[str, Any] | str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | EngineProgress | None = True,
    **overrides: Any,
) -> RunView:
    """Run an experiment into its run directory and return it as a `RunView`.

    Args:
        config: An `ExperimentConfig`, a dict of config keys, or a TOML/YAML path.
        resume: Continue an interrupted run in its directory.
        overwrite: Replace an existing run (only the files a run writes are deleted).
        progress: A bar over chain-generations with the current recipe, generation, rate
            and ETA (a widget in Jupyter, rich in a terminal), one line with the estimated
            time when a CPU job will be long, and a note naming any default metric left out
            for the image size; False silences them, a callable receives the engine's events.
        **overrides: Config keys set by name, over those of ``config``.

    Returns:
        Typed, read-only access to the finished run directory.

    Raises:
        ConfigError: A bad key or value, named with what is allowed.

    Examples:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> r = run({"images": ["skimage:astronaut"], "generations": 2, "center_crop": 64,
        ...          "output": out}, overwrite=True, progress=False)
        >>> r.manifest.status, len(r.chains)
        ('complete', 1)
    """
    if isinstance(config, (str, Path)):
        cfg = load_config(config, overrides)
    elif isinstance(config, dict):
        cfg = make_config({**config, **overrides}, "run()")
    else:
        cfg = make_config({**config.to_json(), **overrides}, "run()") if overrides else config
    result: RunResult = run_experiment(
        cfg, resume=resume, overwrite=overwrite, progress=run_progress(progress, cfg.device)
    )
    note = skipped_metrics_note(result.run_dir) if progress else None
    if note:
        print(note)
    return load_run(result.run_dir)


def run_sweep(
    config: dict[str, Any] | str | Path,
    *,
    executor: str = "local",
    address: str | None = None,
    retries: int | None = None,
    progress: bool | SweepTracker | None = True,
) -> SweepResult:
    """Run (or resume) a sweep, as `roundtrip sweep run` does.

    (Named ``run_sweep``: ``rt.sweep`` is the subpackage.)

    Args:
        config: A dict of sweep keys or a TOML/YAML sweep file.
        executor: Where units run: ``local``, ``local-gpus`` or ``ray``.
        address: The Ray cluster's address (``ray`` only).
        retries: How often a failed unit is retried (None: the sweep's own setting).
        progress: A bar over chain-generations with cells done and an ETA (a widget in
            Jupyter, rich in a terminal); False silences it.

    Returns:
        The sweep's result: ``result.root`` is the sweep directory (the figure functions take
        it), ``result.merged`` the merged tables.
    """
    cfg = parse_sweep(config, "sweep()") if isinstance(config, dict) else load_sweep(config)
    return sweep_runner(
        cfg, executor=executor, address=address, retries=retries, progress=sweep_progress(progress)
    )


def summarize(
    run: RunView | Trajectory | str | Path | list[Any] | tuple[Any, ...],
    thresholds: str = DEFAULT_THRESHOLDS,
) -> pd.DataFrame:
    """Collapse statistics per chain (threshold crossings, half-life, fixed points, ...).

    A run's table is also written to RUN/summary.parquet; a sweep's (every unit's chains,
    with ``unit_id``) to SWEEP/summary.parquet. With replicas, ``df.attrs["divergence"]``
    holds the divergence rate and largest Lyapunov exponent per recipe (for a sweep, pooled
    over its units).

    Args:
        run: A run (`RunView` or its directory), a sweep directory, a `Trajectory`, or a list
            of these; a list gives one table with a ``source`` column (its position in the
            list), so two sources that share a chain id stay apart.
        thresholds: Collapse thresholds against the original, e.g. ``psnr<20,ssim<0.5``.

    Returns:
        One row per chain (columns: see `roundtrip summarize --help`).
    """
    if isinstance(run, list | tuple):
        if not run:
            raise TypeError(f"summarize got an empty list; it takes {SUMMARY_SOURCES}")
        return pd.concat(
            [summarize(r, thresholds).assign(source=i) for i, r in enumerate(run)],
            ignore_index=True,
        )
    if isinstance(run, Trajectory):
        return summarize_chains(run.metrics, run.fingerprints, parse_thresholds(thresholds))
    if isinstance(run, RunView | str | Path):
        path = run.path if isinstance(run, RunView) else Path(run)
        return (
            summarize_sweep(path, thresholds) if is_sweep(path) else summarize_run(path, thresholds)
        )
    raise TypeError(f"summarize takes {SUMMARY_SOURCES}; got {type(run).__name__}")


SUMMARY_SOURCES = (
    "a RunView (rt.run, rt.load_run), a run or sweep directory (str or Path), a "
    "Trajectory (rt.roundtrip), or a list of these"
)
