"""A deserialized TensorRT engine and its execution contexts: the named-tensor API
(``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) on a stream per context.

Engine-only: no unirun contract types here, only plain values (unirun's
:class:`~unirun.device_tensor.DeviceTensor`, numpy arrays, profiles), so the contract glue in
``backend.py`` stays thin.

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

from unirun.device import Device
from unirun.device_tensor import DeviceTensor
from unirun.dtypes import DType
from unirun.errors import ArtifactError, DeviceError, InferenceError, InputError

from . import _cuda, _engine, _profiles
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
        # The dicts themselves, not their values now: device buffers are handed over to
        # outputs and replaced, and only the current ones are the context's to free.
        self._finalizer = weakref.finalize(
            self, _release, self._stream, (self._device, self._host), self._allocated
        )

    # -- running -------------------------------------------------------------------------------

    def infer(self, feeds: Mapping[str, Array]) -> list[Array]:
        """Host arrays in, new host arrays out (staged through page-locked memory)."""
        tensors = {t.name: self._stage_in(t, feeds[t.name]) for t in self._inputs}
        return self._stage_out(self._run(tensors))

    def execute(self, inputs: Mapping[str, DeviceTensor], *, on_device: bool) -> list[DeviceTensor]:
        """Tensors in host or device memory in; outputs on this GPU (``on_device``) or in host
        memory, complete when this returns.

        Inputs on this GPU are used in place, after this context's stream has waited for each
        input's producer stream; host inputs are staged in. Device outputs are handed over: the
        memory TensorRT wrote becomes the output's (freed when its owner is collected) and the
        context allocates anew on its next call, so no later call overwrites an output."""
        tensors: dict[str, DeviceTensor] = {}
        waited: set[int] = set()
        for t in self._inputs:
            given = inputs[t.name]
            if given.on_host:
                tensors[t.name] = self._stage_in(t, given.numpy())
                continue
            if given.device.kind != "cuda" or given.device.index not in (None, self._ordinal):
                raise InputError(
                    f"input {t.name!r} lives on {given.device}, but the model runs on "
                    f"cuda:{self._ordinal}; move it there first",
                    t.name,
                )
            stream = given.stream
            if stream is not None and stream != self._stream.handle and stream not in waited:
                self._stream.wait_for(stream)
                waited.add(stream)
            tensors[t.name] = given
        outputs = self._run(tensors)
        if not on_device:
            return [DeviceTensor.from_numpy(a) for a in self._stage_out(outputs)]
        device = Device("cuda", self._ordinal)
        handed = [
            DeviceTensor(out.pointer, out.shape, out.dtype, device, owner=self._hand_over(t))
            for t, out in zip(self._outputs, outputs, strict=True)
        ]
        self._stream.synchronize()
        return handed

    def _stage_in(self, t: IOTensor, array: Array) -> DeviceTensor:
        size = array.nbytes
        pinned = self._host[t.name]
        if size:
            np.copyto(pinned.view(size), array.reshape(-1).view(np.uint8))
        ptr = self._device[t.name].ensure(size)
        if size:
            _cuda.copy_to_device(ptr, pinned.ptr, size, self._stream)
        return DeviceTensor(ptr, tuple(array.shape), t.dtype, Device("cuda", self._ordinal))

    def _stage_out(self, outputs: Sequence[DeviceTensor]) -> list[Array]:
        stream = self._stream
        views = []
        for t, out in zip(self._outputs, outputs, strict=True):
            size = out.nbytes
            pinned = self._host[t.name]
            views.append(pinned.view(size))
            if size:
                _cuda.copy_to_host(pinned.ptr, out.pointer, size, stream)
        stream.synchronize()
        # Copy out of the pinned buffers: the next call reuses them.
        return [
            view.view(out.dtype.numpy).reshape(out.shape).copy()
            for view, out in zip(views, outputs, strict=True)
        ]

    def _hand_over(self, t: IOTensor) -> _cuda.Owned:
        """The memory output ``t`` was written to, now the caller's; the context starts afresh."""
        if t.name in self._allocated.buffers:
            return _cuda.Owned(self._allocated.buffers.pop(t.name))
        buffer, self._device[t.name] = self._device[t.name], _cuda.DeviceBuffer()
        return _cuda.Owned(buffer)

    @property
    def stream(self) -> int:
        return self._stream.handle

    def synchronize(self) -> None:
        self._stream.synchronize()

    def _run(self, inputs: Mapping[str, DeviceTensor]) -> list[DeviceTensor]:
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
            context.set_tensor_address(t.name, tensor.pointer or self._device[t.name].ensure(1))
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
        device = Device("cuda", self._ordinal)
        outputs = []
        for t in self._outputs:
            if t.dynamic:
                shape = self._allocated.shapes.get(t.name) or tuple(
                    int(d) for d in context.get_tensor_shape(t.name)
                )
                # An empty output may have been given no memory at all (pointer 0).
                ptr = self._allocated.buffers.setdefault(t.name, _cuda.DeviceBuffer()).ptr
            else:
                shape, ptr = shapes[t.name], self._device[t.name].ptr
            outputs.append(DeviceTensor(ptr, shape, t.dtype, device))
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
    stream: _cuda.Stream,
    buffers: tuple[Mapping[str, _cuda.DeviceBuffer], Mapping[str, _cuda.PinnedBuffer]],
    outputs: _Outputs,
) -> None:
    with contextlib.suppress(Exception):  # a dead device: free what can be freed
        stream.synchronize()
    for group in buffers:
        for buffer in group.values():
            buffer.free()
    outputs.free()
    stream.close()
