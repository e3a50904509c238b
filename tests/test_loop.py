"""The engine on real photos: Pillow agreement, odd inputs, batching, failures, run store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import photo_u8
from PIL import Image

from roundtrip_ml.core.errors import ConfigError, RunStoreError
from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.experiment import run_experiment
from roundtrip_ml.pipeline.plan import make_plan
from roundtrip_ml.pipeline.store import RunStore

FAST = {"metrics": ["psnr", "ssim"], "device": "cpu"}


def _cfg(tmp: Path, **kw):
    data = {
        "images": ["skimage:astronaut"],
        "generations": 3,
        "output": str(tmp / "run"),
        **FAST,
        **kw,
    }
    return make_config(data)


def _pillow_chain(a: np.ndarray, generations: int, scale: int) -> dict[int, np.ndarray]:
    im = Image.fromarray(a)
    w, h = im.size
    out = {0: a}
    for g in range(1, generations + 1):
        lo = im.resize((round(w / scale), round(h / scale)), Image.Resampling.LANCZOS)
        im = lo.resize((w, h), Image.Resampling.LANCZOS)
        out[g] = np.asarray(im)
    return out


def test_lanczos_chain_tracks_pillow_for_20_generations(tmp_path: Path) -> None:
    """The engine vs the same chain done with Pillow (the published experiment's tool)."""
    a = photo_u8("astronaut", 192, 192)
    Image.fromarray(a).save(tmp_path / "a.png")
    cfg = _cfg(tmp_path, images=[str(tmp_path / "a.png")], generations=20, frame_stride=1)
    res = run_experiment(cfg)
    assert not res.failed
    ref = _pillow_chain(a, 20, 4)
    store = RunStore(res.run_dir)
    (cid,) = store.read_chains().chain_id
    diffs = []
    for g, path in store.list_frames(cid).items():
        ours = np.asarray(Image.open(path)).astype(float)
        diffs.append(np.abs(ours - ref[g]).mean())
    print(
        f"engine vs Pillow, mean abs diff per generation: max {max(diffs):.3f} "
        f"mean {np.mean(diffs):.3f}"
    )
    assert len(diffs) == 21 and max(diffs) < 0.5


def test_run_directory_contents(tmp_path: Path) -> None:
    res = run_experiment(
        _cfg(tmp_path, codecs=["png", "jpeg:90"], generations=4, frame_stride=2, center_crop=96)
    )
    store = RunStore(res.run_dir)
    m = store.read_metrics()
    assert list(m.columns)[:3] == ["run_id", "chain_id", "image"]
    assert set(m.reference) == {"original", "previous", "first", "lowres"}
    assert set(m.generation) == {1, 2, 3, 4}
    assert m.query("reference == 'first'").generation.min() == 2
    man = store.read_manifest()
    assert man["status"] == "complete"
    assert man["environment"]["packages"]["torch"]
    assert all(len(i["sha256"]) == 64 for i in man["inputs"].values())
    assert all(len(b["wall_s_per_generation"]) == 4 for b in man["batches"].values())
    for cid in store.read_chains().chain_id:
        assert sorted(store.list_frames(cid)) == [0, 1, 2, 4]
    fp = store.read_fingerprints()
    assert len(fp) == 2 * 5 and fp.fingerprint.nunique() > 2
    # PSNR against the original falls as generations pass
    p = m.query("metric == 'psnr' and reference == 'original' and codec == 'jpeg:90'")
    assert p.sort_values("generation").value.is_monotonic_decreasing


def test_odd_inputs_all_run_and_bad_files_fail_alone(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(photo_u8("coffee", 179, 179)).save(d / "odd179.png")
    Image.fromarray(photo_u8("camera", 64, 80)[:, :, 0]).save(d / "gray.png")
    rgba = np.dstack([photo_u8("chelsea", 64, 64), np.full((64, 64), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(d / "alpha.png")
    Image.fromarray(photo_u8("rocket", 50, 70)[:, :, 0].astype(np.uint16) * 257).save(d / "d16.png")
    Image.fromarray(photo_u8("astronaut", 64, 64)).convert("CMYK").save(d / "cmyk.jpg")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    (d / "notes.txt.png").write_text("not an image")
    cfg = _cfg(tmp_path, images=[str(d / "*")], generations=2)
    res = run_experiment(cfg)
    assert set(Path(k).name for k in res.image_errors) == {"corrupt.png", "notes.txt.png"}
    assert all("corrupt.png" in v or "notes.txt.png" in v for v in res.image_errors.values())
    assert not res.failed and res.chains == 5
    store = RunStore(res.run_dir)
    chains = store.read_chains().set_index("image_name")
    assert tuple(chains.loc["odd179", ["height", "width"]]) == (179, 179)
    man = store.read_manifest()
    assert man["status"] == "complete_with_failures"
    infos = {Path(k).name: v for k, v in man["inputs"].items()}
    assert infos["gray.png"]["gray"] and infos["d16.png"]["bits"] == 16
    assert infos["alpha.png"]["alpha"] and infos["cmyk.jpg"]["mode"] == "CMYK"
    for cid in chains.chain_id:
        frame = np.asarray(Image.open(store.frame_path(cid, 2)))
        assert frame.shape[2] == 3


def test_batched_chains_equal_single_chains(tmp_path: Path) -> None:
    """Two same-size photos share one device batch; each result equals its solo run."""
    d = tmp_path / "in"
    d.mkdir()
    for n in ("astronaut", "coffee"):
        Image.fromarray(photo_u8(n, 80, 80)).save(d / f"{n}.png")
    both = _cfg(tmp_path, images=[str(d / "*.png")], output=str(tmp_path / "both"))
    plan = make_plan(both)
    assert len(plan.batches) == 1 and len(plan.batches[0].chains) == 2
    run_experiment(both)
    solo = _cfg(tmp_path, images=[str(d / "coffee.png")], output=str(tmp_path / "solo"))
    run_experiment(solo)
    a = RunStore(tmp_path / "both").frame_path("coffee-lanczos3-lanczos3-x4-png", 3)
    b = RunStore(tmp_path / "solo").frame_path("coffee-lanczos3-lanczos3-x4-png", 3)
    assert a.read_bytes() == b.read_bytes()


def test_existing_run_is_never_overwritten_silently(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, generations=1, center_crop=64)
    run_experiment(cfg)
    before = (tmp_path / "run" / "metrics.parquet").read_bytes()
    with pytest.raises(RunStoreError, match="--overwrite"):
        run_experiment(cfg)
    assert (tmp_path / "run" / "metrics.parquet").read_bytes() == before
    run_experiment(cfg, overwrite=True)
    with pytest.raises(RunStoreError, match="different config"):
        run_experiment(_cfg(tmp_path, generations=2, center_crop=64), resume=True)


def test_float_codec_keeps_float_state_and_crop_fit(tmp_path: Path) -> None:
    """A x4 model in a x3 roundtrip with fit = crop: the 80 x 88 output is centre-cropped to
    61 x 67 (not resized), and the float handoff keeps values off the 8-bit grid."""
    from safetensors.torch import load_file

    cfg = _cfg(
        tmp_path,
        upscalers=["realesr-animevideov3"],
        codecs=["float"],
        generations=2,
        center_crop=(61, 67),
        scales=[3],
        fit="crop",
    )
    res = run_experiment(cfg)
    store = RunStore(res.run_dir)
    assert not res.failed
    state = load_file(str(store.checkpoint_path("b0000")))["state"]
    assert state.dtype == torch.float32 and tuple(state.shape[-2:]) == (61, 67)
    off_grid = ((state * 255 - (state * 255).round()).abs() > 1e-3).float().mean()
    assert off_grid > 0.5  # an 8-bit handoff would put every value on the grid
    manifest = store.read_manifest()
    assert manifest["size_rule"]["fit"] == "crop"
    m = store.read_metrics()
    assert np.isfinite(m.query("reference == 'original'").value).all()


def test_replicas_share_the_batch_and_record_distances(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, generations=3, center_crop=64, replicas=2, perturbation="lsb")
    res = run_experiment(cfg)
    store = RunStore(res.run_dir)
    assert len(store.read_chains()) == 3 and len(make_plan(cfg).batches) == 1
    m = store.read_metrics()
    rep = m.query("reference == 'replicas'")
    assert set(rep.scope) == {"group"} and set(rep.replica) == {0}
    assert set(rep.metric) == {"mse", "psnr"}
    assert (rep.query("metric == 'mse'").value > 0).all()
    unp = m.query("reference == 'unperturbed'")
    assert set(unp.replica) == {1, 2}
    # replicas start within one level of the original
    f0 = [
        np.asarray(Image.open(store.frame_path(c, 0))).astype(int)
        for c in store.read_chains().chain_id
    ]
    assert np.abs(f0[1] - f0[0]).max() == 1 and not np.array_equal(f0[1], f0[2])


def test_metric_rows_are_tidy(tmp_path: Path) -> None:
    res = run_experiment(_cfg(tmp_path, generations=2, center_crop=64))
    m = pd.read_parquet(res.run_dir / "metrics.parquet")
    assert m.dtypes["value"] == np.float64 and m.dtypes["generation"] == np.int64
    key = ["chain_id", "generation", "metric", "reference"]
    assert not m.duplicated(key).any()
    assert torch.isinf(torch.tensor(m.query("reference == 'first'").value.to_numpy())).sum() == 0


def test_alpha_carried_through_a_classical_chain(tmp_path: Path) -> None:
    """alpha = 'carry': the alpha plane is resampled with the colour and saved as RGBA."""
    d = tmp_path / "in"
    d.mkdir()
    a = photo_u8("chelsea", 64, 64)
    alpha = np.zeros((64, 64), np.uint8)
    alpha[16:48, 16:48] = 255  # an opaque square on a transparent field
    Image.fromarray(np.dstack([a, alpha]), "RGBA").save(d / "cut.png")
    Image.fromarray(photo_u8("coffee", 64, 64)).save(d / "opaque.png")
    cfg = _cfg(
        tmp_path,
        images=[str(d / "*.png")],
        upscalers=["lanczos3"],
        alpha="carry",
        generations=3,
        frame_stride=1,
    )
    res = run_experiment(cfg)
    assert not res.failed and not res.image_errors
    store = RunStore(res.run_dir)
    cut = np.asarray(Image.open(store.frame_path("cut-lanczos3-lanczos3-x4-png", 3)))
    assert cut.shape == (64, 64, 4)
    assert cut[32, 32, 3] == 255 and cut[2, 2, 3] == 0  # inside stays opaque, outside clear
    edge = cut[16, 16:48, 3]
    assert 0 < edge.min() < 255  # the square's edge got resampled (softened)
    opaque = np.asarray(Image.open(store.frame_path("opaque-lanczos3-lanczos3-x4-png", 3)))
    assert (opaque[..., 3] == 255).all()
    m = store.read_metrics()
    assert np.isfinite(m.query("reference == 'original'").value).all()
    with pytest.raises(ConfigError, match="alpha"):
        _cfg(tmp_path, upscalers=["realesrgan-x4plus"], alpha="carry")
