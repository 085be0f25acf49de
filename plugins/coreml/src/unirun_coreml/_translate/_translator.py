"""ONNX ModelProto → MIL Program → Core ML ML Program (``ct.models.MLModel``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from coremltools.converters.mil.mil import Builder as mb
from coremltools.converters.mil.mil import Function, Program
from coremltools.converters.mil.mil.types.symbolic import any_variadic, is_symbolic
from onnx import helper, numpy_helper

from .._coremltools import coremltools, quiet
from .._errors import InputShapeError, TranslationError, UnsupportedOpsError
from .._iomap import METADATA_KEY, TensorMapping, dumps
from ._context import Context
from ._fold import fold
from ._inputs import InputPlan, ShapeSpec, mil_dtype_for, mil_type, plan_inputs, safe_name
from ._known import Known, from_dims, propagate, size_of
from ._mil import Value, cast, is_bool, is_const, shape, to_mil_array
from ._node import Node
from ._quantized import remember
from ._registry import describe, find_unsupported, lookup, opsets_of
from ._shapes import Dims, infer_shapes

_PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class TranslationResult:
    """A translated model: the ML Program and how its inputs/outputs map to the ONNX ones."""

    model: Any  # coremltools.models.MLModel (ML Program), not loaded
    inputs: tuple[TensorMapping, ...]
    outputs: tuple[TensorMapping, ...]
    precision: str
    deployment_target: str
    #: Weights kept int8 in the program (its constexpr dequantize ops), from DequantizeLinear.
    int8_weights: int = 0

    def save(self, path: str | Path) -> Path:
        return save(self, path)


def save(result: TranslationResult, path: str | Path) -> Path:
    """Write the ``.mlpackage`` (with the ONNX ↔ Core ML name map in its metadata)."""
    target = Path(path)
    if target.suffix != ".mlpackage":
        raise ValueError(f"an ML Program is saved as a .mlpackage directory, got {str(path)!r}")
    with quiet():
        result.model.save(str(target))
    return target


def _target(value: Any) -> Any:
    ct = coremltools()
    target = getattr(ct.target, value, None) if isinstance(value, str) else value
    if not isinstance(target, ct.target):
        names = ", ".join(t.name for t in ct.target)
        raise ValueError(f"unknown deployment target {value!r}; use one of {names}")
    if target.value < ct.target.iOS15.value:
        raise ValueError(f"ML Programs need iOS15 / macOS12 or newer, got {target.name}")
    return target


def translate(
    model: onnx.ModelProto,
    *,
    shapes: Mapping[str, ShapeSpec] | None = None,
    precision: str = "fp32",
    constant_inputs: Mapping[str, np.ndarray] | None = None,
    deployment_target: Any = "iOS17",
) -> TranslationResult:
    """Translate an ONNX model to a Core ML ML Program.

    ``shapes`` gives each dynamic input a fixed shape, a ``(min, opt, max)`` tuple of shapes
    (→ ``ct.RangeDim``) or a list of shapes (→ ``ct.EnumeratedShapes``). ``constant_inputs``
    bakes graph inputs in as constants. Raises UnsupportedOpsError listing every node that
    cannot be lowered before doing any work, InputShapeError for missing or bad shapes, and
    TranslationError when a node or Core ML's converter fails.
    """
    ct = coremltools()
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"translate() takes an onnx.ModelProto, got {type(model).__name__}")
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
    constants = {k: np.asarray(v) for k, v in (constant_inputs or {}).items()}
    graph_inputs = {i.name for i in model.graph.input}
    stray = sorted(set(constants) - graph_inputs)
    if stray:
        raise InputShapeError(f"constant_inputs names {stray}, which are not inputs of the model")
    missing, reasons = find_unsupported(model, tuple(constants))
    if missing:
        raise UnsupportedOpsError(
            describe(missing, reasons), [(m.node_name, m.op_type) for m in missing], reasons
        )
    target = _target(deployment_target)
    initializers = {init.name for init in model.graph.initializer}
    plans = plan_inputs(model.graph, shapes, initializers | set(constants))
    program, outputs = _build_program(model, plans, constants, target)
    try:
        with quiet():
            mlmodel = ct.convert(
                program,
                convert_to="mlprogram",
                minimum_deployment_target=target,
                compute_precision=(
                    ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
                ),
                inputs=[_input_type(ct, p) for p in plans],
                skip_model_load=True,
            )
    except Exception as exc:
        raise TranslationError(
            f"coremltools could not convert the translated program: {exc}"
        ) from exc
    spec = mlmodel.get_spec()
    input_names = [i.name for i in spec.description.input]
    output_names = [o.name for o in spec.description.output]
    result = TranslationResult(
        model=mlmodel,
        inputs=tuple(
            TensorMapping(p.onnx_name, cm, p.onnx_dtype.name, p.mil_dtype.name, p.onnx_shape)
            for p, cm in zip(plans, input_names, strict=True)
        ),
        outputs=tuple(
            TensorMapping(o.onnx_name, cm, o.onnx_dtype, o.coreml_dtype, o.shape)
            for o, cm in zip(outputs, output_names, strict=True)
        ),
        precision=precision,
        deployment_target=target.name,
        int8_weights=sum(op.type.startswith("constexpr_") for op in _operations(spec)),
    )
    mlmodel.user_defined_metadata[METADATA_KEY] = dumps(result.inputs, result.outputs)
    return result


def _operations(spec: Any) -> list[Any]:
    main = spec.mlProgram.functions["main"]
    return list(main.block_specializations[main.opset].operations)


def _input_type(ct: Any, plan: InputPlan) -> Any:
    dtype = plan.mil_dtype.type
    if plan.enumerated is not None:
        shape = ct.EnumeratedShapes(
            shapes=[list(s) for s in plan.enumerated], default=list(plan.enumerated[0])
        )
    elif plan.ranges is not None:
        shape = ct.Shape(
            [
                lo if lo == hi else ct.RangeDim(lower_bound=lo, upper_bound=hi, default=opt)
                for lo, opt, hi in plan.ranges
            ]
        )
    else:
        shape = tuple(int(d) for d in plan.symbolic_shape)
    return ct.TensorType(name=plan.mil_name, shape=shape, dtype=dtype)


def _initializer(tensor: onnx.TensorProto) -> np.ndarray:
    return np.asarray(numpy_helper.to_array(tensor))


def _build_program(
    model: onnx.ModelProto,
    plans: list[InputPlan],
    constants: dict[str, np.ndarray],
    target: Any,
    refusals: dict[str, str] | None = None,
    unknown: frozenset[str] = frozenset(),
) -> tuple[Any, list[TensorMapping]]:
    """Lower every node into a MIL program.

    With ``refusals=None`` the first node that cannot be lowered raises (translate). With a
    dict (the op check), each failing node's reason is recorded and the nodes that depend on
    it, on a node already in ``refusals`` or on an ``unknown`` input are skipped; no program
    is returned.
    """
    graph = model.graph
    opsets = opsets_of(model)
    ctx = Context(target, infer_shapes(model, plans, constants))
    for init in graph.initializer:
        ctx.env[init.name] = _initializer(init)
    ctx.env.update(constants)
    placeholders = {
        p.mil_name: mb.placeholder(shape=p.symbolic_shape, dtype=mil_type(p.mil_dtype))
        for p in plans
    }
    with Function(placeholders, opset_version=target) as function:
        for plan in plans:
            value = function.inputs[plan.mil_name]
            if plan.onnx_shape == ():  # Core ML has no scalar inputs: fed as shape (1,)
                value = mb.squeeze(x=value)
            ctx.env[plan.onnx_name] = value
        if refusals is not None:
            _check_nodes(ctx, graph, opsets, refusals, set(unknown))
            return None, []
        for index, proto in enumerate(graph.node):
            _lower(ctx, Node.wrap(proto, index, opsets))
        outputs, variables = _outputs(ctx, graph, {p.mil_name for p in plans})
        function.set_outputs(variables)
    program = Program()
    program.add_function("main", function)
    return program, outputs


def _check_nodes(
    ctx: Context,
    graph: onnx.GraphProto,
    opsets: dict[str, int],
    refusals: dict[str, str],
    blocked: set[str],
) -> None:
    for index, proto in enumerate(graph.node):
        node = Node.wrap(proto, index, opsets)
        if node.name in refusals or any(name in blocked for name in node.inputs if name):
            blocked.update(node.outputs)
            continue
        try:
            _lower(ctx, node)
        except TranslationError as exc:
            refusals[node.name] = exc.reason
            blocked.update(node.outputs)


def _lower(ctx: Context, node: Node) -> None:
    inputs = ctx.inputs(node)
    if all(v is None or is_const(v) for v in inputs):
        folded = fold(node, inputs)
        if folded is not None:
            _bind(ctx, node, folded)
            remember(ctx, node, inputs)  # an int8 weight stays int8 where a lowering asks
            return
    known = _known_output(ctx, node, inputs)
    if known is not None:
        constant = known.constant
        if constant is not None:  # only the shape of a run-time value was needed
            _bind(ctx, node, [constant])
            return
        ctx.known[node.outputs[0]] = known
    entry = lookup(node.domain, node.op_type)
    if entry is None:
        raise node.error("no lowering is registered for this op")
    try:
        result = entry.fn(ctx, node)
        values = list(result) if isinstance(result, (list, tuple)) else [result]
        values = [
            None if v is None or not name else _conform(ctx, node, name, v)
            for name, v in zip(node.outputs, values, strict=False)
        ]
    except TranslationError:
        raise
    except Exception as exc:
        raise node.error(f"lowering failed: {type(exc).__name__}: {exc}") from exc
    _bind(ctx, node, values)


def _known_output(ctx: Context, node: Node, inputs: list[Value | None]) -> Known | None:
    if len(node.outputs) != 1 or node.domain:
        return None
    if node.op_type in ("Shape", "Size"):
        x = inputs[0]
        if x is None or is_const(x) or any_variadic(shape(x)):
            return None
        dims = shape(x)
        for axis, d in enumerate(dims):
            if is_symbolic(d) and d not in ctx.sources:
                ctx.sources[d] = (x, axis)
        if node.op_type == "Size":
            return size_of(dims)
        start, end = int(node.attr("start", 0)), node.attr("end")
        return from_dims(dims[start : None if end is None else int(end)])
    return propagate(node, [ctx.known_input(node, i) for i in range(len(node.inputs))])


def _bind(ctx: Context, node: Node, result: Any) -> None:
    values = list(result) if isinstance(result, (list, tuple)) else [result]
    for name, value in zip(node.outputs, values, strict=False):
        if name and value is not None:
            ctx.env[name] = value


_MAX_RANK = 5  # Core ML tensors


def _conform(ctx: Context, node: Node, name: str, value: Value) -> Value:
    """Hold a lowered result to the rank ONNX infers for it (ONNX's shape inference knows the
    rank of a reshape to a run-time target, and ranks decide axes, perms and broadcasting of
    every later lowering) and to Core ML's rank limit, so a wrong rank is reported at the node
    that makes it. (Dims are not compared: where ONNX's inference and ONNX Runtime differ, as
    for some ceil-mode pools, the lowering follows ONNX Runtime.)"""
    if is_const(value):
        return value
    expected = ctx.expected(name)
    dims = shape(value)
    if any_variadic(dims):
        if expected is None or not all(isinstance(d, int) and d > 0 for d in expected):
            raise node.error(
                f"the rank of output {name!r} is only known at run time; Core ML needs it "
                "at conversion time"
            )
        return mb.reshape(x=value, shape=np.array(expected, np.int32))
    if expected is not None and len(expected) != len(dims):
        raise node.error(
            f"output {name!r} has rank {len(dims)} in the Core ML program where ONNX infers "
            f"rank {len(expected)} {_format(expected)}"
        )
    if len(dims) > _MAX_RANK:
        raise node.error(
            f"output {name!r} has rank {len(dims)}; Core ML tensors have at most {_MAX_RANK} "
            "dimensions"
        )
    return value


def _format(dims: Dims) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def _outputs(
    ctx: Context, graph: onnx.GraphProto, taken: set[str]
) -> tuple[list[TensorMapping], list[Any]]:
    mappings, variables = [], []
    seen: set[int] = set()
    for out in graph.output:
        if out.name not in ctx.env:
            raise TranslationError(f"graph output {out.name!r} is produced by no node")
        value: Value = ctx.env[out.name]
        elem_type = out.type.tensor_type.elem_type
        onnx_dtype = (
            np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
            if elem_type
            else (value.dtype if is_const(value) else np.dtype(np.float32))
        )
        if is_const(value):
            # A constant output still needs an op: Core ML outputs are op results.
            try:
                array = to_mil_array(value)
            except TypeError as exc:  # int4, float4 … computed from constants
                raise TranslationError(f"graph output {out.name!r}: {exc}") from None
            value = mb.identity(x=mb.const(val=array))
        elif value.op is None or id(value) in seen:
            value = mb.identity(x=value)
        if is_bool(value):
            value = cast(value, np.int32)  # Core ML has no bool outputs
        seen.add(id(value))
        value.set_name(safe_name(out.name, taken))
        declared = out.type.tensor_type
        shape = (
            tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in declared.shape.dim
            )
            if declared.HasField("shape")
            else None
        )
        coreml_dtype = "int32" if onnx_dtype.kind == "b" else mil_dtype_for(onnx_dtype).name
        mappings.append(TensorMapping(out.name, value.name, onnx_dtype.name, coreml_dtype, shape))
        variables.append(value)
    return mappings, variables
