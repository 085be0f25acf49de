"""Which nodes ONNX Runtime has no kernel for, read from its kernel registry (no session built).

A node is runnable when a kernel of the execution provider matches its domain, op type, the
operator version in effect at the model's opset, and the element types bound to each type
constraint (where shape inference knows them). Operators that ONNX defines as a function of
other operators are expanded by ONNX Runtime when no kernel exists, so they count as runnable.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from unirun.source import all_nodes

# Both spellings of the default ONNX domain.
_ONNX_DOMAINS = ("", "ai.onnx")
_OPEN = 2**31 - 1

Kernel = tuple[int, int, Mapping[str, frozenset[str]]]


@functools.cache
def _kernels(provider: str) -> Mapping[tuple[str, str], tuple[Kernel, ...]]:
    from onnxruntime.capi import _pybind_state as C

    table: defaultdict[tuple[str, str], list[Kernel]] = defaultdict(list)
    for k in C.get_all_opkernel_def():
        if k.provider == provider:
            start, end = k.version_range
            types = {name: frozenset(allowed) for name, allowed in k.type_constraints.items()}
            table[(k.domain, k.op_name)].append((start, end, types))
    return {key: tuple(value) for key, value in table.items()}


@functools.cache
def _schemas() -> Mapping[tuple[str, str], tuple[Any, ...]]:
    """ONNX Runtime's own schema registry (every version), which is what its kernel lookup uses."""
    from onnxruntime.capi import _pybind_state as C

    table: defaultdict[tuple[str, str], list[Any]] = defaultdict(list)
    for schema in C.get_all_operator_schema():
        table[(schema.domain, schema.name)].append(schema)
    return {key: tuple(value) for key, value in table.items()}


def _schema(domain: str, op_type: str, opset: int) -> Any | None:
    """The operator version in effect at ``opset``."""
    candidates = [s for s in _schemas().get((domain, op_type), ()) if s.since_version <= opset]
    return max(candidates, key=lambda s: s.since_version) if candidates else None


def _is_function(domain: str, op_type: str, version: int) -> bool:
    import onnx.defs

    try:
        schema = onnx.defs.get_schema(op_type, version, domain)
    except onnx.defs.SchemaError:
        return False
    return bool(
        getattr(schema, "has_function", False)
        or getattr(schema, "has_context_dependent_function", False)
    )


def _type_strings(proto: Any) -> dict[str, str]:
    """Value name -> ``tensor(float)``-style type string, for every value whose type is known."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # inference is a help, not a requirement
        inferred = proto
    graph = inferred.graph
    types: dict[str, str] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
            elem = onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type).lower()
            types[value.name] = f"tensor({elem})"
    for init in graph.initializer:
        elem = onnx.TensorProto.DataType.Name(init.data_type).lower()
        types[init.name] = f"tensor({elem})"
    return types


def _bindings(schema: Any, node: Any, types: Mapping[str, str]) -> dict[str, str]:
    """Type-constraint name -> the element type the node binds it to (where known)."""
    bound: dict[str, str] = {}
    for formals, actuals in ((schema.inputs, node.input), (schema.outputs, node.output)):
        for i, name in enumerate(actuals):
            if not formals or not name:
                continue
            formal = formals[min(i, len(formals) - 1)]  # variadic: the last formal repeats
            if name in types:
                bound.setdefault(formal.typeStr, types[name])
    return bound


def unsupported_ops(proto: Any, provider: str) -> list[tuple[str, str]]:
    """``(node_name, op_type)`` of every node ``provider`` has no matching kernel for."""
    opsets = {
        ("" if o.domain in _ONNX_DOMAINS else o.domain): o.version for o in proto.opset_import
    }
    local = {(f.domain, f.name) for f in proto.functions}
    kernels = _kernels(provider)
    types = _type_strings(proto)
    # The CPU provider runs float16 nodes that lack a float16 kernel by inserting casts to float.
    widen = provider == "CPUExecutionProvider"
    missing: list[tuple[str, str]] = []
    for node in all_nodes(proto.graph):
        domain = "" if node.domain in _ONNX_DOMAINS else node.domain
        if (node.domain, node.op_type) in local or (domain, node.op_type) == ("", "Constant"):
            continue  # inlined, or folded into an initializer, before kernels are chosen
        schema = _schema(domain, node.op_type, opsets.get(domain, 1))
        if schema is None:
            missing.append((node.name, node.op_type))
            continue
        version = schema.since_version
        candidates = [
            k for k in kernels.get((domain, node.op_type), ()) if _covers(k[0], k[1], version)
        ]
        if candidates:
            bound = _bindings(schema, node, types)
            if any(_accepts(k[2], bound, widen) for k in candidates):
                continue
        elif _is_function(domain, node.op_type, version):
            continue  # expanded into other operators by ONNX Runtime
        missing.append((node.name, node.op_type))
    return missing


def _covers(start: int, end: int, version: int) -> bool:
    # ONNX Runtime's rule: an open-ended kernel matches only the version it starts at; a closed
    # range matches any version inside it.
    return start == version or (start < version <= end and end != _OPEN)


def _accepts(
    constraints: Mapping[str, frozenset[str]], bound: Mapping[str, str], widen: bool
) -> bool:
    for name, allowed in constraints.items():
        actual = bound.get(name)
        if actual is None or actual in allowed:
            continue
        if widen and actual == "tensor(float16)" and "tensor(float)" in allowed:
            continue
        return False
    return True


__all__: Sequence[str] = ["unsupported_ops"]
