"""The ONNX Runtime backend: sessions on the CPU or, with onnxruntime-gpu, on CUDA."""

from __future__ import annotations

import functools
import itertools
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
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
    Int8Form,
    LoadRequest,
    OutputPlace,
    Probe,
    Stage,
    ThreadSafety,
    ValueKind,
)
from unirun.device import Device
from unirun.device_tensor import DeviceTensor
from unirun.dtypes import DType
from unirun.errors import DeviceError, ModelClosedError, UnirunError
from unirun.options import Precision
from unirun.source import build_with_fixed_shapes, graphs
from unirun.tensor import TensorSpec

from . import _iobinding, _log
from ._devices import CUDA as _CUDA
from ._devices import cpu_name, cuda_devices, diagnose
from ._dtypes import NARROW, from_ortvalue, to_ortvalue
from ._errors import map_error, out_of_space
from ._ops import unsupported_ops
from ._run import Infer, session_runner
from ._specs import check_kept, check_values
from ._specs import specs as session_specs
from .options import OnnxRuntimeOptions

if TYPE_CHECKING:
    from unirun.options import ShapeRange
    from unirun.source import OnnxModel

Array = np.ndarray[Any, Any]
log = logging.getLogger("unirun.onnxruntime")

PAYLOAD = "model.onnx"
_WEIGHTS = "model.weights"
# unirun level -> ONNX Runtime GraphOptimizationLevel member name
_LEVELS = ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL")


@functools.cache
def _onnx() -> Any:
    import onnx

    return onnx


@functools.cache
def _ort() -> Any:
    import onnxruntime

    return onnxruntime


class OnnxRuntimeBackend:
    """unirun's default backend. Runs everywhere onnxruntime installs."""

    name = "onnxruntime"
    api_version = API_VERSION
    options_model = OnnxRuntimeOptions
    capabilities = Capabilities(
        device_kinds=("cpu", "cuda"),  # device="gpu" finds CUDA devices (a GPU kind)
        # fp16: the graph is converted (unirun.quantize.to_fp16); int8: the core hands over Q/DQ
        # or dynamically quantized graphs, which the CPU provider fuses into int8 kernels.
        precisions=("fp32", "fp16", "int8"),
        int8_forms={"cpu": (Int8Form.STATIC, Int8Form.DYNAMIC)},
        dtypes=(
            DType.FLOAT32,
            DType.FLOAT16,
            DType.FLOAT64,
            DType.INT8,
            DType.INT16,
            DType.INT32,
            DType.INT64,
            DType.UINT8,
            DType.UINT16,
            DType.UINT32,
            DType.UINT64,
            DType.BOOL,
            DType.STRING,
            # numpy lacks these; they cross onnxruntime's Python API as raw bits (_dtypes.py)
            DType.BFLOAT16,
            DType.FLOAT8_E4M3FN,
            DType.FLOAT8_E4M3FNUZ,
            DType.FLOAT8_E5M2,
            DType.FLOAT8_E5M2FNUZ,
            # Carried as raw bits too (Cast and the quantization ops have kernels for them),
            # though ONNX Runtime 1.32 has no Identity kernel for these.
            DType.FLOAT8_E8M0,
            DType.FLOAT4_E2M1,
            DType.INT4,
            DType.UINT4,
            DType.INT2,
            DType.UINT2,
        ),
        # Sequences, maps and optionals go through onnxruntime's Python API as lists, dicts and
        # None (map inputs: int64/string keys to float32 only, checked at compile).
        value_kinds=tuple(ValueKind),
        dynamic_shapes=DynamicShapes.FREE,
        thread_safety=ThreadSafety.CONCURRENT,
        artifact_format="onnx",
        pins_runtime_version=False,
        priority={"cpu": 50, "cuda": 60},
        device_io=("cuda",),  # I/O binding (_iobinding.py)
    )

    def probe(self) -> Probe:
        try:
            ort = _ort()
        except Exception as exc:  # ImportError, or a broken native library
            return Probe(
                False,
                f"onnxruntime cannot be imported ({exc}); install it: pip install onnxruntime",
            )
        return Probe(True, "", ort.__version__)

    def devices(self) -> list[DeviceInfo]:
        ort = _ort()
        found = []
        if _CUDA in ort.get_available_providers():
            found.extend(cuda_devices(ort))
        found.append(DeviceInfo(Device("cpu"), cpu_name()))
        return found

    def unsupported_ops(
        self, model: OnnxModel, device: Device, shapes: Mapping[str, ShapeRange]
    ) -> list[tuple[str, str]] | None:
        """Nodes without a kernel on ``device``'s execution provider, from ONNX Runtime's kernel
        registry (:class:`unirun.backend.SupportsOpCheck`); None if this build lacks it."""
        ort = _ort()
        provider = "CPUExecutionProvider" if device.kind == "cpu" else _CUDA
        if provider not in ort.get_available_providers():
            return None
        return unsupported_ops(model.proto, provider)

    # -- compile -------------------------------------------------------------------------------

    def compile(self, model: OnnxModel, request: CompileRequest) -> CompileResult:
        """Write ONNX Runtime's offline-optimised graph as the payload.

        The graph is optimised no further than EXTENDED (BASIC for CUDA) so that the saved file
        holds no layout tied to this CPU; the remaining passes run again, quickly, at load.
        """
        ort = _ort()
        check_values(model)
        options = _options(request.plugin_options)
        target, device = request.options, request.device.device
        so = ort.SessionOptions()
        requested = target.optimization_level
        ceiling = 1 if device.kind != "cpu" else 2
        level = ceiling if requested is None else min(requested, ceiling)
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
        so.optimized_model_filepath = str(request.directory / PAYLOAD)
        if model.has_external_data:
            so.add_session_config_entry(
                "session.optimized_model_external_initializers_file_name", _WEIGHTS
            )
            so.add_session_config_entry(
                "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
            )
        # ONNX Runtime 1.32 looks for the external data of a Constant inside a subgraph in the
        # current directory, even when given the model's path: such models go inline (if they
        # fit). Others go by path, which keeps big weights out of Python's memory.
        readable = model.for_engine(
            inline="if_fits" if _subgraph_external_constant(model) else False
        )
        size = len(model.data)

        def build(proto: Any) -> Any:
            source = model.data if proto is model.proto else proto.SerializeToString()
            return _session(ort, source, so, device, options, "compile", size)

        fp16 = target.precision == "fp16"
        if fp16:
            from unirun.quantize import to_fp16  # only fp16 builds pay for the import

            converted = to_fp16(model, target.shapes, keep_io_types=not options.fp16_io)
            session = _session(ort, converted, so, device, options, "compile", size)
        elif isinstance(readable, Path):
            # External weights resolve relative to the file, so hand ONNX Runtime the path; the
            # fixed shapes are then only enforced by unirun's feed checks, not baked in.
            session = _session(ort, str(readable), so, device, options, "compile", size)
        else:
            session = build_with_fixed_shapes(
                readable, target.shapes, build, engine="ONNX Runtime", logger=log
            )
        inputs = session_specs(session.get_inputs(), model.inputs)
        outputs = session_specs(session.get_outputs(), model.outputs)
        del session
        if fp16 and not options.fp16_io:
            check_kept(model, inputs, outputs)
        extra: dict[str, Any] = {"providers": _providers(device, options)[0]}
        # ONNX Runtime computes in the graph's own types: an fp32 build is fp32 everywhere; an
        # fp16 build wraps ops it has no fp16 kernel for in Casts to fp32, so ask its graph.
        computed: Precision | None = "fp32" if target.precision == "fp32" else None
        if fp16:
            from unirun.quantize import compute_precision

            computed, extra["fp16_heavy_ops"] = compute_precision(
                _onnx().load(so.optimized_model_filepath, load_external_data=False)
            )
        return CompileResult(inputs, outputs, extra, precision=computed)

    # -- load ----------------------------------------------------------------------------------

    def load(self, request: LoadRequest) -> OrtExecutable:
        ort = _ort()
        compile_options = request.options
        options = _options(request.plugin_options)
        so = ort.SessionOptions()
        level = compile_options.optimization_level
        so.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, _LEVELS[3 if level is None else level]
        )
        if compile_options.threads is not None:
            so.intra_op_num_threads = compile_options.threads
        if options.inter_op_threads is not None:
            so.inter_op_num_threads = options.inter_op_threads
        if options.execution_mode is not None:
            so.execution_mode = getattr(ort.ExecutionMode, f"ORT_{options.execution_mode.upper()}")
        if options.allow_spinning is not None:
            so.add_session_config_entry(
                "session.intra_op.allow_spinning", "1" if options.allow_spinning else "0"
            )
        session = _session(
            ort, str(request.file(PAYLOAD)), so, request.device.device, options, "load"
        )
        device = request.device.device
        fallback = device.kind != "cpu" and options.allow_cpu_fallback
        return OrtExecutable(session, device, request.inputs, request.outputs, fallback=fallback)

    # -- optional methods ----------------------------------------------------------------------

    def map_error(self, exc: BaseException, stage: Stage) -> UnirunError | None:
        """ONNX Runtime's exceptions to unirun errors (status prefix and C++ frames removed)."""
        return map_error(exc, stage)

    def diagnose(self, device: Device | None) -> list[Finding]:
        """``unirun doctor -b onnxruntime``: the providers this build has and, for a CUDA
        device, what a CUDA run needs."""
        return diagnose(_ort(), device)

    def native_runner(
        self, model: bytes, device: Device
    ) -> Callable[[Mapping[str, Array]], Sequence[Array]]:
        """``InferenceSession`` with ONNX Runtime's defaults, bypassing unirun (node-suite
        baseline)."""
        ort = _ort()
        providers = ["CPUExecutionProvider"] if device.kind == "cpu" else [_CUDA]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            session = ort.InferenceSession(model, providers=providers)
        return lambda feeds: session.run(None, dict(feeds))


class OrtExecutable:
    """An ONNX Runtime session. ``InferenceSession.run`` is safe to call from many threads."""

    def __init__(
        self,
        session: Any,
        device: Device | None = None,
        inputs: Sequence[TensorSpec] = (),
        outputs: Sequence[TensorSpec] = (),
        *,
        fallback: bool = False,
    ) -> None:
        """``fallback``: ONNX Runtime's own provider fallback is wanted (``allow_cpu_fallback``
        on CUDA), so calls go through the public ``InferenceSession.run``."""
        self._session: Any = session
        self.device = device or Device("cpu")
        self.inputs = session_specs(session.get_inputs(), inputs)
        self.outputs = session_specs(session.get_outputs(), outputs)
        self.providers: list[str] = session.get_providers()
        specs = (*self.inputs, *self.outputs)
        #: Whether ``infer`` calls ONNX Runtime's compiled ``run`` directly (see ``_run``).
        self.direct = False
        self.infer: Infer
        if any(spec.kind is None and spec.dtype in NARROW for spec in specs):
            # Only models with types numpy's bridge cannot carry pay for the OrtValue bridge.
            self.infer = functools.partial(self._run_narrow, None)
        else:
            # The hot path. ONNX Runtime's exceptions go to the backend's map_error (the core).
            self.infer, self.direct = session_runner(session, keep_wrapper=fallback)

    def infer_device(
        self, feeds: Mapping[str, DeviceTensor], outputs: OutputPlace
    ) -> Sequence[DeviceTensor]:
        """Tensors in device memory in and out through I/O binding
        (:class:`unirun.backend.SupportsDeviceIO`; the core calls it on ``cuda`` only)."""
        session = self._session
        if session is None:
            _closed()
        return _iobinding.run(
            _ort(),
            session,
            feeds,
            on_device=outputs == "device",
            device=self.device,
            inputs=self.inputs,
            outputs=self.outputs,
        )

    def _run_narrow(self, names: None, feeds: Mapping[str, Array]) -> list[Array]:
        """``session.run`` for models with inputs or outputs numpy's bridge cannot carry."""
        session = self._session
        if session is None:
            _closed()
        ort = _ort()
        types = {spec.name: spec.dtype for spec in self.inputs}
        values = {name: to_ortvalue(ort, a, types[name]) for name, a in feeds.items()}
        results = session.run_with_ort_values(names, values)
        return [from_ortvalue(v, spec.dtype) for v, spec in zip(results, self.outputs, strict=True)]

    def close(self) -> None:
        # Running calls hold their own reference to the session; dropping ours is enough.
        self._session = None
        self.infer = _closed


def _subgraph_external_constant(model: OnnxModel) -> bool:
    subgraphs = itertools.islice(graphs(model.proto.graph), 1, None)
    return model.has_external_data and any(
        node.op_type == "Constant" and any(a.t.data_location == 1 for a in node.attribute)
        for graph in subgraphs
        for node in graph.node
    )


def _closed(*_: Any) -> Any:
    raise ModelClosedError("the ONNX Runtime session was closed")


def _options(options: Any) -> OnnxRuntimeOptions:
    assert isinstance(options, OnnxRuntimeOptions)  # validated by the core
    return options


def _providers(
    device: Device, options: OnnxRuntimeOptions
) -> tuple[list[str], list[dict[str, Any]]]:
    if device.kind == "cpu":
        return ["CPUExecutionProvider"], [{}]
    provider_options = {"device_id": device.ordinal, **options.provider_options}
    if options.allow_cpu_fallback:
        return [_CUDA, "CPUExecutionProvider"], [provider_options, {}]
    return [_CUDA], [provider_options]


def _session(
    ort: Any,
    source: bytes | str,
    so: Any,
    device: Device,
    options: OnnxRuntimeOptions,
    stage: str,
    size: int = 0,
) -> Any:
    """An InferenceSession; ``size`` (bytes of the model) sizes the free-space check made when
    writing the optimized model fails."""
    providers, provider_options = _providers(device, options)
    if device.kind != "cpu":
        if _CUDA not in ort.get_available_providers():
            raise DeviceError(
                f"device {device} needs ONNX Runtime's CUDA provider, which this onnxruntime "
                f"build lacks (it has {', '.join(ort.get_available_providers())}); install "
                "onnxruntime-gpu instead of onnxruntime"
            )
        if not options.allow_cpu_fallback:
            # ONNX Runtime otherwise moves unsupported nodes, or the whole model, to the CPU
            # and only warns: a request for CUDA must run on CUDA or fail.
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    for key, value in options.session_config.items():
        so.add_session_config_entry(key, value)
    so.log_severity_level = _log.install(ort)
    try:
        with warnings.catch_warnings(), _log.held():
            warnings.simplefilter("ignore")  # ORT warns instead of raising; we check below
            session = ort.InferenceSession(
                source, sess_options=so, providers=providers, provider_options=provider_options
            )
    except Exception as exc:
        written = so.optimized_model_filepath
        full = out_of_space(exc, Path(written).parent, size) if written else None
        raise (full or map_error(exc, stage)) from exc
    active = session.get_providers()
    if device.kind != "cpu" and (not active or active[0] != _CUDA):
        raise DeviceError(
            f"ONNX Runtime did not place the model on {device} (active "
            f"providers: {', '.join(active)})"
        )
    return session
