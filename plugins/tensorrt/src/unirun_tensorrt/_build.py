"""ONNX to a serialized TensorRT plan: parse, configure, add profiles, build. Engine-only: the
request and the result are plain values, so the contract glue in ``backend.py`` stays thin."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from unirun.errors import CompileError, OptionsError, UnsupportedModelError
from unirun.options import Precision
from unirun.tensor import Dim, TensorSpec

from . import _config, _engine, _lowp, _profiles
from ._dtypes import from_trt
from ._errors import ParserIssue, build_failure, parser_error
from ._timing import TimingCacheFile
from .options import TensorRTOptions

_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
# protobuf cannot serialize 2 GiB; larger converted models go through a file
_INLINE_LIMIT = 1 << 30


@dataclass(frozen=True)
class BuildRequest:
    proto: Any  #: the ONNX ModelProto (external weights not loaded)
    data: bytes  #: its serialized bytes
    path: Path | None  #: the model file, when external weights live next to it
    inputs: Sequence[TensorSpec]  #: the ONNX graph's inputs (symbolic dims named)
    precision: Precision
    options: TensorRTOptions
    profiles: Sequence[_profiles.Profile]
    timing_cache: TimingCacheFile | None = None


@dataclass
class BuildResult:
    plan: bytes
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    strongly_typed: bool
    converted: bool  #: the ONNX model was converted to the precision before parsing
    applied: _config.Applied = field(default_factory=_config.Applied)


def has_qdq(proto: Any) -> bool:
    from unirun.source import all_nodes

    return any(node.op_type in _QDQ for node in all_nodes(proto.graph))


def build(request: BuildRequest) -> BuildResult:
    trt = _engine.trt()
    logger = _engine.logger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in 10 and 11
    parser = trt.OnnxParser(network, logger)
    converted = _config.needs_conversion(trt, request.precision)
    _parse(parser, request, converted)
    inputs, outputs = _signature(network, request.inputs)
    config = builder.create_builder_config()
    applied = _config.configure(
        trt, config, request.precision, request.options, has_qdq=has_qdq(request.proto)
    )
    with _engine.capture.collect() as lines:
        for profile in request.profiles:
            trt_profile = builder.create_optimization_profile()
            for name, (lo, opt, hi) in profile.items():
                trt_profile.set_shape(name, lo, opt, hi)
            if config.add_optimization_profile(trt_profile) < 0:
                raise OptionsError(
                    f"TensorRT refused optimisation profile {_describe(profile)}: "
                    + ("; ".join(lines) or "no reason logged")
                )
    timing = request.timing_cache
    if timing is not None:
        cache = config.create_timing_cache(timing.read())
        config.set_timing_cache(cache, True)  # ignore_mismatch: a foreign cache is just unused
    with _engine.capture.collect() as lines:
        plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise build_failure(lines, "build the engine")
    if timing is not None:
        timing.update(lambda current: _merged(config, current))
    return BuildResult(
        bytes(memoryview(plan)), inputs, outputs, _config.strongly_typed(trt), converted, applied
    )


def _parse(parser: Any, request: BuildRequest, converted: bool) -> None:
    with _engine.capture.collect() as lines:
        if converted:
            ok = _parse_converted(parser, request)
        elif request.path is not None:
            # External weights resolve relative to the model file.
            ok = parser.parse(request.data, str(request.path))
        else:
            ok = parser.parse(request.data)
    if not ok:
        issues = [ParserIssue.read(parser.get_error(i)) for i in range(parser.num_errors)]
        if not issues:
            raise CompileError(
                "TensorRT's ONNX parser failed: " + ("; ".join(lines) or "no reason given")
            )
        raise parser_error(issues, request.proto)


def _parse_converted(parser: Any, request: BuildRequest) -> bool:
    precision = cast(Literal["fp16", "bf16"], request.precision)  # fp32 is never converted
    base = request.path.parent if request.path is not None else None
    low = _lowp.convert(request.proto, precision, base)
    if low.ByteSize() < _INLINE_LIMIT:
        return bool(parser.parse(low.SerializeToString()))
    import onnx

    with tempfile.TemporaryDirectory(prefix="unirun-trt-") as scratch:
        path = Path(scratch) / "model.onnx"
        onnx.save(low, str(path), save_as_external_data=True, location="model.weights")
        return bool(parser.parse_from_file(str(path)))


def _signature(
    network: Any, declared: Sequence[TensorSpec]
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    symbols = {spec.name: spec.shape for spec in declared}
    inputs = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.is_shape_tensor:
            raise UnsupportedModelError(
                f"input {tensor.name!r} is a shape tensor for TensorRT (its values set other "
                "tensors' shapes); unirun's TensorRT backend cannot feed shape tensors. Fold it "
                "into the model or run it with backend='onnxruntime'",
                [(tensor.name, "shape tensor input")],
            )
        inputs.append(_spec(tensor, symbols.get(tensor.name)))
    outputs = [_spec(network.get_output(i), None) for i in range(network.num_outputs)]
    return inputs, outputs


def _spec(tensor: Any, declared: tuple[Dim, ...] | None) -> TensorSpec:
    try:
        dtype = from_trt(tensor.dtype)
    except ValueError as exc:
        raise UnsupportedModelError(f"tensor {tensor.name!r}: {exc}") from None
    dims: list[Dim] = []
    shape = [int(d) for d in tensor.shape]
    for axis, size in enumerate(shape):
        if size >= 0:
            dims.append(size)
        elif (
            declared is not None and len(declared) == len(shape) and isinstance(declared[axis], str)
        ):
            dims.append(declared[axis])
        else:
            dims.append("?")
    return TensorSpec(tensor.name, dtype, tuple(dims))


def _merged(config: Any, current: bytes) -> bytes:
    """This build's timing cache combined with what another build wrote meanwhile."""
    cache = config.get_timing_cache()
    if current:
        cache.combine(config.create_timing_cache(current), True)
    return bytes(memoryview(cache.serialize()))


def _describe(profile: _profiles.Profile) -> str:
    return ", ".join(f"{n}: min {b[0]} opt {b[1]} max {b[2]}" for n, b in profile.items())
