"""Reading ONNX models from paths, bytes or ModelProtos, once, with a content hash."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dtypes import DType
from .errors import InvalidModelError, OptionsError, UnsupportedModelError
from .options import ShapeRange
from .tensor import Dim, TensorSpec

if TYPE_CHECKING:
    import onnx

__all__ = [
    "OnnxModel",
    "all_nodes",
    "check_shapes",
    "fix_input_shapes",
    "graph_inputs",
    "graph_outputs",
    "graphs",
]

_CHUNK = 1 << 20


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
