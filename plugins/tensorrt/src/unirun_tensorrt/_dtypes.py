"""TensorRT ``DataType`` member names to unirun dtypes and back: one table, no SDK import.

``trt.nptype`` raises for BF16, FP8, INT4 and FP4, so buffers are sized from the unirun dtype's
bit width instead; TensorRT packs the 4-bit types two to a byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unirun import DType

TO_TRT: dict[DType, str] = {
    DType.FLOAT32: "FLOAT",
    DType.FLOAT16: "HALF",
    DType.BFLOAT16: "BF16",
    DType.INT8: "INT8",
    DType.INT32: "INT32",
    DType.INT64: "INT64",
    DType.UINT8: "UINT8",
    DType.BOOL: "BOOL",
    DType.FLOAT8_E4M3FN: "FP8",
    DType.FLOAT8_E8M0: "E8M0",
    DType.INT4: "INT4",
    DType.FLOAT4_E2M1: "FP4",
}
FROM_TRT: dict[str, DType] = {name: dtype for dtype, name in TO_TRT.items()}

#: Types unirun exchanges with a TensorRT engine as network inputs and outputs. The narrow ones
#: above exist inside engines (weights, Q/DQ) but TensorRT does not take them as I/O.
IO_DTYPES: tuple[DType, ...] = (
    DType.FLOAT32,
    DType.FLOAT16,
    DType.BFLOAT16,
    DType.INT8,
    DType.INT32,
    DType.INT64,
    DType.UINT8,
    DType.BOOL,
)


def from_trt(data_type: Any) -> DType:
    """The unirun dtype of a ``trt.DataType`` member (or its name)."""
    name = data_type if isinstance(data_type, str) else str(getattr(data_type, "name", data_type))
    name = name.rsplit(".", 1)[-1]
    try:
        return FROM_TRT[name]
    except KeyError:
        raise ValueError(f"TensorRT data type {name} has no unirun equivalent") from None


def nbytes(dtype: DType, shape: Sequence[int]) -> int:
    """Bytes a dense tensor of ``shape`` takes in TensorRT's layout (4-bit types packed)."""
    count = 1
    for dim in shape:
        count *= int(dim)
    return (count * dtype.bits + 7) // 8
