"""`roundtrip leaderboard --quick`: a real (tiny) protocol run with two small offline models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from roundtrip_ml.cli.app import app
from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.studies.leaderboard import QUICK, run_leaderboard, select_models
from roundtrip_ml.upscalers import zoo

MODELS = "span-x2-ch48,waifu2x-upconv-photo-x2"


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions on a shared 2-core machine
    yield
    torch.set_num_threads(n)


def _need_models() -> None:
    for name in MODELS.split(","):
        if zoo.find_offline(zoo.get_entry(name), check_hash=False) is None:
            pytest.skip(f"{name} is not installed (pip install roundtrip-ml)")


def test_quick_leaderboard_ranks_models_and_baselines_and_resumes(tmp_path: Path) -> None:
    _need_models()
    out = tmp_path / "lb"
    r = CliRunner().invoke(app, ["leaderboard", "--quick", "--models", MODELS,
                                 "--output", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "leaderboard.csv")
    assert set(table["upscaler"]) == {"span-x2-ch48", "waifu2x-upconv-photo-x2", "lanczos3",
                                      "bicubic"}
    assert (table["scale"] == 2).all() and sorted(table["rank"]) == [1, 2, 3, 4]
    assert (table["n_photos"] == len(QUICK.photos)).all()
    for col in ("g1_psnr", "g1_ssim", "final_psnr", "de2000", "lowres_psnr", "ocr_cer",
                "divergence_db_per_gen"):
        assert table[col].map(math.isfinite).all(), col
    assert (table["g1_psnr_lo"] <= table["g1_psnr"]).all()
    assert (table["g1_psnr"] <= table["g1_psnr_hi"]).all()
    # ranked by PSNR after the last generation, within the scale
    assert table.sort_values("rank")["final_psnr"].is_monotonic_decreasing
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["crop"] == QUICK.crop and protocol["generations"] == QUICK.generations
    assert "native scale" in protocol["scale_handling"]
    assert {m["name"] for m in protocol["models"]} == set(MODELS.split(","))
    for f in ("tradeoff.png", "contact_sheet.png", "leaderboard.md", "chains.csv"):
        assert (out / f).stat().st_size > 0, f
    assert "span-x2-ch48" in r.output and "tradeoff.png" in r.output
    again = run_leaderboard(out, models=MODELS, quick=True, device="cpu")  # resumes: no rerun
    pd.testing.assert_frame_equal(again.table.reset_index(drop=True)[table.columns], table,
                                  check_dtype=False)


def test_a_different_protocol_is_refused_in_the_same_directory(tmp_path: Path) -> None:
    (tmp_path / "protocol.json").write_text(json.dumps({"version": 0, "crop": 1}))
    with pytest.raises(ConfigError, match="another protocol"):
        run_leaderboard(tmp_path, models=MODELS, quick=True, device="cpu")


def test_model_selection() -> None:
    _need_models()
    assert select_models("span-x2-ch*") == [("span-x2-ch48", 2), ("span-x2-ch52", 2)]
    default = dict(select_models())
    assert len(default) >= 45 and all(s > 1 for s in default.values())  # x1 left out
    with pytest.raises(ConfigError, match="matches no model"):
        select_models("nothing-like-this-*")


def test_a_protocol_json_reruns_the_same_protocol(tmp_path: Path) -> None:
    from roundtrip_ml.studies.leaderboard import load_protocol

    path = tmp_path / "protocol.json"
    path.write_text(json.dumps({**QUICK.describe(), "models": [{"name": "x", "native_scale": 2}]}))
    assert load_protocol(path) == QUICK
    path.write_text(json.dumps({"crop": 96}))
    with pytest.raises(ConfigError, match="not a leaderboard protocol"):
        load_protocol(path)
