"""The abuse corpus of issue 19: nothing lost on a typo, nothing trusted from a file.

Each case is what a careless or hostile user did; each asserts the outcome: exit 2 and one
line naming the file or field, and (for ``--overwrite``) a finished run left byte-identical.
Real photos from scikit-image's wheel, 40 px crops, 2 generations: well under a minute.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from roundtrip_ml.cli import app as cli
from roundtrip_ml.core.errors import ConfigError, ImageError, RunStoreError
from roundtrip_ml.core.files import read_json, read_parquet
from roundtrip_ml.pipeline.config import load_config
from roundtrip_ml.pipeline.experiment import run_experiment
from roundtrip_ml.pipeline.manifest import Manifest

BASE = [
    "-i",
    "skimage:astronaut",
    "-u",
    "bicubic",
    "-s",
    "2",
    "-g",
    "2",
    "--center-crop",
    "40",
    "-m",
    "psnr",
    "--device",
    "cpu",
    "--set",
    "region_metrics=false",
    "-q",
]


def _main(argv: list[str], monkeypatch, capsys) -> tuple[int, list[str]]:
    """The real CLI entry point (exit-code mapping included), in this process."""
    monkeypatch.setattr(sys, "argv", ["roundtrip", *argv])
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as ei:
        cli.main()
    err = capsys.readouterr().err
    return int(ei.value.code or 0), [ln for ln in err.splitlines() if ln.strip()]


def _replace(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder under ``root``: bytes and modification time."""
    snap = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        snap[rel] = (p.read_bytes() if p.is_file() else b"<dir>", p.stat().st_mtime_ns)
    return snap


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run, made once; each case works on a copy."""
    out = tmp_path_factory.mktemp("finished") / "run"
    cfg = load_config_args(out)
    run_experiment(cfg)
    return out


def load_config_args(out: Path):
    from roundtrip_ml.pipeline.config import make_config

    return make_config(
        {
            "images": ["skimage:astronaut"],
            "upscalers": ["bicubic"],
            "scales": [2],
            "generations": 2,
            "center_crop": [40, 40],
            "metrics": ["psnr"],
            "device": "cpu",
            "region_metrics": False,
            "output": str(out),
        }
    )


def _no_device() -> str:
    return "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"


# The 15 error kinds of issue 19 (the first 8 used to delete the run they were meant to
# replace), plus a weights file that cannot load.
OVERWRITE_CASES = {
    "metric typo": (lambda a, d: _replace(a, "-m", "psnrr"), "psnrr"),
    "unknown pyiqa metric": (lambda a, d: _replace(a, "-m", "pyiqa:nosuchmetric"), "pyiqa"),
    "center crop larger than the image": (
        lambda a, d: _replace(a, "--center-crop", "5000"),
        "center_crop",
    ),
    "cuda without a GPU": (lambda a, d: _replace(a, "--device", _no_device()), "device"),
    "device tpu:7": (lambda a, d: _replace(a, "--device", "tpu:7"), "tpu:7"),
    "glob matching nothing": (
        lambda a, d: _replace(a, "-i", str(d / "nothing*.png")),
        "glob matches no file",
    ),
    "missing image": (lambda a, d: _replace(a, "-i", str(d / "missing.png")), "missing.png"),
    "metric_crop outside the image": (
        lambda a, d: [*a, "--set", "metric_crop=[0,0,100,100]"],
        "metric_crop",
    ),
    "generations not a number": (lambda a, d: [*a, "--set", 'generations="3"'], "generations"),
    "scale as text": (lambda a, d: [*a, "--set", 'scales="4"'], "scales"),
    "upscaler typo": (lambda a, d: _replace(a, "-u", "bicubik"), "did you mean bicubic"),
    "downscaler typo": (lambda a, d: [*a, "--downscaler", "lanczso3"], "downscalers"),
    "codec typo": (lambda a, d: [*a, "-c", "jepg:90"], "jepg is no codec"),
    "config key typo": (lambda a, d: [*a, "--set", "gnerations=3"], "did you mean"),
    "perturbation typo": (lambda a, d: [*a, "--set", 'perturbation="nois:2"'], "perturbation"),
    "weights that cannot load": (
        lambda a, d: _replace(a, "-u", str(d / "broken.pth")),
        "broken.pth",
    ),
}


@pytest.mark.parametrize("case", list(OVERWRITE_CASES))
def test_an_error_with_overwrite_leaves_the_finished_run_byte_identical(
    case: str, finished: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (tmp_path / "broken.pth").write_bytes(b"PK\x03\x04" + random.Random(0).randbytes(300))
    before = _snapshot(run)
    make_args, words = OVERWRITE_CASES[case]
    code, lines = _main(
        ["run", *make_args(BASE, tmp_path), "-o", str(run), "--overwrite"], monkeypatch, capsys
    )
    assert code == 2 and len(lines) == 1, lines
    assert words in lines[0], lines
    assert _snapshot(run) == before


def test_nothing_is_created_for_a_new_output_either(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "new" / "run"
    code, lines = _main(
        ["run", *_replace(BASE, "-m", "psnrr"), "-o", str(out)], monkeypatch, capsys
    )
    assert code == 2 and len(lines) == 1 and not (tmp_path / "new").exists()


def test_a_good_overwrite_still_replaces_the_run(
    finished: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    code, _ = _main(
        ["run", *_replace(BASE, "-g", "3"), "-o", str(run), "--overwrite"], monkeypatch, capsys
    )
    assert code == 0
    assert read_json(run / "config.json")["generations"] == 3
    assert set(read_parquet(run / "metrics.parquet")["generation"]) == {1, 2, 3}


# ---- 3. corrupt tables and JSON in run and sweep directories: one line -------------------------

CORRUPTIONS = {
    "truncated": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
    "garbage": lambda b: np.random.default_rng(0).bytes(len(b)),
    "text": lambda b: b"chain_id,generation\nx,1\n",
}


@pytest.mark.parametrize("table", ["metrics.parquet", "chains.parquet", "fingerprints.parquet"])
@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_report_on_a_corrupt_table_is_one_line(
    table: str, kind: str, finished: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    path = run / table
    path.write_bytes(CORRUPTIONS[kind](path.read_bytes()))
    code, lines = _main(["report", str(run), "-o", str(tmp_path / "rep")], monkeypatch, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert str(path) in lines[0] and "not a readable Parquet table" in lines[0], lines
    assert "fix:" in lines[0]


def test_a_table_of_someone_else_names_its_missing_columns(
    finished: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    pd.DataFrame({"a": [1, 2]}).to_parquet(run / "metrics.parquet")
    code, lines = _main(["report", str(run), "-o", str(tmp_path / "rep")], monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "lacks the column(s) run_id" in lines[0], lines


@pytest.mark.parametrize("name", ["manifest.json", "config.json"])
@pytest.mark.parametrize(
    "body", [b"", b"{not json", b"\xff\xfe\x00garbage", b"[1, 2]", b"[" * 100_000]
)
def test_run_json_that_is_not_json_is_one_line(
    name: str, body: bytes, finished: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / name).write_bytes(body)
    argv = (
        ["report", str(run), "-o", str(tmp_path / "rep")]
        if name == "manifest.json"
        else ["run", *BASE, "-o", str(run), "--resume"]
    )
    code, lines = _main(argv, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert str(run / name) in lines[0] and "JSON" in lines[0], lines


def test_a_manifest_of_the_wrong_shape_is_one_line(finished: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    data = read_json(run / "manifest.json")
    data["batches"] = "all of them"
    (run / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(
        RunStoreError,
        match=r"manifest.json: is not a manifest this tool wrote "
        r"\(key 'batches'",
    ):
        Manifest.read(run / "manifest.json")


def test_a_damaged_metrics_table_is_rebuilt_by_resume_as_the_fix_says(
    finished: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    good = pd.read_parquet(run / "metrics.parquet")
    (run / "metrics.parquet").write_bytes(b"")
    with pytest.raises(RunStoreError, match="restore it from a backup"):
        read_parquet(run / "metrics.parquet")  # the generic fix; the store knows a better one
    from roundtrip_ml.pipeline.store import RunStore

    with pytest.raises(RunStoreError, match="delete it and rerun the same command with --resume"):
        RunStore(run).read_metrics()
    (run / "metrics.parquet").unlink()
    run_experiment(load_config_args(run), resume=True)
    pd.testing.assert_frame_equal(pd.read_parquet(run / "metrics.parquet"), good, check_exact=True)


def test_corrupt_sweep_files_are_one_line(tmp_path: Path) -> None:
    from roundtrip_ml.sweep import merge

    (tmp_path / "sweep.json").write_text("{ truncated")
    with pytest.raises(RunStoreError, match=r"sweep.json: is not valid JSON \(line 1"):
        merge.read_plan(tmp_path)
    (tmp_path / "merged" / "metrics").mkdir(parents=True)
    (tmp_path / "merged" / "metrics" / "part-0.parquet").write_bytes(b"PAR1garbage")
    with pytest.raises(RunStoreError, match=r"not a readable Parquet table.*sweep merge"):
        merge.read_merged(tmp_path)


def test_a_sweep_unit_with_a_damaged_manifest_fails_with_one_line(
    finished: Path, tmp_path: Path
) -> None:
    from roundtrip_ml.sweep.worker import run_unit

    run = tmp_path / "unit"
    shutil.copytree(finished, run)
    (run / "manifest.json").write_bytes(b"\0\0\0")
    res = run_unit({**load_config_args(run).to_json(), "output": str(run)})
    assert res["status"] == "failed" and not res["retryable"]
    assert res["error"].startswith(f"{run / 'manifest.json'}: is not valid JSON"), res


# ---- 4. records that tell the truth ------------------------------------------------------------


def test_force_resume_is_recorded_with_both_hashes(tmp_path: Path) -> None:
    from conftest import photo_u8
    from PIL import Image

    img = tmp_path / "in.png"
    Image.fromarray(photo_u8("astronaut", 40, 40)).save(img)
    cfg = load_config_args(tmp_path / "run").model_copy(
        update={"images": [str(img)], "center_crop": None}
    )
    run_experiment(cfg)
    old = read_json(tmp_path / "run" / "manifest.json")["inputs"][str(img)]["sha256"]
    Image.fromarray(photo_u8("coffee", 40, 40)).save(img)
    with pytest.raises(RunStoreError, match="--force-resume"):
        run_experiment(cfg, resume=True)
    assert read_json(tmp_path / "run" / "manifest.json")["forced_resumes"] == []
    run_experiment(cfg, resume=True, force_resume=True)
    [forced] = read_json(tmp_path / "run" / "manifest.json")["forced_resumes"]
    new = forced["changed"][str(img)]["after"]
    assert forced["changed"][str(img)]["before"] == old and new != old and len(new) == 64
    assert forced["at"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('scales = "4"', "'scales[0]': must be a number, got \"4\""),
        ('scales = ["4"]', "'scales[0]': must be a number"),
        ('generations = "3"', "'generations': must be a whole number, got \"3\""),
        ("background = [1, true, 1]", "'background"),
        ('background = ["1", 1, 1]', "'background[0]': must be a number"),
    ],
)
def test_strict_types_everywhere(tmp_path: Path, body: str, says: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(f'images = ["skimage:coffee"]\n{body}\n')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert says in str(ei.value), str(ei.value)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("images: [a.png\nscales: 2\n", "line 2 column 7"),
        ("images: a: b\n", "line 1 column 10"),
        ("name: 'unterminated\n", "line 2 column 1"),
        ("\timages: x\n", "line 1 column 1"),
    ],
)
def test_yaml_errors_are_one_line(tmp_path: Path, text: str, where: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert "\n" not in msg and str(p) in msg and where in msg and "cannot parse YAML" in msg, msg


def test_a_yaml_alias_bomb_is_refused_before_validation(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\nimages: *a8\n")
    with pytest.raises(ConfigError, match="expands to more than 1000000 values"):
        load_config(p)


@pytest.mark.parametrize("bad", [b"\xff\xfe binary", None])
def test_unreadable_config_files_are_one_line(tmp_path: Path, bad: bytes | None) -> None:
    p = tmp_path / "c.toml"
    if bad is None:
        p.mkdir()
    else:
        p.write_bytes(bad)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert str(p) in str(ei.value) and "\n" not in str(ei.value)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((0, 16, 3), np.uint8),
        np.zeros((16, 0), np.uint8),
        np.zeros((0,), np.uint8),
    ],
)
def test_roundtrip_refuses_empty_and_degenerate_arrays(array: np.ndarray) -> None:
    import roundtrip_ml as rt

    with pytest.raises(ImageError) as ei:
        rt.roundtrip(array, "bicubic", scale=2, generations=1, device="cpu")
    assert "\n" not in str(ei.value)


def test_failure_lines_name_the_path_once_and_do_not_wrap(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    bad = tmp_path / ("a-rather-long-folder-name-" * 3) / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    monkeypatch.setattr(
        sys, "argv", ["roundtrip", "run", *BASE, "-i", str(bad), "-o", str(tmp_path / "run")]
    )
    monkeypatch.delenv("COLUMNS", raising=False)
    with pytest.raises(SystemExit) as ei:
        cli.main()
    assert ei.value.code == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("failed")]
    assert len(lines) == 1 and lines[0].count(str(bad)) == 1, lines


def test_the_pickle_refusal_says_what_to_do_instead(tmp_path: Path) -> None:
    import pickle

    from roundtrip_ml.core.errors import WeightsError
    from roundtrip_ml.upscalers.loading import read_state_dict

    class Payload:
        def __reduce__(self):  # what a malicious checkpoint does: call something on load
            return (print, ("payload ran",))

    p = tmp_path / "evil.pth"
    p.write_bytes(pickle.dumps({"w": Payload()}, protocol=2))
    with pytest.raises(WeightsError) as ei:
        read_state_dict(p)
    msg = str(ei.value)
    assert "safetensors" in msg and "weights_only" not in msg, msg
    assert "\n" not in msg and msg.count(str(p)) == 1


def test_a_multi_line_failure_prints_as_one_line(tmp_path: Path, capsys) -> None:
    from roundtrip_ml.pipeline.engine import RunResult

    err = "RuntimeError: Given groups=1, weight of size [64, 3, 3, 3]\nexpected input[1, 4, 8, 8]"
    cli._print_result(RunResult(tmp_path, "r", 2, {"astronaut-x": err}), quiet=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "failed astronaut-x: RuntimeError: Given groups=1, weight of size "
        "[64, 3, 3, 3] (the rest is in the run's manifest.json)"
    ], lines


def test_a_resumed_run_keeps_the_id_it_started_with(tmp_path: Path) -> None:
    """A run started before a config key existed hashes to another run_id today; its resumed
    rows must still carry the id it started with (one table, one id)."""
    out = tmp_path / "run"
    cfg = load_config_args(out).model_copy(update={"generations": 4, "checkpoint_stride": 2})

    def stop_at_3(event: str, **d: object) -> None:
        if event == "generation" and d["generation"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, progress=stop_at_3)
    old = "run-0123456789"  # what an older version of the package called this run
    manifest = read_json(out / "manifest.json")
    assert manifest["status"] == "running"
    (out / "manifest.json").write_text(json.dumps({**manifest, "run_id": old}))
    for part in (out / "parts").glob("metrics-*.parquet"):
        pd.read_parquet(part).assign(run_id=old).to_parquet(part)
    run_experiment(cfg, resume=True)
    ids = set(pd.read_parquet(out / "metrics.parquet")["run_id"])
    assert ids == {old}
    assert set(pd.read_parquet(out / "metrics.parquet")["generation"]) == {1, 2, 3, 4}
