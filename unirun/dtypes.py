"""Element types: the ONNX set, with numpy equivalents (``ml_dtypes`` for the narrow floats)."""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np

__all__ = ["DType"]


class DType(str, Enum):
    """An ONNX tensor element type. The value is the numpy-style name (``"float32"``)."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    FLOAT64 = "float64"
    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    UINT8 = "uint8"
    UINT16 = "uint16"
    UINT32 = "uint32"
    UINT64 = "uint64"
    BOOL = "bool"
    STRING = "string"
    COMPLEX64 = "complex64"
    COMPLEX128 = "complex128"
    FLOAT8_E4M3FN = "float8_e4m3fn"
    FLOAT8_E4M3FNUZ = "float8_e4m3fnuz"
    FLOAT8_E5M2 = "float8_e5m2"
    FLOAT8_E5M2FNUZ = "float8_e5m2fnuz"
    FLOAT8_E8M0 = "float8_e8m0fnu"
    FLOAT4_E2M1 = "float4_e2m1fn"
    FLOAT6_E2M3 = "float6_e2m3fn"
    FLOAT6_E3M2 = "float6_e3m2fn"
    INT4 = "int4"
    UINT4 = "uint4"
    INT2 = "int2"
    UINT2 = "uint2"

    def __str__(self) -> str:
        return self.value

    @property
    def onnx(self) -> int:
        """The ``onnx.TensorProto.DataType`` code."""
        return _TO_ONNX[self]

    @property
    def numpy(self) -> np.dtype[Any]:
        """The numpy dtype that holds this type (``object`` for strings)."""
        found = _NUMPY.get(self)
        if found is None:
            found = _numpy_dtype(self)
            _NUMPY[self] = found
        return found

    @property
    def numpy_native(self) -> bool:
        """True if numpy itself has this type (False for bfloat16, float8, int4… which live in
        ``ml_dtypes``, and for strings, which numpy holds as objects)."""
        return self is not DType.STRING and hasattr(np, self.value)

    @property
    def is_float(self) -> bool:
        return self in _FLOATS

    @property
    def bits(self) -> int:
        """Bits per element (0 for strings)."""
        return _BITS[self]

    @classmethod
    def from_onnx(cls, code: int) -> DType:
        try:
            return _FROM_ONNX[code]
        except KeyError:
            raise ValueError(f"unknown ONNX element type code {code}") from None

    @classmethod
    def from_numpy(cls, dtype: Any) -> DType:
        """The DType of a numpy dtype (or anything ``numpy.dtype()`` accepts)."""
        dt = np.dtype(dtype)
        if dt.kind in "OUS":
            return cls.STRING
        try:
            return cls(dt.name)
        except ValueError:
            raise ValueError(f"numpy dtype {dt} has no ONNX equivalent") from None

    @classmethod
    def parse(cls, value: DType | str | np.dtype[Any] | type) -> DType:
        """Accept a DType, its name, an ONNX name (``"tensor(float)"``) or a numpy dtype."""
        if isinstance(value, DType):
            return value
        if isinstance(value, str):
            name = value.lower()
            if name.startswith("tensor(") and name.endswith(")"):
                name = name[7:-1]
            name = _ALIASES.get(name, name)
            try:
                return cls(name)
            except ValueError:
                raise ValueError(
                    f"unknown dtype {value!r}; expected one of {', '.join(d.value for d in cls)}"
                ) from None
        return cls.from_numpy(value)


# ONNX TensorProto codes (onnx/onnx.proto); kept here so translating a dtype never imports onnx.
_TO_ONNX: dict[DType, int] = {
    DType.FLOAT32: 1,
    DType.UINT8: 2,
    DType.INT8: 3,
    DType.UINT16: 4,
    DType.INT16: 5,
    DType.INT32: 6,
    DType.INT64: 7,
    DType.STRING: 8,
    DType.BOOL: 9,
    DType.FLOAT16: 10,
    DType.FLOAT64: 11,
    DType.UINT32: 12,
    DType.UINT64: 13,
    DType.COMPLEX64: 14,
    DType.COMPLEX128: 15,
    DType.BFLOAT16: 16,
    DType.FLOAT8_E4M3FN: 17,
    DType.FLOAT8_E4M3FNUZ: 18,
    DType.FLOAT8_E5M2: 19,
    DType.FLOAT8_E5M2FNUZ: 20,
    DType.UINT4: 21,
    DType.INT4: 22,
    DType.FLOAT4_E2M1: 23,
    DType.FLOAT8_E8M0: 24,
    DType.UINT2: 25,
    DType.INT2: 26,
    DType.FLOAT6_E2M3: 27,
    DType.FLOAT6_E3M2: 28,
}
_FROM_ONNX = {code: dt for dt, code in _TO_ONNX.items()}

_ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "boolean": "bool",
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "fp64": "float64",
    "str": "string",
    "float8e4m3fn": "float8_e4m3fn",
    "float8e4m3fnuz": "float8_e4m3fnuz",
    "float8e5m2": "float8_e5m2",
    "float8e5m2fnuz": "float8_e5m2fnuz",
    "float8e8m0": "float8_e8m0fnu",
    "float4e2m1": "float4_e2m1fn",
    "float6e2m3": "float6_e2m3fn",
    "float6e3m2": "float6_e3m2fn",
}

_FLOATS = frozenset(
    {
        DType.FLOAT32,
        DType.FLOAT16,
        DType.BFLOAT16,
        DType.FLOAT64,
        DType.FLOAT8_E4M3FN,
        DType.FLOAT8_E4M3FNUZ,
        DType.FLOAT8_E5M2,
        DType.FLOAT8_E5M2FNUZ,
        DType.FLOAT8_E8M0,
        DType.FLOAT4_E2M1,
        DType.FLOAT6_E2M3,
        DType.FLOAT6_E3M2,
    }
)

_BITS: dict[DType, int] = {
    DType.FLOAT32: 32,
    DType.FLOAT16: 16,
    DType.BFLOAT16: 16,
    DType.FLOAT64: 64,
    DType.INT8: 8,
    DType.INT16: 16,
    DType.INT32: 32,
    DType.INT64: 64,
    DType.UINT8: 8,
    DType.UINT16: 16,
    DType.UINT32: 32,
    DType.UINT64: 64,
    DType.BOOL: 8,
    DType.STRING: 0,
    DType.COMPLEX64: 64,
    DType.COMPLEX128: 128,
    DType.FLOAT8_E4M3FN: 8,
    DType.FLOAT8_E4M3FNUZ: 8,
    DType.FLOAT8_E5M2: 8,
    DType.FLOAT8_E5M2FNUZ: 8,
    DType.FLOAT8_E8M0: 8,
    DType.FLOAT4_E2M1: 4,
    DType.FLOAT6_E2M3: 6,
    DType.FLOAT6_E3M2: 6,
    DType.INT4: 4,
    DType.UINT4: 4,
    DType.INT2: 2,
    DType.UINT2: 2,
}

_NUMPY: dict[DType, np.dtype[Any]] = {}


def _numpy_dtype(dt: DType) -> np.dtype[Any]:
    if dt is DType.STRING:
        return np.dtype(object)
    import ml_dtypes  # the narrow floats and ints live there (onnx uses the same package)

    scalar = getattr(np, dt.value, None) or getattr(ml_dtypes, dt.value)
    found: np.dtype[Any] = np.dtype(scalar)
    return found
