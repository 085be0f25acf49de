"""The op check: which nodes ``translate`` would refuse, for the given shapes, without
converting anything.

It runs the translator itself rather than a separate table, so the two cannot disagree: the
op table and attribute checks first (as ``translate`` does before any work), then every node's
lowering into a throw-away MIL program with the same input plan, constant folding and ONNX
shape cross-checks. A node whose lowering fails is listed with its reason, and the nodes that
depend on it are skipped rather than listed. Core ML's own conversion passes are not run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import onnx

from .._errors import UnsupportedOp
from ._inputs import ShapeSpec, plan_inputs
from ._node import Node
from ._registry import find_unsupported, opsets_of
from ._translator import _build_program, _target


def check(
    model: onnx.ModelProto,
    *,
    shapes: Mapping[str, ShapeSpec] | None = None,
    constant_inputs: Mapping[str, Any] | Iterable[str] = (),
    deployment_target: Any = "iOS17",
) -> tuple[list[UnsupportedOp], dict[str, str]]:
    """``(nodes, reasons)``: every node ``translate`` would refuse, in graph order, and why.

    Dynamic dims without ``shapes`` stay symbolic (lowering needs no bounds). A mapping of
    ``constant_inputs`` gives their values; names alone mark inputs as constants whose values
    are unknown here, so the nodes computed from them are not checked.
    """
    if isinstance(constant_inputs, Mapping):
        values = {k: np.asarray(v) for k, v in constant_inputs.items()}
        names = set(values)
    else:
        values, names = {}, set(constant_inputs)
    graph = model.graph
    _, reasons = find_unsupported(model, tuple(names))
    initializers = {init.name for init in graph.initializer}
    plans = plan_inputs(graph, shapes, initializers | names, bounded=False)
    planned = {plan.onnx_name for plan in plans}
    unknown = {i.name for i in graph.input} - planned - initializers - set(values)
    refusals = dict(reasons)
    _build_program(model, plans, values, _target(deployment_target), refusals, frozenset(unknown))
    opsets = opsets_of(model)
    nodes = [Node.wrap(proto, index, opsets) for index, proto in enumerate(graph.node)]
    refused = [UnsupportedOp(n.name, n.op_type, n.domain) for n in nodes if n.name in refusals]
    return refused, {op.node_name: refusals[op.node_name] for op in refused}
