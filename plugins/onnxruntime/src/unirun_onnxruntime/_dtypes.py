"""ONNX Runtime type strings to unirun dtypes."""

from __future__ import annotations

from unirun import DType

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
    "tensor(int4)": DType.INT4,
    "tensor(uint4)": DType.UINT4,
}
