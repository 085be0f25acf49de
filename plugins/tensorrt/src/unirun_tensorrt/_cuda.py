"""CUDA through ``cuda.bindings.runtime`` (cuda-python): calls checked, memory that grows.

Every runtime call returns a tuple whose first item is a ``cudaError_t``; :func:`call` checks it
and raises the unirun error (see ``_errors.cuda_error``). Never ``from cuda import cudart``: that
shim is gone from cuda-python 13.
"""

from __future__ import annotations

import ctypes
import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from unirun.errors import DeviceError, InferenceError, UnirunError

from ._errors import cuda_error

Array = np.ndarray[Any, Any]


@functools.cache
def runtime() -> Any:
    from cuda.bindings import runtime as cudart

    return cudart


def error_name(err: Any) -> tuple[str, str]:
    """``(name, description)`` of a ``cudaError_t``."""
    rt = runtime()
    name = rt.cudaGetErrorName(err)[1]
    text = rt.cudaGetErrorString(err)[1]
    return (
        name.decode() if isinstance(name, bytes) else str(name),
        text.decode() if isinstance(text, bytes) else str(text),
    )


def call(
    fn: Callable[..., Any], *args: Any, what: str, error: type[UnirunError] = InferenceError
) -> Any:
    """Run one CUDA runtime call; its result (None, one value, or a tuple), or the error."""
    result = fn(*args)
    err = result[0]
    if int(err) != 0:
        raise cuda_error(*error_name(err), what, error)
    if len(result) == 1:
        return None
    return result[1] if len(result) == 2 else tuple(result[1:])


# -- devices and versions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    """One CUDA device as plain values."""

    ordinal: int
    name: str
    compute_capability: str  #: ``"9.0"``
    memory: int  #: bytes

    @property
    def identity(self) -> str:
        """What a plan depends on: the GPU model and its compute capability."""
        return f"{self.name} (compute capability {self.compute_capability})"


def device_count() -> int:
    return int(call(runtime().cudaGetDeviceCount, what="cudaGetDeviceCount", error=DeviceError))


def gpu(ordinal: int) -> Gpu:
    rt = runtime()
    props = call(
        rt.cudaGetDeviceProperties, ordinal, what="cudaGetDeviceProperties", error=DeviceError
    )
    raw = props.name
    name = raw.split(b"\0", 1)[0].decode(errors="replace") if isinstance(raw, bytes) else raw
    return Gpu(
        ordinal, str(name).strip(), f"{props.major}.{props.minor}", int(props.totalGlobalMem)
    )


def gpus() -> list[Gpu]:
    return [gpu(i) for i in range(device_count())]


def runtime_version() -> str:
    """The CUDA runtime cuda-bindings carries, as ``"13.5"``."""
    return _version(call(runtime().cudaRuntimeGetVersion, what="cudaRuntimeGetVersion"))


def driver_version() -> str | None:
    """The CUDA version the installed driver supports (``"13.0"``), or None without a driver."""
    value = call(runtime().cudaDriverGetVersion, what="cudaDriverGetVersion")
    return _version(value) if value else None


def _version(value: int) -> str:
    return f"{int(value) // 1000}.{int(value) % 1000 // 10}"


def set_device(ordinal: int) -> None:
    """Make ``ordinal`` current for this thread (CUDA's current device is per thread)."""
    call(runtime().cudaSetDevice, ordinal, what=f"cudaSetDevice({ordinal})", error=DeviceError)


# -- streams and memory --------------------------------------------------------------------------


class Stream:
    """A non-blocking CUDA stream: one per execution context."""

    def __init__(self) -> None:
        rt = runtime()
        self._stream: Any = call(
            rt.cudaStreamCreateWithFlags, rt.cudaStreamNonBlocking, what="cudaStreamCreate"
        )
        self.handle = int(self._stream)

    def synchronize(self) -> None:
        call(runtime().cudaStreamSynchronize, self._stream, what="cudaStreamSynchronize")

    def wait_for(self, producer: int) -> None:
        """Order this stream after the work queued so far on stream ``producer`` (a handle)."""
        rt = runtime()
        event = call(rt.cudaEventCreateWithFlags, rt.cudaEventDisableTiming, what="cudaEventCreate")
        try:
            call(rt.cudaEventRecord, event, producer, what="cudaEventRecord")
            call(rt.cudaStreamWaitEvent, self._stream, event, 0, what="cudaStreamWaitEvent")
        finally:
            rt.cudaEventDestroy(event)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            runtime().cudaStreamDestroy(stream)


class DeviceBuffer:
    """Device memory that is reused while it is big enough and reallocated when it is not."""

    def __init__(self) -> None:
        self.ptr = 0
        self.capacity = 0

    def ensure(self, nbytes: int) -> int:
        """A pointer to at least ``nbytes`` (never 0: TensorRT refuses null addresses)."""
        if nbytes > self.capacity or self.ptr == 0:
            self.free()
            size = max(nbytes, 1)
            self.ptr = int(call(runtime().cudaMalloc, size, what=f"cudaMalloc({size} bytes)"))
            self.capacity = size
        return self.ptr

    def free(self) -> None:
        ptr, self.ptr, self.capacity = self.ptr, 0, 0
        if ptr:
            runtime().cudaFree(ptr)


class Owned:
    """Device memory handed to a caller (an output tensor's owner): taken from ``buffer``,
    which is left empty, and freed when this object is collected."""

    def __init__(self, buffer: DeviceBuffer) -> None:
        self.ptr, self.capacity = buffer.ptr, buffer.capacity
        buffer.ptr, buffer.capacity = 0, 0
        self._finalizer = weakref.finalize(self, _free, self.ptr)
        self._finalizer.atexit = False  # at exit the process's memory goes with the driver

    def free(self) -> None:
        self._finalizer()


def _free(ptr: int) -> None:
    if ptr:
        runtime().cudaFree(ptr)


class PinnedBuffer:
    """Page-locked host memory for staging copies; grows like :class:`DeviceBuffer`."""

    def __init__(self) -> None:
        self.ptr = 0
        self.capacity = 0

    def view(self, nbytes: int) -> Array:
        """A ``uint8`` numpy view of the first ``nbytes`` (valid until the next growth)."""
        if nbytes > self.capacity or self.ptr == 0:
            self.free()
            size = max(nbytes, 1)
            self.ptr = int(call(runtime().cudaMallocHost, size, what=f"cudaMallocHost({size})"))
            self.capacity = size
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(self.ptr))

    def free(self) -> None:
        ptr, self.ptr, self.capacity = self.ptr, 0, 0
        if ptr:
            runtime().cudaFreeHost(ptr)


def copy_to_device(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    rt = runtime()
    kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
    call(rt.cudaMemcpyAsync, dst, src, nbytes, kind, stream.handle, what="cudaMemcpyAsync H2D")


def copy_to_host(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    rt = runtime()
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    call(rt.cudaMemcpyAsync, dst, src, nbytes, kind, stream.handle, what="cudaMemcpyAsync D2H")
