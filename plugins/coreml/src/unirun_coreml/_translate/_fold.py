"""Constant folding: a node whose inputs are all numpy constants runs in onnx.reference.

This turns shape arithmetic (Shape → Gather → Concat → Reshape …) and weight preprocessing
into plain constants before MIL sees them, with exact ONNX semantics and dtypes.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from ._node import Node

_log = logging.getLogger("unirun_coreml")

_NEVER = {
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "Dropout",
}


def fold(node: Node, inputs: list[Any]) -> list[np.ndarray | None] | None:
    if node.domain or node.op_type in _NEVER:
        return None
    if any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        for a in node.proto.attribute
    ):
        return None
    feeds = {name: value for name, value in zip(node.inputs, inputs, strict=False) if name}
    try:
        evaluator = ReferenceEvaluator(node.proto, opsets={"": node.opset})
        results = evaluator.run(None, feeds)
    except Exception as exc:  # fall back to the MIL lowering, which may still handle it
        _log.debug("could not fold %s %r: %s", node.op_type, node.name, exc)
        return None
    return [None if r is None else np.asarray(r) for r in results]
