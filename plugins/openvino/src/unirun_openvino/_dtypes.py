"""OpenVINO element type names (``Type.get_type_name()``) to unirun dtypes, and the bridge for
the types numpy lacks.

OpenVINO has bfloat16, float8, float4 and int4 tensors, but its numpy bridge does not: it
refuses ``ml_dtypes`` arrays and hands such outputs to numpy as float16 or packed int8 bits.
They cross as raw bits instead: an ``ov.Tensor`` of the OpenVINO type over a ``uint8``/``uint16``
view of the array (4-bit types packed two to a byte, the first element in the low nibble, as
OpenVINO and ONNX both store them), and outputs are read back into ``ml_dtypes`` arrays.

Absent on purpose: ``string`` (string tensors corrupt the heap at exit in 2026.4).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from unirun import DType

if TYPE_CHECKING:
    from unirun.options import Precision

Array = np.ndarray[Any, Any]

#: The types numpy lacks, by OpenVINO's name (FLOAT8_E4M3FN is OpenVINO's f8e4m3: no
#: infinities, one NaN). OpenVINO's ONNX reader refuses the fnuz floats and the 2-bit integers.
NARROW: dict[str, DType] = {
    "bf16": DType.BFLOAT16,
    "f8e4m3": DType.FLOAT8_E4M3FN,
    "f8e5m2": DType.FLOAT8_E5M2,
    "f8e8m0": DType.FLOAT8_E8M0,
    "f4e2m1": DType.FLOAT4_E2M1,
    "i4": DType.INT4,
    "u4": DType.UINT4,
}

#: OpenVINO's name (an attribute of ``ov.Type``) of each narrow type.
OV_NAME: dict[DType, str] = {dtype: name for name, dtype in NARROW.items()}

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
    **NARROW,
}

#: unirun precision -> OpenVINO INFERENCE_PRECISION_HINT. int8 models arrive as Q/DQ graphs,
#: which OpenVINO runs in int8 whatever the hint; the hint keeps the rest of the graph exact.
PRECISION_HINT: dict[str, str] = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}
#: what a compiled model reports as INFERENCE_PRECISION_HINT -> unirun precision. Only float
#: requests are compared with it: in an int8 build the hint covers what is not quantized.
PRECISION_OF: dict[str, Precision] = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}


#: Turns a C-contiguous array into the bits OpenVINO reads (a view, or a packed copy).
Encode = Callable[[Array], Array]
#: Reads an OpenVINO output tensor into a new array.
Decode = Callable[[Any], Array]


def encoder(dtype: DType) -> Encode:
    """How ``dtype``'s arrays are handed to OpenVINO: a view of their bits for byte-sized types
    (it shares the caller's memory), a packed copy for 4-bit ones."""
    if dtype.bits >= 8:
        unsigned = np.dtype(np.uint8 if dtype.bits == 8 else np.uint16)
        return lambda array: array.view(unsigned)
    return _pack


def decoder(dtype: DType) -> Decode:
    """How an OpenVINO output of ``dtype`` becomes a new ``ml_dtypes`` array."""
    target = dtype.numpy
    if dtype.bits >= 8:
        # .data holds the bits in a numpy type of the same width (float16 for bf16)
        return lambda tensor: tensor.data.view(target).copy()
    return functools.partial(_unpack, target)


def _pack(array: Array) -> Array:
    # ml_dtypes keeps one element per byte, its code in the low bits.
    codes = array.view(np.uint8).reshape(-1)
    if codes.size & 1:
        codes = np.append(codes, np.uint8(0))
    packed: Array = (codes[0::2] & 0x0F) | (codes[1::2] << 4)
    return packed


def _unpack(target: np.dtype[Any], tensor: Any) -> Array:
    raw = tensor.data.view(np.uint8)  # the packed bytes, one-dimensional
    codes = np.empty(raw.size * 2, np.uint8)
    codes[0::2] = raw & 0x0F
    codes[1::2] = raw >> 4
    dims = tensor.shape
    # Indexed: iterating an ov.Shape costs ~10 µs (it ends on an exception).
    shape = tuple([dims[axis] for axis in range(len(dims))])
    return codes[: tensor.size].view(target).reshape(shape)
