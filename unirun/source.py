"""Reading ONNX models from paths, bytes or ModelProtos, once, with a content hash."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from . import _fs
from .errors import CompileError, InvalidModelError, OptionsError, UnsupportedModelError
from .options import ShapeRange
from .tensor import TensorSpec
from .values import from_onnx

if TYPE_CHECKING:
    import onnx

__all__ = [
    "OnnxModel",
    "all_nodes",
    "build_with_fixed_shapes",
    "check_acyclic",
    "check_shapes",
    "describe_shapes",
    "external_tensors",
    "fix_input_shapes",
    "graph_inputs",
    "graph_outputs",
    "graphs",
]

#: Protobuf cannot parse more; larger models keep their weights in external data files.
_PROTO_LIMIT = (2 << 30) - 1
_T = TypeVar("_T")


@dataclass
class OnnxModel:
    """An ONNX model as the core hands it to ``Backend.compile``.

    ``proto`` is parsed once, without external weights; ``path`` is set when the model came from a
    file. ``external_files`` are the weight files the model refers to (from any tensor: graph and
    subgraph initializers, sparse initializers, ``Constant`` values, function bodies), each
    checked to be a regular file inside ``base_dir`` (the model's folder; symbolic links must lead
    inside it too). ``sha256`` covers the model bytes and every external file, so it changes
    whenever anything the model consists of changes. Engines read the model through
    :meth:`for_engine`, never from the locations themselves.
    """

    data: bytes = field(repr=False)
    sha256: str
    proto: onnx.ModelProto = field(repr=False)
    path: Path | None = None
    external_files: tuple[Path, ...] = ()
    base_dir: Path | None = None
    #: The external files' total size: what inlining the weights would add (at most).
    external_bytes: int = 0

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
    def from_source(
        cls, source: Any, *, base_dir: str | os.PathLike[str] | None = None
    ) -> OnnxModel:
        """Accept a path to an ``.onnx`` file, serialized bytes, or an ``onnx.ModelProto``.

        A model file's external data is read from the file's own folder. Bytes and a
        ``ModelProto`` have no folder: if they refer to external data, ``base_dir`` must name
        the folder that holds it, or ``InvalidModelError`` says so.
        """
        if isinstance(source, OnnxModel):
            return source
        base = None if base_dir is None else _base_dir(base_dir)
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            return cls._complete(data, _parse(data, "<bytes>"), None, base, "given as bytes")
        if isinstance(source, (str, os.PathLike)):
            if base is not None:
                raise OptionsError(
                    "base_dir is for models given as bytes or an onnx.ModelProto; a model file's "
                    f"external data is always read from its own folder ({Path(source).parent})"
                )
            return cls._from_path(Path(source))
        if type(source).__name__ == "ModelProto":
            try:
                data = source.SerializeToString()
            except ValueError as exc:  # protobuf refuses messages over 2 GiB
                raise InvalidModelError(
                    f"cannot serialize this ModelProto ({exc}); save it with external data "
                    "(onnx.save(..., save_as_external_data=True)) and pass the path"
                ) from exc
            return cls._complete(data, source, None, base, "given as a ModelProto")
        raise InvalidModelError(
            f"expected a path, bytes or onnx.ModelProto, got {type(source).__name__}"
        )

    @classmethod
    def _from_path(cls, path: Path) -> OnnxModel:
        try:
            fd, st = _fs.open_regular(path)
        except FileNotFoundError:
            raise InvalidModelError(f"no such model file: {path}") from None
        except (OSError, ValueError) as exc:
            raise InvalidModelError(f"cannot read model file {path}: {_why(exc)}") from exc
        try:
            if st.st_size > _PROTO_LIMIT:
                raise InvalidModelError(
                    f"{path} is {st.st_size / 2**30:.1f} GiB; an ONNX file holds at most 2 GiB "
                    "(keep the weights in external data: onnx.save(..., "
                    "save_as_external_data=True))"
                )
            data = _fs.read_exact(fd, st.st_size)
        except OSError as exc:
            raise InvalidModelError(f"cannot read model file {path}: {_why(exc)}") from exc
        finally:
            os.close(fd)
        absolute = Path(os.path.abspath(path))
        return cls._complete(data, _parse(data, str(path)), absolute, absolute.parent, path.name)

    @classmethod
    def _complete(
        cls, data: bytes, proto: onnx.ModelProto, path: Path | None, base: Path | None, what: str
    ) -> OnnxModel:
        """Find, check and hash the external files ``proto`` refers to."""
        digest = hashlib.sha256(data)
        files: dict[Path, str] = {}
        size = 0
        for tensor, where in external_tensors(proto):
            location = _location(tensor)
            if base is None:
                raise InvalidModelError(
                    f"the model {what} keeps the data of tensor {tensor.name!r} ({where}) in the "
                    f"external file {location!r}, but has no folder to find it in: pass "
                    "base_dir= (the folder that holds it), or load the model from its .onnx file"
                )
            files.setdefault(_resolve(location, base, path, tensor.name), location)
        for file, location in files.items():
            try:
                fd, st = _fs.open_regular(file)
            except (OSError, ValueError) as exc:
                raise InvalidModelError(
                    f"the model {what} keeps weights in {location}, which cannot be read: "
                    f"{_why(exc)}"
                ) from exc
            try:
                digest.update(f"\0{location}\0{st.st_size}\0".encode())
                size += st.st_size
                _fs.stream(fd, st.st_size, digest.update)
            except OSError as exc:
                raise InvalidModelError(
                    f"the model {what} keeps weights in {location}, which cannot be read: "
                    f"{_why(exc)}"
                ) from exc
            finally:
                os.close(fd)
        base = base if files else None
        return cls(data, digest.hexdigest(), proto, path, tuple(files), base, size)

    @overload
    def for_engine(self, *, inline: Literal[True]) -> onnx.ModelProto: ...
    @overload
    def for_engine(
        self, *, inline: bool | Literal["if_fits"] = False
    ) -> Path | onnx.ModelProto: ...
    def for_engine(self, *, inline: bool | Literal["if_fits"] = False) -> Path | onnx.ModelProto:
        """The model as an engine should read it; every plugin goes through this.

        Without external data: :attr:`proto`. With external data: the model file's path when
        the model came from a file and ``inline`` is false (the engine then reads the weights
        next to it, from the files checked above); otherwise a copy of :attr:`proto` with every
        external tensor's bytes read in from those same checked files (bounded by each file's
        size), for engines that take a proto or bytes. ``"if_fits"`` inlines when the result
        stays within protobuf's 2 GiB and gives the path otherwise. Raises
        ``InvalidModelError`` when an inline copy is needed and would exceed 2 GiB.
        """
        base = self.base_dir
        if not self.external_files or base is None:
            return self.proto
        if inline == "if_fits":
            inline = len(self.data) + self.external_bytes <= _PROTO_LIMIT or self.path is None
        if self.path is not None and not inline:
            return self.path
        import onnx

        out = onnx.ModelProto()
        out.CopyFrom(self.proto)
        total = out.ByteSize()
        for tensor, where in external_tensors(out):
            location = _location(tensor)
            file = _resolve(location, base, self.path, tensor.name)
            tensor.raw_data = _read_range(file, tensor, where)
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
            total += len(tensor.raw_data)
            if total > _PROTO_LIMIT:
                raise InvalidModelError(
                    "the model's weights do not fit in one protobuf (2 GiB) for an engine that "
                    "takes the model inline; load the model from its .onnx file instead"
                )
        return out


def external_tensors(proto: onnx.ModelProto) -> Iterator[tuple[Any, str]]:
    """``(TensorProto, where)`` for every tensor of ``proto`` whose data is in an external file:
    initializers and sparse initializers of the graph and of every subgraph (If/Loop/Scan),
    tensors in node attributes (``Constant`` values) and in function bodies."""
    for tensor, where in _all_tensors(proto):
        if tensor.data_location == 1:  # TensorProto.EXTERNAL
            yield tensor, where


def external_locations(path: Path) -> list[str]:
    """The external data locations the ONNX file ``path`` refers to (none if it is not one)."""
    import onnx

    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # not readable as ONNX: whoever wrote it reports that, not this check
        return []
    return [
        next((e.value for e in t.external_data if e.key == "location"), "")
        for t, _ in external_tensors(proto)
    ]


def _all_tensors(proto: Any) -> Iterator[tuple[Any, str]]:
    def from_nodes(nodes: Any, where: str) -> Iterator[tuple[Any, str]]:
        for node in nodes:
            of_node = f"of node {node.name or node.op_type!r}{where}"
            for attr in node.attribute:
                tensors = [attr.t] if attr.HasField("t") else []
                tensors.extend(attr.tensors)
                sparse = [attr.sparse_tensor] if attr.HasField("sparse_tensor") else []
                for s in (*sparse, *attr.sparse_tensors):
                    tensors.extend((s.values, s.indices))
                for tensor in tensors:
                    yield tensor, f"attribute {attr.name!r} {of_node}"
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    yield from from_graph(sub, f" in subgraph {sub.name!r}")

    def from_graph(graph: Any, where: str) -> Iterator[tuple[Any, str]]:
        for tensor in graph.initializer:
            yield tensor, f"initializer{where}"
        for sparse in graph.sparse_initializer:
            yield sparse.values, f"sparse initializer{where}"
            yield sparse.indices, f"sparse initializer{where}"
        yield from from_nodes(graph.node, where)

    yield from from_graph(proto.graph, "")
    for function in proto.functions:
        yield from from_nodes(function.node, f" in function {function.name!r}")
    for info in proto.training_info:
        yield from from_graph(info.initialization, " in a training graph")
        yield from from_graph(info.algorithm, " in a training graph")


def _location(tensor: Any) -> str:
    for entry in tensor.external_data:
        if entry.key == "location":
            return str(entry.value)
    raise InvalidModelError(f"tensor {tensor.name!r} is marked external but names no location")


def _base_dir(base_dir: str | os.PathLike[str]) -> Path:
    try:
        base = Path(os.path.abspath(base_dir))
        if base.is_dir():
            return base
    except (TypeError, ValueError) as exc:
        raise OptionsError(f"base_dir must be a folder path, got {base_dir!r}: {exc}") from exc
    raise OptionsError(f"base_dir {base_dir} is not a folder")


def _resolve(location: str, base: Path, model: Path | None, tensor: str) -> Path:
    """``base/location`` once it is known to stay inside ``base``: relative, no ``..``, and a
    symbolic link on the way must lead inside ``base`` (or inside the folder the model file
    really lives in, as in the Hugging Face cache)."""
    problem = None
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if not location or "\0" in location:
        problem = "is not a valid file name"
    elif posix.is_absolute() or windows.is_absolute() or windows.drive:
        problem = "is an absolute path; external data must be relative to the model's folder"
    elif ".." in posix.parts or ".." in windows.parts:
        problem = "leaves the model's folder (..)"
    else:
        full = Path(os.path.normpath(base / location))
        real = os.path.realpath(full)
        roots = {os.path.realpath(base)}
        if model is not None:
            roots.add(os.path.dirname(os.path.realpath(model)))
        if any(os.path.commonpath([real, root]) == root for root in roots):
            return full
        problem = f"is a symbolic link that leads outside the model's folder (to {real})"
    raise InvalidModelError(
        f"external data of tensor {tensor!r}: location {location!r} {problem}; refusing to read it"
    )


def _read_range(file: Path, tensor: Any, where: str) -> bytes:
    entries = {e.key: e.value for e in tensor.external_data}
    try:
        fd, st = _fs.open_regular(file)
    except (OSError, ValueError) as exc:
        raise InvalidModelError(f"cannot read external data {file}: {_why(exc)}") from exc
    try:
        offset = int(entries.get("offset") or 0)
        length = int(entries["length"]) if entries.get("length") else st.st_size - offset
        if offset < 0 or length < 0 or offset + length > st.st_size:
            raise ValueError("outside the file")
        os.lseek(fd, offset, os.SEEK_SET)
        return _fs.read_exact(fd, length)
    except ValueError:
        raise InvalidModelError(
            f"tensor {tensor.name!r} ({where}) reads bytes {entries.get('offset', 0)}+"
            f"{entries.get('length', '?')} of {file.name}, a file of {st.st_size} bytes"
        ) from None
    except OSError as exc:
        raise InvalidModelError(f"cannot read external data {file}: {_why(exc)}") from exc
    finally:
        os.close(fd)


def _why(exc: Exception) -> str:
    return _fs.why(exc) if isinstance(exc, OSError) else f"invalid path ({exc})"


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
        if spec.kind is not None:
            raise OptionsError(
                f"shapes names input {name!r}, which is {spec.kind} (not a tensor); shapes= "
                "declares the dimensions of tensor inputs only"
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
