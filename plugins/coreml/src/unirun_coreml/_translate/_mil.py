"""Small helpers over MIL values: a value is a numpy constant or a MIL ``Var``.

ONNX-side constants stay numpy in their ONNX dtype (exact shape arithmetic); they are narrowed
to Core ML dtypes (int64 → int32 clamped, float64 → float32) only when they enter MIL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from coremltools.converters.mil.mil import Builder as mb
from coremltools.converters.mil.mil import Var, types
from coremltools.converters.mil.mil.types.symbolic import is_symbolic

Value = Any  # np.ndarray | coremltools Var (untyped)

_INT32 = np.iinfo(np.int32)


def is_const(value: Value) -> bool:
    return isinstance(value, np.ndarray)


def to_mil_array(array: np.ndarray) -> np.ndarray:
    """Narrow a numpy constant to a dtype MIL accepts."""
    kind = array.dtype.kind
    if kind == "b":
        return array
    if kind in "iu":
        if array.dtype == np.int32:
            return array
        # np.asarray: clip of a 0-d array returns a numpy scalar.
        clipped = np.asarray(np.clip(array, _INT32.min, _INT32.max).astype(np.int32))
        return clipped
    if array.dtype in (np.float32, np.float16):
        return array
    if kind == "f" or array.dtype.name in ("bfloat16",) or array.dtype.name.startswith("float8"):
        return array.astype(np.float32)
    raise TypeError(f"Core ML has no tensor type for numpy dtype {array.dtype}")


def arg(value: Value) -> Value:
    """What a ``mb.*`` call accepts: a Var, or a narrowed numpy constant."""
    return to_mil_array(value) if is_const(value) else value


def var(value: Value) -> Any:
    if is_const(value):
        return mb.const(val=to_mil_array(value))
    return value


def np_dtype(value: Value) -> np.dtype[Any]:
    if is_const(value):
        return to_mil_array(value).dtype
    dtype: np.dtype[Any] = np.dtype(types.nptype_from_builtin(value.dtype))
    return dtype


def is_float(value: Value) -> bool:
    return np_dtype(value).kind == "f"


def is_bool(value: Value) -> bool:
    return np_dtype(value).kind == "b"


def shape(value: Value) -> tuple[Any, ...]:
    return tuple(value.shape)


def rank(value: Value) -> int:
    return len(value.shape)


def static_shape(value: Value) -> tuple[int, ...] | None:
    dims = shape(value)
    if any(is_symbolic(d) for d in dims):
        return None
    return tuple(int(d) for d in dims)


def dim(value: Value, axis: int) -> int | None:
    d = shape(value)[axis]
    return None if is_symbolic(d) else int(d)


def shape_tensor(value: Value) -> Value:
    """The shape as an int64 numpy constant when static, else a MIL ``shape`` op (int32)."""
    static = static_shape(value)
    if static is not None:
        return np.array(static, dtype=np.int64)
    return mb.shape(x=value)


def scalar(number: float | int | bool, like: Value) -> np.ndarray:
    return np.array(number, dtype=np_dtype(like))


def cast(value: Value, dtype: np.dtype[Any] | type) -> Value:
    """Cast to a MIL dtype; numpy constants are cast in numpy."""
    target = np.dtype(dtype)
    if is_const(value):
        return to_mil_array(value).astype(target)
    if np_dtype(value) == target:
        return value
    names = {"f": {2: "fp16", 4: "fp32"}, "i": {4: "int32"}, "b": {1: "bool"}}
    return mb.cast(x=value, dtype=names[target.kind][target.itemsize])


def dims_vector(x: Value, entries: list[Any]) -> Value:
    """A shape vector from ints and dims of ``x`` (symbols or expressions of its shape)."""
    symbolic = [e for e in entries if is_symbolic(e)]
    if not symbolic:
        return np.array([int(e) for e in entries], np.int32)
    if len(symbolic) == 1 and -1 not in entries:
        return np.array([-1 if is_symbolic(e) else int(e) for e in entries], np.int32)
    dims, full = shape(x), None
    parts = []
    for e in entries:
        if is_symbolic(e):
            full = mb.shape(x=x) if full is None else full
            axis = dims.index(e)
            parts.append(mb.slice_by_index(x=full, begin=[axis], end=[axis + 1]))
        else:
            parts.append(np.array([int(e)], np.int32))
    return mb.concat(values=parts, axis=0)


def normalize_axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


__all__ = [
    "Value",
    "Var",
    "arg",
    "cast",
    "dim",
    "dims_vector",
    "is_bool",
    "is_const",
    "is_float",
    "normalize_axis",
    "np_dtype",
    "rank",
    "scalar",
    "shape",
    "shape_tensor",
    "static_shape",
    "to_mil_array",
    "var",
]
