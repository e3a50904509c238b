"""Standard photo sets: the download path against a local mirror (loopback HTTP), hash pins,
mismatches, the offline switch, unpinned sets (refused, or trusted on first use), archives, and
`set:` names wherever the config takes images."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import photo_u8
from PIL import Image

from roundtrip_ml.core.errors import ConfigError, ImageError
from roundtrip_ml.imaging import photosets
from roundtrip_ml.imaging.images import load_image
from roundtrip_ml.pipeline.config import expand_images, make_config


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a folder made in the test: (base URL, folder)."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = lambda *a, **k: _Quiet(*a, directory=str(root), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def _png(name: str, crop: int = 24) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo_u8(name, crop, crop)).save(buf, format="PNG")
    return buf.getvalue()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, no proxy for loopback, no trust or mirror from the caller's shell."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ROUNDTRIP_CACHE_DIR", str(cache))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in (
        "ROUNDTRIP_OFFLINE",
        photosets.TRUST_ENV,
        photosets.MIRROR_ENV,
        photosets.REGISTRY_ENV,
    ):
        monkeypatch.delenv(var, raising=False)
    return cache


def _registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    p = tmp_path / "sets.toml"
    p.write_text("format_version = 1\n" + body)
    monkeypatch.setenv(photosets.REGISTRY_ENV, str(p))


def _pinned_set(
    server: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    served: dict[str, bytes],
    pinned: dict[str, bytes] | None = None,
) -> None:
    """Serve ``served`` on the mirror under ``NAME/`` and register the set ``NAME``, each file
    pinned to the bytes in ``pinned`` (default: what is served)."""
    url, root = server
    (root / name).mkdir()
    for file, data in served.items():
        (root / name / file).write_bytes(data)
    pins = pinned or served
    files = ", ".join(
        f'{{ name = "{f}", bytes = {len(b)}, sha256 = "{_sha(b)}" }}' for f, b in pins.items()
    )
    _registry(
        root.parent,
        monkeypatch,
        f'[{name}]\ntitle = "t"\npage = "https://example.org/{name}"\nlicense = "x"\n'
        f'count = {len(pins)}\nbase_url = "{url}/{name}/"\nfiles = [{files}]\n',
    )


def test_pinned_set_downloads_once_and_expands_in_config(server, env, monkeypatch):
    root = server[1]
    a, b = _png("astronaut"), _png("coffee")
    _pinned_set(server, monkeypatch, "tiny", {"a.png": a, "b.png": b})
    paths = expand_images(["set:tiny"])
    assert [Path(p).name for p in paths] == ["a.png", "b.png"]
    assert [Path(p).read_bytes() for p in paths] == [a, b]
    assert Path(paths[0]).parent == env / "photosets" / "tiny"
    # fetched once: with the server's files gone and offline on, the cache still serves them
    (root / "tiny" / "a.png").unlink()
    monkeypatch.setenv("ROUNDTRIP_OFFLINE", "1")
    assert expand_images(["set:tiny"]) == paths
    assert expand_images(["set:tiny/b"]) == paths[1:]  # one photo by its stem
    # the config takes set names like any image; relative-path rewriting leaves them alone
    cfg = make_config({"images": ["set:tiny/a", "skimage:astronaut"]})
    assert cfg.images[0] == "set:tiny/a"
    with pytest.raises(ConfigError, match="has no photo 'c'"):
        make_config({"images": ["set:tiny/c"]})


def test_hash_mismatch_is_refused_and_nothing_kept(server, env, monkeypatch):
    good, bad = _png("astronaut"), _png("chelsea")
    # the mirror serves other bytes than the pin
    _pinned_set(server, monkeypatch, "tiny", {"a.png": bad}, pinned={"a.png": good})
    with pytest.raises(ImageError, match=f"expected {_sha(good)}, got {_sha(bad)}"):
        expand_images(["set:tiny"])
    assert not (env / "photosets" / "tiny" / "a.png").exists()


def test_offline_switch_with_an_empty_cache(server, env, monkeypatch):
    _pinned_set(server, monkeypatch, "tiny", {"a.png": _png("astronaut")})
    monkeypatch.setenv("ROUNDTRIP_OFFLINE", "1")
    with pytest.raises(ImageError, match=r"offline mode is on and a\.png is not in"):
        expand_images(["set:tiny"])


def test_packaged_pins_are_checked_through_a_mirror(server, env, monkeypatch):
    """The real registry's Kodak pins are what a download is checked against: a mirror
    ($ROUNDTRIP_PHOTOSETS_MIRROR) serving other bytes is refused with the published hash."""
    url, root = server
    (root / "kodak").mkdir()
    (root / "kodak" / "kodim01.png").write_bytes(_png("astronaut"))
    monkeypatch.setenv(photosets.MIRROR_ENV, url)
    with pytest.raises(
        ImageError,
        match="expected a56e27cbf5f843c048b6af1d6e090760e9c92fadba88b7dee0205918a37523bd",
    ):
        photosets.expand("set:kodak/kodim01", progress=False)


def test_every_packaged_set_is_pinned_file_by_file():
    """No built-in set needs trust on first use: every file (or archive) has a SHA-256 and a
    size, names are unique, and a file list yields exactly the photos the set promises."""
    sets = photosets.load_photosets()
    assert {"kodak", "div2k-valid", "set5", "set14", "bsd100", "urban100", "mcmaster"} <= set(sets)
    for s in sets.values():
        assert s.pinned, s.name
        entries = [s.archive] if s.archive is not None else list(s.files)
        assert all(f.bytes and len(f.sha256) == 64 for f in entries), s.name
        assert all(f.url.startswith(("https://", "http://r0k.us/")) for f in entries), s.name
        if s.files:
            assert len(s.files) == s.count == len({f.name for f in s.files}), s.name
            assert len({f.sha256 for f in s.files}) == s.count, s.name  # no photo twice
    mc = sets["mcmaster"]
    assert [f.name for f in mc.files[:3]] == ["1.tif", "2.tif", "3.tif"]
    assert all("/33f616625268d08ba600f8db89388eec0328edb1/" in f.url for f in mc.files)


def test_a_pinned_tiff_set_downloads_through_a_mirror_and_runs(server, env, monkeypatch):
    """A set of .tif photos (McMaster's form): fetched through a mirror against its pins, then
    read by the engine like any other image."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(_png("coffee"))).convert("RGB").resize((48, 48)).save(buf, "TIFF")
    _pinned_set(server, monkeypatch, "tifs", {"1.tif": buf.getvalue()})
    (path,) = expand_images(["set:tifs/1"])
    cfg = make_config({"images": ["set:tifs"], "upscalers": ["bicubic"], "generations": 1})
    assert cfg.images == ["set:tifs"]
    assert load_image(path)[0].shape == (1, 3, 48, 48)


def test_unpinned_set_refused_then_trusted_on_first_use(server, env, tmp_path, monkeypatch):
    url, root = server
    a = _png("coffee")
    (root / "loose").mkdir()
    (root / "loose" / "img_001.png").write_bytes(a)
    _registry(
        tmp_path,
        monkeypatch,
        f"""
[loose]
title = "t"
page = "https://example.org/loose"
license = "x"
count = 1
base_url = "{url}/loose/"
template = {{ pattern = "img_{{i:03d}}.png", count = 1 }}
""",
    )
    with pytest.raises(
        ConfigError,
        match=r"no published SHA-256 pin.*"
        r"ROUNDTRIP_TRUST_UNPINNED=loose",
    ):
        make_config({"images": ["set:loose"]})
    monkeypatch.setenv(photosets.TRUST_ENV, "loose")
    (path,) = expand_images(["set:loose"])
    pins = photosets._pins(Path(path).parent)
    assert pins == {"img_001.png": _sha(a)}  # recorded on first download
    monkeypatch.delenv(photosets.TRUST_ENV)
    assert expand_images(["set:loose"]) == [path]  # recorded trust needs no flag again
    Path(path).write_bytes(_png("chelsea"))  # changed after the first download
    with pytest.raises(ImageError, match="changed since its first download"):
        expand_images(["set:loose"])


def test_archive_set_extracts_its_members(server, env, tmp_path, monkeypatch):
    url, root = server
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, name in enumerate(("astronaut", "coffee", "chelsea")):
            z.writestr(f"HR/{i:04d}.png", _png(name))
        z.writestr("HR/readme.txt", "not a photo")
    data = buf.getvalue()
    (root / "zipped").mkdir()
    (root / "zipped" / "set.zip").write_bytes(data)

    def reg(count: int) -> None:
        _registry(
            tmp_path,
            monkeypatch,
            f"""
[zipped]
title = "t"
page = "https://example.org/"
license = "x"
count = {count}
members = "HR/*.png"
[zipped.archive]
name = "set.zip"
url = "{url}/zipped/set.zip"
bytes = {len(data)}
sha256 = "{_sha(data)}"
""",
        )
        photosets._load.cache_clear()

    reg(2)
    with pytest.raises(
        ImageError,
        match=r"holds 3 photos matching 'HR/\*\.png', the "
        r"registry expects 2",
    ):
        expand_images(["set:zipped"])
    reg(3)
    paths = expand_images(["set:zipped"])
    assert [Path(p).name for p in paths] == ["0000.png", "0001.png", "0002.png"]
    arr = np.asarray(Image.open(paths[1]))
    assert arr.shape == (24, 24, 3) and (arr == photo_u8("coffee", 24, 24)).all()
    assert not (env / "photosets" / "zipped" / ".archive" / "set.zip").exists()  # not kept
    (root / "zipped" / "set.zip").unlink()
    assert expand_images(["set:zipped/0001"]) == [paths[1]]  # from the cache, by stem


def test_registry_names_sources_licences_and_pins():
    """The packaged registry: the seven sets, each with a licence and a page; every pinned set
    says where its pins were published; unknown names get a suggestion."""
    sets = photosets.load_photosets(photosets.registry_path())
    assert set(sets) == {"kodak", "set5", "set14", "bsd100", "urban100", "mcmaster", "div2k-valid"}
    assert len(sets["kodak"].files) == 24 and sets["kodak"].pinned
    assert sets["div2k-valid"].archive is not None and sets["div2k-valid"].pinned
    for s in sets.values():
        assert s.license and s.page.startswith("http")
        assert bool(s.pin_source) == s.pinned, s.name
    with pytest.raises(ConfigError, match="did you mean set:kodak"):
        photosets.get_set("kodac")


def test_offline_missing_set_says_which_file_to_place_where(env, monkeypatch):
    """Offline with an empty cache: one line naming the file, its pin and the folder for it
    (McMaster, whose authors' page has no stable download, is served from a pinned commit)."""
    monkeypatch.setenv("ROUNDTRIP_OFFLINE", "1")
    with pytest.raises(ImageError, match=r"set:mcmaster/1\.tif.*bcd4625afae2.*photosets/mcmaster"):
        expand_images(["set:mcmaster/1"])


def test_a_board_drawn_from_a_set_names_its_photos_by_set_and_travels(
    server, env, tmp_path, monkeypatch
):
    """`leaderboard run --images set:NAME` keeps `set:NAME/PHOTO` in protocol.json (not this
    machine's cache paths) with each file's SHA-256, so the protocol reruns on a machine with
    an empty cache: the photos are fetched again and checked against the protocol's pins."""
    from typer.testing import CliRunner

    from roundtrip_ml.cli.app import app
    from roundtrip_ml.studies.leaderboard import load_protocol

    crops = {f"{i}.png": _png(n) for i, n in enumerate(("astronaut", "coffee", "chelsea"), 1)}
    _pinned_set(server, monkeypatch, "nums", crops)
    from roundtrip_ml.upscalers import zoo

    if zoo.find_offline(zoo.get_entry("span-x2-ch48"), check_hash=False) is None:
        pytest.skip("span-x2-ch48 is not installed (pip install roundtrip-ml)")
    args = ["--crop", "24", "-g", "2", "--device", "cpu", "--quiet", "--models", "span-x2-ch48"]
    r = CliRunner().invoke(
        app, ["leaderboard", "run", "--images", "set:nums", *args, "-o", str(tmp_path / "b")]
    )
    assert r.exit_code == 0, r.output
    proto = load_protocol(tmp_path / "b" / "protocol.json")
    assert [p.source for p in proto.photos] == ["set:nums/1", "set:nums/2", "set:nums/3"]
    assert [p.sha256 for p in proto.photos] == [
        _sha(_png(n)) for n in ("astronaut", "coffee", "chelsea")
    ]
    assert proto.photo_set == "nums"
    per = pd.read_csv(tmp_path / "b" / "per_photo.csv")
    assert sorted(per["photo"].unique()) == ["nums-1", "nums-2", "nums-3"]
    # another machine: an empty cache; the protocol alone brings the same photos back
    monkeypatch.setenv("ROUNDTRIP_CACHE_DIR", str(tmp_path / "other-cache"))
    again = ["leaderboard", "run", "--protocol", str(tmp_path / "b" / "protocol.json")]
    r = CliRunner().invoke(app, [*again, "--device", "cpu", "--quiet", "-o", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "c" / "per_photo.csv").read_bytes() == (
        tmp_path / "b" / "per_photo.csv"
    ).read_bytes()
