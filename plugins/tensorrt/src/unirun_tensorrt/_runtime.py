"""A deserialized TensorRT engine and its execution contexts: the named-tensor API
(``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) on a stream per context.

Engine-only: no unirun contract types here, only plain values (:class:`DeviceTensor`, numpy
arrays, profiles), so the contract glue in ``backend.py`` stays thin.

Memory: each context owns a device buffer per I/O tensor, reused while it is big enough and
reallocated when a larger shape arrives, and page-locked host buffers that stage numpy inputs
and outputs. Outputs whose size is known only while running (NonZero, NMS…) — and every output
with a dynamic engine shape — get their memory from an ``IOutputAllocator``.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from unirun.dtypes import DType
from unirun.errors import ArtifactError, DeviceError, InferenceError, InputError

from . import _cuda, _engine, _profiles
from ._device_io import CUDA_HOST, DeviceTensor
from ._dtypes import from_trt, nbytes
from ._errors import trim

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class IOTensor:
    name: str
    is_input: bool
    dtype: DType
    shape: tuple[int, ...]  #: as the engine declares it, -1 for dynamic dimensions

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.shape)


class Engine:
    """One ``ICudaEngine`` on CUDA device ``ordinal``; shared by all its contexts."""

    def __init__(self, plan: bytes, ordinal: int, profiles: Sequence[_profiles.Profile]) -> None:
        self.ordinal = ordinal
        self.profiles = list(profiles)
        _cuda.set_device(ordinal)
        with _engine.capture.collect() as lines:
            engine = _engine.runtime().deserialize_cuda_engine(plan)
        if engine is None:
            raise ArtifactError(
                "TensorRT cannot deserialize the plan: "
                + trim("; ".join(lines) or "it logged no reason")
                + "; recompile the ONNX model here",
                field="files",
            )
        self.engine: Any = engine
        trt = _engine.trt()
        self.io = [
            IOTensor(
                name,
                engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                from_trt(engine.get_tensor_dtype(name)),
                tuple(int(d) for d in engine.get_tensor_shape(name)),
            )
            for name in (engine.get_tensor_name(i) for i in range(engine.num_io_tensors))
        ]

    def create_context(self) -> Context:
        return Context(self)


class _Outputs:
    """What an output allocator does, without TensorRT: memory per output, grown on request,
    and the shapes TensorRT reports. A failure is kept (TensorRT callbacks must not raise) and
    raised by :meth:`check` after the run."""

    def __init__(self) -> None:
        self.buffers: dict[str, _cuda.DeviceBuffer] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.error: Exception | None = None

    def allocate(self, name: str, size: int) -> int:
        try:
            return self.buffers.setdefault(name, _cuda.DeviceBuffer()).ensure(size)
        except Exception as exc:
            self.error = exc
            return 0

    def notify(self, name: str, shape: Sequence[int]) -> None:
        self.shapes[name] = tuple(int(d) for d in shape)

    def check(self) -> None:
        error, self.error = self.error, None
        if error is not None:
            raise error

    def free(self) -> None:
        for buffer in self.buffers.values():
            buffer.free()


@functools.cache
def _allocator_class() -> type:
    trt = _engine.trt()

    class OutputAllocator(trt.IOutputAllocator):  # type: ignore[misc,name-defined]
        def __init__(self, outputs: _Outputs) -> None:
            trt.IOutputAllocator.__init__(self)
            self.outputs = outputs

        def reallocate_output(self, name: str, memory: int, size: int, alignment: int) -> int:
            return self.outputs.allocate(name, size)

        def reallocate_output_async(
            self, name: str, memory: int, size: int, alignment: int, stream: int
        ) -> int:
            return self.outputs.allocate(name, size)

        def notify_shape(self, name: str, shape: Any) -> None:
            self.outputs.notify(name, shape)

    return OutputAllocator


class Context:
    """One ``IExecutionContext`` with its own stream and buffers; never used by two threads at
    once (the core pools contexts)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ordinal = engine.ordinal
        _cuda.set_device(self._ordinal)
        with _engine.capture.collect() as lines:
            context = engine.engine.create_execution_context()
        if context is None:
            raise DeviceError(
                "TensorRT cannot create an execution context (out of GPU memory?): "
                + trim("; ".join(lines) or "no reason logged")
            )
        self._context: Any = context
        self._stream = _cuda.Stream()
        self._inputs = [t for t in engine.io if t.is_input]
        self._outputs = [t for t in engine.io if not t.is_input]
        self._device = {t.name: _cuda.DeviceBuffer() for t in engine.io}
        self._host = {t.name: _cuda.PinnedBuffer() for t in engine.io}
        self._allocated = _Outputs()
        self._allocator = None
        if any(t.dynamic for t in self._outputs):
            self._allocator = _allocator_class()(self._allocated)
            for t in self._outputs:
                if t.dynamic:
                    context.set_output_allocator(t.name, self._allocator)
        self._profile = 0
        self._finalizer = weakref.finalize(
            self,
            _release,
            self._stream,
            [*self._device.values(), *self._host.values()],
            self._allocated,
        )

    # -- running -------------------------------------------------------------------------------

    def infer(self, feeds: Mapping[str, Array]) -> list[Array]:
        """Host arrays in, new host arrays out (staged through page-locked memory)."""
        stream = self._stream
        tensors = {}
        for t in self._inputs:
            array = feeds[t.name]
            size = array.nbytes
            pinned = self._host[t.name]
            if size:
                np.copyto(pinned.view(size), array.reshape(-1).view(np.uint8))
            ptr = self._device[t.name].ensure(size)
            if size:
                _cuda.copy_to_device(ptr, pinned.ptr, size, stream)
            tensors[t.name] = DeviceTensor(ptr, array.shape, t.dtype, device_id=self._ordinal)
        outputs = self._run(tensors, staged=True)
        results = []
        for t, out in zip(self._outputs, outputs, strict=True):
            size = out.nbytes
            pinned = self._host[t.name]
            view = pinned.view(size)
            if size:
                _cuda.copy_to_host(pinned.ptr, out.ptr, size, stream)
            results.append((view, out))
        stream.synchronize()
        # Copy out of the pinned buffers: the next call reuses them.
        return [view.view(out.dtype.numpy).reshape(out.shape).copy() for view, out in results]

    def execute(self, inputs: Mapping[str, DeviceTensor]) -> list[DeviceTensor]:
        """Device tensors in, device tensors out, enqueued on this context's stream.

        Inputs on this GPU are used in place (the stream first waits for each input's producer
        stream); host inputs are copied. The outputs live in this context's buffers: valid
        until its next call, ready once :meth:`synchronize` returns (or after waiting on
        ``stream``)."""
        tensors = {}
        for t in self._inputs:
            given = inputs[t.name]
            if given.on_cuda:
                if given.device_id not in (-1, self._ordinal):
                    raise InputError(
                        f"input {t.name!r} lives on cuda:{given.device_id}, but the model runs "
                        f"on cuda:{self._ordinal}; move it there first",
                        t.name,
                    )
                if given.stream not in (None, self._stream.handle):
                    self._stream.wait_for(given.stream)
                tensors[t.name] = given
                continue
            if given.device_type not in (1, CUDA_HOST):
                raise InputError(
                    f"input {t.name!r} lives on DLPack device type {given.device_type}, which "
                    "TensorRT cannot read",
                    t.name,
                )
            ptr = self._device[t.name].ensure(given.nbytes)
            if given.nbytes:
                _cuda.copy_to_device(ptr, given.ptr, given.nbytes, self._stream)
            tensors[t.name] = DeviceTensor(ptr, given.shape, t.dtype, device_id=self._ordinal)
        return self._run(tensors, staged=False)

    @property
    def stream(self) -> int:
        return self._stream.handle

    def synchronize(self) -> None:
        self._stream.synchronize()

    def _run(self, inputs: Mapping[str, DeviceTensor], *, staged: bool) -> list[DeviceTensor]:
        _cuda.set_device(self._ordinal)
        context, stream = self._context, self._stream
        if context is None:
            raise InferenceError("this TensorRT execution context was closed")
        self._select_profile({n: t.shape for n, t in inputs.items()})
        for t in self._inputs:
            tensor = inputs[t.name]
            if tensor.dtype is not t.dtype:
                raise InputError(
                    f"input {t.name!r} is {tensor.dtype}, but the engine takes {t.dtype}", t.name
                )
            if not context.set_input_shape(t.name, tensor.shape):
                raise InputError(
                    f"TensorRT refused shape {tensor.shape} for input {t.name!r} (profile "
                    f"{self._profile}); the engine was built for {self._bounds(t.name)}",
                    t.name,
                )
            context.set_tensor_address(t.name, tensor.ptr or self._device[t.name].ensure(1))
        shapes: dict[str, tuple[int, ...]] = {}
        for t in self._outputs:
            if t.dynamic:
                continue
            shape = tuple(int(d) for d in context.get_tensor_shape(t.name))
            shapes[t.name] = shape
            context.set_tensor_address(t.name, self._device[t.name].ensure(nbytes(t.dtype, shape)))
        self._allocated.shapes.clear()
        with _engine.capture.collect() as lines:
            ok = context.execute_async_v3(stream.handle)
        self._allocated.check()
        if not ok:
            raise InferenceError(
                "TensorRT failed to run the model: " + trim("; ".join(lines) or "no reason logged")
            )
        outputs = []
        for t in self._outputs:
            if t.dynamic:
                shape = self._allocated.shapes.get(t.name) or tuple(
                    int(d) for d in context.get_tensor_shape(t.name)
                )
                ptr = (
                    self._allocated.buffers[t.name].ptr if t.name in self._allocated.buffers else 0
                )
            else:
                shape, ptr = shapes[t.name], self._device[t.name].ptr
            outputs.append(
                DeviceTensor(
                    ptr, shape, t.dtype, 2, self._ordinal, None if staged else stream.handle
                )
            )
        return outputs

    def _select_profile(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        profiles = self._engine.profiles
        if len(profiles) < 2:
            return
        index = _profiles.select(profiles, shapes)
        if index != self._profile:
            if not self._context.set_optimization_profile_async(index, self._stream.handle):
                raise InferenceError(f"TensorRT refused to switch to optimisation profile {index}")
            self._profile = index

    def _bounds(self, name: str) -> str:
        profiles = self._engine.profiles
        if not profiles or name not in profiles[self._profile]:
            return "a fixed shape"
        lo, _, hi = profiles[self._profile][name]
        return f"min {lo}, max {hi}"

    def close(self) -> None:
        self._context = None
        self._finalizer()


def _release(
    stream: _cuda.Stream, buffers: list[_cuda.DeviceBuffer | _cuda.PinnedBuffer], outputs: _Outputs
) -> None:
    with contextlib.suppress(Exception):  # a dead device: free what can be freed
        stream.synchronize()
    for buffer in buffers:
        buffer.free()
    outputs.free()
    stream.close()
