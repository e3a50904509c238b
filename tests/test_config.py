"""Config files and flags: typed, resolved, and one clear line for a bad key or value."""

from __future__ import annotations

from pathlib import Path

import pytest

from roundtrip_ml.core.errors import ConfigError
from roundtrip_ml.pipeline.config import expand_images, load_config, make_config, parse_set


def test_toml_and_yaml_give_the_same_config(tmp_path: Path) -> None:
    (tmp_path / "e.toml").write_text(
        'name = "x"\nimages = ["skimage:coffee"]\nupscalers = ["lanczos3", "bicubic"]\n'
        'codecs = ["png", "jpeg:90"]\ngenerations = 200\ncenter_crop = 64\n'
    )
    (tmp_path / "e.yaml").write_text(
        "name: x\nimages: [skimage:coffee]\nupscalers: [lanczos3, bicubic]\n"
        "codecs: [png, 'jpeg:90']\ngenerations: 200\ncenter_crop: 64\n"
    )
    a, b = load_config(tmp_path / "e.toml"), load_config(tmp_path / "e.yaml")
    assert a == b and a.center_crop == (64, 64) and a.generations == 200


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"images": ["a.png"], "generatoins": 3}, "generatoins"),
        ({"images": ["a.png"], "generations": 0}, "generations"),
        ({"images": ["a.png"], "scales": [0.5]}, "scales"),
        ({"images": ["a.png"], "codecs": ["jpeg:900"]}, "codecs"),
        ({"images": ["a.png"], "downscalers": ["lanczos7"]}, "downscalers"),
        ({"images": ["a.png"], "fit": "stretch"}, "fit"),
        ({"images": []}, "images"),
        ({"images": ["a.png"], "perturbation": "wiggle"}, "perturbation"),
        ({"images": ["a.png"], "replicas": 2, "perturbation": "jpeg:50"}, "perturbation"),
    ],
)
def test_bad_values_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        make_config(data, "exp.toml")
    msg = str(e.value)
    assert key in msg and "exp.toml" in msg and "\n" not in msg


def test_unknown_key_lists_allowed_keys() -> None:
    with pytest.raises(ConfigError, match="generations"):
        make_config({"images": ["a.png"], "colour": 1})


def test_unparsable_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("images = [\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_config(p)


def test_set_overrides_parse_toml_values() -> None:
    assert parse_set(["generations=12", "codecs=['png']", "name=abc", "deterministic=false"]) == {
        "generations": 12,
        "codecs": ["png"],
        "name": "abc",
        "deterministic": False,
    }
    with pytest.raises(ConfigError):
        parse_set(["novalue"])


def test_relative_images_resolve_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    for n in ("b.png", "a.png"):
        (tmp_path / "imgs" / n).write_bytes(b"x")
    (tmp_path / "e.toml").write_text('images = ["imgs/*.png", "skimage:coffee"]\n')
    cfg = load_config(tmp_path / "e.toml")
    files = expand_images(cfg.images)
    assert [Path(f).name for f in files[:2]] == ["a.png", "b.png"] and files[2] == "skimage:coffee"
    with pytest.raises(ConfigError, match="matches no file"):
        expand_images([str(tmp_path / "none*.png")])
