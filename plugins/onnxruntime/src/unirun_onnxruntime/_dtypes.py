"""ONNX Runtime type strings to unirun dtypes, and the bridge for the types numpy lacks.

onnxruntime's numpy bridge knows only numpy's own dtypes: bfloat16, float8, float4, int4 and int2
arrays (``ml_dtypes``) go in and out as ``OrtValue`` s built from their raw bits instead.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from unirun import DType
from unirun.values import MAP_KEYS, MapType, OptionalType, SequenceType, TensorType, ValueType

FROM_ORT: dict[str, DType] = {
    "tensor(float)": DType.FLOAT32,
    "tensor(float16)": DType.FLOAT16,
    "tensor(bfloat16)": DType.BFLOAT16,
    "tensor(double)": DType.FLOAT64,
    "tensor(int8)": DType.INT8,
    "tensor(int16)": DType.INT16,
    "tensor(int32)": DType.INT32,
    "tensor(int64)": DType.INT64,
    "tensor(uint8)": DType.UINT8,
    "tensor(uint16)": DType.UINT16,
    "tensor(uint32)": DType.UINT32,
    "tensor(uint64)": DType.UINT64,
    "tensor(bool)": DType.BOOL,
    "tensor(string)": DType.STRING,
    "tensor(complex64)": DType.COMPLEX64,
    "tensor(complex128)": DType.COMPLEX128,
    "tensor(float8e4m3fn)": DType.FLOAT8_E4M3FN,
    "tensor(float8e4m3fnuz)": DType.FLOAT8_E4M3FNUZ,
    "tensor(float8e5m2)": DType.FLOAT8_E5M2,
    "tensor(float8e5m2fnuz)": DType.FLOAT8_E5M2FNUZ,
    "tensor(float8e8m0)": DType.FLOAT8_E8M0,
    "tensor(float4e2m1)": DType.FLOAT4_E2M1,
    "tensor(int4)": DType.INT4,
    "tensor(uint4)": DType.UINT4,
    "tensor(int2)": DType.INT2,
    "tensor(uint2)": DType.UINT2,
}


def value_type(text: str) -> ValueType | None:
    """The value type of an ONNX Runtime type string (``seq(map(int64,tensor(float)))``,
    ``optional(tensor(float))``), or None for one unirun does not know. ONNX Runtime's strings
    carry no shapes inside sequences and maps."""
    text = text.strip()
    dtype = FROM_ORT.get(text)
    if dtype is not None:
        return TensorType(dtype)
    for prefix, wrap in (("seq(", SequenceType), ("optional(", OptionalType)):
        if text.startswith(prefix) and text.endswith(")"):
            inner = value_type(text[len(prefix) : -1])
            return None if inner is None else wrap(inner)
    if text.startswith("map(") and text.endswith(")"):
        key, _, rest = text[4:-1].partition(",")
        try:
            key_type = DType.parse(key.strip())
        except ValueError:
            return None
        if key_type not in MAP_KEYS:
            return None
        value = value_type(rest)
        return None if value is None else MapType(key_type, value)
    return None


#: Types onnxruntime cannot take or return as numpy arrays; they travel as raw bits.
NARROW = frozenset(d for d in DType if not d.numpy_native and d is not DType.STRING)
_RAW = {8: np.uint8, 16: np.uint16}


def to_ortvalue(ort: Any, array: np.ndarray[Any, Any], dtype: DType) -> Any:
    """An OrtValue holding ``array``; byte-sized types share its memory, so keep ``array``
    alive while the value is in use."""
    if dtype not in NARROW:
        return ort.OrtValue.ortvalue_from_numpy(array)
    if dtype.bits >= 8:
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
            array.view(_RAW[dtype.bits]), dtype.onnx
        )
    # Sub-byte types: ml_dtypes keeps one element per byte (the code in the low bits); ONNX
    # packs them, the first element in the lowest bits.
    per_byte = 8 // dtype.bits
    codes = array.reshape(-1).view(np.uint8) & ((1 << dtype.bits) - 1)
    codes = np.pad(codes, (0, -codes.size % per_byte)).reshape(-1, per_byte)
    shifts = np.arange(per_byte, dtype=np.uint8) * dtype.bits
    packed = np.bitwise_or.reduce(codes << shifts, axis=1).astype(np.uint8)
    value = ort.OrtValue.ortvalue_from_shape_and_type(list(array.shape), dtype.onnx)
    if packed.size:
        ctypes.memmove(value.data_ptr(), packed.ctypes.data, packed.size)
    return value


def from_ortvalue(value: Any, dtype: DType) -> np.ndarray[Any, Any]:
    """A new numpy array (``ml_dtypes`` for the narrow types) holding ``value``'s data."""
    if dtype not in NARROW:
        array: np.ndarray[Any, Any] = value.numpy()
        return array
    shape: tuple[int, ...] = tuple(value.shape())
    size = int(value.tensor_size_in_bytes())
    raw = np.frombuffer(ctypes.string_at(value.data_ptr(), size) if size else b"", np.uint8)
    if dtype.bits >= 8:
        whole: np.ndarray[Any, Any] = raw.view(dtype.numpy).reshape(shape).copy()
        return whole
    per_byte = 8 // dtype.bits
    shifts = np.arange(per_byte, dtype=np.uint8) * dtype.bits
    codes = ((raw[:, None] >> shifts) & ((1 << dtype.bits) - 1)).astype(np.uint8).reshape(-1)
    count = int(np.prod(shape, dtype=np.int64))
    return codes[:count].view(dtype.numpy).reshape(shape)
