"""The OpenVINO backend: ONNX read and compiled by OpenVINO for CPU, Intel GPU, NPU or AUTO.

An artifact holds the compiled model exported by OpenVINO (``model.blob``: fast to import, but
bound to the OpenVINO version and the hardware that built it) and the OpenVINO IR it was
compiled from (``model.xml``/``model.bin``, full-precision weights). ``load`` imports the blob
and, when the blob cannot be used here, recompiles the IR and logs why.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
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
    Probe,
    Stage,
    ThreadSafety,
)
from unirun.device import Device
from unirun.errors import (
    ArtifactError,
    CompileError,
    InvalidModelError,
    OptionsError,
    UnirunError,
    UnsupportedModelError,
)
from unirun.source import describe_shapes

from . import _devices, _engine, _ports
from ._compile import IR, compile_onnx, engine_cache
from ._dtypes import FROM_OV, PRECISION_HINT, PRECISION_OF
from ._errors import map_error, message
from ._executable import OpenVINOExecutable
from .options import OWN, OpenVINOOptions

if TYPE_CHECKING:
    from unirun.options import ShapeRange
    from unirun.source import OnnxModel

log = logging.getLogger("unirun.openvino")
Array = np.ndarray[Any, Any]


class OpenVINOBackend:
    """Intel's inference engine: CPU (x86 and ARM), Intel GPUs and NPUs."""

    name = "openvino"
    api_version = API_VERSION
    options_model = OpenVINOOptions
    capabilities = Capabilities(
        device_kinds=("cpu", "gpu", "npu", "auto"),
        precisions=("fp32", "fp16", "bf16", "int8"),
        # OpenVINO folds Q/DQ into its int8 primitives; weights-only (int8 weights, float math)
        # is the fallback where the static form is not faster (transformers without VNNI).
        int8_forms={
            "cpu": (Int8Form.STATIC, Int8Form.WEIGHTS),
            "auto": (Int8Form.STATIC, Int8Form.WEIGHTS),
        },
        dtypes=tuple(FROM_OV.values()),
        dynamic_shapes=DynamicShapes.FREE,
        thread_safety=ThreadSafety.CONTEXTS,
        artifact_format="openvino-blob",
        # Not pinned: load() recompiles the IR when the blob is from another OpenVINO.
        pins_runtime_version=False,
        # ONNX Runtime stays the CPU default; OpenVINO is the engine for Intel GPUs and NPUs.
        priority={"cpu": 40, "gpu": 55, "npu": 60},
    )

    def probe(self) -> Probe:
        try:
            version = str(_engine.ov().__version__)
            _engine.core()
        except Exception as exc:  # ImportError, or a native library that fails to load
            return Probe(
                False, f"openvino cannot be imported ({exc}); install it: pip install openvino"
            )
        return Probe(True, "", version)

    def devices(self) -> list[DeviceInfo]:
        return _devices.describe(_engine.core())

    def unsupported_ops(
        self, model: OnnxModel, device: Device, shapes: Mapping[str, ShapeRange]
    ) -> list[tuple[str, str]] | None:
        """Nodes OpenVINO has no conversion for (named exactly), else what the device plugin
        reports it cannot run (``query_model``); None where that cannot be told: another
        failure while reading, AUTO, a device that is absent, or nodes OpenVINO renamed."""
        try:
            ov_model = _engine.read(model)
        except UnsupportedModelError as exc:
            return exc.ops or None
        except UnirunError:
            return None
        engine = _engine.core()
        try:
            if device.kind == "auto":
                return None
            supported = engine.query_model(ov_model, _devices.ov_name(engine, device))
        except (UnirunError, RuntimeError):
            return None
        nodes = {node.name: node.op_type for node in model.proto.graph.node if node.name}
        missing = [op.get_friendly_name() for op in ov_model.get_ops()]
        missing = [name for name in missing if name not in supported]
        if all(name in nodes for name in missing):
            return [(name, nodes[name]) for name in missing]
        return None

    # -- compile -------------------------------------------------------------------------------

    def compile(self, model: OnnxModel, request: CompileRequest) -> CompileResult:
        options = _options(request.plugin_options)
        device = _devices.ov_name(_engine.core(), request.device.device)
        shapes = request.options.shapes
        try:
            return compile_onnx(model, request, options, device, shapes)
        except (CompileError, OptionsError, UnsupportedModelError, InvalidModelError) as exc:
            if not shapes:
                raise
            # Declaring shapes must never break a model OpenVINO runs without them: build it
            # with its own dimensions (the core still checks every feed against `shapes`).
            built = compile_onnx(model, request, options, device, {})
            log.warning(
                "OpenVINO cannot build the model with the declared input shapes %s (%s); built "
                "it with the graph's own dimensions instead: unirun checks that every input "
                "has the declared shape",
                describe_shapes(shapes),
                exc,
            )
            return built

    def diagnose(self, device: Device | None) -> list[Finding]:
        """``unirun doctor -b openvino``: the devices OpenVINO sees and what each computes in;
        for a GPU or NPU that is absent, the driver it needs."""
        core = _engine.core()
        found = []
        for dev, name in _devices.available(core).items():
            try:
                caps = ", ".join(core.get_property(name, "OPTIMIZATION_CAPABILITIES"))
            except RuntimeError:
                caps = "capabilities unknown"
            found.append(Finding(f"OpenVINO {name}", None, f"{dev}: {caps}"))
        if device is not None and device.kind in ("gpu", "npu"):
            try:
                _devices.ov_name(core, device)
                found.append(Finding(f"OpenVINO {device}", True, "present"))
            except UnirunError as exc:
                driver = "Intel's GPU compute runtime" if device.kind == "gpu" else "the NPU driver"
                found.append(Finding(f"OpenVINO {device}", False, str(exc), f"install {driver}"))
        return found

    def native_runner(
        self, model: bytes, device: Device
    ) -> Callable[[Mapping[str, Array]], Sequence[Array]]:
        """``Core.read_model``/``compile_model`` with exact fp32 arithmetic, bypassing unirun
        (node-suite baseline); feeds go by name to the ports OpenVINO kept."""
        import onnx

        core = _engine.ov().Core()
        compiled = core.compile_model(
            core.read_model(io.BytesIO(model)),
            _devices.ov_name(core, device),
            {"INFERENCE_PRECISION_HINT": "f32"},
        )
        ports = {n for port in compiled.inputs for n in port.get_names()}
        outputs = [compiled.output(v.name) for v in onnx.ModelProto.FromString(model).graph.output]

        def run(feeds: Mapping[str, Array]) -> Sequence[Array]:
            result = compiled.create_infer_request().infer(
                {name: value for name, value in feeds.items() if name in ports}
            )
            return [result[port] for port in outputs]

        return run

    def map_error(self, exc: BaseException, stage: Stage) -> UnirunError | None:
        """Whatever OpenVINO raised outside the plugin's own mapping (which names nodes and
        inputs where it knows them), mapped by stage."""
        return map_error(exc, stage)

    # -- load ----------------------------------------------------------------------------------

    def load(self, request: LoadRequest) -> OpenVINOExecutable:
        extra = request.extra
        ov_device = _devices.ov_name(_engine.core(), request.device.device)
        props, cpu = _trusted_properties(request)
        engine = _engine.core(tuple(sorted(cpu.items())))
        compiled, reason = None, _import_obstacle(request, engine, ov_device)
        if reason is None:
            try:
                blob = request.file(str(extra["blob"])).read_bytes()
                compiled = engine.import_model(blob, ov_device, props)
            except RuntimeError as exc:
                reason = f"OpenVINO cannot import the artifact's compiled blob ({message(exc)})"
        if compiled is None:
            if reason:
                log.warning("%s; recompiling the artifact's OpenVINO IR for %s", reason, ov_device)
            elif ov_device == "AUTO":
                log.info(
                    "the artifact was compiled for OpenVINO AUTO, which cannot export a compiled "
                    "model: loading it compiles its IR (OpenVINO's own cache keeps that short); "
                    "compile for a concrete device (e.g. device='cpu') for an artifact that "
                    "loads without compiling"
                )
            try:
                ov_model = engine.read_model(str(request.file(str(extra.get("ir", IR)))))
            except RuntimeError as exc:
                raise ArtifactError(
                    f"the artifact's OpenVINO IR cannot be read: {message(exc)}", field="files"
                ) from exc
            if extra.get("expand_weights") is True:
                _engine.expand_weights(ov_model)
            # The same per-property-set directory compile used, so a rebuild is cached too.
            cache = engine_cache(request.cache_dir, _options(request.plugin_options), props, cpu)
            compiled = _engine.compile_model(engine, ov_model, ov_device, {**props, **cache})
        binding = _ports.bind(compiled, request.inputs, request.outputs, ArtifactError)
        executable = OpenVINOExecutable(
            compiled, _engine.ov().Tensor, binding, "blob" if reason is None else "ir"
        )
        if ov_device == "AUTO":  # what AUTO chose: Model.device_label shows "auto → CPU"
            executable.engine_device = ", ".join(_engine.execution_devices(compiled)) or None
        built = request.precision
        floats = request.options.precision in PRECISION_OF.values()
        if floats and executable.precision is not None and executable.precision != built:
            log.warning(
                "the artifact was built to compute in %s, but OpenVINO computes it in %s on "
                "%s here (the device lacks %s support)",
                built,
                executable.precision,
                ov_device,
                built,
            )
        return executable


def _trusted_properties(request: LoadRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """The properties an artifact's manifest asks OpenVINO for, refused (``ArtifactError``)
    unless they are the ones unirun itself sets: a manifest is data anyone can edit, and
    OpenVINO properties can write files (CACHE_DIR) or change the outputs."""
    extra = request.extra
    precision = request.options.precision
    props, cpu = extra.get("properties"), extra.get("cpu_core_properties", {})
    if not isinstance(props, dict) or not isinstance(cpu, dict):
        raise ArtifactError(
            "the artifact's manifest lacks the OpenVINO properties it was compiled with; "
            "recompile it with this plugin",
            field="extra",
        )
    refused = sorted(set(props) - OWN) + sorted(f"CPU {k}" for k in set(cpu) - {"SNIPPETS_MODE"})
    hint = props.get("INFERENCE_PRECISION_HINT")
    if hint != PRECISION_HINT[precision]:
        refused.append(
            f"INFERENCE_PRECISION_HINT={hint!r} (the artifact's precision is {precision})"
        )
    if refused:
        raise ArtifactError(
            f"the artifact's manifest asks OpenVINO for {', '.join(refused)}, which unirun does "
            "not set from an artifact (only properties that tune speed, and the precision hint "
            "of its precision); recompile the model instead of editing the manifest",
            field="extra",
        )
    return dict(props), dict(cpu)


def _options(options: Any) -> OpenVINOOptions:
    assert isinstance(options, OpenVINOOptions)  # validated by the core
    return options


def _import_obstacle(request: LoadRequest, engine: Any, ov_device: str) -> str | None:
    """Why the blob is not worth trying here, or None to import it. An artifact without a blob
    (AUTO cannot export) gives "": load compiles its IR without a warning."""
    extra = request.extra
    if not extra.get("blob"):
        return ""
    current = str(_engine.ov().__version__)
    if request.built_with != current:
        return (
            f"the compiled blob comes from OpenVINO {request.built_with}, but "
            f"{current} is installed"
        )
    built_for = str(extra.get("device_name") or "")
    here = _devices.full_name(engine, ov_device)
    if built_for and built_for != here:
        return f"the compiled blob was built for {built_for!r}, but {ov_device} here is {here!r}"
    return None
