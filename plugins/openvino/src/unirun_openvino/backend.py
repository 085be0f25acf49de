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
from unirun.source import all_nodes, describe_shapes

from . import _devices, _engine, _ports
from ._dtypes import FROM_OV, PRECISION_HINT, PRECISION_OF
from ._errors import map_error, message
from ._executable import OpenVINOExecutable
from .options import OWN, OpenVINOOptions, properties, snippets_off

if TYPE_CHECKING:
    from unirun.options import ShapeRange
    from unirun.source import OnnxModel

log = logging.getLogger("unirun.openvino")
Array = np.ndarray[Any, Any]

BLOB = "model.blob"
IR = "model.xml"
_SNIPPETS_OFF: _engine.CpuSettings = (("SNIPPETS_MODE", "DISABLE"),)


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
            return _compile(model, request, options, device, shapes)
        except (CompileError, OptionsError, UnsupportedModelError, InvalidModelError) as exc:
            if not shapes:
                raise
            # Declaring shapes must never break a model OpenVINO runs without them: build it
            # with its own dimensions (the core still checks every feed against `shapes`).
            built = _compile(model, request, options, device, {})
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
            # The same per-property-set directory compile used, so a rebuild is cached too.
            cache = _engine_cache(request.cache_dir, _options(request.plugin_options), props, cpu)
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


def _compile(
    model: OnnxModel,
    request: CompileRequest,
    options: OpenVINOOptions,
    device: str,
    shapes: Mapping[str, ShapeRange],
) -> CompileResult:
    target = request.options
    ov_model = _engine.read(model)
    onnx_inputs, onnx_outputs = model.inputs, model.outputs
    # Binding also refuses what unirun cannot exchange (strings) before compiling.
    binding = _ports.bind(ov_model, onnx_inputs, onnx_outputs, CompileError)
    if shapes:
        bounds = _ports.bounded_shapes(_engine.ov(), ov_model, binding, shapes)
        try:
            ov_model.reshape(bounds)
        except RuntimeError as exc:
            raise map_error(exc, "reshape") from exc
    dynamic = any(port.get_partial_shape().is_dynamic for port in ov_model.inputs)
    props = properties(target, options, device, dynamic)
    if device == "CPU" and target.precision == "int8" and _weights_only(model):
        # The int8-weights form promises float activations; the CPU plugin would quantize
        # them per call (dynamic quantization), which loses outlier channels and fails
        # with oneDNN capped at AVX2. The user's own properties still win.
        props.setdefault("DYNAMIC_QUANTIZATION_GROUP_SIZE", 0)
    cpu = _SNIPPETS_OFF if device == "AUTO" and snippets_off(options, dynamic) else ()
    engine = _engine.core(cpu)
    # The IR is the recompile source.
    _engine.save_ir(ov_model, request.directory / IR, len(model.data))
    cache = _engine_cache(request.cache_dir, options, props, dict(cpu))
    compiled = _engine.compile_model(engine, ov_model, device, {**props, **cache})
    blob = _engine.export(compiled, device)
    if (
        blob is not None
        and _engine.loaded_from_cache(compiled)
        and not _engine.imports(engine, blob, device, props)
    ):
        # OpenVINO 2026.4 exports a blob it cannot import again from a model it loaded from
        # CACHE_DIR (the family of openvinotoolkit/openvino#33054). Build it afresh.
        log.info("the blob exported from OpenVINO's cache does not import; compiling anew")
        compiled = _engine.compile_model(engine, ov_model, device, props)
        blob = _engine.export(compiled, device)
    unsafe = sorted({n.op_type for n in all_nodes(model.proto.graph)} & _BLOB_UNSAFE_OPS)
    if blob is not None and unsafe:
        log.info(
            "not keeping OpenVINO's compiled blob: it computes %s wrongly after "
            "export/import; loads compile the IR instead",
            ", ".join(unsafe),
        )
        blob = None
    if blob is not None:
        _engine.write(request.directory / BLOB, blob)
    # What the device grants, which is not always what was asked: fp16 runs in fp32 or bf16 on
    # CPUs without fp16 arithmetic. The core warns about (or refuses) a substitution.
    float_request = target.precision in PRECISION_OF.values()
    precision = _engine.computed_precision(compiled) if float_request else None
    if precision is None and float_request:
        log.info(
            "OpenVINO does not report the precision %s computes in; the artifact records the "
            "requested %s",
            device,
            target.precision,
        )
    binding = _ports.bind(compiled, onnx_inputs, onnx_outputs, CompileError)
    _check_dim_limit(binding.outputs)
    return CompileResult(
        binding.inputs,
        binding.outputs,
        {
            "ov_device": device,
            "device_name": "" if device == "AUTO" else _devices.full_name(engine, device),
            "blob": BLOB if blob is not None else None,
            "ir": IR,
            "properties": props,
            "cpu_core_properties": dict(cpu),
            "inference_precision": _engine.inference_type(compiled),
            "execution_devices": _engine.execution_devices(compiled),
        },
        precision=precision,
    )


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


# Operators OpenVINO 2026.4 computes differently once a compiled model went through
# export_model/import_model (the ONNX node tests test_rotary_embedding* fail only that way).
_BLOB_UNSAFE_OPS = frozenset({"RotaryEmbedding"})


#: OpenVINO's CPU plugin clamps a dimension it cannot represent to this (an Expand to 2**31
#: silently yields shape (2147483647,)); such a model must be refused, not run wrong.
_DIM_LIMIT = 2**31 - 1


def _check_dim_limit(outputs: Sequence[Any]) -> None:
    for spec in outputs:
        if spec.shape is not None and any(
            isinstance(d, int) and d >= _DIM_LIMIT for d in spec.shape
        ):
            raise UnsupportedModelError(
                f"output {spec.name!r} would have a dimension of 2**31 or more ({spec}), past "
                "OpenVINO's limit (it clamps such sizes to 2**31-1 and computes a wrong shape); "
                "run this model on ONNX Runtime"
            )


def _options(options: Any) -> OpenVINOOptions:
    assert isinstance(options, OpenVINOOptions)  # validated by the core
    return options


def _weights_only(model: OnnxModel) -> bool:
    ops = {node.op_type for node in model.proto.graph.node}
    return "DequantizeLinear" in ops and not ops & {"QuantizeLinear", "DynamicQuantizeLinear"}


def _engine_cache(
    cache_dir: Path | None, options: OpenVINOOptions, props: dict[str, Any], cpu: dict[str, Any]
) -> dict[str, str]:
    """OpenVINO's CACHE_DIR, one directory per property set (OpenVINO's own cache key ignores
    some properties that change the compiled model), or nothing when caching is off."""
    if cache_dir is None or not options.engine_cache:
        return {}
    return {"CACHE_DIR": str(cache_dir / f"ov-{_engine.cache_key(props, cpu)}")}


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
