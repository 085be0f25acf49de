"""How the OpenVINO backend compiles: ONNX read by OpenVINO, reshaped to the declared bounds,
compiled with unirun's properties, and exported as a blob where it imports again; the IR is kept
as the source to recompile from."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unirun.backend import CompileRequest, CompileResult
from unirun.errors import CompileError, UnsupportedModelError
from unirun.source import all_nodes

from . import _devices, _engine, _ports
from ._dtypes import PRECISION_OF
from ._errors import map_error
from .options import OpenVINOOptions, properties, snippets_off

if TYPE_CHECKING:
    from unirun.options import ShapeRange
    from unirun.source import OnnxModel

__all__ = ["BLOB", "IR", "SNIPPETS_OFF", "compile_onnx", "engine_cache"]

log = logging.getLogger("unirun.openvino")

BLOB = "model.blob"
IR = "model.xml"
SNIPPETS_OFF: _engine.CpuSettings = (("SNIPPETS_MODE", "DISABLE"),)


def compile_onnx(
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
    expand = False
    if device == "CPU" and target.precision == "int8" and _weights_only(model):
        # The int8-weights form promises float activations; the CPU plugin would quantize
        # them per call (dynamic quantization), which loses outlier channels and fails
        # with oneDNN capped at AVX2. The user's own properties still win.
        props.setdefault("DYNAMIC_QUANTIZATION_GROUP_SIZE", 0)
        expand = options.int8_weights == "expand"
    cpu = SNIPPETS_OFF if device == "AUTO" and snippets_off(options, dynamic) else ()
    engine = _engine.core(cpu)
    # The IR is the recompile source (with the weights as the model has them).
    _engine.save_ir(ov_model, request.directory / IR, len(model.data))
    if expand:
        _engine.expand_weights(ov_model)
    cache = engine_cache(request.cache_dir, options, props, dict(cpu))
    compiled = _engine.compile_model(engine, ov_model, device, {**props, **cache})
    unwanted = _blob_unwanted(model, expand)
    if unwanted:
        log.info("not keeping OpenVINO's compiled blob: %s; loads compile the IR instead", unwanted)
    blob = None if unwanted else _engine.export(compiled, device)
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
            "expand_weights": expand,
        },
        precision=precision,
    )


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


def _blob_unwanted(model: OnnxModel, expand: bool) -> str | None:
    """Why the compiled blob must not be kept (so it is not even exported), or None."""
    unsafe = sorted({n.op_type for n in all_nodes(model.proto.graph)} & _BLOB_UNSAFE_OPS)
    if unsafe:
        return f"it computes {', '.join(unsafe)} wrongly after export/import"
    if expand:
        return "its int8 weights are expanded to float32, four times the IR's"
    return None


def _weights_only(model: OnnxModel) -> bool:
    ops = {node.op_type for node in model.proto.graph.node}
    return "DequantizeLinear" in ops and not ops & {"QuantizeLinear", "DynamicQuantizeLinear"}


def engine_cache(
    cache_dir: Path | None, options: OpenVINOOptions, props: dict[str, Any], cpu: dict[str, Any]
) -> dict[str, str]:
    """OpenVINO's CACHE_DIR, one directory per property set (OpenVINO's own cache key ignores
    some properties that change the compiled model), or nothing when caching is off."""
    if cache_dir is None or not options.engine_cache:
        return {}
    return {"CACHE_DIR": str(cache_dir / f"ov-{_engine.cache_key(props, cpu)}")}
