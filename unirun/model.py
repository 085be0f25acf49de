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
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ._calls import map_engine_error
from .backend import Capabilities, Context, Executable, ThreadSafety
from .device import Device
from .errors import InferenceError, InputError, ModelClosedError, OptionsError, UnirunError
from .options import CompileOptions, ShapeRange
from .tensor import TensorSpec, as_array

if TYPE_CHECKING:
    from .artifact import Artifact
    from .cache import CacheStatus

__all__ = ["MAX_COPY_BYTES", "Model"]

log = logging.getLogger("unirun")

Array = np.ndarray[Any, Any]
Runner = Callable[[Mapping[str, Array]], Sequence[Array]]

#: The largest copy (bytes) made to turn a feed C-contiguous; None: ``UNIRUN_MAX_COPY_BYTES``,
#: else the physical memory.
MAX_COPY_BYTES: int | None = None

#: Up to this many feeds, an output of foreign memory is compared with each feed
#: (``numpy.may_share_memory``); beyond, with the feeds' sorted address ranges.
_PAIRWISE = 8


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


class _Answer:
    """One output, with what its shape check needs resolved ahead of time: the declared rank,
    fixed dims, and dims named like an input's dim (resolved from the feeds). The check runs
    when the output comes back in a shape not ``seen`` before, so that a steady stream of
    calls pays one dict lookup per output."""

    __slots__ = ("fixed", "linked", "name", "rank", "seen", "spec")

    def __init__(self, spec: TensorSpec, inputs: Sequence[TensorSpec]) -> None:
        self.spec = spec
        self.name = spec.name
        self.rank = spec.rank
        named: dict[str, tuple[str, int]] = {}
        for feed in inputs:
            for axis, dim in enumerate(feed.shape or ()):
                if isinstance(dim, str) and dim != "?":
                    named.setdefault(dim, (feed.name, axis))
        fixed: list[tuple[int, int]] = []
        linked: list[tuple[int, str, int]] = []
        for axis, dim in enumerate(spec.shape or ()):
            if isinstance(dim, int):
                fixed.append((axis, dim))
            elif dim in named:
                linked.append((axis, *named[dim]))
        self.fixed = tuple(fixed)
        self.linked = tuple(linked)
        self.seen: dict[tuple[int, ...], None] = {}

    def conflict(self, shape: tuple[int, ...], feeds: Mapping[str, Array]) -> str | None:
        """What about ``shape`` contradicts the declaration, or None."""
        if self.rank is None:
            return None
        if len(shape) != self.rank:
            return f"rank {self.rank}"
        for axis, size in self.fixed:
            if shape[axis] != size:
                return f"dimension {axis} is {size}"
        for axis, name, source in self.linked:
            size = feeds[name].shape[source]
            if shape[axis] != size:
                dim = self.spec.shape[axis]  # type: ignore[index]
                return f"dimension {axis} is {dim}, {size} in input {name!r}"
        return None


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
        shapes = self.options.shapes
        self._slots = tuple(_Slot(spec, shapes.get(spec.name)) for spec in self.inputs)
        self._by_name = {slot.name: slot for slot in self._slots}
        self._answers = tuple(_Answer(spec, self.inputs) for spec in self.outputs)
        self._disagreed: set[str] = set()
        self._contexts: deque[Context] = deque()
        self._run: Runner = self._make_runner(executable, capabilities.thread_safety)
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

    def infer(self, inputs: Any) -> dict[str, Array]:
        """Run the model. ``inputs``: a mapping name→array, a sequence in input order, or one
        array for a one-input model. Returns a new dict of output name → numpy array.

        The caller owns the outputs: none shares memory with an input (an output the engine
        returns as a view of a feed is copied). An output whose shape contradicts the declared
        one (rank, fixed dims, dims named like an input's, checked whenever an output comes
        back in a shape not seen before) is returned as the engine gave it, and a WARNING
        says so once per output."""
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
        answers = self._answers
        if len(results) != len(answers):
            raise InferenceError(
                f"backend {self.backend!r} returned {len(results)} outputs for {len(answers)} "
                "declared ones; this is a plugin bug"
            )
        if len(answers) == 1:
            answer, value = answers[0], results[0]
            if _shared(value, feeds):
                value = value.copy()
            if value.shape not in answer.seen:
                self._check_answer(answer, value, feeds)
            return {answer.name: value}
        outputs: dict[str, Array] = {}
        for answer, value in zip(answers, results, strict=False):  # lengths checked above
            if _shared(value, feeds):
                value = value.copy()
            if value.shape not in answer.seen:
                self._check_answer(answer, value, feeds)
            outputs[answer.name] = value
        return outputs

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

    def _release(self) -> None:
        self._closed = True
        while self._contexts:
            self._contexts.pop().close()
        self._executable.close()

    def _release_after(self, pool: ThreadPoolExecutor) -> None:
        pool.shutdown(wait=True)
        self._release()

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

    def _check_answer(self, answer: _Answer, value: Array, feeds: Mapping[str, Array]) -> None:
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
            array = _contiguous(slot, array)
        return array

    def _mismatch(self, slot: _Slot, array: Array, what: str) -> InputError:
        hint = ""
        if array.dtype != slot.dtype:
            hint = f"; convert it with .astype({_dtype_expression(slot.dtype)})"
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


def _shared(value: Array, feeds: Mapping[str, Array]) -> bool:
    """Whether the output ``value`` may share memory with a feed (the caller owns outputs).

    Where an array's memory comes from is told by its base: the array itself (then only a
    feed that *is* it, or a view of it, can share it), an engine object (a buffer the engine
    allocated: never a feed's, by the plugin contract, which the conformance kit checks), or
    another array (a numpy view, as the reference backend returns for Reshape: compare
    addresses)."""
    base: object = value.base
    # Plain loops, not any(): this runs for every output of every call.
    if base is None and value.flags.owndata:
        for feed in feeds.values():  # noqa: SIM110
            if value is feed or feed.base is value:
                return True
        return False
    if base is not None and not isinstance(base, np.ndarray):
        for feed in feeds.values():  # noqa: SIM110
            if base is feed.base:  # the feed itself, or another array over its owner
                return True
        return False
    if len(feeds) > _PAIRWISE:
        return _Spans(feeds.values()).overlaps(value)
    return any(np.may_share_memory(value, feed) for feed in feeds.values())


def _contiguous(slot: _Slot, array: Array) -> Array:
    """A C-contiguous copy, refused before allocating when it would exceed the copy limit."""
    limit = _copy_limit()
    if array.nbytes > limit:
        raise InputError(
            f"input {slot.name!r} of shape {array.shape} is a strided or broadcast view whose "
            f"contiguous copy would take {array.nbytes / 1e9:.1f} GB, more than the "
            f"{limit / 1e9:.1f} GB unirun copies (unirun.model.MAX_COPY_BYTES or "
            "UNIRUN_MAX_COPY_BYTES); pass a C-contiguous array of the size you mean",
            slot.name,
        )
    try:
        return np.ascontiguousarray(array)
    except MemoryError as exc:
        raise InputError(
            f"input {slot.name!r}: not enough memory for its contiguous copy "
            f"({array.nbytes / 1e9:.1f} GB); pass a C-contiguous array",
            slot.name,
        ) from exc


def _copy_limit() -> int:
    if MAX_COPY_BYTES is not None:
        return MAX_COPY_BYTES
    env = os.environ.get("UNIRUN_MAX_COPY_BYTES")
    if env:
        try:
            return int(env)
        except ValueError:
            raise OptionsError(
                f"UNIRUN_MAX_COPY_BYTES={env!r} is not a number of bytes; unset it or give an "
                "integer"
            ) from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): 64 GiB
        return 64 << 30


def _dtype_expression(dtype: np.dtype[Any]) -> str:
    """How to name ``dtype`` in Python: ``numpy.float32``, ``object``, ``ml_dtypes.bfloat16``."""
    if dtype == np.dtype(object):
        return "object"
    module = "ml_dtypes" if dtype.type.__module__.startswith("ml_dtypes") else "numpy"
    return f"{module}.{dtype.name}"


class _Spans:
    """The address ranges of many C-contiguous feeds, sorted, to test an output against all of
    them in O(log n)."""

    def __init__(self, feeds: Iterable[Array]) -> None:
        spans = sorted(_span(a) for a in feeds if a.size)
        self.starts = [lo for lo, _ in spans]
        self.reach: list[int] = []  # the highest end among the feeds starting so far
        for _, hi in spans:
            self.reach.append(max(hi, self.reach[-1]) if self.reach else hi)

    def overlaps(self, value: Array) -> bool:
        if not value.size:
            return False
        lo, hi = _span(value)
        i = bisect_left(self.starts, hi)  # the feeds that start before `value` ends
        return i > 0 and self.reach[i - 1] > lo


def _span(array: Array) -> tuple[int, int]:
    info = array.__array_interface__
    lo = hi = int(info["data"][0])
    strides = info["strides"]
    if strides is None:
        return lo, lo + array.nbytes
    for size, stride in zip(array.shape, strides, strict=True):
        if stride < 0:
            lo += (size - 1) * stride
        else:
            hi += (size - 1) * stride
    return lo, hi + array.itemsize


def _register_worker(workers: set[int]) -> None:
    workers.add(threading.get_ident())


def _result(index: int, future: Future[dict[str, Array]]) -> dict[str, Array]:
    try:
        return future.result()
    except UnirunError as exc:
        if len(exc.args) == 1:
            exc.args = (f"map() item {index}: {exc.args[0]}",)
        raise


def _array_like(value: Any) -> bool:
    return (
        isinstance(value, np.ndarray) or hasattr(value, "__dlpack__") or hasattr(value, "__array__")
    )
