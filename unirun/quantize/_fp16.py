"""fp16 graphs for engines that run what the ONNX file says (ONNX Runtime)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from ..errors import CompileError
from ..options import ShapeRange
from ..source import OnnxModel, fix_input_shapes
from ._emit import quiet

__all__ = ["FP16_MAX", "compute_precision", "to_fp16"]

log = logging.getLogger("unirun.quantize")

FP16_MAX = 65504.0
# Ops whose math is the model's cost: the precision they run in is the precision of the model.
_HEAVY = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "MatMul",
        "Gemm",
        "FusedConv",
        "FusedGemm",
        "FusedMatMul",
        "Attention",
        "MultiHeadAttention",
        "LSTM",
        "GRU",
        "RNN",
    }
)
_FLOAT, _FLOAT16 = 1, 10


def to_fp16(
    model: OnnxModel,
    shapes: Mapping[str, ShapeRange] | None = None,
    *,
    keep_io_types: bool = True,
) -> bytes:
    """The model with float32 weights and math turned into float16 by ONNX Runtime's converter
    (``onnxruntime.transformers.float16``, the one Olive uses), serialized.

    ``shapes``: fixed input shapes to write in (as compile does for fp32).
    ``keep_io_types``: float32 inputs and outputs stay float32 (Casts at the edges). Nodes that
    read a constant beyond float16's range (±65504) stay float32, since the converter would
    clamp it (a division by 1e5 would become one by 65504)."""

    proto = fix_input_shapes(model.for_engine(inline=True), shapes or {})
    blocked = _out_of_range_nodes(proto)
    if blocked:
        log.info(
            "fp16: keeping %d node(s) in fp32: they read constants beyond ±65504: %s",
            len(blocked),
            ", ".join(blocked[:5]),
        )
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        with quiet():
            converted = convert_float_to_float16(
                proto, keep_io_types=keep_io_types, node_block_list=blocked or None
            )
        return bytes(converted.SerializeToString())
    except Exception as exc:
        raise CompileError(
            f"ONNX Runtime's float16 converter failed on this model: {type(exc).__name__}: {exc}"
        ) from exc


def _out_of_range_nodes(proto: Any) -> list[str]:
    from onnx import numpy_helper

    big = set()
    for tensor in proto.graph.initializer:
        if tensor.data_type == _FLOAT and _beyond_fp16(numpy_helper.to_array(tensor)):
            big.add(tensor.name)
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if (
                    attr.name == "value"
                    and attr.t.data_type == _FLOAT
                    and _beyond_fp16(numpy_helper.to_array(attr.t))
                ):
                    big.update(node.output)
    return [n.name for n in proto.graph.node if n.name and big.intersection(n.input)]


def _beyond_fp16(values: np.ndarray[Any, Any]) -> bool:
    finite = values[np.isfinite(values)]
    return bool(finite.size) and float(np.abs(finite).max()) > FP16_MAX


def compute_precision(optimized: Any) -> tuple[Literal["fp16", "fp32"], dict[str, int]]:
    """What an engine's optimized graph (ONNX Runtime's ``optimized_model_filepath``) computes
    its heavy ops (Conv, MatMul, Gemm, attention, RNNs) in: ``"fp16"`` if any of them reads
    float16, ``"fp32"`` if the engine wrapped all of them in Casts to float32 (it has no fp16
    kernel for them on this device). Also the counts per precision."""
    types: dict[str, int] = {}
    for value in (*optimized.graph.input, *optimized.graph.value_info):
        types[value.name] = value.type.tensor_type.elem_type
    for tensor in optimized.graph.initializer:
        types[tensor.name] = tensor.data_type
    counts = {"fp16": 0, "fp32": 0}
    for node in optimized.graph.node:
        if node.op_type == "Cast":
            to = next((a.i for a in node.attribute if a.name == "to"), 0)
            types.update(dict.fromkeys(node.output, to))
            continue
        known = [types[i] for i in node.input if i in types]
        kind = known[0] if known else 0
        if node.op_type in _HEAVY:
            if kind == _FLOAT16:
                counts["fp16"] += 1
            elif kind == _FLOAT:
                counts["fp32"] += 1
        for out in node.output:
            types.setdefault(out, kind)
    return ("fp32" if counts["fp32"] and not counts["fp16"] else "fp16"), counts
