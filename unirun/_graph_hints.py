"""What an ONNX graph says about the values of its inputs, for :mod:`unirun.inputs`: the
constants a scalar input is compared with (``Equal(sr, 16000)`` deciding an ``If``) and the
size of a table an integer input indexes (``Gather``). Looks through Cast/Reshape-like nodes
and into subgraphs; reads no external weights."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Hint", "mine"]


@dataclass
class Hint:
    """Values the graph suggests for one input."""

    compared: list[float]  #: constants it is compared with, Equal first
    table: int | None = None  #: rows of a constant table it indexes (Gather)


_COMPARE = {"Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual"}
_PASS = {"Cast", "Identity", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "CastLike"}


def mine(proto: Any, wanted: set[str]) -> dict[str, Hint]:
    """Values the graph itself suggests for ``wanted`` inputs: constants they are compared
    with, and the size of a table they index."""
    from onnx import numpy_helper
    from onnx.external_data_helper import uses_external_data

    from .source import all_nodes, graphs

    dims: dict[str, tuple[int, ...]] = {}
    small: dict[str, float] = {}

    def note(name: str, tensor: Any) -> None:
        dims[name] = tuple(tensor.dims)
        if int(np.prod(tensor.dims)) == 1 and not uses_external_data(tensor):
            value = numpy_helper.to_array(tensor)
            if value.dtype.kind in "iuf":
                small[name] = float(value.reshape(-1)[0])

    for graph in graphs(proto.graph):
        for tensor in graph.initializer:
            note(tensor.name, tensor)
        for node in graph.node:
            if node.op_type == "Constant" and node.output:
                for attr in node.attribute:
                    if attr.name == "value":
                        note(node.output[0], attr.t)
                    elif attr.name in ("value_int", "value_float"):
                        dims[node.output[0]] = ()
                        small[node.output[0]] = float(
                            attr.i if attr.name == "value_int" else attr.f
                        )
    alias = {
        n.output[0]: n.input[0]
        for n in all_nodes(proto.graph)
        if n.op_type in _PASS and n.input and n.output
    }

    def root(name: str) -> str:
        for _ in range(8):
            if name in wanted or name not in alias:
                return name
            name = alias[name]
        return name

    equal: dict[str, list[float]] = defaultdict(list)
    other: dict[str, list[float]] = defaultdict(list)
    tables: dict[str, int] = {}
    for node in all_nodes(proto.graph):
        ins = list(node.input)
        if node.op_type in _COMPARE and len(ins) == 2:
            for mine, const, flipped in ((0, 1, False), (1, 0, True)):
                source, value = root(ins[mine]), small.get(root(ins[const]))
                if source in wanted and value is not None:
                    _compared(
                        equal if node.op_type == "Equal" else other,
                        source,
                        node.op_type,
                        value,
                        flipped,
                    )
        elif node.op_type == "Gather" and len(ins) == 2:
            source, table = root(ins[1]), dims.get(ins[0])
            if source in wanted and table:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                tables[source] = min(tables.get(source, table[axis]), table[axis])
    return {
        name: Hint(equal.get(name, []) + other.get(name, []), tables.get(name))
        for name in wanted
        if name in equal or name in other or name in tables
    }


def _compared(
    into: dict[str, list[float]], source: str, op: str, value: float, flipped: bool
) -> None:
    if flipped:  # const OP input: turn it round
        op = {
            "Greater": "Less",
            "Less": "Greater",
            "GreaterOrEqual": "LessOrEqual",
            "LessOrEqual": "GreaterOrEqual",
        }.get(op, op)
    step = {"Greater": 1, "Less": -1}.get(op, 0)
    into[source].append(value + step)
