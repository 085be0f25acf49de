"""What an ONNX graph says about the values of its inputs, for :mod:`unirun.inputs`: the
constants a scalar input is compared with (``Equal(sr, 16000)`` deciding an ``If``), the
size of a table an integer input indexes (``Gather``) and the categories a categorical feature
is encoded with (``ai.onnx.ml`` OneHotEncoder, LabelEncoder, CategoryMapper). Looks through
Cast/Reshape-like nodes and into subgraphs; reads no external weights."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Hint", "mine"]


@dataclass
class Hint:
    """Values the graph suggests for one input."""

    compared: list[float]  #: constants it is compared with, Equal first
    table: int | None = None  #: rows of a constant table it indexes (Gather)
    #: the categories an encoder knows for it (strings or integers), in the encoder's order
    categories: list[str | int] = field(default_factory=list)


_COMPARE = {"Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual"}
_PASS = {"Cast", "Identity", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "CastLike"}
#: ``ai.onnx.ml`` encoders and the attributes that hold the categories they know.
_ENCODERS = {
    "OneHotEncoder": ("cats_strings", "cats_int64s"),
    "CategoryMapper": ("cats_strings", "cats_int64s"),
    "LabelEncoder": ("keys_strings", "keys_int64s", "classes_strings"),
    "DictVectorizer": ("string_vocabulary", "int64_vocabulary"),  # a map's keys
}


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
    # A categorical column also reaches its encoder through the Gather/Slice that picks it.
    picks = {
        n.output[0]: n.input[0]
        for n in all_nodes(proto.graph)
        if n.op_type in ("Gather", "Slice") and n.domain in ("", "ai.onnx") and n.input and n.output
    }

    picked = {**alias, **picks}

    def root(name: str, alias: dict[str, str] = alias) -> str:
        for _ in range(8):
            if name in wanted or name not in alias:
                return name
            name = alias[name]
        return name

    equal: dict[str, list[float]] = defaultdict(list)
    other: dict[str, list[float]] = defaultdict(list)
    tables: dict[str, int] = {}
    categories: dict[str, list[str | int]] = {}
    for node in all_nodes(proto.graph):
        ins = list(node.input)
        if node.domain == "ai.onnx.ml" and node.op_type in _ENCODERS and ins:
            source = root(ins[0], picked)
            if source in wanted and source not in categories:
                found = _categories(node, _ENCODERS[node.op_type])
                if found:
                    categories[source] = found
        elif node.op_type in _COMPARE and len(ins) == 2:
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
        name: Hint(
            equal.get(name, []) + other.get(name, []),
            tables.get(name),
            categories.get(name, []),
        )
        for name in wanted
        if name in equal or name in other or name in tables or name in categories
    }


def _categories(node: Any, names: tuple[str, ...]) -> list[str | int]:
    for attr in node.attribute:
        if attr.name in names and (attr.strings or attr.ints):
            if attr.strings:
                return [s.decode("utf-8", "replace") for s in attr.strings]
            return [int(i) for i in attr.ints]
    return []


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
