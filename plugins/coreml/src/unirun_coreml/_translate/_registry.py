"""The op table: (domain, ONNX op type) → lowering function."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import onnx

from .._errors import UnsupportedOp
from ._checked import CHECKED_SINCE
from ._context import Context
from ._node import Node

Lowering = Callable[[Context, Node], Any]
"""``fn(ctx, node)`` returns one value, or a sequence with one value (or None) per output."""
Check = Callable[[Node], "str | None"]
"""``check(node)`` returns why this node's attributes cannot be lowered, or None."""


@dataclass(frozen=True)
class Entry:
    fn: Lowering
    check: Check | None = None


_BUILTIN: dict[tuple[str, str], Entry] = {}
_USER: dict[tuple[str, str], Entry] = {}
_loaded = False


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def lowering(*op_types: str, check: Check | None = None) -> Callable[[Lowering], Lowering]:
    """Register a built-in lowering for default-domain ops."""

    def register(fn: Lowering) -> Lowering:
        for op_type in op_types:
            _BUILTIN[("", op_type)] = Entry(fn, check)
        return fn

    return register


def register_lowering(
    op_type: str, fn: Lowering, domain: str = "", *, check: Check | None = None
) -> None:
    """Add or replace the lowering of ``op_type`` in ``domain`` (user lowerings win)."""
    _USER[(_domain(domain), op_type)] = Entry(fn, check)


def unregister_lowering(op_type: str, domain: str = "") -> None:
    """Remove a user lowering, restoring the built-in one if there is one."""
    _USER.pop((_domain(domain), op_type), None)


def _ensure_builtins() -> None:
    global _loaded
    if not _loaded:
        importlib.import_module(f"{__package__}.ops")
        _loaded = True


def lookup(domain: str, op_type: str) -> Entry | None:
    _ensure_builtins()
    key = (_domain(domain), op_type)
    return _USER.get(key) or _BUILTIN.get(key)


def supported_ops() -> list[str]:
    _ensure_builtins()
    keys = set(_BUILTIN) | set(_USER)
    return sorted(op if not domain else f"{domain}::{op}" for domain, op in keys)


def opsets_of(model: onnx.ModelProto) -> dict[str, int]:
    return {_domain(o.domain): int(o.version) for o in model.opset_import}


def find_unsupported(
    model: onnx.ModelProto, constant_inputs: Sequence[str] = ()
) -> tuple[list[UnsupportedOp], dict[str, str]]:
    """Every node that has no lowering, with reasons for attribute-level refusals.

    A node without a lowering is still fine when all its inputs are constants: it is folded
    with onnx.reference before lowering.
    """
    graph = model.graph
    opsets = opsets_of(model)
    constant = {init.name for init in graph.initializer} | set(constant_inputs)
    missing: list[UnsupportedOp] = []
    reasons: dict[str, str] = {}
    for index, proto in enumerate(graph.node):
        node = Node.wrap(proto, index, opsets)
        entry = lookup(node.domain, node.op_type)
        foldable = node.domain == "" and all(not n or n in constant for n in node.inputs)
        if any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            for a in proto.attribute
        ):
            foldable = False
        if foldable and not _is_random(node.op_type):
            constant.update(node.outputs)
            continue
        reason = None
        if entry is None:
            reason = _QUANTIZED.get(node.op_type, "no lowering")
        elif entry is _BUILTIN.get((node.domain, node.op_type)):
            reason = _newer_than_checked(node) or (entry.check(node) if entry.check else None)
        elif entry.check is not None:
            reason = entry.check(node)
        if reason is not None:
            missing.append(UnsupportedOp(node.name, node.op_type, node.domain))
            reasons[node.name] = reason
    return missing, reasons


_ACTIVATIONS = (
    "int8 activations are not supported: Core ML takes int8 weights only (DequantizeLinear of "
    "int8/uint8 constants); unirun's precision='int8' makes that form"
)
_QUANTIZED = dict.fromkeys(
    ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
     "QLinearMatMul", "MatMulInteger", "ConvInteger"),
    _ACTIVATIONS,
)  # fmt: skip


def _newer_than_checked(node: Node) -> str | None:
    checked = CHECKED_SINCE.get(node.op_type)
    if checked is None:
        return None
    try:
        since = onnx.defs.get_schema(node.op_type, node.opset, "").since_version
    except onnx.defs.SchemaError:
        since = node.opset
    if since <= checked:
        return None
    return (
        f"opset {node.opset} uses {node.op_type} version {since}, newer than the version "
        f"{checked} this translator was checked against"
    )


def _is_random(op_type: str) -> bool:
    return op_type.startswith("Random") or op_type in ("Multinomial", "Bernoulli")


def describe(missing: Sequence[UnsupportedOp], reasons: Mapping[str, str]) -> str:
    lines = [f"{len(missing)} node(s) cannot be translated to Core ML:"]
    for op in missing:
        where = f"{op.domain}::{op.op_type}" if op.domain else op.op_type
        lines.append(f"  - {op.node_name} ({where}): {reasons.get(op.node_name, 'no lowering')}")
    lines.append(
        "Register a lowering with unirun_coreml.register_lowering(op_type, fn, domain=...) "
        "or use another backend for this model."
    )
    return "\n".join(lines)
