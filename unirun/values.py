"""The kinds of value an ONNX graph input or output may hold, beyond a plain tensor.

ONNX types form a small algebra: a tensor, a sequence of values, a map from string or integer
keys to values, and an optional value (present or absent). Classic machine-learning models use
them at their edges: a scikit-learn classifier converted with ``skl2onnx`` returns its
probabilities as ``seq(map(int64, float32))`` (``ZipMap``), and ``DictVectorizer`` takes a
``map(string, float32)``.

A :class:`~unirun.TensorSpec` describes such a value with ``kind`` (None for a plain tensor)::

    spec.kind                   # SequenceType(MapType(DType.INT64, TensorType(DType.FLOAT32)))
    str(spec.kind)              # "seq(map(int64, float32))"
    spec.kind.kinds             # {ValueKind.SEQUENCE, ValueKind.MAP, ValueKind.TENSOR}

In Python a sequence is a ``list`` of its items, a map a ``dict``, an absent optional ``None``
(a present one is its value), and a tensor inside any of them a numpy array (a map's scalar
values may be plain numbers). A backend declares the kinds it carries in
``Capabilities.value_kinds``; the core refuses a model needing others before compiling it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from .dtypes import DType
from .errors import InvalidModelError, UnsupportedModelError

__all__ = [
    "MAP_KEYS",
    "MapType",
    "OptionalType",
    "SequenceType",
    "TensorType",
    "ValueKind",
    "ValueType",
    "from_json",
    "from_onnx",
]

#: Deeper nesting than this is refused (ONNX allows any; real models use two or three levels).
MAX_DEPTH = 16

Dim = int | str


class ValueKind(str, Enum):
    """One kind of ONNX value, as ``Capabilities.value_kinds`` lists them."""

    TENSOR = "tensor"
    SEQUENCE = "sequence"
    MAP = "map"
    OPTIONAL = "optional"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class TensorType:
    """A tensor inside another value: its element type and, when declared, its shape."""

    dtype: DType
    shape: tuple[Dim, ...] | None = None
    kind: ClassVar[ValueKind] = ValueKind.TENSOR

    def __str__(self) -> str:
        if self.shape is None:
            return str(self.dtype)
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]"

    @property
    def kinds(self) -> frozenset[ValueKind]:
        return frozenset((ValueKind.TENSOR,))

    @property
    def dtypes(self) -> frozenset[DType]:
        return frozenset((self.dtype,))

    @property
    def leaf(self) -> TensorType:
        return self

    def to_json(self) -> dict[str, Any]:
        shape = None if self.shape is None else list(self.shape)
        return {"kind": "tensor", "dtype": self.dtype.value, "shape": shape}


@dataclass(frozen=True, slots=True)
class SequenceType:
    """A sequence (a Python ``list``) of values of one type."""

    element: ValueType
    kind: ClassVar[ValueKind] = ValueKind.SEQUENCE

    def __str__(self) -> str:
        return f"seq({self.element})"

    @property
    def kinds(self) -> frozenset[ValueKind]:
        return self.element.kinds | {ValueKind.SEQUENCE}

    @property
    def dtypes(self) -> frozenset[DType]:
        return self.element.dtypes

    @property
    def leaf(self) -> TensorType:
        return self.element.leaf

    def to_json(self) -> dict[str, Any]:
        return {"kind": "sequence", "element": self.element.to_json()}


@dataclass(frozen=True, slots=True)
class MapType:
    """A map (a Python ``dict``) from keys of one element type (string or an integer type) to
    values of one type."""

    key: DType
    value: ValueType
    kind: ClassVar[ValueKind] = ValueKind.MAP

    def __str__(self) -> str:
        return f"map({self.key}, {self.value})"

    @property
    def kinds(self) -> frozenset[ValueKind]:
        return self.value.kinds | {ValueKind.MAP}

    @property
    def dtypes(self) -> frozenset[DType]:
        return self.value.dtypes | {self.key}

    @property
    def leaf(self) -> TensorType:
        return self.value.leaf

    def to_json(self) -> dict[str, Any]:
        return {"kind": "map", "key": self.key.value, "value": self.value.to_json()}


@dataclass(frozen=True, slots=True)
class OptionalType:
    """A value that may be absent (``None`` in Python)."""

    element: ValueType
    kind: ClassVar[ValueKind] = ValueKind.OPTIONAL

    def __str__(self) -> str:
        return f"optional({self.element})"

    @property
    def kinds(self) -> frozenset[ValueKind]:
        return self.element.kinds | {ValueKind.OPTIONAL}

    @property
    def dtypes(self) -> frozenset[DType]:
        return self.element.dtypes

    @property
    def leaf(self) -> TensorType:
        return self.element.leaf

    def to_json(self) -> dict[str, Any]:
        return {"kind": "optional", "element": self.element.to_json()}


#: Any ONNX value type. ``kinds`` are the kinds it is made of, ``dtypes`` every element type in
#: it (map keys too), ``leaf`` the innermost tensor type (of a map: of its values).
ValueType = TensorType | SequenceType | MapType | OptionalType

#: The key types ONNX allows in a map.
MAP_KEYS = frozenset(
    {
        DType.STRING,
        DType.INT8,
        DType.INT16,
        DType.INT32,
        DType.INT64,
        DType.UINT8,
        DType.UINT16,
        DType.UINT32,
        DType.UINT64,
    }
)


def from_json(data: Any, depth: int = 0) -> ValueType:
    """The inverse of ``to_json``; ``ValueError`` names what is wrong (manifests are read back
    with it, so anything may arrive)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"value type nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, Mapping):
        raise ValueError(f"a value type is a JSON object, not {type(data).__name__}")
    kind = data.get("kind")
    fields = {
        "tensor": {"kind", "dtype", "shape"},
        "sequence": {"kind", "element"},
        "map": {"kind", "key", "value"},
        "optional": {"kind", "element"},
    }.get(kind if isinstance(kind, str) else "")
    if fields is None:
        raise ValueError(f"unknown value kind {kind!r} (tensor, sequence, map or optional)")
    if set(data) != fields:
        raise ValueError(f"a {kind} type has the fields {', '.join(sorted(fields))}")
    if kind == "tensor":
        return TensorType(_dtype(data["dtype"]), _shape(data["shape"]))
    if kind == "map":
        key = _dtype(data["key"])
        if key not in MAP_KEYS:
            raise ValueError(f"map keys cannot be {key}")
        return MapType(key, from_json(data["value"], depth + 1))
    element = from_json(data["element"], depth + 1)
    return SequenceType(element) if kind == "sequence" else OptionalType(element)


def _dtype(value: Any) -> DType:
    if not isinstance(value, str):
        raise ValueError(f"an element type is a string, not {type(value).__name__}")
    return DType(value)


def _shape(value: Any) -> tuple[Dim, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        (isinstance(d, int) and not isinstance(d, bool) and d >= 0) or isinstance(d, str)
        for d in value
    ):
        raise ValueError("a shape is a list of sizes (ints >= 0) and names (strings), or null")
    return tuple(value)


_REFUSED = {
    "sparse_tensor_type": "a sparse tensor",
    "opaque_type": "an opaque value",
}


def from_onnx(type_proto: Any, name: str, depth: int = 0) -> ValueType:
    """The value type of an ``onnx.TypeProto`` (``name``: the graph value, for messages).

    ``UnsupportedModelError`` for sparse tensors and opaque values, which unirun does not
    carry; ``InvalidModelError`` for a type ONNX itself does not define."""
    which = type_proto.WhichOneof("value")
    if depth > MAX_DEPTH:
        raise UnsupportedModelError(
            f"graph input/output {name!r} nests its type deeper than {MAX_DEPTH} levels"
        )
    if which == "tensor_type":
        tensor = type_proto.tensor_type
        try:
            dtype = DType.from_onnx(tensor.elem_type)
        except ValueError:
            raise InvalidModelError(
                f"graph value {name!r} has element type {tensor.elem_type}, unknown to unirun"
            ) from None
        if not tensor.HasField("shape"):
            return TensorType(dtype)
        dims: list[Dim] = []
        for d in tensor.shape.dim:
            dims.append(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?"))
        return TensorType(dtype, tuple(dims))
    if which == "sequence_type":
        return SequenceType(from_onnx(type_proto.sequence_type.elem_type, name, depth + 1))
    if which == "optional_type":
        return OptionalType(from_onnx(type_proto.optional_type.elem_type, name, depth + 1))
    if which == "map_type":
        code = type_proto.map_type.key_type
        try:
            key = DType.from_onnx(code)
        except ValueError:
            key = None
        if key not in MAP_KEYS:
            raise InvalidModelError(
                f"graph value {name!r} is a map with keys of type {key or code}; ONNX map keys "
                "are strings or integers"
            )
        return MapType(key, from_onnx(type_proto.map_type.value_type, name, depth + 1))
    if which in _REFUSED:
        raise UnsupportedModelError(
            f"graph input/output {name!r} is {_REFUSED[which]}, which unirun does not carry: "
            "export the model with a dense tensor there"
        )
    raise InvalidModelError(f"graph value {name!r} has no type (or one unknown to unirun)")
