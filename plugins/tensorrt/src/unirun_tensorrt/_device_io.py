"""Tensors that live on a device, as plain values: a pointer, a shape, a dtype, where it lives.

:func:`from_object` reads them from anything exposing ``__cuda_array_interface__`` (torch,
cupy, numba, jax) or ``__dlpack__`` (the DLPack capsule is read with ctypes, so no array
library is needed). The execution context takes these directly, without a host round trip; this
is the seam through which the core's future device-tensor I/O (``outputs="device"``) reaches
the engine.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unirun.dtypes import DType
from unirun.errors import InputError

CPU, CUDA, CUDA_HOST, CUDA_MANAGED = 1, 2, 3, 13


@dataclass(frozen=True)
class DeviceTensor:
    """A dense, C-contiguous tensor at ``ptr``.

    ``device_type`` is DLPack's (1 CPU, 2 CUDA, 3 CUDA pinned host, 13 CUDA managed);
    ``stream`` is the CUDA stream whose queued work produces the data (None: ready now);
    ``owner`` keeps the producer's memory alive while this value is in use.
    """

    ptr: int
    shape: tuple[int, ...]
    dtype: DType
    device_type: int = CPU
    device_id: int = 0
    stream: int | None = None
    owner: Any = field(default=None, repr=False, compare=False)

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return (count * self.dtype.bits + 7) // 8

    @property
    def on_cuda(self) -> bool:
        return self.device_type in (CUDA, CUDA_MANAGED)


def from_numpy(array: np.ndarray[Any, Any]) -> DeviceTensor:
    return DeviceTensor(
        int(array.ctypes.data), tuple(array.shape), DType.from_numpy(array.dtype), owner=array
    )


def from_object(obj: Any, name: str, stream: int | None = None) -> DeviceTensor:
    """The tensor ``obj`` holds; ``stream`` is the consumer's CUDA stream (DLPack producers
    order their work before it). ``InputError`` names ``name`` for what cannot be used."""
    cai = getattr(obj, "__cuda_array_interface__", None)
    if isinstance(cai, dict):
        return _from_cai(cai, obj, name)
    if hasattr(obj, "__dlpack__"):
        return _from_dlpack(obj, name, stream)
    if isinstance(obj, np.ndarray):
        return from_numpy(np.ascontiguousarray(obj))
    raise InputError(
        f"input {name!r} is a {type(obj).__name__}, which exposes neither "
        "__cuda_array_interface__ nor __dlpack__",
        name,
    )


def _from_cai(cai: dict[str, Any], obj: Any, name: str) -> DeviceTensor:
    shape = tuple(int(d) for d in cai["shape"])
    dtype = np.dtype(cai["typestr"])
    strides = cai.get("strides")
    if strides is not None and tuple(strides) != _compact(shape, dtype.itemsize):
        raise InputError(f"input {name!r} is not C-contiguous; pass a contiguous tensor", name)
    try:
        kind = DType.from_numpy(dtype)
    except ValueError:
        raise InputError(
            f"input {name!r} has element type {dtype}, unknown to unirun", name
        ) from None
    return DeviceTensor(
        int(cai["data"][0]), shape, kind, CUDA, -1, _cai_stream(cai.get("stream")), owner=obj
    )


def _cai_stream(value: Any) -> int | None:
    # CAI v3: None = no ordering needed; 1 = the legacy default stream; 2 = per-thread default.
    return None if value is None else int(value)


def _compact(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


# -- DLPack --------------------------------------------------------------------------------------


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _Tensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _Device),
        ("ndim", ctypes.c_int32),
        ("dtype", _DataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


# DLPack type codes: 0 int, 1 uint, 2 float, 4 bfloat, 6 bool
_DL_TYPES: dict[tuple[int, int], DType] = {
    (2, 32): DType.FLOAT32,
    (2, 16): DType.FLOAT16,
    (2, 64): DType.FLOAT64,
    (4, 16): DType.BFLOAT16,
    (0, 8): DType.INT8,
    (0, 16): DType.INT16,
    (0, 32): DType.INT32,
    (0, 64): DType.INT64,
    (1, 8): DType.UINT8,
    (1, 16): DType.UINT16,
    (1, 32): DType.UINT32,
    (1, 64): DType.UINT64,
    (6, 8): DType.BOOL,
}
_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _from_dlpack(obj: Any, name: str, stream: int | None) -> DeviceTensor:
    device_type = int(obj.__dlpack_device__()[0]) if hasattr(obj, "__dlpack_device__") else CPU
    on_cuda = device_type in (CUDA, CUDA_MANAGED)
    try:
        capsule = obj.__dlpack__(stream=stream) if on_cuda and stream else obj.__dlpack__()
    except (BufferError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"input {name!r} cannot be exported through DLPack: {exc}", name) from exc
    # The capsule stays unconsumed: its destructor returns the memory to the producer once
    # this DeviceTensor (its owner) is gone.
    tensor = _Tensor.from_address(_get_pointer(capsule, b"dltensor"))
    shape = tuple(int(tensor.shape[i]) for i in range(tensor.ndim))
    kind = _DL_TYPES.get((tensor.dtype.code, tensor.dtype.bits))
    if kind is None or tensor.dtype.lanes != 1:
        raise InputError(
            f"input {name!r} has DLPack type code {tensor.dtype.code}, {tensor.dtype.bits} bits, "
            f"{tensor.dtype.lanes} lanes, which unirun does not exchange",
            name,
        )
    if tensor.strides and any(
        shape[i] != 1 and tensor.strides[i] != s for i, s in enumerate(_compact(shape, 1))
    ):
        raise InputError(f"input {name!r} is not C-contiguous; pass a contiguous tensor", name)
    return DeviceTensor(
        int(tensor.data or 0) + int(tensor.byte_offset),
        shape,
        kind,
        int(tensor.device.device_type),
        int(tensor.device.device_id),
        None,
        owner=(obj, capsule),
    )
