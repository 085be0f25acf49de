"""Reading ONNX models from paths, bytes or ModelProtos, once, with a content hash.

:class:`OnnxModel` and its external data (found, checked to stay in the model's folder, hashed,
read in for engines) live here. The graph helpers plugins use are defined beside it and
re-exported from here: walking the graph and its inputs and outputs in
:mod:`unirun._source_graph`, declared ``shapes`` in :mod:`unirun._source_shapes`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, Literal, overload

from . import _fs
from ._source_graph import all_nodes, check_acyclic, graph_inputs, graph_outputs, graphs
from ._source_shapes import build_with_fixed_shapes, check_shapes, describe_shapes, fix_input_shapes
from .errors import InvalidModelError, OptionsError
from .tensor import TensorSpec

if TYPE_CHECKING:
    import onnx

    from ._stamps import StampBook

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


@dataclass
class OnnxModel:
    """An ONNX model as the core hands it to ``Backend.compile``.

    ``proto`` is parsed once, without external weights; ``path`` is set when the model came from a
    file. ``external_files`` are the weight files the model refers to (from any tensor: graph and
    subgraph initializers, sparse initializers, ``Constant`` values, function bodies), each
    checked to be a regular file inside ``base_dir`` (the model's folder; symbolic links must lead
    inside it too). ``sha256`` covers the model bytes and every external file (by its own
    sha256), so it changes whenever anything the model consists of changes. Engines read the
    model through :meth:`for_engine`, never from the locations themselves.

    Given ``stamps`` (the compile cache's verified stamps: ``unirun.load`` passes them unless
    ``cache=False``), an external file unchanged since unirun last hashed it (same size,
    modification and change times, inode and device) is not read again; a new or changed file
    always is.
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
        cls,
        source: Any,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        stamps: StampBook | None = None,
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
            proto = _parse(data, "<bytes>")
            return cls._complete(data, proto, None, base, "given as bytes", stamps)
        if isinstance(source, (str, os.PathLike)):
            if base is not None:
                raise OptionsError(
                    "base_dir is for models given as bytes or an onnx.ModelProto; a model file's "
                    f"external data is always read from its own folder ({Path(source).parent})"
                )
            return cls._from_path(Path(source), stamps)
        if type(source).__name__ == "ModelProto":
            try:
                data = source.SerializeToString()
            except ValueError as exc:  # protobuf refuses messages over 2 GiB
                raise InvalidModelError(
                    f"cannot serialize this ModelProto ({exc}); save it with external data "
                    "(onnx.save(..., save_as_external_data=True)) and pass the path"
                ) from exc
            return cls._complete(data, source, None, base, "given as a ModelProto", stamps)
        raise InvalidModelError(
            f"expected a path, bytes or onnx.ModelProto, got {type(source).__name__}"
        )

    @classmethod
    def _from_path(cls, path: Path, stamps: StampBook | None) -> OnnxModel:
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
        proto = _parse(data, str(path))
        return cls._complete(data, proto, absolute, absolute.parent, path.name, stamps)

    @classmethod
    def _complete(
        cls,
        data: bytes,
        proto: onnx.ModelProto,
        path: Path | None,
        base: Path | None,
        what: str,
        stamps: StampBook | None,
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
                file_sha = _file_sha256(fd, st, file, stamps)
                digest.update(f"\0{location}\0{st.st_size}\0{file_sha}".encode())
                size += st.st_size
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


def _file_sha256(fd: int, st: os.stat_result, file: Path, stamps: StampBook | None) -> str:
    """sha256 (hex) of the open external file ``fd``: from a verified stamp when the file is the
    one hashed before (see :class:`OnnxModel`), else read and hashed (and stamped)."""
    from ._stamps import identity

    subject = f"source-file\0{file}"
    now = identity(st)
    known = stamps.get(subject) if stamps is not None else {}
    for sha, stamp in known.items():
        if stamp == now:
            return sha
    sha = _fs.digest(fd, st.st_size)
    if stamps is not None:
        stamps.put(subject, {sha: now})
    return sha
