"""The user-facing Model: validates feeds, enforces the lifecycle, pools engine contexts.

``MAX_COPY_BYTES`` bounds the copy the core makes of a feed that is not C-contiguous (a
transposed or strided view, a ``numpy.broadcast_to`` result): a larger feed is refused with
:class:`~unirun.errors.InputError` before anything is allocated. ``None`` (the default) means
the ``UNIRUN_MAX_COPY_BYTES`` environment variable, else the machine's physical memory.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from ._calls import map_engine_error
from ._feeds import Answer, Feeds, shared
from ._runners import Runner, make_runner
from .backend import Capabilities, Context, Executable, ThreadSafety
from .device import Device
from .errors import InferenceError, ModelClosedError, UnirunError
from .options import CompileOptions
from .tensor import OnDevice, TensorSpec

if TYPE_CHECKING:
    from ._device_run import DeviceRunner
    from .artifact import Artifact
    from .cache import CacheStatus
    from .device_tensor import DeviceTensor

__all__ = ["MAX_COPY_BYTES", "Model"]

log = logging.getLogger("unirun")

Array = np.ndarray[Any, Any]
_ndarray = np.ndarray

#: The largest copy (bytes) made to turn a feed C-contiguous; None: ``UNIRUN_MAX_COPY_BYTES``,
#: else the physical memory.
MAX_COPY_BYTES: int | None = None


class Model:
    """A model loaded on one backend and device. Call it (or :meth:`infer`) with the inputs.

    Thread-safe: any number of threads may call :meth:`infer` at once; the core serialises or
    pools engine contexts as the backend requires. Use as a context manager, or call
    :meth:`close`, to release the engine's resources.

    Feeds are handed to the engine without copies when they are C-contiguous arrays of the
    input's dtype; other layouts are copied, up to ``unirun.model.MAX_COPY_BYTES`` (default:
    ``$UNIRUN_MAX_COPY_BYTES``, else the physical memory): a larger copy, such as a
    ``numpy.broadcast_to`` view of a huge batch, is an ``InputError`` before any allocation.
    """

    def __new__(cls, **kwargs: Any) -> Model:
        # A model with sequence, map or optional inputs/outputs checks those values in a
        # subclass, so that models of tensors only keep this class's hot path untouched.
        executable = kwargs.get("executable")
        if cls is Model and executable is not None:
            specs = (*executable.inputs, *executable.outputs)
            if any(getattr(spec, "kind", None) is not None for spec in specs):
                from ._value_model import ValueModel

                cls = ValueModel
        return super().__new__(cls)

    def __init__(
        self,
        *,
        backend: str,
        device: Device,
        executable: Executable,
        capabilities: Capabilities,
        artifact: Artifact,
        cache_status: CacheStatus,
        error_mapper: object = None,
    ) -> None:
        self.backend = backend
        self.device = device
        self.artifact = artifact
        self.cache_status: CacheStatus = cache_status
        self.capabilities = capabilities
        self.options: CompileOptions = artifact.manifest.options
        self.inputs: list[TensorSpec] = list(executable.inputs)
        self.outputs: list[TensorSpec] = list(executable.outputs)
        self._executable = executable
        self._mapper = error_mapper
        self._feeds = Feeds(self.inputs, self.options.shapes)
        # The hot path: (name, dtype, shapes already accepted) per input.
        self._fast = tuple((slot.name, slot.dtype, slot.ok) for slot in self._feeds.slots)
        self._names = tuple(slot.name for slot in self._feeds.slots)
        self._answers = tuple(Answer(spec, self.inputs) for spec in self.outputs)
        self._disagreed: set[str] = set()
        self._contexts: deque[Context] = deque()
        self._serial = threading.Lock()  # SERIAL backends: one call at a time, host or device
        self._device_runner: DeviceRunner | None = None
        self._run: Runner = make_runner(
            executable, capabilities.thread_safety, self._contexts, self._serial
        )
        self._closing = False  # close() began: no new work is accepted
        self._closed = False  # the engine is being released: calls are refused
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._workers: set[int] = set()  # thread ids of the pool's workers

    def __repr__(self) -> str:
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        state = " (closed)" if self._closing else ""
        return f"<unirun.Model {self.backend} on {self.device}{state}: {ins} -> {outs}>"

    # -- running ---------------------------------------------------------------------------

    @overload
    def infer(self, inputs: Any, *, outputs: Literal["numpy"] = ...) -> dict[str, Array]: ...
    @overload
    def infer(self, inputs: Any, *, outputs: Literal["device"]) -> dict[str, DeviceTensor]: ...
    def infer(self, inputs: Any, *, outputs: str = "numpy") -> dict[str, Any]:
        """Run the model. ``inputs``: a mapping name→array, a sequence in input order, or one
        array for a one-input model. Returns a new dict of output name → numpy array.

        The caller owns the outputs: none shares memory with an input (an output the engine
        returns as a view of a feed is copied). An output whose shape contradicts the declared
        one (rank, fixed dims, dims named like an input's, checked whenever an output comes
        back in a shape not seen before) is returned as the engine gave it, and a WARNING
        says so once per output.

        Device tensors (backends with device I/O on this device: TensorRT, ONNX Runtime on
        ``cuda``): feeds already on the model's GPU (torch, cupy, jax…, through ``__dlpack__``
        or ``__cuda_array_interface__``) are used in place, after the work queued to produce
        them; ``outputs="device"`` returns :class:`~unirun.device_tensor.DeviceTensor` s on the
        model's device, complete and owning their memory, for ``torch.from_dlpack`` /
        ``cupy.from_dlpack``. Elsewhere a device feed is an ``InputError`` saying where it
        lives and ``outputs="device"`` an ``OptionsError``."""
        if outputs != "numpy":
            return self._device_path().infer(inputs, outputs)
        # Hot path: a dict holding exactly the inputs, each a C-contiguous array of the
        # input's dtype in a shape already accepted, goes to the engine as it is (no new dict,
        # no conversion); such arrays in a list or tuple in input order, or alone for a
        # one-input model, go in a new dict; anything else takes the general checks. A closed
        # model is refused by ``self._run`` itself.
        fast = self._fast
        kind = type(inputs)
        if kind is dict:
            feeds: Mapping[str, Array] | None = inputs
        elif kind is _ndarray and len(fast) == 1:
            feeds = {self._names[0]: inputs}
        elif (kind is list or kind is tuple) and len(inputs) == len(fast):
            names = self._names  # lengths checked just above
            feeds = (
                {names[0]: inputs[0]} if len(names) == 1 else dict(zip(names, inputs, strict=False))
            )
        else:
            feeds = None
        if feeds is not None and len(feeds) == len(fast):
            for name, dtype, ok in fast:
                array = feeds.get(name)
                if (
                    type(array) is not _ndarray
                    or array.dtype is not dtype
                    or array.shape not in ok
                    or not array.flags.c_contiguous
                ):
                    feeds = None
                    break
        else:
            feeds = None
        if feeds is None:
            if self._closed:
                raise self._closed_error()
            try:
                feeds = self._feeds.check(inputs)
            except OnDevice as exc:
                if not self._runs_on_device(exc):
                    raise
                return self._device_path().infer(inputs, outputs)
        try:
            results = self._run(feeds)
        except Exception as exc:
            error = map_engine_error(self.backend, self._mapper, "run", exc)
            if error is exc:
                raise
            raise error from exc
        answers = self._answers
        if len(results) != len(answers):
            raise InferenceError(
                f"backend {self.backend!r} returned {len(results)} outputs for {len(answers)} "
                "declared ones; this is a plugin bug"
            )
        if len(answers) == 1:  # the common case, inlined: the same as _answer()
            answer, value = answers[0], results[0]
            if shared(value, feeds):
                value = value.copy()
            if value.shape not in answer.seen:
                self._check_answer(answer, value, feeds)
            return {answer.name: value}
        return {
            answer.name: self._answer(answer, value, feeds)
            for answer, value in zip(answers, results, strict=False)  # lengths checked above
        }

    def _answer(self, answer: Answer, value: Array, feeds: Mapping[str, Array]) -> Array:
        """``value`` as the caller may own it (copied if it shares a feed's memory), its shape
        checked against the declaration the first time it comes back in that shape."""
        if shared(value, feeds):
            value = value.copy()
        if value.shape not in answer.seen:
            self._check_answer(answer, value, feeds)
        return value

    __call__ = infer

    def infer_async(self, inputs: Any) -> Future[dict[str, Array]]:
        """Submit one request; returns a ``concurrent.futures.Future`` of the outputs.

        Do not modify the input arrays until the future is done."""
        return self._submit(self._executor(), inputs)

    def map(
        self, feeds: Iterable[Any], *, in_flight: int | None = None
    ) -> Iterator[dict[str, Array]]:
        """Run many requests with several in flight; yields the outputs in input order.

        An error names the item that failed (``map() item 3: ...``, its index in ``feeds``);
        the exception keeps its type."""
        pool = self._executor()
        window = in_flight or (pool._max_workers * 2)
        pending: deque[tuple[int, Future[dict[str, Array]]]] = deque()
        for index, item in enumerate(feeds):
            pending.append((index, self._submit(pool, item)))
            if len(pending) >= window:
                yield _result(*pending.popleft())
        while pending:
            yield _result(*pending.popleft())

    # -- lifecycle -------------------------------------------------------------------------

    def close(self, *, cancel: bool = False) -> None:
        """Release the engine's resources. Closing twice is harmless.

        Work submitted with :meth:`infer_async` or :meth:`map` runs to the end first; with
        ``cancel=True``, submitted work that has not started is cancelled instead (its futures
        raise ``concurrent.futures.CancelledError``). Calls already running finish; later ones
        raise :class:`~unirun.errors.ModelClosedError`. Called from a future's done-callback
        (or anything else running on the model's own threads), ``close`` returns at once and
        the resources are released when the last submitted call has returned."""
        with self._pool_lock:
            if self._closing:
                return
            self._closing = True
            pool, self._pool = self._pool, None
        if pool is None:
            self._release()
        elif threading.get_ident() in self._workers:
            # Joining the pool from one of its own threads would deadlock (or raise).
            pool.shutdown(wait=False, cancel_futures=cancel)
            threading.Thread(
                target=self._release_after, args=(pool,), name=f"unirun-{self.backend}-close"
            ).start()
        else:
            pool.shutdown(wait=True, cancel_futures=cancel)
            self._release()

    @property
    def device_label(self) -> str:
        """``device`` as shown to people: ``"auto → CPU"`` when the engine chose the device
        (an executable may expose the engine's choice as a string attribute ``engine_device``)."""
        chosen = getattr(self._executable, "engine_device", None)
        if isinstance(chosen, str) and chosen and chosen.lower() != str(self.device):
            return f"{self.device} → {chosen}"
        return str(self.device)

    @property
    def precision(self) -> str:
        """The precision the engine really computes in on this device (``"fp32"``, ``"fp16"``,
        ``"bf16"``); it differs from ``options.precision`` (the request) when the hardware
        could not honour the request."""
        return self.artifact.manifest.computed_precision or self.options.precision

    @property
    def closed(self) -> bool:
        return self._closing

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _runs_on_device(self, exc: OnDevice) -> bool:
        """Whether the device feed of ``exc`` lives where this model takes device tensors."""
        kind = self.device.kind
        return (
            exc.device is not None
            and exc.device.kind == kind
            and kind in self.capabilities.device_io
        )

    def _device_path(self) -> DeviceRunner:
        runner = self._device_runner
        if runner is None:
            from ._device_run import DeviceRunner

            runner = self._device_runner = DeviceRunner(self)
        return runner

    def _release(self) -> None:
        self._closed = True
        self._run = self._refuse  # drop the engine's callable: it goes with the executable
        while self._contexts:
            self._contexts.pop().close()
        self._executable.close()

    def _release_after(self, pool: ThreadPoolExecutor) -> None:
        pool.shutdown(wait=True)
        self._release()

    def _refuse(self, feeds: Mapping[str, Array]) -> Sequence[Array]:
        """The engine call of a closed model."""
        raise self._closed_error()

    def _closed_error(self) -> ModelClosedError:
        return ModelClosedError(f"this {self.backend} model was closed; load it again")

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._closing:
                raise self._closed_error()
            if self._pool is None:
                if self.capabilities.thread_safety is ThreadSafety.SERIAL:
                    workers = 1
                else:
                    workers = max(2, min(8, os.cpu_count() or 2))
                self._pool = ThreadPoolExecutor(
                    workers,
                    thread_name_prefix=f"unirun-{self.backend}",
                    initializer=_register_worker,
                    initargs=(self._workers,),
                )
            return self._pool

    def _submit(self, pool: ThreadPoolExecutor, inputs: Any) -> Future[dict[str, Array]]:
        try:
            return pool.submit(self.infer, inputs)
        except RuntimeError:  # "cannot schedule new futures after shutdown": closed meanwhile
            raise self._closed_error() from None

    def _check_answer(self, answer: Answer, value: Array, feeds: Mapping[str, Array]) -> None:
        why = answer.conflict(value.shape, feeds)
        if len(answer.seen) >= 256:  # shapes that vary without end (a growing sequence)
            answer.seen.clear()
        answer.seen[value.shape] = None
        if why is None or answer.name in self._disagreed:
            return
        self._disagreed.add(answer.name)
        log.warning(
            "backend %r returned output %r with shape %s, but the model declares %s (%s); the "
            "answer is passed on as computed: either the model's declared output shape or the "
            "engine is wrong (logged once per output)",
            self.backend,
            answer.name,
            value.shape,
            answer.spec,
            why,
        )


def _register_worker(workers: set[int]) -> None:
    workers.add(threading.get_ident())


def _result(index: int, future: Future[dict[str, Array]]) -> dict[str, Array]:
    try:
        return future.result()
    except UnirunError as exc:
        if len(exc.args) == 1:
            exc.args = (f"map() item {index}: {exc.args[0]}",)
        raise
