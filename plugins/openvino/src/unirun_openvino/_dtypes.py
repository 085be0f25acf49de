"""OpenVINO element type names (``Type.get_type_name()``) to unirun dtypes.

Absent on purpose: ``bf16`` (OpenVINO's Python API hands bf16 tensors to numpy as float16, which
reinterprets the bits) and ``string`` (string tensors corrupt the heap at exit in 2026.4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unirun import DType

if TYPE_CHECKING:
    from unirun.options import Precision

FROM_OV: dict[str, DType] = {
    "f32": DType.FLOAT32,
    "f16": DType.FLOAT16,
    "f64": DType.FLOAT64,
    "i8": DType.INT8,
    "i16": DType.INT16,
    "i32": DType.INT32,
    "i64": DType.INT64,
    "u8": DType.UINT8,
    "u16": DType.UINT16,
    "u32": DType.UINT32,
    "u64": DType.UINT64,
    "boolean": DType.BOOL,
}

#: unirun precision -> OpenVINO INFERENCE_PRECISION_HINT. int8 models arrive as Q/DQ graphs,
#: which OpenVINO runs in int8 whatever the hint; the hint keeps the rest of the graph exact.
PRECISION_HINT: dict[str, str] = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}
#: what a compiled model reports as INFERENCE_PRECISION_HINT -> unirun precision. Only float
#: requests are compared with it: in an int8 build the hint covers what is not quantized.
PRECISION_OF: dict[str, Precision] = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}
