"""The ncnn runtime (Tencent's ``ncnn`` Python package) as a CPU backend for ncnn .param/.bin
graphs: the same files the PyTorch importer runs, executed by the engine their authors wrote them
for.

Why: on a CPU, ncnn's hand-tuned x86 kernels (winograd, packed sgemm) run the large RRDBNet
(Real-ESRGAN x4plus) several times faster than PyTorch eager, and as fast on the compact models.
It is optional (the ``ncnn`` extra) and CPU only; its numerical agreement with the PyTorch path
is tested (the same weights, fp32 arithmetic: fp16 storage and arithmetic are switched off, so
differences are summation-order rounding, ~1e-5).

The net is loaded for a thread count: ncnn fixes some kernels' threading at load time, so when
torch's thread count (what the engine and the sweep workers set) changes, the net is reloaded
with the new count rather than run with a stale one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...core.errors import ModelError
from .parser import ncnn_files, parse_param

__all__ = ["NcnnRuntimeNet", "available"]


def available() -> bool:
    """True when the ``ncnn`` Python package imports (the ``ncnn`` extra)."""
    try:
        import ncnn  # noqa: F401
    except ImportError:
        return False
    return True


class NcnnRuntimeNet(nn.Module):
    """N x C x H x W float32 (CPU) -> the graph's output blob, one image at a time through
    ``ncnn.Net``. No pre/post-processing (families.FamilyModel wraps it like an NcnnGraph)."""

    def __init__(self, param_path: str | Path, bin_path: str | Path | None = None) -> None:
        super().__init__()
        if not available():
            raise ModelError(
                "backend 'ncnn'",
                "the ncnn Python package is not installed",
                "pip install 'roundtrip-ml[ncnn]', or use backend = 'torch'",
            )
        self.param_path, self.bin_path = ncnn_files(param_path, bin_path)
        layers = parse_param(self.param_path)
        inputs = [ly for ly in layers if ly.type == "Input"]
        if len(inputs) != 1 or len(inputs[0].outputs) != 1:
            raise ModelError(
                str(self.param_path),
                f"{len(inputs)} Input layers; the ncnn "
                "backend runs graphs with exactly one input blob",
            )
        self.input_blob = inputs[0].outputs[0]
        produced = {b for ly in layers for b in ly.outputs}
        consumed = {b for ly in layers for b in ly.inputs}
        sinks = sorted(produced - consumed)
        if len(sinks) != 1:
            raise ModelError(
                str(self.param_path),
                f"graph has {len(sinks)} output blobs",
                "the ncnn backend runs graphs with one output",
            )
        self.output_blob = sinks[0]
        first_conv = next((ly for ly in layers if ly.type == "Convolution"), None)
        # Convolution param 0 = num_output, 6 = weight count: input channels = 6 / (0 * k * k)
        self.in_channels: int | None = None
        if first_conv is not None:
            k = int(first_conv.get(1, 1))
            k_h = int(first_conv.get(11, k))
            n_out, n_w = int(first_conv.get(0, 0)), int(first_conv.get(6, 0))
            if n_out and k and k_h:
                self.in_channels = n_w // (n_out * k * k_h)
        self.layer_types = [ly.type for ly in layers]
        self._net: Any = None
        self._threads = 0

    def _load(self, threads: int) -> Any:
        import ncnn

        net = ncnn.Net()
        opt = net.opt
        opt.use_vulkan_compute = False
        opt.num_threads = threads
        # fp32 throughout, as the PyTorch path computes (the weights stay as the .bin stores them)
        opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
        opt.use_bf16_storage = False
        if net.load_param(str(self.param_path)) != 0 or net.load_model(str(self.bin_path)) != 0:
            raise ModelError(
                str(self.param_path),
                "the ncnn runtime could not load this graph",
                "use backend = 'torch'",
            )
        self._net, self._threads = net, threads
        return net

    @property
    def threads(self) -> int:
        """The thread count the net is loaded for (0: not loaded yet)."""
        return self._threads

    def forward(self, x: Tensor) -> Tensor:
        import ncnn

        if x.device.type != "cpu":
            raise ModelError(
                "backend 'ncnn'",
                f"runs on the CPU, got a tensor on {x.device}",
                "use backend = 'torch' on a GPU",
            )
        threads = max(1, torch.get_num_threads())
        net = self._net if self._threads == threads else self._load(threads)
        # ncnn.Mat wraps the array's memory without a copy or a reference: each image must be a
        # contiguous array that stays alive until extract() has run
        arr = np.ascontiguousarray(x.detach().to(torch.float32).numpy())
        outs = []
        for i in range(arr.shape[0]):
            img = arr[i]
            ex = net.create_extractor()
            ex.input(self.input_blob, ncnn.Mat(img))
            ret, out = ex.extract(self.output_blob)
            del ex
            if ret != 0:
                raise ModelError(str(self.param_path), f"ncnn extract failed (code {ret})")
            outs.append(torch.from_numpy(np.array(out, dtype=np.float32, copy=True)))
        return torch.stack(outs).to(x.dtype)

    def describe(self) -> dict[str, Any]:
        import ncnn

        # before the first forward: the count it will load with (torch's, set by the run)
        threads = self._threads or max(1, torch.get_num_threads())
        return {
            "runtime": "ncnn",
            "ncnn_version": getattr(ncnn, "__version__", "unknown"),
            "threads": threads,
            "fp16": False,
        }
