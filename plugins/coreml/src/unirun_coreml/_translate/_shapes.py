"""What ONNX itself infers about every value's shape, for the input shapes being translated.

ONNX's shape inference with data propagation follows shape arithmetic (``Shape → Gather →
Concat → Reshape``), so it knows the rank of a reshape whose target is computed at run time.
The translator holds every lowered result to that rank, so a lowering that gets a rank wrong
is reported at its own node rather than where a later op trips over it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._inputs import InputPlan

_log = logging.getLogger("unirun_coreml")

Dim = int | str | None  # a static size, a named symbolic size, or unknown
Dims = tuple[Dim, ...]

# Data propagation only reads small integer tensors (shape vectors, axes, indices); bigger
# initializers enter as typed inputs, so inference does not copy the weights.
_KEEP_ELEMENTS = 64


def infer_shapes(
    model: onnx.ModelProto,
    plans: Sequence[InputPlan],
    constants: Mapping[str, np.ndarray],
) -> dict[str, Dims]:
    """Value name → dims ONNX infers (with data propagation); empty if inference fails."""
    try:
        inferred = onnx.shape_inference.infer_shapes(
            _probe(model, plans, constants), data_prop=True
        )
    except Exception as exc:  # a model ONNX cannot infer still translates, unchecked
        _log.debug("ONNX shape inference failed; results are not cross-checked: %s", exc)
        return {}
    shapes: dict[str, Dims] = {}
    for info in (*inferred.graph.value_info, *inferred.graph.output):
        tensor = info.type.tensor_type
        if info.type.HasField("tensor_type") and tensor.HasField("shape"):
            shapes[info.name] = tuple(_dim(d) for d in tensor.shape.dim)
    return shapes


def _probe(
    model: onnx.ModelProto, plans: Sequence[InputPlan], constants: Mapping[str, np.ndarray]
) -> onnx.ModelProto:
    graph = model.graph
    planned = {plan.onnx_name: _planned(plan) for plan in plans}
    inputs = [planned.get(i.name, i) for i in graph.input if i.name not in constants]
    declared = {i.name for i in inputs}
    initializers = []
    for init in graph.initializer:
        small = init.data_type in _INTEGER and int(np.prod(init.dims)) <= _KEEP_ELEMENTS
        if small and init.data_location != onnx.TensorProto.EXTERNAL:
            initializers.append(init)
        elif init.name not in declared:
            inputs.append(helper.make_tensor_value_info(init.name, init.data_type, init.dims))
    for name, value in constants.items():
        initializers.append(numpy_helper.from_array(np.asarray(value), name))
    outputs = []
    for output in graph.output:  # declared output shapes must not override what is inferred
        info = onnx.ValueInfoProto()
        info.CopyFrom(output)
        if info.type.HasField("tensor_type"):
            info.type.tensor_type.ClearField("shape")
        outputs.append(info)
    stripped = helper.make_graph(list(graph.node), graph.name, inputs, outputs, initializers)
    probe = helper.make_model(
        stripped, opset_imports=list(model.opset_import), functions=list(model.functions)
    )
    probe.ir_version = max(model.ir_version, 4)  # initializers that are not inputs
    return probe


_INTEGER = {
    onnx.TensorProto.INT64,
    onnx.TensorProto.INT32,
    onnx.TensorProto.INT16,
    onnx.TensorProto.INT8,
    onnx.TensorProto.UINT64,
    onnx.TensorProto.UINT32,
    onnx.TensorProto.UINT16,
    onnx.TensorProto.UINT8,
}


def _planned(plan: InputPlan) -> onnx.ValueInfoProto:
    # MIL symbols become dim_params by name, so inputs sharing a symbol share it here too.
    dims = [d if isinstance(d, int) else str(d) for d in plan.symbolic_shape]
    if plan.onnx_shape == ():
        dims = []
    elem = helper.np_dtype_to_tensor_dtype(plan.onnx_dtype)
    return helper.make_tensor_value_info(plan.onnx_name, elem, dims)


def _dim(d: onnx.TensorShapeProto.Dimension) -> Dim:
    if d.HasField("dim_value"):
        return int(d.dim_value)
    return d.dim_param or None
