"""The user-facing Model: validates feeds, enforces the lifecycle, pools engine contexts."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ._calls import map_engine_error
from .backend import Capabilities, Context, Executable, ThreadSafety
from .device import Device
from .errors import InferenceError, InputError, ModelClosedError
from .options import CompileOptions, ShapeRange
from .tensor import TensorSpec, as_array

if TYPE_CHECKING:
    from .artifact import Artifact
    from .cache import CacheStatus

__all__ = ["Model"]

Array = np.ndarray[Any, Any]
Runner = Callable[[Mapping[str, Array]], Sequence[Array]]


class _Slot:
    """One input, with everything its per-call check needs resolved ahead of time."""

    __slots__ = ("bounds", "checks", "choices", "dtype", "name", "rank", "spec", "static")

    def __init__(self, spec: TensorSpec, bounds: ShapeRange | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.dtype = spec.dtype.numpy
        self.bounds = bounds
        self.rank = spec.rank if bounds is None else bounds.rank
        checks: list[tuple[int, int, int]] = []
        for axis in range(self.rank or 0):
            dim = spec.shape[axis] if spec.shape is not None else None
            if isinstance(dim, int):
                checks.append((axis, dim, dim))
            elif bounds is not None:
                checks.append((axis, bounds.min[axis], bounds.max[axis]))
        self.checks = tuple(checks)
        static = (
            self.rank is not None
            and len(checks) == self.rank
            and all(lo == hi for _, lo, hi in checks)
        )
        self.static: tuple[int, ...] | None = tuple(lo for _, lo, _ in checks) if static else None
        self.choices = None if bounds is None or bounds.choices is None else set(bounds.choices)

    def expected(self) -> str:
        if self.bounds is not None and self.bounds.choices is not None:
            return f"{self.spec.dtype} of shape {self.bounds.describe()}"
        if self.bounds is not None and not self.bounds.is_fixed:
            return (
                f"{self.spec.dtype}[{', '.join(self.bounds.dim(i) for i in range(self.rank or 0))}]"
            )
        return str(self.spec).split(": ", 1)[1]


class Model:
    """A model loaded on one backend and device. Call it (or :meth:`infer`) with the inputs.

    Thread-safe: any number of threads may call :meth:`infer` at once; the core serialises or
    pools engine contexts as the backend requires. Use as a context manager, or call
    :meth:`close`, to release the engine's resources.
    """

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
        shapes = self.options.shapes
        self._slots = tuple(_Slot(spec, shapes.get(spec.name)) for spec in self.inputs)
        self._by_name = {slot.name: slot for slot in self._slots}
        self._output_names = tuple(spec.name for spec in self.outputs)
        self._contexts: deque[Context] = deque()
        self._run: Runner = self._make_runner(executable, capabilities.thread_safety)
        self._closed = False
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def __repr__(self) -> str:
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        state = " (closed)" if self._closed else ""
        return f"<unirun.Model {self.backend} on {self.device}{state}: {ins} -> {outs}>"

    # -- running ---------------------------------------------------------------------------

    def infer(self, inputs: Any) -> dict[str, Array]:
        """Run the model. ``inputs``: a mapping name→array, a sequence in input order, or one
        array for a one-input model. Returns a new dict of output name → numpy array."""
        if self._closed:
            raise ModelClosedError(f"this {self.backend} model was closed; load it again")
        feeds = self._feeds(inputs)
        try:
            results = self._run(feeds)
        except Exception as exc:
            error = map_engine_error(self.backend, self._mapper, "run", exc)
            if error is exc:
                raise
            raise error from exc
        names = self._output_names
        if len(results) != len(names):
            raise InferenceError(
                f"backend {self.backend!r} returned {len(results)} outputs for {len(names)} "
                "declared ones; this is a plugin bug"
            )
        if len(names) == 1:
            return {names[0]: results[0]}
        return dict(zip(names, results, strict=False))  # lengths checked above

    __call__ = infer

    def infer_async(self, inputs: Any) -> Future[dict[str, Array]]:
        """Submit one request; returns a ``concurrent.futures.Future`` of the outputs.

        Do not modify the input arrays until the future is done."""
        if self._closed:
            raise ModelClosedError(f"this {self.backend} model was closed; load it again")
        return self._executor().submit(self.infer, inputs)

    def map(
        self, feeds: Iterable[Any], *, in_flight: int | None = None
    ) -> Iterator[dict[str, Array]]:
        """Run many requests with several in flight; yields the outputs in input order."""
        pool = self._executor()
        window = in_flight or (pool._max_workers * 2)
        pending: deque[Future[dict[str, Array]]] = deque()
        for item in feeds:
            pending.append(pool.submit(self.infer, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Release the engine's resources. Calls already running finish; later ones raise
        :class:`~unirun.errors.ModelClosedError`. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        while self._contexts:
            self._contexts.pop().close()
        self._executable.close()

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
        return self._closed

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                if self.capabilities.thread_safety is ThreadSafety.SERIAL:
                    workers = 1
                else:
                    import os

                    workers = max(2, min(8, os.cpu_count() or 2))
                self._pool = ThreadPoolExecutor(
                    workers, thread_name_prefix=f"unirun-{self.backend}"
                )
            return self._pool

    def _make_runner(self, executable: Any, safety: ThreadSafety) -> Runner:
        # The core checked at load that the executable has what its thread safety needs.
        if safety is ThreadSafety.CONCURRENT:
            concurrent: Runner = executable.infer
            return concurrent
        if safety is ThreadSafety.CONTEXTS:
            free = self._contexts
            create = executable.create_context

            def run_pooled(feeds: Mapping[str, Array]) -> Sequence[Array]:
                try:
                    ctx = free.pop()
                except IndexError:
                    ctx = create()
                try:
                    return ctx.infer(feeds)
                finally:
                    free.append(ctx)

            return run_pooled
        lock = threading.Lock()
        infer: Runner = executable.infer

        def run_serial(feeds: Mapping[str, Array]) -> Sequence[Array]:
            with lock:
                return infer(feeds)

        return run_serial

    def _feeds(self, inputs: Any) -> dict[str, Array]:
        slots = self._slots
        if type(inputs) is dict or isinstance(inputs, Mapping):
            feeds: dict[str, Array] = {}
            for slot in slots:
                try:
                    value = inputs[slot.name]
                except KeyError:
                    raise self._missing(slot, inputs) from None
                feeds[slot.name] = self._check(slot, value)
            if len(inputs) != len(slots):
                raise self._unknown(inputs)
            return feeds
        if isinstance(inputs, (list, tuple)) and (
            len(slots) != 1 or (len(inputs) == 1 and _array_like(inputs[0]))
        ):
            if len(inputs) != len(slots):
                raise InputError(
                    f"got {len(inputs)} positional inputs, but the model takes {len(slots)}: "
                    f"{', '.join(map(str, self.inputs))}"
                )
            return {slot.name: self._check(slot, v) for slot, v in zip(slots, inputs, strict=True)}
        if len(slots) == 1:
            return {slots[0].name: self._check(slots[0], inputs)}
        raise InputError(
            f"the model takes {len(slots)} inputs ({', '.join(map(str, self.inputs))}); pass a "
            "dict name -> array or a sequence in that order"
        )

    def _check(self, slot: _Slot, value: Any) -> Array:
        array = value if type(value) is np.ndarray else as_array(value, slot.spec)
        if array.dtype is not slot.dtype and array.dtype != slot.dtype:
            raise self._mismatch(slot, array, f"dtype {array.dtype}")
        shape = array.shape
        if slot.static is not None:
            if shape != slot.static:
                raise self._mismatch(slot, array, f"shape {shape}")
        elif slot.rank is not None:
            if len(shape) != slot.rank:
                raise self._mismatch(slot, array, f"rank {len(shape)} (shape {shape})")
            for axis, lo, hi in slot.checks:
                if not lo <= shape[axis] <= hi:
                    raise self._mismatch(slot, array, f"shape {shape} (dimension {axis})")
            if slot.choices is not None and shape not in slot.choices:
                raise self._mismatch(slot, array, f"shape {shape}")
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        return array

    def _mismatch(self, slot: _Slot, array: Array, what: str) -> InputError:
        hint = ""
        if array.dtype != slot.dtype:
            hint = f"; convert it with .astype(numpy.{slot.dtype})"
        elif slot.bounds is not None and not slot.bounds.is_fixed and not slot.choices:
            hint = f"; the model was compiled for {slot.bounds.describe()}"
        return InputError(
            f"input {slot.name!r} expects {slot.expected()}, got {what}{hint}", slot.name
        )

    def _missing(self, slot: _Slot, inputs: Mapping[Any, Any]) -> InputError:
        unknown = [k for k in inputs if k not in self._by_name]
        extra = f"; unknown names given: {', '.join(map(repr, unknown))}" if unknown else ""
        return InputError(f"missing input {slot.name!r} ({slot.expected()}){extra}", slot.name)

    def _unknown(self, inputs: Mapping[Any, Any]) -> InputError:
        unknown = [k for k in inputs if k not in self._by_name]
        return InputError(
            f"unknown input name(s) {', '.join(map(repr, unknown))}; the model's inputs are "
            f"{', '.join(map(str, self.inputs))}",
            str(unknown[0]) if unknown else None,
        )


def _array_like(value: Any) -> bool:
    return (
        isinstance(value, np.ndarray) or hasattr(value, "__dlpack__") or hasattr(value, "__array__")
    )
