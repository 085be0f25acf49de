"""The TensorRT backend: ONNX parsed and built into a serialized plan for one NVIDIA GPU.

This module is the glue between unirun's plugin contract and the engine modules, which take
plain values only: ``_build`` (parse, configure, profiles, timing cache), ``_runtime`` (engine,
execution contexts, buffers), ``_compat`` (may this plan load here), ``_cuda`` (checked CUDA
calls), ``_diagnose`` (what is missing on this machine).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unirun.backend import API_VERSION, Capabilities, DeviceInfo, Probe, Target, ThreadSafety
from unirun.device import Device
from unirun.errors import DeviceError, ModelClosedError
from unirun.tensor import TensorSpec

from . import _build, _compat, _cuda, _diagnose, _engine, _profiles, _runtime
from ._dtypes import IO_DTYPES
from ._timing import TimingCacheFile
from .options import TensorRTOptions

if TYPE_CHECKING:
    from unirun.artifact import Artifact
    from unirun.source import OnnxModel

Array = np.ndarray[Any, Any]

PLAN = "model.plan"


class TensorRTBackend:
    """NVIDIA TensorRT on CUDA GPUs."""

    name = "tensorrt"
    api_version = API_VERSION
    options_model = TensorRTOptions
    capabilities = Capabilities(
        device_kinds=("cuda", "gpu"),
        precisions=("fp32", "fp16", "bf16"),
        dtypes=IO_DTYPES,
        dynamic_shapes="bounded",
        thread_safety=ThreadSafety.CONTEXTS,
        artifact_format="tensorrt-plan",
        pins_runtime_version=True,
        # Above ONNX Runtime's CUDA provider: whoever installs TensorRT wants it on NVIDIA GPUs.
        priority={"cuda": 70, "gpu": 70},
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

    def diagnose(self) -> list[str]:
        """What TensorRT needs here, one line per piece (cuda-bindings, NVIDIA driver, GPU,
        TensorRT): ``"ok: NAME: detail"`` or ``"missing: NAME: detail (fix: command)"``."""
        return [str(f) for f in _diagnose.findings()]

    def devices(self) -> list[DeviceInfo]:
        infos = []
        gpus = _cuda.gpus()
        for gpu in gpus:
            description = f"{gpu.name}, compute capability {gpu.compute_capability}, " + (
                f"{gpu.memory / 2**30:.0f} GiB"
            )
            infos.append(DeviceInfo(Device("cuda", gpu.ordinal), description, gpu.identity))
        # The same GPUs under the generic name, for device="gpu"/"gpu:N".
        infos += [
            DeviceInfo(Device("gpu", i.device.ordinal), i.description, i.identity)
            for i in infos[: len(gpus)]
        ]
        return infos

    # -- compile -------------------------------------------------------------------------------

    def compile(self, model: OnnxModel, target: Target) -> Artifact:
        options = TensorRTOptions.model_validate(target.options.backend_options)
        gpu = _gpu(target.device)
        _cuda.set_device(gpu.ordinal)
        profiles = _profiles.plan(model.inputs, target.options.shapes, options.profiles)
        timing = None
        if options.timing_cache:
            timing = TimingCacheFile(target.cache_dir, _engine.version(), gpu.identity)
        result = _build.build(
            _build.BuildRequest(
                proto=model.proto,
                data=model.data,
                path=model.path if model.has_external_data else None,
                inputs=model.inputs,
                precision=target.options.precision,
                options=options,
                profiles=profiles,
                timing_cache=timing,
            )
        )
        (target.directory / PLAN).write_bytes(result.plan)
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
        return target.finish(result.inputs, result.outputs, extra)

    # -- load ----------------------------------------------------------------------------------

    def load(
        self, artifact: Artifact, device: Device, cache_dir: Path | None = None
    ) -> TensorRTExecutable:
        extra = artifact.manifest.extra
        built = _compat.PlanInfo.from_json(extra.get(_compat.FIELD))
        gpu = _gpu(device)
        here = _compat.PlanInfo(
            _engine.version(), gpu.name, gpu.compute_capability, _cuda.runtime_version()
        )
        _compat.check(built, here)
        plan = artifact.path(PLAN).read_bytes()
        engine = _runtime.Engine(plan, gpu.ordinal, _profiles.from_json(extra.get("profiles")))
        return TensorRTExecutable(engine, artifact.inputs, artifact.outputs)


class TensorRTContext:
    """One execution context (with its stream and buffers) for one call at a time."""

    def __init__(self, context: _runtime.Context) -> None:
        self._context: _runtime.Context | None = context

    def infer(self, feeds: Mapping[str, Array]) -> Sequence[Array]:
        context = self._context
        if context is None:
            raise ModelClosedError("this TensorRT model was closed")
        return context.infer(feeds)

    def close(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            context.close()


class TensorRTExecutable:
    """A deserialized plan. ``ThreadSafety.CONTEXTS``: the core gives each concurrent call its
    own execution context; ``infer`` itself serialises on one."""

    def __init__(
        self, engine: _runtime.Engine, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
    ) -> None:
        self._engine: _runtime.Engine | None = engine
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self._lock = threading.Lock()
        self._own: TensorRTContext | None = None

    def create_context(self) -> TensorRTContext:
        engine = self._engine
        if engine is None:
            raise ModelClosedError("this TensorRT model was closed")
        return TensorRTContext(engine.create_context())

    def infer(self, feeds: Mapping[str, Array]) -> Sequence[Array]:
        with self._lock:
            if self._own is None:
                self._own = self.create_context()
            return self._own.infer(feeds)

    def close(self) -> None:
        # Contexts hold the engine until they are closed; running calls finish.
        self._engine = None
        own, self._own = self._own, None
        if own is not None:
            own.close()


def _gpu(device: Device) -> _cuda.Gpu:
    if device.kind not in ("cuda", "gpu"):
        raise DeviceError(f"TensorRT runs on NVIDIA GPUs (cuda, cuda:N, gpu), not {device}")
    gpus = _cuda.gpus()
    for gpu in gpus:
        if gpu.ordinal == device.ordinal:
            return gpu
    have = ", ".join(f"cuda:{g.ordinal} ({g.name})" for g in gpus) or "none"
    raise DeviceError(f"there is no CUDA device {device.ordinal} here; CUDA reports: {have}")
