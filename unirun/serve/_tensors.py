"""One tensor on the Open Inference Protocol v2 wire (:mod:`unirun.serve.protocol` decodes and
encodes whole requests and responses with it): the protocol's datatypes, a tensor's JSON and
binary data, and :class:`ProtocolError`, which every refusal raises."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from ..dtypes import DType

__all__ = [
    "ProtocolError",
    "datatype_of",
    "dtype_of",
    "tensor_from_binary",
    "tensor_from_json",
    "tensor_to_binary",
    "tensor_to_json",
]

_TO_OIP: dict[DType, str] = {
    DType.BOOL: "BOOL",
    DType.UINT8: "UINT8",
    DType.UINT16: "UINT16",
    DType.UINT32: "UINT32",
    DType.UINT64: "UINT64",
    DType.INT8: "INT8",
    DType.INT16: "INT16",
    DType.INT32: "INT32",
    DType.INT64: "INT64",
    DType.FLOAT16: "FP16",
    DType.FLOAT32: "FP32",
    DType.FLOAT64: "FP64",
    DType.BFLOAT16: "BF16",
    DType.STRING: "BYTES",
}
_FROM_OIP = {name: dt for dt, name in _TO_OIP.items()}
_NO_JSON = frozenset({"FP16", "BF16"})  # neither Triton nor KServe accepts these as JSON numbers
_LENGTH = struct.Struct("<I")


class ProtocolError(Exception):
    """A request the server refuses: ``status`` is the HTTP status, the message goes into the
    protocol's error body ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def datatype_of(dtype: DType) -> str:
    """The protocol's name for a unirun element type (``FP32``); ProtocolError if it has none."""
    try:
        return _TO_OIP[dtype]
    except KeyError:
        raise ProtocolError(
            f"element type {dtype} has no Open Inference Protocol datatype", 500
        ) from None


def dtype_of(datatype: str, tensor: str) -> DType:
    try:
        return _FROM_OIP[datatype]
    except KeyError:
        raise ProtocolError(
            f"input {tensor!r}: unknown datatype {datatype!r}; expected one of "
            f"{', '.join(_FROM_OIP)}"
        ) from None


def tensor_from_binary(
    name: str, datatype: str, shape: tuple[int, ...], chunk: memoryview
) -> np.ndarray[Any, Any]:
    count = math.prod(shape)
    if datatype == "BYTES":
        items: list[bytes] = []
        offset = 0
        while offset < len(chunk):
            if offset + 4 > len(chunk):
                raise ProtocolError(f"input {name!r}: truncated BYTES length prefix")
            (size,) = _LENGTH.unpack_from(chunk, offset)
            offset += 4
            if offset + size > len(chunk):
                raise ProtocolError(f"input {name!r}: a BYTES element runs past its data")
            items.append(bytes(chunk[offset : offset + size]))
            offset += size
        if len(items) != count:
            raise ProtocolError(
                f"input {name!r}: shape {list(shape)} holds {count} elements, the binary data "
                f"has {len(items)}"
            )
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    dtype = _FROM_OIP[datatype].numpy
    expected = count * dtype.itemsize
    if len(chunk) != expected:
        raise ProtocolError(
            f"input {name!r}: shape {list(shape)} of {datatype} needs {expected} bytes, "
            f"binary_data_size is {len(chunk)}"
        )
    data = np.frombuffer(chunk, dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype)
    if data.dtype != dtype:  # a big-endian host
        data = data.astype(dtype)
    return data.reshape(shape)


def tensor_from_json(
    name: str, datatype: str, shape: tuple[int, ...], data: Any
) -> np.ndarray[Any, Any]:
    if datatype in _NO_JSON:
        raise ProtocolError(
            f"input {name!r}: {datatype} data cannot be sent as JSON; use the binary data "
            "extension (tritonclient: set_data_from_numpy(..., binary_data=True))"
        )
    count = math.prod(shape)
    flat = _flatten(data, name)
    if len(flat) != count:
        raise ProtocolError(
            f"input {name!r}: shape {list(shape)} holds {count} elements, data has {len(flat)}"
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        for i, value in enumerate(flat):
            if not isinstance(value, str):
                raise ProtocolError(f"input {name!r}: BYTES data must be strings in JSON")
            array[i] = value.encode()
        return array.reshape(shape)
    dtype = _FROM_OIP[datatype].numpy
    kind = dtype.kind
    for value in flat:
        ok = (
            isinstance(value, bool)
            if kind == "b"
            else isinstance(value, int) and not isinstance(value, bool)
            if kind in "iu"
            else isinstance(value, (int, float)) and not isinstance(value, bool)
        )
        if not ok:
            want = {"b": "true/false", "i": "integers", "u": "integers"}.get(kind, "numbers")
            raise ProtocolError(
                f"input {name!r}: {datatype} data must be {want}, got {value!r:.40}"
            )
    if kind in "iu" and flat:
        info = np.iinfo(dtype)
        if min(flat) < info.min or max(flat) > info.max:
            raise ProtocolError(
                f"input {name!r}: a value is outside the range of {datatype} "
                f"[{info.min}, {info.max}]"
            )
    return np.array(flat, dtype=dtype).reshape(shape)


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not data or not isinstance(data[0], list):
        if any(isinstance(v, list) for v in data):
            raise ProtocolError(f"input {name!r}: ragged nested data")
        return data
    out: list[Any] = []
    for part in data:
        if not isinstance(part, list):
            raise ProtocolError(f"input {name!r}: ragged nested data")
        out.extend(_flatten(part, name))
    return out


def tensor_to_binary(array: np.ndarray[Any, Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        parts: list[bytes] = []
        for value in array.reshape(-1):
            raw = value if isinstance(value, bytes) else str(value).encode()
            parts.append(_LENGTH.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)
    little = (
        array.astype(array.dtype.newbyteorder("<"), copy=False)
        if array.dtype.itemsize > 1
        else array
    )
    return np.ascontiguousarray(little).tobytes()


def tensor_to_json(name: str, array: np.ndarray[Any, Any], datatype: str) -> list[Any]:
    if datatype in _NO_JSON:
        raise ProtocolError(
            f"output {name!r} is {datatype}, which cannot be sent as JSON; ask for it with "
            'parameters {"binary_data": true}'
        )
    flat = array.reshape(-1)
    if datatype == "BYTES":
        try:
            return [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
        except UnicodeDecodeError:
            raise ProtocolError(
                f"output {name!r} holds bytes that are not UTF-8; ask for it as binary data"
            ) from None
    values: list[Any] = flat.tolist()
    return values
