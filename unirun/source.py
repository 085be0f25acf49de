"""Reading ONNX models from paths, bytes or ModelProtos, once, with a content hash."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .dtypes import DType
from .errors import CompileError, InvalidModelError, OptionsError, UnsupportedModelError
from .options import ShapeRange
from .tensor import Dim, TensorSpec

if TYPE_CHECKING:
    import onnx

__all__ = [
    "OnnxModel",
    "all_nodes",
    "build_with_fixed_shapes",
    "check_acyclic",
    "check_shapes",
    "describe_shapes",
    "fix_input_shapes",
    "graph_inputs",
    "graph_outputs",
    "graphs",
]

_CHUNK = 1 << 20
_T = TypeVar("_T")


@dataclass
class OnnxModel:
    """An ONNX model as the core hands it to ``Backend.compile``.

    ``proto`` is parsed once, without external weights; ``path`` is set when the model came from a
    file (engines that read external data files need it). ``sha256`` covers the model bytes and
    every external data file, so it changes whenever anything the model consists of changes.
    """

    data: bytes = field(repr=False)
    sha256: str
    proto: onnx.ModelProto = field(repr=False)
    path: Path | None = None
    external_files: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        check_acyclic(self.proto.graph)

    @property
    def has_external_data(self) -> bool:
        return bool(self.external_files)

    @property
    def inputs(self) -> list[TensorSpec]:
        return graph_inputs(self.proto)

    @property
    def outputs(self) -> list[TensorSpec]:
        return graph_outputs(self.proto)

    @classmethod
    def from_source(cls, source: Any) -> OnnxModel:
        """Accept a path to an ``.onnx`` file, serialized bytes, or an ``onnx.ModelProto``."""
        if isinstance(source, OnnxModel):
            return source
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            return cls(data, hashlib.sha256(data).hexdigest(), _parse(data, "<bytes>"))
        if isinstance(source, (str, os.PathLike)):
            return cls._from_path(Path(source))
        if type(source).__name__ == "ModelProto":
            try:
                data = source.SerializeToString()
            except ValueError as exc:  # protobuf refuses messages over 2 GiB
                raise InvalidModelError(
                    f"cannot serialize this ModelProto ({exc}); save it with external data "
                    "(onnx.save(..., save_as_external_data=True)) and pass the path"
                ) from exc
            return cls(data, hashlib.sha256(data).hexdigest(), source)
        raise InvalidModelError(
            f"expected a path, bytes or onnx.ModelProto, got {type(source).__name__}"
        )

    @classmethod
    def _from_path(cls, path: Path) -> OnnxModel:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InvalidModelError(f"no such model file: {path}") from None
        except OSError as exc:
            raise InvalidModelError(f"cannot read model file {path}: {exc.strerror}") from exc
        proto = _parse(data, str(path))
        digest = hashlib.sha256(data)
        files = _external_files(proto, path.parent)
        for extra in files:
            digest.update(extra.name.encode())
            try:
                with extra.open("rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        digest.update(chunk)
            except OSError as exc:
                raise InvalidModelError(
                    f"model {path.name} keeps weights in {extra.name}, which cannot be read: "
                    f"{exc.strerror}"
                ) from exc
        return cls(data, digest.hexdigest(), proto, path.resolve(), files)


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    import onnx
    from google.protobuf.message import DecodeError

    if not data:
        raise InvalidModelError(f"{where} is empty: not an ONNX model")
    try:
        proto: onnx.ModelProto = onnx.ModelProto.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidModelError(
            f"{where} is not a readable ONNX model (truncated or corrupt file?): {exc}"
        ) from exc
    if not proto.graph.node and not proto.graph.output:
        raise InvalidModelError(f"{where} holds no ONNX graph (is it an ONNX file?)")
    if proto.ir_version <= 0 or not proto.opset_import:
        raise InvalidModelError(f"{where} lacks an IR version or opset import: not a valid model")
    return proto


def _external_files(proto: onnx.ModelProto, base: Path) -> tuple[Path, ...]:
    from onnx.external_data_helper import uses_external_data

    names: dict[str, None] = {}
    for tensor in proto.graph.initializer:
        if uses_external_data(tensor):
            for entry in tensor.external_data:
                if entry.key == "location":
                    names[entry.value] = None
    return tuple(base / name for name in names)


def _spec(value: Any) -> TensorSpec:
    kind = value.type.WhichOneof("value")
    if kind not in ("tensor_type", None):
        what = {
            "sequence_type": "a sequence",
            "optional_type": "an optional",
            "map_type": "a map",
            "sparse_tensor_type": "a sparse tensor",
        }.get(kind, kind)
        raise UnsupportedModelError(
            f"graph input/output {value.name!r} is {what}; unirun exchanges dense tensors only "
            "(wrap the model so its inputs and outputs are tensors)"
        )
    tensor_type = value.type.tensor_type
    try:
        dtype = DType.from_onnx(tensor_type.elem_type)
    except ValueError:
        raise InvalidModelError(
            f"graph value {value.name!r} has element type {tensor_type.elem_type}, "
            "unknown to unirun"
        ) from None
    if not tensor_type.HasField("shape"):
        return TensorSpec(value.name, dtype, None)
    dims: list[Dim] = []
    for d in tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return TensorSpec(value.name, dtype, tuple(dims))


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


def check_shapes(inputs: list[TensorSpec], shapes: Mapping[str, ShapeRange]) -> None:
    """Reject ``shapes`` that name unknown inputs or contradict the model's rank or fixed dims."""
    by_name = {spec.name: spec for spec in inputs}
    for name, bounds in shapes.items():
        spec = by_name.get(name)
        if spec is None:
            raise OptionsError(
                f"shapes names input {name!r}, which the model does not have; inputs: "
                f"{', '.join(by_name) or '(none)'}"
            )
        if spec.shape is None:
            continue
        if bounds.rank != len(spec.shape):
            raise OptionsError(
                f"shapes for {name!r} have rank {bounds.rank}, but the model declares {spec}"
            )
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int) and not bounds.min[axis] == dim == bounds.max[axis]:
                raise OptionsError(
                    f"shapes for {name!r} give dimension {axis} as {bounds.dim(axis)}, but the "
                    f"model fixes it to {dim} ({spec})"
                )


def fix_input_shapes(proto: onnx.ModelProto, shapes: Mapping[str, ShapeRange]) -> onnx.ModelProto:
    """A copy of ``proto`` whose inputs have the fixed shapes in ``shapes`` written in."""
    import onnx

    fixed = {name: r.min for name, r in shapes.items() if r.is_fixed}
    if not fixed:
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for value in out.graph.input:
        dims = fixed.get(value.name)
        if dims is None:
            continue
        shape = value.type.tensor_type.shape
        shape.ClearField("dim")
        for size in dims:
            shape.dim.add().dim_value = size
    return out


def build_with_fixed_shapes(
    proto: onnx.ModelProto,
    shapes: Mapping[str, ShapeRange],
    build: Callable[[onnx.ModelProto], _T],
    *,
    engine: str,
    logger: logging.Logger,
) -> _T:
    """``build(proto)`` with the fixed shapes in ``shapes`` written into the graph's inputs, and
    ``build(proto)`` as it is if the engine refuses that graph (its shape inference can fail
    inside ``If`` branches that never run with those sizes). Declaring shapes never breaks a
    model the engine runs without them: the core still checks every feed against ``shapes``.
    The fallback is logged at WARNING, naming the shapes and the engine's reason; if the graph
    as it is fails too, that failure (which the shapes did not cause) is raised."""
    fixed = fix_input_shapes(proto, shapes)
    if fixed is proto:
        return build(proto)
    try:
        return build(fixed)
    except (InvalidModelError, UnsupportedModelError, CompileError) as exc:
        result = build(proto)
        logger.warning(
            "%s cannot build the model with the declared fixed input shapes %s written into "
            "its graph (%s); built it with the graph's own dimensions instead: unirun checks "
            "that every input has the declared shape",
            engine,
            describe_shapes({k: v for k, v in shapes.items() if v.is_fixed}),
            exc,
        )
        return result


def describe_shapes(shapes: Mapping[str, ShapeRange]) -> str:
    """``input=(1, 512), state=(2, 1, 128)``: the user's ``shapes`` as they wrote them."""
    return ", ".join(f"{name}={r.describe()}" for name, r in shapes.items())


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
