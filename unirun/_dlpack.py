"""DLPack capsules, read and written with ctypes, so that no array library is needed.

Only the unversioned ``DLManagedTensor`` (capsule name ``"dltensor"``) is used: every producer
returns it when the consumer passes no ``max_version``, and every consumer (numpy, torch, cupy,
jax, ONNX Runtime) accepts it.
"""

from __future__ import annotations

import ctypes
from typing import Any

from .dtypes import DType

__all__ = ["DEVICE_NAMES", "Header", "code", "export", "read"]

#: DLPack device types (``DLDeviceType``), for messages.
DEVICE_NAMES: dict[int, str] = {
    1: "cpu",
    2: "cuda",
    3: "cuda-pinned host memory",
    4: "OpenCL",
    7: "Vulkan",
    8: "Metal",
    9: "VPI",
    10: "ROCm",
    11: "ROCm-pinned host memory",
    12: "ext_dev",
    13: "cuda-managed memory",
    14: "oneAPI",
    15: "WebGPU",
    16: "Hexagon",
    17: "MAIA",
}

# DLPack type codes: 0 int, 1 uint, 2 float, 4 bfloat, 5 complex, 6 bool, 10-14 float8. Sub-byte
# types (int4, float4) are left out: producers disagree on how they are packed.
_CODES: dict[DType, tuple[int, int]] = {
    DType.FLOAT32: (2, 32),
    DType.FLOAT16: (2, 16),
    DType.FLOAT64: (2, 64),
    DType.BFLOAT16: (4, 16),
    DType.INT8: (0, 8),
    DType.INT16: (0, 16),
    DType.INT32: (0, 32),
    DType.INT64: (0, 64),
    DType.UINT8: (1, 8),
    DType.UINT16: (1, 16),
    DType.UINT32: (1, 32),
    DType.UINT64: (1, 64),
    DType.BOOL: (6, 8),
    DType.COMPLEX64: (5, 64),
    DType.COMPLEX128: (5, 128),
    DType.FLOAT8_E4M3FN: (10, 8),
    DType.FLOAT8_E4M3FNUZ: (11, 8),
    DType.FLOAT8_E5M2: (12, 8),
    DType.FLOAT8_E5M2FNUZ: (13, 8),
    DType.FLOAT8_E8M0: (14, 8),
}
_TYPES: dict[tuple[int, int], DType] = {code: dtype for dtype, code in _CODES.items()}


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


_Deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _Managed(ctypes.Structure):
    _fields_ = [("dl_tensor", _Tensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _Deleter)]


_NAME = b"dltensor"
_CapsuleDestructor = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_api = ctypes.pythonapi
_get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", _api)
)
_raw_get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", _api)
)
_raw_is_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_IsValid", _api)
)
_new_capsule = ctypes.PYFUNCTYPE(
    ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, _CapsuleDestructor
)(("PyCapsule_New", _api))

#: What an exported, not yet deleted DLManagedTensor keeps alive, by its address.
_exported: dict[int, tuple[Any, ...]] = {}


class Header:
    """What a DLPack capsule says about its tensor."""

    __slots__ = ("bits", "code", "device_id", "device_type", "lanes", "pointer", "shape", "strides")

    def __init__(self, tensor: _Tensor) -> None:
        self.pointer = int(tensor.data or 0) + int(tensor.byte_offset)
        self.device_type = int(tensor.device.device_type)
        self.device_id = int(tensor.device.device_id)
        self.shape = tuple(int(tensor.shape[i]) for i in range(tensor.ndim))
        self.strides = (
            tuple(int(tensor.strides[i]) for i in range(tensor.ndim)) if tensor.strides else None
        )
        self.code, self.bits, self.lanes = (
            int(tensor.dtype.code),
            int(tensor.dtype.bits),
            int(tensor.dtype.lanes),
        )

    @property
    def dtype(self) -> DType | None:
        return _TYPES.get((self.code, self.bits)) if self.lanes == 1 else None

    @property
    def contiguous(self) -> bool:
        """Row-major without gaps (dims of size 1 may carry any stride, as torch gives them)."""
        if self.strides is None:
            return True
        step = 1
        for size, stride in zip(reversed(self.shape), reversed(self.strides), strict=True):
            if size != 1 and stride != step:
                return False
            step *= size
        return True


def read(capsule: Any) -> Header:
    """The tensor an unconsumed ``"dltensor"`` capsule describes. The capsule is left
    unconsumed: its destructor returns the memory to the producer once it is gone, so keep it
    alive as long as the memory is used."""
    return Header(_Tensor.from_address(_get_pointer(capsule, _NAME)))


def code(dtype: DType) -> tuple[int, int] | None:
    """DLPack's ``(type code, bits)`` for ``dtype``, or None when it has none here."""
    return _CODES.get(dtype)


def export(
    pointer: int, shape: tuple[int, ...], dtype: DType, device: tuple[int, int], owner: Any
) -> Any:
    """A new ``"dltensor"`` capsule for a C-contiguous tensor; ``owner`` stays alive until the
    consumer deletes the tensor (or the capsule is dropped unconsumed)."""
    type_code = _CODES[dtype]
    ndim = len(shape)
    dims = (ctypes.c_int64 * ndim)(*shape)
    steps, step = [], 1
    for size in reversed(shape):
        steps.append(step)
        step *= size
    strides = (ctypes.c_int64 * ndim)(*reversed(steps))
    managed = _Managed()
    tensor = managed.dl_tensor
    tensor.data = pointer or None
    tensor.device = _Device(*device)
    tensor.ndim = ndim
    tensor.dtype = _DataType(type_code[0], type_code[1], 1)
    tensor.shape = ctypes.cast(dims, ctypes.POINTER(ctypes.c_int64))
    tensor.strides = ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64))
    tensor.byte_offset = 0
    managed.deleter = _delete_callback
    address = ctypes.addressof(managed)
    _exported[address] = (managed, dims, strides, owner)
    return _new_capsule(address, _NAME, _destroy_callback)


def _delete(address: int | None) -> None:
    # Called by the consumer (on any thread; ctypes takes the GIL) when it frees the tensor.
    if address is not None:
        _exported.pop(address, None)


def _destroy(capsule: int | None) -> None:
    # A consumer renames the capsule to "used_dltensor" and owns the tensor from then on; a
    # capsule that is still named "dltensor" was never consumed, so its tensor is ours to free.
    if capsule is not None and _raw_is_valid(capsule, _NAME):
        address = _raw_get_pointer(capsule, _NAME)
        if address is not None:
            _exported.pop(address, None)


# The C function pointers handed out; module globals, so they outlive every capsule.
_delete_callback = _Deleter(_delete)
_destroy_callback = _CapsuleDestructor(_destroy)
