"""The leaderboard end to end on real (tiny) runs: 24 px crops, 2 generations, Lanczos-3 and
two compact offline models (SPAN, waifu2x upconv) plus a randomly initialised Compact file.

What is checked: every number of leaderboard.csv recomputed from per_photo.csv with pandas and
scipy alone; add runs only the new model; two half-boards merge into the whole board; a
different protocol is refused and writes nothing; ``--protocol`` reruns exactly a board's
models; under 3 photos no interval is printed; protocol files are read strictly.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from roundtrip_ml.cli.app import app
from roundtrip_ml.core.errors import ConfigError, RunStoreError
from roundtrip_ml.studies.leaderboard import (
    CPU,
    QUICK,
    Entry,
    add_model,
    load_protocol,
    merge_boards,
    run_board,
    select_models,
)
from roundtrip_ml.studies.leaderboard.protocol import Photo, Protocol
from roundtrip_ml.studies.leaderboard.view import notes
from roundtrip_ml.upscalers import zoo

MODELS = "span-x2-ch48,waifu2x-upconv-photo-x2"
PHOTOS = ("astronaut", "coffee", "chelsea")


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


def tiny(photos: tuple[str, ...] = PHOTOS, **kw: object) -> Protocol:
    fields = {"name": "test", "crop": 24, "generations": 2, "baselines": ("lanczos3",), **kw}
    return replace(CPU, photos=tuple(Photo(f"skimage:{n}", "") for n in photos), **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_models()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("lb") / "whole"
    run_board(out, tiny(), select_models(MODELS), device="cpu", figures=False)
    return out


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ---- the numbers ----------------------------------------------------------------------------


def _holm(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    adj = np.maximum.accumulate(np.minimum(1, (len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(adj)
    out[order] = adj
    return out


def test_every_number_is_recomputed_from_per_photo_with_pandas_and_scipy(whole: Path) -> None:
    per = pd.read_csv(whole / "per_photo.csv")
    table = pd.read_csv(whole / "leaderboard.csv", keep_default_na=False, na_values=[""])
    assert {"upscaler", "scale", "photo", "metric", "generation", "value"} <= set(per.columns)
    proto = json.loads((whole / "protocol.json").read_text())
    last = per[per["generation"] == proto["generations"]]
    wide = last.pivot_table(index=["upscaler", "photo"], columns="metric", values="value")
    psnr = wide["psnr"].unstack("upscaler")  # photos x models: the pairing
    assert set(table["upscaler"]) == {"lanczos3", *MODELS.split(",")}
    assert (table["scale"] == 2).all() and (table["n"] == len(PHOTOS)).all()
    ref = psnr["lanczos3"]
    for _, r in table.iterrows():
        d = psnr[r["upscaler"]] - ref
        assert r["model_mean"] == pytest.approx(psnr[r["upscaler"]].mean(), abs=1e-9)
        assert r["paired_diff"] == pytest.approx(d.mean(), abs=1e-9)
        for metric, col in (
            ("ssim", "ssim_diff"),
            ("ssimulacra2", "ssimulacra2_diff"),
            ("de2000_mean", "colour_diff"),
        ):
            m = wide[metric].unstack("upscaler")
            assert r[col] == pytest.approx((m[r["upscaler"]] - m["lanczos3"]).mean(), abs=1e-9)
        rep = wide["replica_psnr"].unstack("upscaler").clip(upper=100)
        assert r["divergence_diff"] == pytest.approx(
            (rep[r["upscaler"]] - rep["lanczos3"]).mean(), abs=1e-9
        )
        if r["upscaler"] == "lanczos3":
            assert math.isnan(r["ci_low"]) and math.isnan(r["wins"])
            continue
        t = stats.ttest_rel(psnr[r["upscaler"]], ref)
        ci = t.confidence_interval(0.95)
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)
        assert r["p_baseline"] == pytest.approx(t.pvalue, rel=1e-9)
        assert r["dz"] == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-9)
        assert (r["wins"], r["ties"], r["losses"]) == (
            (d > 0.05).sum(),
            (d.abs() <= 0.05).sum(),
            (d < -0.05).sum(),
        )
    # rank: by the paired difference, higher first
    assert list(table.sort_values("rank")["upscaler"]) == list(
        (psnr.sub(ref, axis=0)).mean().sort_values(ascending=False).index
    )
    # groups: two models share a letter exactly when Holm-corrected paired tests keep them
    names = list(table["upscaler"])
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    adj = _holm(np.array([stats.ttest_rel(psnr[a], psnr[b]).pvalue for a, b in pairs]))
    group = dict(zip(table["upscaler"], table["group"], strict=True))
    for (a, b), q in zip(pairs, adj, strict=True):
        assert bool(set(group[a]) & set(group[b])) == (q > 0.05), (a, b, q)
    # collapse: first generation 3 dB below generation 1, censored at the last (restricted)
    ps = per[per["metric"] == "psnr"].pivot_table(
        index=["upscaler", "photo"], columns="generation", values="value"
    )
    below = ps.lt(ps[1] - proto["collapse_drop_db"], axis=0)
    restricted = below.idxmax(axis=1).where(below.any(axis=1), proto["generations"])
    rs = restricted.unstack("upscaler")
    for _, r in table.iterrows():
        assert r["collapse_diff"] == pytest.approx((rs[r["upscaler"]] - rs["lanczos3"]).mean())
        assert r["collapse_censored"] == int((~below.any(axis=1))[r["upscaler"]].sum())
    # lyapunov: per chain the OLS slope of ln RMS distance to the replica over the growth
    # phase (the window is the package's documented rule; the slope is scipy's)
    from roundtrip_ml.analysis.divergence import growth_window

    rp = per[per["metric"] == "replica_psnr"].pivot_table(
        index=["upscaler", "photo"], columns="generation", values="value"
    )
    ln_d = -np.log(10) / 20 * rp.clip(upper=100)

    def grown(row: pd.Series) -> float:
        w = growth_window(row.index, np.exp(2 * row.to_numpy()))
        part = row if w is None else row.loc[w[0] : w[1]]
        return float(stats.linregress(part.index, part.to_numpy()).slope)

    slope = ln_d.apply(grown, axis=1)
    lam = slope.unstack("upscaler")
    for _, r in table.iterrows():
        assert r["lyapunov_diff"] == pytest.approx((lam[r["upscaler"]] - lam["lanczos3"]).mean())
    _check_ends(per, table, proto["generations"])


def _ends_by_hand(per: pd.DataFrame, generations: int) -> pd.Series:
    """How each chain ends, from per_photo.csv with pandas and scipy alone: a repeat (the
    ``period`` row: 1 fixed point, k cycle), else the 95% CI of the OLS slope of ln(MSE to the
    previous generation) over the second half: below 0 converging, else wandering; fewer than
    4 points there: untyped."""
    keys = ["upscaler", "scale", "photo"]
    period = per[per["metric"] == "period"].set_index(keys)["value"]
    out = {}
    for key, g in per[per["metric"] == "step_psnr"].groupby(keys):
        mse = 10 ** (-g["value"].to_numpy(float) / 10)
        gen = g["generation"].to_numpy(float)
        ok = (gen > gen.max() / 2) & (mse > 0)
        if period[key] == 1:
            out[key] = "fixed_point"
        elif period[key] > 1:
            out[key] = "cycle"
        elif ok.sum() < 4:
            out[key] = "untyped"
        else:
            fit = stats.linregress(gen[ok], np.log(mse[ok]))
            high = fit.slope + stats.t.ppf(0.975, ok.sum() - 2) * fit.stderr
            out[key] = "converging" if high < 0 else "wandering"
    return pd.Series(out)


def _check_ends(per: pd.DataFrame, table: pd.DataFrame, generations: int) -> None:
    assert (per[per["metric"] == "period"]["generation"] == generations).all()
    ends = _ends_by_hand(per, generations)
    for _, r in table.iterrows():
        mine = ends.loc[(r["upscaler"], r["scale"])]
        for kind in ("fixed_point", "cycle", "converging", "wandering", "untyped"):
            assert r[f"ends_{kind}"] == (mine == kind).sum(), (r["upscaler"], kind)


# ---- add, merge, refuse -----------------------------------------------------------------------


def _compact_file(path: Path) -> Path:
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    net = Compact(num_feat=8, num_conv=2, upscale=2)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def test_add_puts_a_spandrel_file_on_a_board_without_rerunning_the_others(
    whole: Path, tmp_path: Path
) -> None:
    board = tmp_path / "b"
    shutil.copytree(whole, board)
    runs_before = _tree(board / "runs")
    rows_before = pd.read_csv(board / "per_photo.csv")
    model = _compact_file(tmp_path / "tinynet.safetensors")
    lb = add_model(board, str(model), device="cpu", figures=False)
    assert lb.added == ["tinynet"]
    after = _tree(board / "runs")
    assert {k: v for k, v in after.items() if k in runs_before} == runs_before  # untouched
    assert all(k.startswith("tinynet-x2/") for k in set(after) - set(runs_before))
    per = pd.read_csv(board / "per_photo.csv")
    pd.testing.assert_frame_equal(
        per[per["upscaler"] != "tinynet"].reset_index(drop=True), rows_before
    )
    assert per[per["upscaler"] == "tinynet"]["photo"].nunique() == len(PHOTOS)
    proto = json.loads((board / "protocol.json").read_text())
    ref = {m["name"]: m for m in proto["models"]}["tinynet"]
    assert ref["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest() and ref["scale"] == 2
    assert "tinynet" in set(pd.read_csv(board / "leaderboard.csv")["upscaler"])
    with pytest.warns(UserWarning, match="already on the board"):  # again: nothing duplicated
        add_model(board, str(model), device="cpu", figures=False)
    assert len(pd.read_csv(board / "per_photo.csv")) == len(per)


def test_merge_of_two_half_boards_equals_the_whole_board(whole: Path, tmp_path: Path) -> None:
    halves = []
    for i, m in enumerate(MODELS.split(",")):
        halves.append(tmp_path / f"half{i}")
        run_board(halves[-1], tiny(), select_models(m), device="cpu", figures=False)
    merged = merge_boards(halves, tmp_path / "merged", figures=False).output
    for f in ("per_photo.csv", "leaderboard.csv", "protocol.json"):
        assert (merged / f).read_bytes() == (whole / f).read_bytes(), f


def test_another_protocol_is_refused_and_writes_nothing(whole: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    run_board(other, tiny(generations=1), [], device="cpu", figures=False)  # Lanczos-3 only
    with pytest.raises(ConfigError, match="another protocol"):
        merge_boards([whole, other], tmp_path / "m", figures=False)
    assert not (tmp_path / "m").exists()
    before = _tree(whole)
    with pytest.raises(ConfigError, match="another protocol"):
        run_board(whole, tiny(generations=1), select_models("span-x2-ch48"), device="cpu")
    assert _tree(whole) == before


def test_a_table_with_an_unlisted_model_is_refused_by_readers(whole: Path, tmp_path: Path) -> None:
    from roundtrip_ml.studies.leaderboard import read_board

    board = tmp_path / "b"
    shutil.copytree(whole, board)
    raw = json.loads((board / "protocol.json").read_text())
    raw["models"] = raw["models"][:1]  # as if an add was killed between table and protocol
    (board / "protocol.json").write_text(json.dumps(raw))
    with pytest.raises(RunStoreError, match="an add was interrupted"):
        read_board(board)


# ---- the command line -------------------------------------------------------------------------


def _cli(*args: str) -> str:
    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def test_cli_under_three_photos_no_interval_and_protocol_reruns_exactly_its_models(
    tmp_path: Path,
) -> None:
    _need_models()
    q, q2 = tmp_path / "q", tmp_path / "q2"
    base = [
        "--images",
        "skimage:astronaut",
        "--images",
        "skimage:coffee",
        "--crop",
        "24",
        "-g",
        "2",
        "--device",
        "cpu",
        "--quiet",
    ]
    text = _cli("leaderboard", "run", *base, "--models", "span-x2-ch48", "-o", str(q))
    assert "no confidence intervals" in text and "(no CI: n = 2)" in text
    assert "[" not in text.split("upscaler", 1)[1].split("forest:", 1)[0]  # no interval shown
    table = pd.read_csv(q / "leaderboard.csv")
    assert table["ci_low"].isna().all() and table["group"].isna().all()
    # the same directory, another model list: added, never duplicated (issue 19)
    _cli(
        "leaderboard",
        "run",
        "--models",
        "waifu2x-upconv-photo-x2",
        "-o",
        str(q),
        "--device",
        "cpu",
        "--quiet",
    )
    per = pd.read_parquet(q / "per_photo.parquet")
    assert not per.duplicated(["upscaler", "scale", "codec", "photo", "metric", "generation"]).any()
    proto = load_protocol(q / "protocol.json")
    assert {m.name for m in proto.models} == set(MODELS.split(","))
    assert set(per["upscaler"]) == {*MODELS.split(","), "lanczos3", "bicubic"}
    # the pre-subcommand form still works and reruns exactly the protocol's models
    _cli("leaderboard", "--protocol", str(q / "protocol.json"), "-o", str(q2), "--device", "cpu")
    assert (q2 / "per_photo.csv").read_bytes() == (q / "per_photo.csv").read_bytes()
    assert load_protocol(q2 / "protocol.json") == proto
    for f in ("forest.png", "tradeoff.png", "curves.png", "leaderboard.md"):
        assert (q2 / f).stat().st_size > 0
    # a quick board says it is a smoke test
    assert notes(table, replace(proto, name="quick"))[0].startswith("SMOKE TEST")
    text = _cli("leaderboard", "table", str(q), "--rank-by", "ssim")
    assert "ΔSSIM vs lanczos3" in text


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: {**d, "colour": 1}, "unknown key 'colour'"),
        (lambda d: {**d, "crop": "24"}, "crop: must be int/null"),
        (lambda d: {**d, "models": "span-x2-ch48"}, "models: must be a list"),
        (lambda d: {**d, "generations": True}, "generations: must be int"),
        (lambda d: {**d, "photos": [{"source": "skimage:coffee"}]}, "photos[0]: must be an object"),
        (lambda d: {**d, "crop": 48}, "hash: does not match"),
        (lambda d: {**d, "version": 1}, "protocol version 1"),
    ],
)
def test_protocol_files_are_read_strictly(tmp_path: Path, edit, message: str) -> None:
    good = tiny().describe()
    path = tmp_path / "protocol.json"
    path.write_text(json.dumps(edit(good)))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_protocol(path)
    r = CliRunner().invoke(
        app, ["leaderboard", "run", "--protocol", str(path), "-o", str(tmp_path / "new")]
    )
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "new").exists()  # a refused protocol writes nothing


def test_corrupt_protocol_json_is_one_line_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "protocol.json").write_text("{not json")
    r = CliRunner().invoke(app, ["leaderboard", "add", "lanczos3", "-o", str(tmp_path)])
    assert r.exit_code == 2 and str(tmp_path / "protocol.json") in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output


def test_presets_and_round_trip_through_json(tmp_path: Path) -> None:
    from roundtrip_ml.studies.leaderboard import SEED
    from roundtrip_ml.studies.leaderboard.protocol import pin_photos, protocol_from_json

    cpu = pin_photos(CPU)
    assert len(cpu.photos) >= 12 and all(len(p.sha256) == 64 for p in cpu.photos)
    assert len({p.sha256 for p in cpu.photos}) == len(cpu.photos)
    assert len(SEED.photos) >= 6 and SEED.generations == 200 and SEED.codecs == ("png", "jpeg:90")
    assert QUICK.name == "quick" and len(QUICK.photos) < 3
    assert protocol_from_json(json.loads(json.dumps(cpu.describe())), "x") == cpu
    assert cpu.hash() == replace(cpu, models=select_models("span-x2-ch48")).hash()
    assert cpu.hash() != replace(cpu, seed=1).hash()


def test_model_selection() -> None:
    _need_models()
    assert [m.name for m in select_models("span-x2-ch*")] == ["span-x2-ch48", "span-x2-ch52"]
    default = select_models()
    assert len(default) >= 45 and all(m.scale > 1 for m in default)  # x1 left out
    assert all(len(m.sha256) == 64 for m in default)
    with pytest.raises(ConfigError, match="matches no model"):
        select_models("nothing-like-this-*")


def test_images_take_folders_globs_and_samples_and_pin_their_hashes(tmp_path: Path) -> None:
    from PIL import Image

    from roundtrip_ml.studies.leaderboard.board import expand_photos
    from roundtrip_ml.studies.leaderboard.protocol import pin_photos

    for sub, name in (("a", "one.png"), ("a", "two.jpg"), ("b", "three.png"), ("c", "one.png")):
        (tmp_path / sub).mkdir(exist_ok=True)
        Image.new("RGB", (40, 40), (len(name) * 20, 0, 0)).save(tmp_path / sub / name)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    got = expand_photos([str(tmp_path / "a"), str(tmp_path / "b" / "*.png"), "skimage:coffee"])
    assert [Path(g).name for g in got[:3]] == ["one.png", "two.jpg", "three.png"]
    assert got[3] == "skimage:coffee"
    p = pin_photos(replace(tiny(), photos=tuple(Photo(s, "") for s in got)))
    assert [ph.name for ph in p.photos] == ["one", "two", "three", "coffee"]
    assert (
        p.photos[0].sha256 == hashlib.sha256((tmp_path / "a" / "one.png").read_bytes()).hexdigest()
    )
    with pytest.raises(ConfigError, match="two photos named 'one'"):
        pin_photos(
            replace(
                tiny(),
                photos=(
                    Photo(str(tmp_path / "a" / "one.png"), ""),
                    Photo(str(tmp_path / "c" / "one.png"), ""),
                ),
            )
        )
    changed = replace(p, photos=(replace(p.photos[0], sha256="0" * 64),))
    with pytest.raises(ConfigError, match="the protocol pins"):
        pin_photos(changed)
    with pytest.raises(ConfigError, match="smaller than the 48 px crop"):
        from roundtrip_ml.studies.leaderboard.board import _check_sizes

        _check_sizes(replace(p, crop=48))


def test_corrupt_board_tables_are_one_line_naming_the_file(whole: Path, tmp_path: Path) -> None:
    board = tmp_path / "b"
    shutil.copytree(whole, board)
    (board / "per_photo.parquet").write_bytes(b"PAR1 garbage")
    r = CliRunner().invoke(app, ["leaderboard", "table", str(board)])
    assert r.exit_code == 2 and "per_photo.parquet" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    r = CliRunner().invoke(
        app, ["leaderboard", "merge", str(board), str(whole), "-o", str(tmp_path / "m")]
    )
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output


def test_a_stabilised_board_runs_every_chain_with_its_stabiliser(tmp_path: Path) -> None:
    """``stabilizer`` (and ``backend``) in the protocol reach every run of the board, so the
    protocol describes what ran; a misspelt stabiliser is one line before anything runs."""
    from roundtrip_ml.pipeline.store import RunStore
    from roundtrip_ml.report.data import find_run_dirs

    board = tmp_path / "stab"
    plain = tmp_path / "plain"
    run_board(
        board, tiny(stabilizer="backproject:2", backend="torch"), [], device="cpu", figures=False
    )
    run_board(plain, tiny(), [], device="cpu", figures=False)
    runs = find_run_dirs(board / "runs")
    assert runs
    for d in runs:
        cfg = RunStore(d).read_config()
        assert cfg["stabilizers"] == ["backproject:2"] and cfg["backend"] == "torch"
    chains = pd.concat([RunStore(d).read_chains() for d in runs])
    assert set(chains["stabilizer"]) == {"backproject:2"}
    a, b = (pd.read_csv(p / "per_photo.csv") for p in (board, plain))
    assert not a["value"].equals(b["value"])  # the stabiliser changed the chains
    with pytest.raises(ConfigError, match="stabilizer"):
        run_board(tmp_path / "bad", tiny(stabilizer="colr"), [], device="cpu", figures=False)
    assert not (tmp_path / "bad").exists()


# ---- upscale paths and how chains end (issue 22) ---------------------------------------------


def test_protocol_files_without_paths_keep_their_bytes_and_hash(tmp_path: Path) -> None:
    """A protocol.json written before paths existed (the cpu board published on 2026-12-03,
    kept in tests/data) reads, hashes to its recorded hash and describes itself byte for byte
    as before; paths are entries like the models: outside the hash, in the file, and read
    back by ``--protocol``."""
    from roundtrip_ml.studies.leaderboard.protocol import protocol_from_json

    published = Path(__file__).parent / "data" / "protocol_before_paths.json"
    raw = json.loads(published.read_text())
    p = load_protocol(published)
    assert p.hash() == raw["hash"] and p.describe() == raw and p.up_steps == ()
    with_paths = p.with_paths([(2, 3), (2, 2), (2, 2)])
    assert with_paths.up_steps == ((2, 2), (2, 3)) and with_paths.hash() == p.hash()
    d = with_paths.describe()
    assert d["up_steps"] == [[2, 2], [2, 3]] and "up_steps" not in p.describe()
    assert protocol_from_json(json.loads(json.dumps(d)), "x") == with_paths
    with pytest.raises(ConfigError, match=r"up_steps \[2\]: one step is no path"):
        protocol_from_json({**d, "up_steps": [[2]]}, "x")


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("2,1", "must be whole-number steps >= 2"),
        ("4", "one step is no path"),
        ("2,2,2", "x8, which does not divide the 36 px crop"),
        ("2,x", "is not a comma list of whole numbers"),
    ],
)
def test_an_impossible_path_is_one_line_naming_the_flag(
    tmp_path: Path, steps: str, message: str
) -> None:
    r = CliRunner().invoke(
        app, ["leaderboard", "run", "--crop", "36", "--up-steps", steps, "-o", str(tmp_path / "b")]
    )
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert f"--up-steps {steps}" in r.output and message in r.output, r.output
    assert not (tmp_path / "b").exists()


def test_up_steps_flag_adds_paths_but_keeps_the_protocol(monkeypatch, tmp_path: Path) -> None:
    import roundtrip_ml.studies.leaderboard as lb_pkg

    _need_models()
    seen = []
    monkeypatch.setattr(lb_pkg, "run_board", lambda out, p, models, **kw: seen.append(p))
    monkeypatch.setattr("roundtrip_ml.cli.leaderboard._show", lambda lb: None)
    args = ["leaderboard", "run", "--models", "span-x2-ch48", "-o", str(tmp_path / "b")]
    r = CliRunner().invoke(app, [*args, "--up-steps", "2,3", "--up-steps", "2,2", "-q"])
    assert r.exit_code == 0, r.output
    assert seen[0].up_steps == ((2, 2), (2, 3)) and seen[0].hash() == CPU.hash()


def test_only_models_of_the_step_s_native_scale_take_a_path() -> None:
    from roundtrip_ml.studies.leaderboard.board import PER_PHOTO_COLUMNS, _entries
    from roundtrip_ml.studies.leaderboard.protocol import ModelRef

    models = [
        ModelRef("span-x2-ch48", "span-x2-ch48", 2, ""),
        ModelRef("realesr-animevideov3", "realesr-animevideov3", 4, ""),  # x4: not on 2,2
        ModelRef("waifu2x-cunet-x1-denoise0x", "waifu2x-cunet-x1-denoise0x", 2, ""),  # x1
    ]
    p = tiny(up_steps=((2, 2),))
    got = [
        (e.label, e.scale, e.slug)
        for e in _entries(p, pd.DataFrame(columns=PER_PHOTO_COLUMNS), models)
    ]
    assert got == [
        ("lanczos3", 2, ""),
        ("lanczos3", 4, ""),
        ("span-x2-ch48", 2, ""),
        ("realesr-animevideov3", 4, ""),
        ("waifu2x-cunet-x1-denoise0x", 2, ""),
        ("lanczos3 [2x2]", 4, "2x2"),
        ("span-x2-ch48 [2x2]", 4, "2x2"),
    ]


def test_a_path_board_adds_merges_and_equals_a_direct_stepped_run(tmp_path: Path) -> None:
    """Baselines on a path, then ``add`` an x2 model: it enters at x2 and as ``[2x2]`` in the
    x4 table, paired with one-step Lanczos-3 x4; ``lanczos3 [2x2]`` is the engine's own
    ``up_steps = [2, 2]`` chain; a board without paths (same hash) merges with it."""
    import roundtrip_ml as rt
    from roundtrip_ml.pipeline.store import RunStore
    from roundtrip_ml.report.data import find_run_dirs

    _need_models()
    a = tmp_path / "a"
    run_board(a, tiny(up_steps=((2, 2),)), [], device="cpu", figures=False)
    lb = add_model(a, "span-x2-ch48", device="cpu", figures=False)
    assert lb.added == ["lanczos3", "span-x2-ch48", "span-x2-ch48 [2x2]"]  # lanczos3 at x2
    per = pd.read_csv(a / "per_photo.csv", keep_default_na=False)
    entries = set(zip(per["upscaler"], per["scale"], per["path"], strict=True))
    assert entries == {
        ("lanczos3", 2, ""),
        ("lanczos3", 4, ""),
        ("span-x2-ch48", 2, ""),
        ("lanczos3 [2x2]", 4, "2x2"),
        ("span-x2-ch48 [2x2]", 4, "2x2"),
    }
    for d in find_run_dirs(a / "runs" / "spanx2ch48-x4-2x2"):
        assert RunStore(d).read_config()["up_steps"] == [2.0, 2.0]
    last = per[(per["metric"] == "psnr") & (per["generation"] == 2)]
    psnr = last.pivot_table(index="photo", columns=["upscaler", "scale"], values="value")
    for photo in PHOTOS:
        t = rt.roundtrip(
            f"skimage:{photo}",
            "lanczos3",
            scale=4,
            generations=2,
            metrics=["psnr"],
            center_crop=[24, 24],
            up_steps=[2, 2],
            device="cpu",
            progress=False,
        )
        assert psnr.loc[photo, ("lanczos3 [2x2]", 4)] == pytest.approx(t.value("psnr", 2), abs=1e-6)
    table = pd.read_csv(a / "leaderboard.csv", keep_default_na=False, na_values=["NA"])
    x4 = table[table["scale"] == 4].set_index("upscaler")
    assert set(x4.index) == {"lanczos3", "lanczos3 [2x2]", "span-x2-ch48 [2x2]"}
    assert x4.loc["span-x2-ch48 [2x2]", "path"] == "2x2" and x4.loc["lanczos3", "path"] == ""
    diff = psnr[("span-x2-ch48 [2x2]", 4)] - psnr[("lanczos3", 4)]
    assert x4.loc["span-x2-ch48 [2x2]", "paired_diff"] == pytest.approx(diff.mean(), abs=1e-9)
    assert "span-x2-ch48 [2x2]" in (a / "leaderboard.md").read_text()
    proto = load_protocol(a / "protocol.json")  # what --protocol FILE reruns
    assert proto.up_steps == ((2, 2),)
    b = tmp_path / "b"
    run_board(b, tiny(), [], device="cpu", figures=False)  # Lanczos-3 x2 only, no paths
    assert load_protocol(b / "protocol.json").hash() == proto.hash()  # paths are not hashed
    merged = merge_boards([b, a], tmp_path / "m", figures=False)
    assert merged.protocol.up_steps == ((2, 2),)
    assert len(merged.per_photo) == len(per) and set(merged.table["upscaler"]) == set(
        table["upscaler"]
    )


@pytest.fixture(scope="module")
def ends_board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 generations: enough for the step trend (4+ points in the second half)."""
    _need_models()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ends") / "board"
    p = tiny(generations=12, baselines=("lanczos3", "bicubic"))
    run_board(out, p, select_models("span-x2-ch48"), device="cpu", figures=False)
    return out


def test_ends_count_the_attractor_types_of_summarize(ends_board: Path) -> None:
    from roundtrip_ml.analysis.summary import summarize_run
    from roundtrip_ml.report.data import find_run_dirs

    table = pd.read_csv(ends_board / "leaderboard.csv")
    per = pd.read_csv(ends_board / "per_photo.csv")
    print(table[["upscaler", *(c for c in table if c.startswith("ends_"))]])
    _check_ends(per, table, 12)  # recomputed from per_photo.csv with pandas and scipy
    for _, r in table.iterrows():  # and equal to `roundtrip summarize` on the board's own runs
        entry = Entry.of_row(r["upscaler"], r["scale"], "")
        runs = find_run_dirs(entry.runs_dir(ends_board))
        s = pd.concat([summarize_run(d) for d in runs])
        kinds = s[s["replica"] == 0]["attractor"].fillna("untyped")
        assert len(kinds) == r["n"] == 3
        for kind in ("fixed_point", "cycle", "converging", "wandering", "untyped"):
            assert r[f"ends_{kind}"] == (kinds == kind).sum(), (r["upscaler"], kind)
    assert table[[f"ends_{k}" for k in ("converging", "wandering")]].to_numpy().sum() > 0
    assert "ends" in (ends_board / "leaderboard.md").read_text()


def _as_an_old_board(board: Path) -> None:
    """The board as a roundtrip-ml before paths and ends wrote it: no ``path`` column, no
    ``step_psnr``/``period`` rows."""
    per = pd.read_parquet(board / "per_photo.parquet")
    per = per[~per["metric"].isin(["step_psnr", "period"])].drop(columns="path")
    per.to_parquet(board / "per_photo.parquet", index=False)
    (board / "per_photo.csv").write_bytes(per.to_csv(index=False).encode())


@pytest.mark.parametrize("how", ["table", "run"])
def test_an_old_board_gains_the_rows_from_its_runs_without_rerunning(
    ends_board: Path, tmp_path: Path, how: str
) -> None:
    from roundtrip_ml.studies.leaderboard import rank, read_board

    board = tmp_path / "old"
    shutil.copytree(ends_board, board)
    _as_an_old_board(board)
    p, old = read_board(board)  # type: ignore[misc]
    assert "ends_wandering" not in rank(old, p)  # an old board still ranks, without ends
    runs = _tree(board / "runs")
    if how == "table":
        _cli("leaderboard", "table", str(board))
    else:
        run_board(board, p, None, device="cpu", figures=False)
    assert _tree(board / "runs") == runs  # nothing recomputed
    for f in ("per_photo.csv", "leaderboard.csv", "protocol.json"):
        assert (board / f).read_bytes() == (ends_board / f).read_bytes(), f
