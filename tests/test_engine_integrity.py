"""The engine never records what it did not measure and never mixes two runs' data: NaN model
output fails its batch, resume refuses changed inputs and weights, float chains checkpoint at
generation 1 (issue: nothing lost, nothing mixed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from safetensors.torch import save_file

from roundtrip_ml.core.errors import RunStoreError
from roundtrip_ml.pipeline.config import make_config
from roundtrip_ml.pipeline.experiment import run_experiment
from roundtrip_ml.pipeline.store import RunStore


def _photo(path: Path, crop: slice = slice(0, 48)) -> str:
    Image.fromarray(skimage.data.astronaut()[crop, crop]).save(path)
    return str(path)


def _model_file(path: Path, *, nan: bool = False, seed: int = 0) -> str:
    """A small randomly initialised SRVGGNetCompact (x4) as safetensors; ``nan`` poisons the
    last convolution's bias, as a broken conversion or a diverged fine-tune would."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    sd = {
        k: v.contiguous()
        for k, v in Compact(num_feat=8, num_conv=2, upscale=4).state_dict().items()
    }
    if nan:
        last = [k for k in sd if k.endswith("bias")][-1]
        sd[last] = torch.full_like(sd[last], float("nan"))
    save_file(sd, str(path))
    return str(path)


def _cfg(tmp: Path, **kw: object):
    base = {
        "images": [_photo(tmp / "in.png")],
        "upscalers": ["lanczos3"],
        "generations": 4,
        "checkpoint_stride": 2,
        "metrics": ["psnr"],
        "output": str(tmp / "run"),
    }
    return make_config({**base, **kw})


def test_nan_model_output_fails_its_batch_and_records_nothing(tmp_path: Path) -> None:
    good = _model_file(tmp_path / "good.safetensors")
    bad = _model_file(tmp_path / "bad.safetensors", nan=True)
    result = run_experiment(_cfg(tmp_path, upscalers=[good, bad]))
    manifest = RunStore(result.run_dir).read_manifest()
    assert manifest["status"] == "complete_with_failures"
    [err] = {e for c, e in result.failed.items()}
    assert "NaN/Inf" in err and "bad" in err
    metrics = RunStore(result.run_dir).read_metrics()
    assert set(metrics["upscaler"]) == {good}  # nothing of the NaN chain was recorded
    assert not metrics["value"].isna().any()
    bad_chain = next(c for c in result.failed)
    assert RunStore(result.run_dir).list_frames(bad_chain).keys() <= {0}


def test_resume_refuses_a_changed_input_unless_forced(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    run_experiment(cfg)
    _photo(tmp_path / "in.png", slice(100, 148))  # same size, other pixels
    with pytest.raises(RunStoreError, match=r"in\.png.*changed since the run"):
        run_experiment(cfg, resume=True)
    run_experiment(cfg, resume=True, force_resume=True)  # the user asked for it knowingly


def test_resume_refuses_changed_weights(tmp_path: Path) -> None:
    weights = _model_file(tmp_path / "w.safetensors", seed=1)
    cfg = _cfg(tmp_path, upscalers=[weights])
    result = run_experiment(cfg)
    path = result.run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in manifest["batches"].values():  # as if killed after its first checkpoint
        entry["status"], entry["generations_done"] = "running", 2
    manifest["status"] = "running"
    path.write_text(json.dumps(manifest))
    _model_file(tmp_path / "w.safetensors", seed=2)  # same architecture, other weights
    with pytest.raises(RunStoreError, match=r"w\.safetensors.*changed since"):
        run_experiment(cfg, resume=True)
    assert RunStore(result.run_dir).read_manifest()["status"] == "running"  # untouched


def test_float_codec_checkpoints_at_generation_one(tmp_path: Path) -> None:
    result = run_experiment(_cfg(tmp_path, codecs=["float"], generations=1, checkpoint_stride=1))
    assert not result.failed
    store = RunStore(result.run_dir)
    assert sorted(store.read_metrics()["generation"].unique()) == [1]
    again = run_experiment(
        _cfg(tmp_path, codecs=["float"], generations=1, checkpoint_stride=1), resume=True
    )
    assert not again.failed
    assert np.isfinite(store.read_metrics()["value"]).all()


def test_a_nan_metric_is_refused_and_an_undefined_region_measure_is_counted() -> None:
    from roundtrip_ml.core.errors import MeasurementError
    from roundtrip_ml.pipeline.measure import MetricRows, table_rows
    from roundtrip_ml.pipeline.plan import Batch, Chain

    chain = Chain("c", "skimage:astronaut", "astronaut", "lanczos3", "lanczos3", 4.0, "png", 0, "c")
    batch = Batch("b0000", [chain], (64, 64))
    idx = torch.tensor([0])
    nan = torch.tensor([float("nan")])
    with pytest.raises(MeasurementError, match="ssim vs original: is NaN for chain c"):
        table_rows("r", batch, [MetricRows(3, "ssim", "original", nan, idx)], {})
    undefined: dict[str, int] = {}
    rows = table_rows(
        "r",
        batch,
        [
            MetricRows(3, "mtf50@edge_v", "original", nan, idx),
            MetricRows(3, "psnr", "original", torch.tensor([31.0]), idx),
        ],
        undefined,
    )
    assert [r["metric"] for r in rows] == ["psnr"] and undefined == {"mtf50@edge_v": 1}
