"""The TensorRT backend: ONNX parsed and built into a serialized plan for one NVIDIA GPU.

This module is the glue between unirun's plugin contract and the engine modules, which take
plain values only: ``_build`` (parse, configure, profiles, timing cache), ``_runtime`` (engine,
execution contexts, buffers), ``_compat`` (may this plan load here), ``_cuda`` (checked CUDA
calls), ``_diagnose`` (what is missing on this machine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from unirun.backend import (
    API_VERSION,
    Capabilities,
    CompileRequest,
    CompileResult,
    DeviceInfo,
    DynamicShapes,
    Finding,
    LoadRequest,
    OutputPlace,
    Probe,
    ThreadSafety,
)
from unirun.device import Device
from unirun.device_tensor import DeviceTensor
from unirun.errors import DeviceError, ModelClosedError
from unirun.tensor import TensorSpec

from . import _build, _compat, _cuda, _diagnose, _engine, _profiles, _runtime
from ._dtypes import IO_DTYPES
from ._timing import TimingCacheFile
from .options import TensorRTOptions

if TYPE_CHECKING:
    from unirun.source import OnnxModel

Array = np.ndarray[Any, Any]

PLAN = "model.plan"


class TensorRTBackend:
    """NVIDIA TensorRT on CUDA GPUs."""

    name = "tensorrt"
    api_version = API_VERSION
    options_model = TensorRTOptions
    capabilities = Capabilities(
        device_kinds=("cuda",),  # device="gpu" finds CUDA devices too (a GPU kind)
        precisions=("fp32", "fp16", "bf16"),
        dtypes=IO_DTYPES,
        dynamic_shapes=DynamicShapes.BOUNDED,
        thread_safety=ThreadSafety.CONTEXTS,
        artifact_format="tensorrt-plan",
        pins_runtime_version=True,
        # Above ONNX Runtime's CUDA provider: whoever installs TensorRT wants it on NVIDIA GPUs.
        priority={"cuda": 70},
        device_io=("cuda",),
    )

    def probe(self) -> Probe:
        try:
            found = _diagnose.findings()
        except Exception as exc:  # probe never raises
            return Probe(False, f"checking for TensorRT failed: {type(exc).__name__}: {exc}")
        problems = [f for f in found if not f.ok]
        version = next((f.detail.split()[0] for f in found if f.name == "TensorRT" and f.ok), None)
        if problems:
            reason = "; ".join(
                f"{f.name}: {f.detail}" + (f" (fix: {f.fix})" if f.fix else "") for f in problems
            )
            return Probe(False, reason, version)
        return Probe(True, "", version)

    def diagnose(self, device: Device | None) -> list[Finding]:
        """What TensorRT needs here, one finding per piece (cuda-bindings, NVIDIA driver, GPU,
        TensorRT), with the command that fixes a missing one (``unirun doctor -b tensorrt``)."""
        return [Finding(f.name, f.ok, f.detail, f.fix) for f in _diagnose.findings()]

    def devices(self) -> list[DeviceInfo]:
        infos = []
        for gpu in _cuda.gpus():
            description = f"{gpu.name}, compute capability {gpu.compute_capability}, " + (
                f"{gpu.memory / 2**30:.0f} GiB"
            )
            infos.append(DeviceInfo(Device("cuda", gpu.ordinal), description, gpu.identity))
        return infos

    # -- compile -------------------------------------------------------------------------------

    def compile(self, model: OnnxModel, request: CompileRequest) -> CompileResult:
        options = request.plugin_options
        assert isinstance(options, TensorRTOptions)  # validated by the core
        gpu = _gpu(request.device.device)
        _cuda.set_device(gpu.ordinal)
        profiles = _profiles.plan(model.inputs, request.options.shapes, options.profiles)
        timing = None
        if options.timing_cache and request.cache_dir is not None:
            timing = TimingCacheFile(request.cache_dir, _engine.version(), gpu.identity)
        result = _build.build(
            _build.BuildRequest(
                proto=model.proto,
                data=model.data,
                path=model.path if model.has_external_data else None,
                inputs=model.inputs,
                precision=request.options.precision,
                options=options,
                profiles=profiles,
                timing_cache=timing,
            )
        )
        (request.directory / PLAN).write_bytes(result.plan)
        info = _compat.PlanInfo(
            _engine.version(),
            gpu.name,
            gpu.compute_capability,
            _cuda.runtime_version(),
            options.hardware_compatibility or "",
        )
        extra = {
            _compat.FIELD: info.to_json(),
            "profiles": _profiles.to_json(profiles),
            "strongly_typed": result.strongly_typed,
            "converted_onnx": result.converted,
            "builder_flags": result.applied.flags,
            "cleared_flags": result.applied.cleared,
        }
        # A hardware-compatible plan runs on other GPUs than the one that built it: the core
        # then leaves the GPU check to load() (_compat), which knows the compatibility level.
        portable = bool(options.hardware_compatibility)
        return CompileResult(result.inputs, result.outputs, extra, portable=portable)

    # -- load ----------------------------------------------------------------------------------

    def load(self, request: LoadRequest) -> TensorRTExecutable:
        extra = request.extra
        built = _compat.PlanInfo.from_json(extra.get(_compat.FIELD))
        gpu = _gpu(request.device.device)
        here = _compat.PlanInfo(
            _engine.version(), gpu.name, gpu.compute_capability, _cuda.runtime_version()
        )
        _compat.check(built, here)
        plan = request.file(PLAN).read_bytes()
        engine = _runtime.Engine(plan, gpu.ordinal, _profiles.from_json(extra.get("profiles")))
        return TensorRTExecutable(engine, request.inputs, request.outputs)


class TensorRTContext:
    """One execution context (with its stream and buffers) for one call at a time."""

    def __init__(self, context: _runtime.Context) -> None:
        self._context: _runtime.Context | None = context

    def infer(self, feeds: Mapping[str, Array]) -> Sequence[Array]:
        context = self._context
        if context is None:
            raise ModelClosedError("this TensorRT model was closed")
        return context.infer(feeds)

    def infer_device(
        self, feeds: Mapping[str, DeviceTensor], outputs: OutputPlace
    ) -> Sequence[DeviceTensor]:
        """Feeds on this GPU used in place (after their producer's stream), host feeds staged
        in; outputs handed over from the memory TensorRT wrote (``"device"``) or copied to the
        host (:class:`unirun.backend.SupportsDeviceIO`)."""
        context = self._context
        if context is None:
            raise ModelClosedError("this TensorRT model was closed")
        return context.execute(feeds, on_device=outputs == "device")

    def close(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            context.close()


class TensorRTExecutable:
    """A deserialized plan. ``ThreadSafety.CONTEXTS``: the core gives each concurrent call its
    own execution context."""

    def __init__(
        self, engine: _runtime.Engine, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
    ) -> None:
        self._engine: _runtime.Engine | None = engine
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    def create_context(self) -> TensorRTContext:
        engine = self._engine
        if engine is None:
            raise ModelClosedError("this TensorRT model was closed")
        return TensorRTContext(engine.create_context())

    def close(self) -> None:
        # Contexts hold the engine until they are closed; running calls finish.
        self._engine = None


def _gpu(device: Device) -> _cuda.Gpu:
    gpus = _cuda.gpus()
    for gpu in gpus:
        if gpu.ordinal == device.ordinal:
            return gpu
    have = ", ".join(f"cuda:{g.ordinal} ({g.name})" for g in gpus) or "none"
    raise DeviceError(f"there is no CUDA device {device.ordinal} here; CUDA reports: {have}")
