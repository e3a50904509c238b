"""Any ncnn .param/.bin graph as a PyTorch module: an interpreter over the layer list.

Why an interpreter rather than fixed architectures: the PyPI wheels ship Real-CUGAN, waifu2x,
RealSR, SPAN and SRMD graphs (plus community models) built from a small set of ncnn layer types.
Implementing those layer types once, with ncnn's exact semantics, runs every such file on CPU or
CUDA, batched, in fp32/bf16/fp16, without a per-architecture mapping. A layer type (or a layer
option) that is not implemented is refused with one ModelError naming it and the file, never
approximated.

Blob layout: ncnn blobs are C x H x W without a batch; here every blob is N x C x H x W. ncnn's
1-D blobs (global pooling, InnerProduct) become N x C x 1 x 1, which broadcasts against a
feature map exactly like ncnn's per-channel 1-D broadcast. Weight storage in the .bin follows
each layer's ``load_model``: Convolution/Deconvolution/InnerProduct weights are tagged blobs
(fp16 or fp32), their biases and every other blob (Scale, PReLU, MemoryData) plain fp32.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...core.errors import ModelError, WeightsError
from ...core.specs import NcnnLimits
from .parser import BlobReader, NcnnLayer, ParamError, ncnn_files, parse_param

__all__ = ["LAYER_TYPES", "NcnnGraph", "load_graph"]

_INT_MAX = 2**31 - 1


def _ints(ly: NcnnLayer, key: int) -> list[int]:
    v = ly.params.get(key, [])
    return [int(t) for t in v] if isinstance(v, list) else [int(v)]


def _floats(ly: NcnnLayer, key: int) -> list[float]:
    v = ly.params.get(key, [])
    return [float(t) for t in v] if isinstance(v, list) else [float(v)]


class _Unsupported(Exception):
    """A layer option this interpreter does not implement (turned into a ModelError)."""


def _within(ly: NcnnLayer, **keys: tuple[int, int | float, int, int]) -> None:
    """Bounds on a layer's size parameters, checked before anything is allocated: each name
    maps to (param id, default, lowest, highest); far outside every shipped model's values."""
    for label, (key, default, lo, hi) in keys.items():
        v = ly.get(key, default)
        if not lo <= v <= hi:
            raise _Unsupported(f"{label}={v} (outside {lo}..{hi})")


def _refuse_if(ly: NcnnLayer, **keys_defaults: tuple[int, float]) -> None:
    """Refuse options we do not implement: each name maps to (param id, the only accepted value)."""
    for label, (key, ok) in keys_defaults.items():
        if float(ly.get(key, ok)) != float(ok):
            raise _Unsupported(f"{label}={ly.get(key)}")


# ---- activations fused into Convolution / Deconvolution / InnerProduct ---------------------------


def _activation(ly: NcnnLayer) -> Callable[[Tensor], Tensor] | None:
    kind = int(ly.get(9, 0))
    p = _floats(ly, 10)
    if kind == 0:
        return None
    if kind == 1:
        return F.relu
    if kind == 2:
        slope = p[0] if p else 0.0
        return lambda x: F.leaky_relu(x, slope)
    if kind == 3:
        lo, hi = p[0], p[1]
        return lambda x: x.clamp(lo, hi)
    if kind == 4:
        return torch.sigmoid
    if kind == 5:
        return F.mish
    if kind == 6:
        alpha, beta = (p[0], p[1]) if len(p) >= 2 else (0.2, 0.5)
        return lambda x: x * (x * alpha + beta).clamp(0, 1)
    raise _Unsupported(f"activation type {kind}")


class _Op(nn.Module):
    """One ncnn layer: ``forward(*inputs) -> list of outputs``."""

    n_out_fixed: int | None = 1


class _Conv(_Op):
    def __init__(self, ly: NcnnLayer, r: BlobReader, transposed: bool) -> None:
        super().__init__()
        _within(
            ly,
            num_output=(0, 0, 1, 65536),
            kernel_w=(1, 0, 1, 64),
            kernel_h=(11, ly.get(1, 0), 1, 64),
            dilation_w=(2, 1, 1, 64),
            dilation_h=(12, ly.get(2, 1), 1, 64),
            stride_w=(3, 1, 1, 64),
            stride_h=(13, ly.get(3, 1), 1, 64),
            pad_left=(4, 0, -233, 1024),
            pad_right=(15, ly.get(4, 0), 0, 1024),
            pad_top=(14, ly.get(4, 0), 0, 1024),
            pad_bottom=(16, ly.get(14, ly.get(4, 0)), 0, 1024),
        )
        out_ch = int(ly.get(0))
        kw = int(ly.get(1))
        kh = int(ly.get(11, kw))
        dw = int(ly.get(2, 1))
        self.dil = (int(ly.get(12, dw)), dw)
        sw = int(ly.get(3, 1))
        self.stride = (int(ly.get(13, sw)), sw)
        pl = int(ly.get(4, 0))
        if pl < 0:
            raise _Unsupported(f"automatic padding mode {pl}")
        pr = int(ly.get(15, pl))
        pt = int(ly.get(14, pl))
        pb = int(ly.get(16, pt))
        self.pads = (pl, pr, pt, pb)
        _refuse_if(ly, int8_scale_term=(8, 0), dynamic_weight=(19, 0))
        if transposed:
            _refuse_if(
                ly,
                output_pad_right=(18, 0),
                output_pad_bottom=(19, 0),
                output_w=(20, 0),
                output_h=(21, 0),
            )
        else:
            self.pad_value = float(ly.get(18, 0.0))
        self.transposed = transposed
        n = int(ly.get(6))
        in_ch, rest = divmod(n, out_ch * kh * kw)
        if rest or in_ch < 1:
            raise _Unsupported(f"weight_data_size {n} for {out_ch} outputs of {kh}x{kw}")
        w = torch.from_numpy(r.tagged(n)).reshape(out_ch, in_ch, kh, kw)
        # ncnn keeps [out, in, kh, kw] for both; PyTorch's transposed conv wants [in, out, ...]
        self.weight = nn.Parameter(
            w.transpose(0, 1).contiguous() if transposed else w, requires_grad=False
        )
        self.bias = (
            nn.Parameter(torch.from_numpy(r.raw(out_ch)), requires_grad=False)
            if int(ly.get(5, 0))
            else None
        )
        self.act = _activation(ly)

    def forward(self, x: Tensor) -> list[Tensor]:
        pl, pr, pt, pb = self.pads
        if self.transposed:
            y = F.conv_transpose2d(x, self.weight, self.bias, self.stride, 0, 0, 1, self.dil)
            y = y[..., pt : y.shape[-2] - pb, pl : y.shape[-1] - pr]
        else:
            if pl == pr and pt == pb and self.pad_value == 0.0:
                y = F.conv2d(x, self.weight, self.bias, self.stride, (pt, pl), self.dil)
            else:
                x = F.pad(x, (pl, pr, pt, pb), value=self.pad_value)
                y = F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dil)
        return [self.act(y) if self.act else y]


class _InnerProduct(_Op):
    def __init__(self, ly: NcnnLayer, r: BlobReader) -> None:
        super().__init__()
        _within(ly, num_output=(0, 0, 1, 1 << 20))
        out = int(ly.get(0))
        n = int(ly.get(2))
        if n < out or n % out:
            raise _Unsupported(f"weight_data_size {n} for {out} outputs")
        _refuse_if(ly, int8_scale_term=(8, 0))
        self.weight = nn.Parameter(
            torch.from_numpy(r.tagged(n)).reshape(out, n // out), requires_grad=False
        )
        self.bias = (
            nn.Parameter(torch.from_numpy(r.raw(out)), requires_grad=False)
            if int(ly.get(1, 0))
            else None
        )
        self.act = _activation(ly)

    def forward(self, x: Tensor) -> list[Tensor]:
        y = F.linear(x.flatten(1), self.weight, self.bias)
        y = self.act(y) if self.act else y
        return [y[:, :, None, None]]


class _Pooling(_Op):
    def __init__(self, ly: NcnnLayer) -> None:
        super().__init__()
        if not int(ly.get(4, 0)):
            raise _Unsupported("non-global pooling")
        self.kind = int(ly.get(0, 0))
        if self.kind not in (0, 1):
            raise _Unsupported(f"pooling type {self.kind}")

    def forward(self, x: Tensor) -> list[Tensor]:
        if self.kind == 0:
            return [x.amax(dim=(-2, -1), keepdim=True)]
        return [x.mean(dim=(-2, -1), keepdim=True)]


_BINARY: dict[int, Callable[[Tensor, Tensor], Tensor]] = {
    0: torch.add,
    1: torch.sub,
    2: torch.mul,
    3: torch.div,
    4: torch.maximum,
    5: torch.minimum,
    6: torch.pow,
    7: lambda a, b: b - a,
    8: lambda a, b: b / a,
    9: lambda a, b: torch.pow(b, a),
    10: torch.atan2,
    11: lambda a, b: torch.atan2(b, a),
}


class _BinaryOp(_Op):
    def __init__(self, ly: NcnnLayer) -> None:
        super().__init__()
        op = int(ly.get(0, 0))
        if op not in _BINARY:
            raise _Unsupported(f"binary op type {op}")
        self.fn = _BINARY[op]
        self.scalar = float(ly.get(2, 0.0)) if int(ly.get(1, 0)) else None

    def forward(self, a: Tensor, b: Tensor | None = None) -> list[Tensor]:
        if self.scalar is not None:
            return [self.fn(a, torch.full((), self.scalar, dtype=a.dtype, device=a.device))]
        assert b is not None
        return [self.fn(a, b)]


class _Eltwise(_Op):
    def __init__(self, ly: NcnnLayer) -> None:
        super().__init__()
        self.kind = int(ly.get(0, 0))
        if self.kind not in (0, 1, 2):
            raise _Unsupported(f"eltwise op type {self.kind}")
        self.coeffs = _floats(ly, 1)

    def forward(self, *xs: Tensor) -> list[Tensor]:
        if self.kind == 0:
            y = xs[0]
            for x in xs[1:]:
                y = y * x
        elif self.kind == 2:
            y = xs[0]
            for x in xs[1:]:
                y = torch.maximum(y, x)
        else:
            c = self.coeffs or [1.0] * len(xs)
            y = xs[0] * c[0] if c[0] != 1.0 else xs[0]
            for x, k in zip(xs[1:], c[1:], strict=True):
                y = y + (x * k if k != 1.0 else x)
        return [y]


class _Split(_Op):
    n_out_fixed = None

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.n_out = n_out

    def forward(self, x: Tensor) -> list[Tensor]:
        return [x] * self.n_out


def _dim3(axis: int) -> int:
    """An ncnn axis of a 3-D blob (c, h, w; negative from the end) -> the NCHW tensor dim."""
    return (axis + 3 if axis < 0 else axis) + 1


class _Concat(_Op):
    def __init__(self, ly: NcnnLayer) -> None:
        super().__init__()
        self.dim = _dim3(int(ly.get(0, 0)))

    def forward(self, *xs: Tensor) -> list[Tensor]:
        return [torch.cat(xs, dim=self.dim)]


def _extent(out: int, full: int, off: int, off2: int) -> int:
    """ncnn Crop's output length on one axis: ``out`` (0 or -233: the rest) within the rest."""
    rest = full - off - off2
    return rest if out in (0, -233) else min(out, rest)


class _Crop(_Op):
    def __init__(self, ly: NcnnLayer) -> None:
        super().__init__()
        self.starts, self.ends, self.axes = _ints(ly, 9), _ints(ly, 10), _ints(ly, 11)
        self.woff, self.hoff, self.coff = int(ly.get(0, 0)), int(ly.get(1, 0)), int(ly.get(2, 0))
        self.outw, self.outh, self.outc = int(ly.get(3, 0)), int(ly.get(4, 0)), int(ly.get(5, 0))
        self.woff2, self.hoff2, self.coff2 = (
            int(ly.get(6, 0)),
            int(ly.get(7, 0)),
            int(ly.get(8, 0)),
        )

    def forward(self, x: Tensor, ref: Tensor | None = None) -> list[Tensor]:
        if self.starts:
            sl = [slice(None)] * 4
            axes = self.axes or list(range(len(self.starts)))
            for a, s, e in zip(axes, self.starts, self.ends, strict=True):
                d = _dim3(a)
                size = x.shape[d]
                s = s + size if s < 0 else s
                e = size if e >= _INT_MAX else (e + size if e < 0 else e)
                sl[d] = slice(max(s, 0), min(e, size))
            return [x[tuple(sl)]]
        c, h, w = x.shape[1:]
        if ref is not None:  # crop to the reference blob's size (ncnn's two-input form)
            oc, oh, ow = ref.shape[1], ref.shape[2], ref.shape[3]
            oc = c if oc == 1 and ref.shape[2:] == (1, 1) else oc
        else:
            oc = _extent(self.outc, c, self.coff, self.coff2)
            oh = _extent(self.outh, h, self.hoff, self.hoff2)
            ow = _extent(self.outw, w, self.woff, self.woff2)
        return [
            x[:, self.coff : self.coff + oc, self.hoff : self.hoff + oh, self.woff : self.woff + ow]
        ]


_RESIZE_MODES = {1: "nearest", 2: "bilinear", 3: "bicubic"}


class _Interp(_Op):
    def __init__(self, ly: NcnnLayer) -> None:
        super().__init__()
        kind = int(ly.get(0, 0))
        if kind not in _RESIZE_MODES:
            raise _Unsupported(f"resize type {kind}")
        _refuse_if(ly, dynamic_target_size=(5, 0))
        self.mode = _RESIZE_MODES[kind]
        self.align = bool(int(ly.get(6, 0))) if self.mode != "nearest" else None
        self.hs, self.ws = float(ly.get(1, 1.0)), float(ly.get(2, 1.0))
        self.oh, self.ow = int(ly.get(3, 0)), int(ly.get(4, 0))
        if not (0 < self.hs <= 64 and 0 < self.ws <= 64):
            raise _Unsupported(f"resize scale {self.hs:g}x{self.ws:g} (outside (0, 64])")
        _within(ly, output_height=(3, 0, 0, 65536), output_width=(4, 0, 0, 65536))

    def forward(self, x: Tensor) -> list[Tensor]:
        h, w = x.shape[-2:]
        size = (self.oh or int(h * self.hs), self.ow or int(w * self.ws))
        return [F.interpolate(x, size=size, mode=self.mode, align_corners=self.align)]


class _PixelShuffle(_Op):
    def __init__(self, ly: NcnnLayer) -> None:
        super().__init__()
        _within(ly, upscale_factor=(0, 1, 1, 64))
        self.r = int(ly.get(0, 1))
        _refuse_if(ly, mode=(1, 0))

    def forward(self, x: Tensor) -> list[Tensor]:
        return [F.pixel_shuffle(x, self.r)]


class _Scale(_Op):
    def __init__(self, ly: NcnnLayer, r: BlobReader) -> None:
        super().__init__()
        n = int(ly.get(0, 0))
        bias = bool(int(ly.get(1, 0)))
        if n != -233 and n < 1:
            raise _Unsupported(f"scale_data_size={n}")
        if n == -233 and bias:
            raise _Unsupported("bias with a scale blob from a second input")

        def vec(count: int) -> nn.Parameter:
            return nn.Parameter(
                torch.from_numpy(r.raw(count))[None, :, None, None], requires_grad=False
            )

        self.scale = None if n == -233 else vec(n)
        self.bias = vec(n) if bias else None

    def forward(self, x: Tensor, s: Tensor | None = None) -> list[Tensor]:
        scale = s if self.scale is None else self.scale
        assert scale is not None  # the two-input form always passes the scale blob
        y = x * scale
        return [y + self.bias if self.bias is not None else y]


class _PReLU(_Op):
    def __init__(self, ly: NcnnLayer, r: BlobReader) -> None:
        super().__init__()
        _within(ly, num_slope=(0, 1, 1, 65536))
        self.slope = nn.Parameter(torch.from_numpy(r.raw(int(ly.get(0, 1)))), requires_grad=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        return [F.prelu(x, self.slope)]


class _MemoryData(_Op):
    def __init__(self, ly: NcnnLayer, r: BlobReader) -> None:
        super().__init__()
        _within(ly, w=(0, 0, 0, 1 << 20), h=(1, 0, 0, 1 << 20), c=(2, 0, 0, 1 << 20))
        w, h, c = int(ly.get(0, 0)), int(ly.get(1, 0)), int(ly.get(2, 0))
        _refuse_if(ly, depth=(11, 0))
        shape = [d for d in (c, h, w) if d]
        n = 1
        for d in shape:
            n *= d
        t = torch.from_numpy(r.raw(n))
        # a 1-D blob broadcasts per channel in ncnn, like N x C x 1 x 1 here
        full = (c or 1, h or 1, w) if (c or h) else (w, 1, 1)
        self.data = nn.Parameter(t.reshape(1, *full), requires_grad=False)

    def forward(self) -> list[Tensor]:
        return [self.data]


class _Elementwise(_Op):
    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> list[Tensor]:
        return [self.fn(x)]


def _make(ly: NcnnLayer, r: BlobReader) -> _Op:
    t = ly.type
    if t in ("Convolution", "Deconvolution"):
        return _Conv(ly, r, transposed=t == "Deconvolution")
    if t == "InnerProduct":
        return _InnerProduct(ly, r)
    if t == "Pooling":
        return _Pooling(ly)
    if t == "BinaryOp":
        return _BinaryOp(ly)
    if t == "Eltwise":
        return _Eltwise(ly)
    if t == "Split":
        return _Split(len(ly.outputs))
    if t == "Concat":
        return _Concat(ly)
    if t == "Crop":
        return _Crop(ly)
    if t == "Interp":
        return _Interp(ly)
    if t == "PixelShuffle":
        return _PixelShuffle(ly)
    if t == "Scale":
        return _Scale(ly, r)
    if t == "PReLU":
        return _PReLU(ly, r)
    if t == "MemoryData":
        return _MemoryData(ly, r)
    if t == "Sigmoid":
        return _Elementwise(torch.sigmoid)
    if t == "Swish":
        return _Elementwise(F.silu)
    if t == "TanH":
        return _Elementwise(torch.tanh)
    if t == "ReLU":
        slope = float(ly.get(0, 0.0))
        return _Elementwise(lambda x: F.leaky_relu(x, slope) if slope else F.relu(x))
    raise _Unsupported("layer type")


#: every ncnn layer type the interpreter runs (Input is the graph's entry point)
LAYER_TYPES = frozenset(
    {
        "Input",
        "Convolution",
        "Deconvolution",
        "InnerProduct",
        "Pooling",
        "BinaryOp",
        "Eltwise",
        "Split",
        "Concat",
        "Crop",
        "Interp",
        "PixelShuffle",
        "Scale",
        "PReLU",
        "MemoryData",
        "Sigmoid",
        "Swish",
        "TanH",
        "ReLU",
    }
)


PROBE_SIZE = 64  # px: the probe input, a multiple of every family's alignment


class NcnnGraph(nn.Module):
    """An ncnn graph run layer by layer on N x C x H x W tensors (any device, any float dtype).

    ``forward(x)`` feeds the single Input blob and returns the graph's single output blob (the
    one blob no layer consumes), with no pre/post-processing: see families.py for those.

    The files are untrusted: every malformed input is one ModelError naming the file and the
    line or layer; sizes are checked against ``limits`` before they are allocated, and the
    graph is run once on a shape-only (meta) probe input, which allocates nothing, so a layer
    that would blow up activations (a stride-400 Deconvolution, a x10^6 Interp) is refused
    with its name before a real image reaches it.
    """

    def __init__(
        self,
        param_path: str | Path,
        bin_path: str | Path | None = None,
        limits: NcnnLimits | None = None,
    ) -> None:
        super().__init__()
        limits = limits or NcnnLimits()
        param_path, bin_path = ncnn_files(param_path, bin_path)
        self.param_path, self.bin_path = param_path, bin_path
        layers = parse_param(param_path, limits)
        unknown = [ly for ly in layers if ly.type not in LAYER_TYPES]
        if unknown:
            types = sorted({ly.type for ly in unknown})
            raise ParamError(
                param_path,
                unknown[0].line,
                f"ncnn layer type {', '.join(types)} is not supported by the graph importer",
                f"supported: {', '.join(sorted(LAYER_TYPES))}",
                layer=unknown[0].name,
            )
        inputs = [ly for ly in layers if ly.type == "Input"]
        if len(inputs) != 1 or len(inputs[0].outputs) != 1:
            raise ModelError(
                str(param_path),
                f"{len(inputs)} Input layers; the importer runs "
                "graphs with exactly one input blob (one Input layer, one output)",
            )
        self.input_blob = inputs[0].outputs[0]
        r = BlobReader.open(bin_path, limits)
        ops: list[_Op] = []
        self.plan: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self.layer_types: list[str] = []
        self.layer_names: list[str] = []
        for ly in layers:
            if ly.type == "Input":
                continue
            r.layer = f"{ly.name}, line {ly.line} of {param_path.name}"
            try:
                op = _make(ly, r)
            except _Unsupported as e:
                raise ParamError(
                    param_path,
                    ly.line,
                    f"{ly.type} {e} is not supported by the graph importer",
                    "only the options the shipped SR models use are implemented",
                    layer=ly.name,
                ) from None
            if op.n_out_fixed is not None and len(ly.outputs) != op.n_out_fixed:
                raise ParamError(
                    param_path,
                    ly.line,
                    f"{ly.type} has {len(ly.outputs)} outputs, not {op.n_out_fixed}",
                    layer=ly.name,
                )
            ops.append(op)
            self.plan.append((tuple(ly.inputs), tuple(ly.outputs)))
            self.layer_types.append(ly.type)
            self.layer_names.append(f"{ly.name} ({ly.type}, line {ly.line})")
        if r.pos != len(r.data):
            raise WeightsError(
                str(bin_path),
                f"{len(r.data) - r.pos} bytes left unread after {len(layers)} layers",
                "the .bin does not match the .param",
            )
        self.ops = nn.ModuleList(ops)
        produced = {b for _, outs in self.plan for b in outs} | {self.input_blob}
        consumed = {b for ins, _ in self.plan for b in ins}
        sinks = sorted(produced - consumed)
        if len(sinks) != 1:
            raise ModelError(
                str(param_path),
                f"graph has {len(sinks)} output blobs "
                f"({', '.join(sinks[:3])}{', ...' if len(sinks) > 3 else ''}); "
                "the importer runs graphs with exactly one",
                "pass a complete .param",
            )
        self.output_blob = sinks[0]
        last_use: dict[str, int] = {}
        for i, (ins, _) in enumerate(self.plan):
            for b in ins:
                last_use[b] = i
        self._free = [
            tuple(b for b in ins if last_use[b] == i) for i, (ins, _) in enumerate(self.plan)
        ]
        in_ch = next(
            (op.weight.shape[1 if not op.transposed else 0] for op in ops if isinstance(op, _Conv)),
            None,
        )
        self.in_channels: int | None = int(in_ch) if in_ch is not None else None
        self.probe_output, self.probe_peak_bytes = self.probe(PROBE_SIZE, limits)

    def _walk(
        self, x: Tensor, step: Callable[[int, dict[str, Tensor]], None] | None = None
    ) -> Tensor:
        blobs: dict[str, Tensor] = {self.input_blob: x}
        for i, (op, (ins, outs), free) in enumerate(
            zip(self.ops, self.plan, self._free, strict=True)
        ):
            args = [blobs[b] for b in ins]
            res = op(*args)
            for b, t in zip(outs, res, strict=True):
                blobs[b] = t
            if step is not None:  # inputs and outputs are alive together while a layer runs
                step(i, blobs)
            for b in free:
                del blobs[b]
        return blobs[self.output_blob]

    def forward(
        self, x: Tensor, step: Callable[[int, dict[str, Tensor]], None] | None = None
    ) -> Tensor:
        """``step(i, blobs)`` hears of each layer done (the probe's accounting)."""
        return self._walk(x, step)

    def probe(self, size: int, limits: NcnnLimits | None = None) -> tuple[tuple[int, ...], int]:
        """Run the graph on a 1 x C x size x size input made of shapes only (the meta device:
        nothing is allocated, weights included) -> (output shape, peak bytes of the live
        activations). Refuses, naming the layer, one that fails or that needs more than
        ``limits.activation_bytes_per_pixel`` per input pixel (fp32)."""
        from torch.func import functional_call

        limits = limits or NcnnLimits()
        budget = limits.activation_bytes_per_pixel * size * size
        peak, done = 0, -1

        def account(i: int, blobs: dict[str, Tensor]) -> None:
            nonlocal peak, done
            done = i
            live = sum(t.numel() * 4 for t in blobs.values())
            peak = max(peak, live)
            if live > budget:
                raise ParamError(
                    self.param_path,
                    None,
                    f"needs {live / size**2:.3g} bytes "
                    "of activations per input pixel after this layer, over the "
                    "limit",
                    limits.why("activation_bytes_per_pixel"),
                    layer=self.layer_names[i],
                )

        meta = {
            k: torch.empty_like(v, device="meta")
            for k, v in [*self.named_parameters(), *self.named_buffers()]
        }
        x = torch.empty(1, self.in_channels or 3, size, size, device="meta")
        try:
            with torch.no_grad():
                y = functional_call(self, meta, (x,), {"step": account})
        except ModelError:
            raise
        except Exception as e:  # a shape the layer cannot take: the file's fault, named
            why = (str(e).splitlines() or [type(e).__name__])[0][:200]
            raise ParamError(
                self.param_path,
                None,
                f"fails on a {size}x{size} probe input ({why})",
                "the graph is malformed or needs another input size",
                layer=self.layer_names[min(done + 1, len(self.ops) - 1)],
            ) from None
        return tuple(y.shape), peak


def load_graph(
    param_path: str | Path, bin_path: str | Path | None = None, limits: NcnnLimits | None = None
) -> NcnnGraph:
    """Read an ncnn .param/.bin pair into an :class:`NcnnGraph` (eval mode, fp32, CPU)."""
    return NcnnGraph(param_path, bin_path, limits).eval()
