"""Sharing the device: photos of different sizes run in size buckets whose numbers equal each
chain's solo run, and batch sizes come from free memory, recorded so a resume batches alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import photo_u8
from PIL import Image

from roundtrip_ml.pipeline import batching
from roundtrip_ml.pipeline.batching import LiveBytes, chain_memory, peak_bytes
from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.experiment import check_experiment, run_experiment
from roundtrip_ml.pipeline.manifest import Manifest
from roundtrip_ml.pipeline.measure import Measurer
from roundtrip_ml.pipeline.plan import Chain, bucket_key, make_plan
from roundtrip_ml.pipeline.store import RunStore
from roundtrip_ml.upscalers import create_upscaler

CPU = torch.device("cpu")


def _photos(d: Path, sizes: dict[str, tuple[int, int]]) -> list[str]:
    d.mkdir(exist_ok=True)
    for name, (h, w) in sizes.items():
        Image.fromarray(photo_u8(name, h, w)).save(d / f"{name}.png")
    return [str(d / f"{n}.png") for n in sizes]


def _fingerprints(run_dir: Path) -> dict[str, list[int]]:
    fp = RunStore(run_dir).read_fingerprints().sort_values(["chain_id", "generation"])
    return {c: g["fingerprint"].tolist() for c, g in fp.groupby("chain_id")}


def test_a_chain_alone_and_in_a_mixed_size_run_give_identical_fingerprints(
    tmp_path, device
) -> None:
    """A real ML model and a lossy handoff: three photos in two sizes run as two batches (one
    per size, the fewest that stay exact) and every chain equals its solo run bit for bit, so
    neither the batch a chain lands in nor its batch size (which free memory decides) changes
    its numbers. On a GPU (`--device cuda`) this is the check that kernels are batch-invariant."""
    images = _photos(
        tmp_path / "in", {"astronaut": (40, 48), "coffee": (40, 48), "chelsea": (48, 40)}
    )
    base = {
        "upscalers": ["realesr-animevideov3"],
        "codecs": ["jpeg:90"],
        "generations": 3,
        "metrics": ["psnr"],
        "device": device,
        "checkpoint_stride": 2,
    }
    mixed = make_config({**base, "images": images, "output": str(tmp_path / "mixed")})
    assert sorted(len(b.chains) for b in make_plan(mixed).batches) == [1, 2]
    run_experiment(mixed)
    together = _fingerprints(tmp_path / "mixed")
    assert len(together) == 3
    for src in images:
        out = tmp_path / ("solo-" + Path(src).stem)
        run_experiment(make_config({**base, "images": [src], "output": str(out)}))
        ((cid, prints),) = _fingerprints(out).items()
        assert together[cid] == prints
        assert len(set(prints)) == 4  # a real, changing chain: nothing trivially equal


def test_live_bytes_counts_the_peak_of_live_storage() -> None:
    def work() -> None:
        a = torch.empty(1 << 18)  # 1 MiB
        b = torch.empty(1 << 19)  # 2 MiB, both alive: 3 MiB
        del a
        c = torch.empty(1 << 17)  # 0.5 MiB after 1 MiB was freed
        del b, c

    assert peak_bytes(work, CPU) == 3 << 20
    with LiveBytes() as t:
        work()
    assert t.now == 0  # everything freed is forgotten


def test_probe_predicts_a_larger_generation_s_peak() -> None:
    """The fit from two small probes (64, 128 px) predicts a real generation at 192 px."""
    cfg = make_config(
        {
            "images": ["skimage:astronaut"],
            "upscalers": ["realesr-animevideov3"],
            "device": "cpu",
            "metrics": ["psnr", "ssim"],
        }
    )
    up = create_upscaler("realesr-animevideov3", CPU, cfg.inference())
    measurer = Measurer(cfg, CPU)
    recipe = Chain(
        "c",
        "skimage:astronaut",
        "astronaut",
        "realesr-animevideov3",
        "lanczos3",
        4.0,
        "png",
        0,
        "c",
    )
    mem = chain_memory(cfg, up, measurer, recipe, CPU)
    assert mem.per_pixel > 50  # a 3-channel float image alone is 12 bytes per pixel
    real = peak_bytes(lambda: batching._probe_generation(cfg, up, measurer, recipe, 192, CPU), CPU)
    assert 0.8 < mem.batch_bytes(1, (192, 192)) / real < 1.25


def test_batches_sized_from_free_memory_and_a_resume_batches_alike(tmp_path, monkeypatch) -> None:
    """With room for two chains, four same-size photos run as two batches of two; the limit
    and how it was derived are in the manifest, and a resume on a machine with far more
    memory keeps it (another split would renumber the batches and refuse the resume)."""
    images = _photos(
        tmp_path / "in", {n: (40, 40) for n in ("astronaut", "coffee", "chelsea", "rocket")}
    )
    cfg = make_config(
        {
            "images": images,
            "upscalers": ["lanczos3"],
            "generations": 4,
            "checkpoint_stride": 2,
            "metrics": ["psnr"],
            "device": "cpu",
            "output": str(tmp_path / "run"),
        }
    )
    recipe = make_plan(cfg).chains[0]
    mem = chain_memory(cfg, create_upscaler("lanczos3", CPU), Measurer(cfg, CPU), recipe, CPU)
    free = (mem.fixed + 2.5 * mem.per_pixel * 40 * 40) / batching.MEMORY_FRACTION
    monkeypatch.setattr(batching, "free_memory", lambda device: int(free))

    class Stop(BaseException):
        pass

    def stop(event: str, **kw: object) -> None:  # a kill in the second batch
        batch = kw.get("batch")
        if event == "generation" and kw["generation"] == 3 and batch.batch_id == "b0001":
            raise Stop

    with pytest.raises(Stop):
        run_experiment(cfg, progress=stop)
    m = Manifest.read(tmp_path / "run" / "manifest.json")
    key = bucket_key(recipe, (40, 40))
    assert m.batch_limits == {key: 2}
    assert m.batch_sizing[key]["limit"] == 2 and m.batch_sizing[key]["chain_bytes"] > 0
    assert [len(b.chains) for b in m.batches.values()] == [2, 2]
    assert m.batches["b0001"].generations_done == 2
    # a resume is planned with the recorded limits before the disk is touched, so its batch
    # ids are the stored ones (the models of finished batches are skipped by those ids)
    checked = check_experiment(cfg, m)
    assert {b.batch_id: len(b.chains) for b in checked.plan.batches} == {
        b: len(e.chains) for b, e in m.batches.items()
    }

    monkeypatch.setattr(batching, "free_memory", lambda device: 1 << 40)
    run_experiment(cfg, resume=True)
    monkeypatch.undo()
    ref = make_config({**cfg.to_json(), "output": str(tmp_path / "ref"), "max_batch": 4})
    run_experiment(ref)
    assert [len(b.chains) for b in make_plan(ref).batches] == [4]
    assert _fingerprints(tmp_path / "run") == _fingerprints(tmp_path / "ref")
