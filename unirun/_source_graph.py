"""The ONNX graph as unirun reads it: its subgraphs and nodes, its inputs and outputs as
:class:`~unirun.tensor.TensorSpec`, and the check that it has no cycle. Re-exported by
:mod:`unirun.source`, where plugins import these from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import InvalidModelError
from .tensor import TensorSpec
from .values import from_onnx

if TYPE_CHECKING:
    import onnx

__all__ = ["all_nodes", "check_acyclic", "graph_inputs", "graph_outputs", "graphs"]


def _spec(value: Any) -> TensorSpec:
    return TensorSpec.of(value.name, from_onnx(value.type, value.name))


def graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and every subgraph (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from graphs(attr.g)
            for sub in attr.graphs:
                yield from graphs(sub)


def all_nodes(graph: Any) -> Iterator[Any]:
    """Every node of ``graph`` and of its subgraphs."""
    for g in graphs(graph):
        yield from g.node


def graph_inputs(proto: onnx.ModelProto) -> list[TensorSpec]:
    """The graph's real inputs (initializers listed as inputs by old IR versions excluded)."""
    constants = {t.name for t in proto.graph.initializer}
    return [_spec(v) for v in proto.graph.input if v.name not in constants]


def graph_outputs(proto: onnx.ModelProto) -> list[TensorSpec]:
    return [_spec(v) for v in proto.graph.output]


def check_acyclic(graph: Any) -> None:
    """Raise ``InvalidModelError`` naming the nodes of a cycle if ``graph`` (or a subgraph) has
    one. Engines fail on cycles in ways that say nothing (OpenVINO runs out of memory); nodes
    merely listed out of order are not refused."""
    for g in graphs(graph):
        _check_acyclic(g)


def _check_acyclic(graph: Any) -> None:
    producer: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name:
                producer[name] = index
    needs: list[set[int]] = []
    for node in graph.node:
        names = set(node.input) | _outer_names(node)
        needs.append({producer[n] for n in names if n in producer})
    waiting = {i: len(deps) for i, deps in enumerate(needs)}
    users: dict[int, list[int]] = {}
    for i, deps in enumerate(needs):
        for dep in deps:
            users.setdefault(dep, []).append(i)
    ready = [i for i, count in waiting.items() if count == 0]
    while ready:
        done = ready.pop()
        for user in users.get(done, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    stuck = {i for i, count in waiting.items() if count > 0}
    if not stuck:
        return
    # Walk back through unfinished producers until a node repeats: that loop is a cycle.
    path: list[int] = []
    node = min(stuck)
    while node not in path:
        path.append(node)
        node = min(d for d in needs[node] if d in stuck)
    cycle = [*path[path.index(node) :], node]
    steps = " → ".join(_node_label(graph.node[i], i) for i in reversed(cycle))
    raise InvalidModelError(
        f"the graph {graph.name or '(unnamed)'!r} has a cycle: {steps} (each node feeds the "
        "next); ONNX graphs must be acyclic: re-export the model"
    )


def _outer_names(node: Any) -> set[str]:
    """Names a node's subgraphs read from the enclosing scope (its implicit inputs)."""
    names: set[str] = set()
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            defined = {v.name for v in (*sub.input, *sub.initializer)}
            for inner in sub.node:
                defined.update(inner.output)
            for inner in sub.node:
                names.update(n for n in inner.input if n and n not in defined)
                names.update(n for n in _outer_names(inner) if n not in defined)
    return names


def _node_label(node: Any, index: int) -> str:
    return f"{node.name or f'#{index}'!r} ({node.op_type})"
