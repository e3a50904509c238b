"""Crafted ncnn .param/.bin pairs: the hostile and broken files of issue 19, one per kind.

Each builder returns (param bytes, bin bytes) for a graph built around a tiny valid one
(Input -> 3x3 Convolution -> output, fp32 weights), changed in one way. ``expect`` is a
fragment of the one error line (beside the file's name) that a correct importer gives.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAGIC = "7767517"


def conv_bin(
    out_ch: int = 3, in_ch: int = 3, k: int = 3, bias: bool = True, seed: int = 0
) -> bytes:
    """One Convolution's blobs as ncnn stores them: fp32 tag + weights, then plain bias."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(out_ch * in_ch * k * k).astype("<f4") * 0.1
    b = rng.standard_normal(out_ch).astype("<f4") * 0.01 if bias else np.zeros(0, "<f4")
    return struct.pack("<I", 0) + w.tobytes() + b.tobytes()


def param(lines: list[str], blobs: int | None = None) -> bytes:
    """A .param from layer lines; the header counts them (and their blobs) unless told."""
    names: set[str] = set()
    for ln in lines if blobs is None else []:
        t = ln.split()
        n_in, n_out = int(t[2]), int(t[3])
        names.update(t[4 : 4 + n_in + n_out])
    head = f"{len(lines)} {blobs if blobs is not None else len(names)}"
    return ("\n".join([MAGIC, head, *lines]) + "\n").encode()


INPUT = "Input in 0 1 data 0=3 1=3 2=3"
CONV = "Convolution conv 1 1 data out 0=3 1=3 4=1 5=1 6=81"
GOOD = (param([INPUT, CONV]), conv_bin())


@dataclass(frozen=True)
class Crafted:
    name: str
    build: Callable[[], tuple[bytes, bytes]]
    expect: str  # a fragment of the one error line
    blames: str = "param"  # the file the line names: "param" or "bin"


def _many_layers() -> tuple[bytes, bytes]:
    """10^6 ReLU layers (about 30 MB of text): refused from its size before it is parsed."""
    lines = [INPUT] + [
        f"ReLU r{i} 1 1 b{i} b{i + 1}".replace("b0", "data") for i in range(1_000_000)
    ]
    return param(lines), b""


def _interp_chain() -> tuple[bytes, bytes]:
    """Three x8 resizes, each allowed alone: x512 per side needs 12.9 GB at a 64 px probe."""
    lines = [
        INPUT,
        "Interp up1 1 1 data u1 0=1 1=8.0 2=8.0",
        "Interp up2 1 1 u1 u2 0=1 1=8.0 2=8.0",
        "Interp up3 1 1 u2 u3 0=1 1=8.0 2=8.0",
    ]
    return param(lines), b""


def _deconv_tower() -> tuple[bytes, bytes]:
    """Stride-64 Deconvolutions, 4 channels: within every per-layer bound, a blow-up together."""
    lines = [
        INPUT,
        "Deconvolution d1 1 1 data x1 0=4 1=1 3=64 5=0 6=12",
        "Deconvolution d2 1 1 x1 x2 0=4 1=1 3=64 5=0 6=16",
    ]
    return param(lines), conv_bin(4, 3, 1, False) + conv_bin(4, 4, 1, False)


def _token_flood() -> tuple[bytes, bytes]:
    """One 15 MB line of one-letter tokens: refused by its length before it is split."""
    return param([INPUT, CONV]) + b"Convolution c " + b"a " * 7_500_000 + b"\n", GOOD[1]


CASES: list[Crafted] = [
    Crafted("empty .param", lambda: (b"", GOOD[1]), "bad magic number"),
    Crafted("binary .param", lambda: (bytes(range(256)) * 4, GOOD[1]), "not a text .param"),
    Crafted(
        "wrong magic",
        lambda: (GOOD[0].replace(MAGIC.encode(), b"7767518"), GOOD[1]),
        "bad magic number",
    ),
    Crafted("magic only", lambda: (MAGIC.encode() + b"\n", GOOD[1]), "ends after the magic"),
    Crafted(
        "header not numbers",
        lambda: (param([INPUT, CONV]).replace(b"2 2", b"two 2"), GOOD[1]),
        "LAYER_COUNT BLOB_COUNT",
    ),
    Crafted(
        "header claims 10^9 layers",
        lambda: (param([INPUT, CONV]).replace(b"\n2 2", b"\n1000000000 2"), GOOD[1]),
        "over the layer limit",
    ),
    Crafted("10^6 layers", _many_layers, "over the .param size limit"),
    Crafted("a 15 MB line", _token_flood, "characters long"),
    Crafted(
        "fewer layers than declared",
        lambda: (param([INPUT, CONV]).replace(b"\n2 2", b"\n3 2"), GOOD[1]),
        "header says 3 layers",
    ),
    Crafted(
        "more layers than declared",
        lambda: (param([INPUT, CONV]).replace(b"\n2 2", b"\n1 2"), GOOD[1]),
        "header says 1 layers",
    ),
    Crafted(
        "layer line too short",
        lambda: (param([INPUT, "Convolution conv 1"], 1), GOOD[1]),
        "needs TYPE NAME N_IN N_OUT",
    ),
    Crafted(
        "input count not a number",
        lambda: (param([INPUT, CONV.replace("conv 1 1", "conv x 1")], 2), GOOD[1]),
        "are not integers",
    ),
    Crafted(
        "blob names missing",
        lambda: (param([INPUT, "Convolution conv 9 1 data"], 1), GOOD[1]),
        "names 9 inputs",
    ),
    Crafted(
        "parameter without '='", lambda: (param([INPUT, CONV + " 7"]), GOOD[1]), "expected ID=VALUE"
    ),
    Crafted(
        "parameter id out of range",
        lambda: (param([INPUT, CONV + " 99=1"]), GOOD[1]),
        "parameter id outside",
    ),
    Crafted(
        "parameter value not a number",
        lambda: (param([INPUT, CONV.replace("1=3", "1=abc")]), GOOD[1]),
        "'1=abc'",
    ),
    Crafted(
        "array count mismatch",
        lambda: (param([INPUT, CONV + " -23310=5,1.0,2.0"]), GOOD[1]),
        "array says 5 values, has 2",
    ),
    Crafted(
        "non-finite float",
        lambda: (param([INPUT, CONV + " 10=1e999"]), GOOD[1]),
        "not a finite number",
    ),
    Crafted(
        "unknown layer type",
        lambda: (param([INPUT, CONV.replace("Convolution", "Frobnicate")]), GOOD[1]),
        "layer type Frobnicate is not supported",
    ),
    Crafted(
        "blob cycle",
        lambda: (param([INPUT, "ReLU a 1 1 y x", "ReLU b 1 1 x y"], 3), b""),
        "before the layer that produces it",
    ),
    Crafted(
        "blob produced twice",
        lambda: (param([INPUT, "ReLU a 1 1 data x", "ReLU b 1 1 data x"], 2), b""),
        "already produced by layer a",
    ),
    Crafted(
        "blob never produced",
        lambda: (param([INPUT, "ReLU a 1 1 ghost x"], 3), b""),
        "that no layer produces",
    ),
    Crafted(
        "blob count mismatch", lambda: (param([INPUT, CONV], 7), GOOD[1]), "header declares 7 blobs"
    ),
    Crafted(
        "two Input layers",
        lambda: (
            param([INPUT, "Input in2 0 1 d2 0=3 1=3 2=3", "BinaryOp add 2 1 data d2 out 0=0"]),
            b"",
        ),
        "2 Input layers",
    ),
    Crafted("two outputs", lambda: (param([INPUT, "Split s 1 2 data a b"]), b""), "2 output blobs"),
    Crafted(
        "stride-400 Deconvolution",
        lambda: (param([INPUT, "Deconvolution d 1 1 data out 0=3 1=3 3=400 5=1 6=81"]), conv_bin()),
        "stride_w=400",
    ),
    Crafted("Interp chain blow-up", _interp_chain, "bytes of activations per input pixel"),
    Crafted("Deconvolution tower blow-up", _deconv_tower, "bytes of activations per input pixel"),
    Crafted(
        "zero outputs",
        lambda: (param([INPUT, CONV.replace("0=3", "0=0")]), GOOD[1]),
        "num_output=0",
    ),
    Crafted(
        "weights beyond the .bin",
        lambda: (param([INPUT, CONV.replace("6=81", "6=1000000000")]), GOOD[1]),
        "weight_data_size 1000000000",
    ),
    Crafted(
        "huge but consistent weights",
        lambda: (
            param([INPUT, CONV.replace("0=3 1=3", "0=65536 1=64").replace("6=81", "6=805306368")]),
            GOOD[1],
        ),
        ".bin ends early",
        "bin",
    ),
    Crafted("truncated .bin", lambda: (GOOD[0], GOOD[1][:-10]), ".bin ends early", "bin"),
    Crafted("extra bytes in .bin", lambda: (GOOD[0], GOOD[1] + b"\0" * 16), "left unread", "bin"),
    Crafted(
        "shapes that do not fit",
        lambda: (
            param(
                [
                    INPUT,
                    "Convolution c 1 1 data x 0=4 1=1 5=0 6=12",
                    "BinaryOp add 2 1 data x out 0=0",
                ]
            ),
            conv_bin(4, 3, 1, False),
        ),
        "fails on a 64x64 probe input",
    ),
    Crafted(
        "negative Crop to nothing",
        lambda: (
            param(
                [
                    INPUT,
                    "Crop c 1 1 data x 0=100000 1=100000",
                    "Convolution conv 1 1 x out 0=3 1=3 4=1 5=1 6=81",
                ]
            ),
            conv_bin(),
        ),
        "fails on a 64x64 probe input",
    ),
]
