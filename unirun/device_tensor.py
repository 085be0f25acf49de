"""Tensors wherever they live, as plain values: the device-tensor half of unirun's tensor I/O.

A :class:`DeviceTensor` is a pointer, a shape, a dtype, the :class:`~unirun.device.Device` that
holds the memory, the CUDA stream that orders it, and the object that owns the memory. It is what
``model.infer(x, outputs="device")`` returns, and what backends with device I/O receive
(``unirun.backend.SupportsDeviceIO``). :func:`from_object` reads one from anything exposing
``__dlpack__`` (torch, cupy, jax, numpy) or ``__cuda_array_interface__`` (cupy, numba, torch);
a ``DeviceTensor`` exports itself through both protocols, so ``torch.from_dlpack(t)`` and
``cupy.from_dlpack(t)`` take it without a copy.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _dlpack
from .device import Device
from .dtypes import DType
from .errors import InputError

__all__ = ["LEGACY_STREAM", "DeviceTensor", "from_object", "where"]

#: CUDA's legacy default stream, as DLPack and the CUDA array interface spell it. A device feed
#: is exported to unirun against it: the producer (torch, cupy…) orders its pending work before
#: this stream, and the engine orders its own stream after it.
LEGACY_STREAM = 1

_HOST = Device("cpu")
_DTYPES: dict[np.dtype[Any], DType] = {d.numpy: d for d in DType if d.numpy_native}
# DLPack device types whose memory a unirun device kind can address.
_KINDS = {1: "cpu", 3: "cpu", 2: "cuda", 13: "cuda"}


@dataclass(frozen=True)
class DeviceTensor:
    """A dense, C-contiguous tensor at ``pointer`` on ``device``.

    ``stream`` is the CUDA stream (a handle as an int; ``1`` the legacy default stream) whose
    queued work produces the data: read it only after that work (``None``: ready now). Tensors
    that unirun returns are complete (``stream`` is None). ``owner`` keeps the memory alive: the
    producer's object for a feed, the engine's allocation for an output; a ``DeviceTensor``
    owns what it points to for as long as it, or anything it was exported to, lives.

    Export: ``__dlpack__``/``__dlpack_device__`` (``torch.from_dlpack(t)``,
    ``cupy.from_dlpack(t)``, ``numpy.from_dlpack(t)`` for host tensors) and, on CUDA,
    ``__cuda_array_interface__`` (version 3). No copy is made either way.
    """

    pointer: int
    shape: tuple[int, ...]
    dtype: DType
    device: Device = _HOST
    stream: int | None = None
    owner: Any = field(default=None, repr=False, compare=False)

    @property
    def nbytes(self) -> int:
        return (self.size * self.dtype.bits + 7) // 8

    @property
    def size(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def on_host(self) -> bool:
        return self.device.kind == "cpu"

    @classmethod
    def from_numpy(cls, array: np.ndarray[Any, Any], dtype: DType | None = None) -> DeviceTensor:
        """A host tensor viewing ``array`` (made C-contiguous first if it is not); ``dtype``
        saves the lookup when the caller knows it."""
        array = np.ascontiguousarray(array)
        if dtype is None:
            dtype = _DTYPES.get(array.dtype) or DType.from_numpy(array.dtype)
        return cls(array.ctypes.data, array.shape, dtype, owner=array)

    def numpy(self) -> np.ndarray[Any, Any]:
        """The data of a host tensor as a numpy array: the owner itself when it is that array,
        else a copy. A tensor on a device raises ``InputError``: bring it to the host with its
        framework (``torch.from_dlpack(t).cpu()``, ``cupy.from_dlpack(t).get()``)."""
        if not self.on_host:
            raise InputError(
                f"this tensor lives on {self.device}; read it with a framework that reaches "
                "that device (torch.from_dlpack(t).cpu(), cupy.from_dlpack(t).get())"
            )
        owner = self.owner
        if (
            isinstance(owner, np.ndarray)
            and owner.flags.c_contiguous
            and int(owner.ctypes.data) == self.pointer
            and owner.dtype == self.dtype.numpy
            and owner.size == self.size
        ):
            same: np.ndarray[Any, Any] = owner.reshape(self.shape)
            return same
        raw = ctypes.string_at(self.pointer, self.nbytes) if self.nbytes else b""
        copied: np.ndarray[Any, Any] = np.frombuffer(raw, np.uint8).view(self.dtype.numpy)
        result: np.ndarray[Any, Any] = copied.reshape(self.shape).copy()
        return result

    # -- export ------------------------------------------------------------------------------

    def __dlpack_device__(self) -> tuple[int, int]:
        if self.on_host:
            return (1, 0)
        if self.device.kind == "cuda":
            return (2, self.device.ordinal)
        raise BufferError(f"unirun cannot export a tensor on {self.device} through DLPack")

    def __dlpack__(
        self,
        *,
        stream: int | None = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """A DLPack capsule sharing this tensor's memory (unversioned ``DLManagedTensor``, which
        consumers accept whatever ``max_version`` they ask for)."""
        device = self.__dlpack_device__()
        if copy:
            raise BufferError("unirun does not copy device tensors; export without copy=True")
        if dl_device is not None and tuple(int(v) for v in dl_device) != device:
            raise BufferError(
                f"this tensor lives on {self.device}; it cannot be exported elsewhere"
            )
        if _dlpack.code(self.dtype) is None:
            raise BufferError(f"DLPack has no type code unirun exchanges for {self.dtype}")
        return _dlpack.export(self.pointer, self.shape, self.dtype, device, self)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        if self.device.kind != "cuda":
            raise AttributeError("__cuda_array_interface__ is for tensors on a CUDA device")
        if not self.dtype.numpy_native:
            raise AttributeError(f"the CUDA array interface has no type string for {self.dtype}")
        return {
            "shape": self.shape,
            "typestr": self.dtype.numpy.str,
            "data": (self.pointer, False),
            "strides": None,
            "version": 3,
            "stream": self.stream,
        }


def where(value: Any) -> Device | None:
    """The device holding ``value``'s memory when that is not host memory; None for host
    memory and for objects that do not say (they are read as host arrays)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return None
    if isinstance(value, DeviceTensor):
        return None if value.on_host else value.device
    if hasattr(value, "__dlpack_device__"):
        try:
            kind, index = value.__dlpack_device__()
            kind, index = int(kind), int(index)
        except Exception:  # no answer, or not a (type, id) pair: let the host path decide
            return None
        if _KINDS.get(kind) == "cpu":
            return None
        return _device(kind, index)
    if _cuda_interface(value) is not None:
        return Device("cuda")
    return None


def from_object(value: Any, name: str, *, stream: int | None = None) -> DeviceTensor:
    """The tensor ``value`` holds, without a copy.

    ``stream`` is the consumer's CUDA stream: DLPack producers of CUDA tensors order their
    pending work before it, and the result carries it as its ``stream``. The CUDA array
    interface brings its own (``stream`` key). ``InputError`` names input ``name`` for what
    cannot be used: a strided view, an element type unirun does not exchange, memory on a device
    unirun has no kind for."""
    if isinstance(value, DeviceTensor):
        return value
    if hasattr(value, "__dlpack__"):
        return _from_dlpack(value, name, stream)
    cai = _cuda_interface(value)
    if cai is not None:
        return _from_cai(cai, value, name)
    raise InputError(
        f"input {name!r} is a {type(value).__name__}, which exposes neither __dlpack__ nor "
        "__cuda_array_interface__",
        name,
    )


def _device(kind: int, index: int) -> Device:
    unirun_kind = _KINDS.get(kind)
    if unirun_kind is None:
        raise ValueError(_dlpack.DEVICE_NAMES.get(kind, f"DLPack device type {kind}"))
    return _HOST if unirun_kind == "cpu" else Device(unirun_kind, max(index, 0))


def _cuda_interface(value: Any) -> dict[str, Any] | None:
    try:
        cai = getattr(value, "__cuda_array_interface__", None)
    except Exception:
        return None
    return cai if isinstance(cai, dict) else None


def _from_dlpack(value: Any, name: str, stream: int | None) -> DeviceTensor:
    try:
        kind = int(value.__dlpack_device__()[0]) if hasattr(value, "__dlpack_device__") else 1
    except Exception:
        kind = 1
    ordered = _KINDS.get(kind) == "cuda" and stream is not None
    try:
        if ordered:
            try:
                capsule = value.__dlpack__(stream=stream)
            except TypeError:  # a producer from before the stream argument
                capsule = value.__dlpack__()
        else:
            capsule = value.__dlpack__()
        header = _dlpack.read(capsule)
    except Exception as exc:  # the producer's own code runs here: it may raise anything
        raise InputError(
            f"input {name!r}: this {type(value).__name__} cannot be exported through DLPack "
            f"({type(exc).__name__}: {exc})",
            name,
        ) from exc
    try:
        device = _device(header.device_type, header.device_id)
    except ValueError as exc:
        raise InputError(
            f"input {name!r} lives on {exc} (DLPack device type {header.device_type}), which "
            "unirun cannot exchange; move it to the CPU or a CUDA GPU",
            name,
        ) from None
    dtype = header.dtype
    if dtype is None:
        raise InputError(
            f"input {name!r} has DLPack type code {header.code}, {header.bits} bits, "
            f"{header.lanes} lanes, which unirun does not exchange",
            name,
        )
    if not header.contiguous:
        raise InputError(
            f"input {name!r} is not C-contiguous (strides {header.strides}); pass a contiguous "
            "tensor (torch: .contiguous(), cupy: cupy.ascontiguousarray)",
            name,
        )
    # The capsule stays unconsumed: its destructor returns the memory to the producer once
    # this tensor (its owner) is gone.
    return DeviceTensor(
        header.pointer,
        header.shape,
        dtype,
        device,
        stream if ordered and device.kind != "cpu" else None,
        owner=(value, capsule),
    )


def _from_cai(cai: dict[str, Any], value: Any, name: str) -> DeviceTensor:
    try:
        shape = tuple(int(d) for d in cai["shape"])
        np_dtype = np.dtype(cai["typestr"])
        pointer = int(cai["data"][0] or 0)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(
            f"input {name!r} has a malformed __cuda_array_interface__ ({exc}); it needs shape, "
            "typestr and data",
            name,
        ) from None
    strides = cai.get("strides")
    if strides is not None and any(
        size != 1 and int(given) != want
        for size, given, want in zip(
            shape, strides, _compact(shape, np_dtype.itemsize), strict=False
        )
    ):
        raise InputError(
            f"input {name!r} is not C-contiguous (strides {tuple(strides)} bytes); pass a "
            "contiguous array",
            name,
        )
    try:
        dtype = DType.from_numpy(np_dtype)
    except ValueError:
        raise InputError(
            f"input {name!r} has element type {np_dtype}, unknown to unirun", name
        ) from None
    # CUDA array interface v3: no stream key or None means "no ordering needed"; 1 is the
    # legacy default stream, 2 the per-thread default stream, anything else a cudaStream_t.
    raw = cai.get("stream")
    return DeviceTensor(
        pointer, shape, dtype, Device("cuda"), None if raw is None else int(raw), owner=value
    )


def _compact(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))
