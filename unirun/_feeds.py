"""Feed and output checks, resolved once per model: the slow, general path of
``Model.infer`` (any mapping, sequence or single value; conversions; every error message) and
what its hot path needs (``Slot.ok``: the shapes already accepted per input)."""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InputError, OptionsError
from .options import ShapeRange
from .tensor import TensorSpec, as_array

__all__ = ["Answer", "Feeds", "Slot", "contiguous", "shared"]

Array = np.ndarray[Any, Any]

#: Up to this many feeds, an output of foreign memory is compared with each feed
#: (``numpy.may_share_memory``); beyond, with the feeds' sorted address ranges.
_PAIRWISE = 8
#: Shapes remembered per input (or output) before the memory starts afresh.
_SEEN = 256


class Slot:
    """One input, with everything its per-call check needs resolved ahead of time."""

    __slots__ = ("bounds", "checks", "choices", "dtype", "name", "ok", "rank", "spec", "static")

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
        #: Shapes a feed already passed every check with (as a C-contiguous array of exactly
        #: the dtype): the hot path in ``Model.infer`` accepts such a feed after a lookup.
        self.ok: dict[tuple[int, ...], None] = {}

    def expected(self) -> str:
        if self.bounds is not None and self.bounds.choices is not None:
            return f"{self.spec.dtype} of shape {self.bounds.describe()}"
        if self.bounds is not None and not self.bounds.is_fixed:
            return (
                f"{self.spec.dtype}[{', '.join(self.bounds.dim(i) for i in range(self.rank or 0))}]"
            )
        return str(self.spec).split(": ", 1)[1]


class Answer:
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


class Feeds:
    """The inputs of one model, checked per call."""

    def __init__(self, specs: Sequence[TensorSpec], shapes: Mapping[str, ShapeRange]) -> None:
        self.specs = list(specs)
        self.slots = tuple(Slot(spec, shapes.get(spec.name)) for spec in specs)
        self.by_name = {slot.name: slot for slot in self.slots}

    def check(self, inputs: Any) -> dict[str, Array]:
        """The feeds as the engine takes them (every input by name, each a C-contiguous array
        of exactly its dtype, within its shape bounds), or ``InputError`` saying what is wrong."""
        return {slot.name: self.one(slot, value) for slot, value in self.pairs(inputs)}

    def pairs(self, inputs: Any) -> Iterator[tuple[Slot, Any]]:
        """Each input's slot and the value given for it, from a mapping, a sequence in input
        order, or one value for a one-input model; ``InputError`` for a missing or unknown
        name or a wrong count (raised as the pairs are read, so a bad value that comes first
        is reported first)."""
        slots = self.slots
        if type(inputs) is dict or isinstance(inputs, Mapping):
            for slot in slots:
                try:
                    value = inputs[slot.name]
                except KeyError:
                    raise self.missing(slot, inputs) from None
                yield slot, value
            if len(inputs) != len(slots):
                raise self.unknown(inputs)
            return
        if isinstance(inputs, (list, tuple)) and (
            len(slots) != 1 or (len(inputs) == 1 and _array_like(inputs[0]))
        ):
            if len(inputs) != len(slots):
                raise InputError(
                    f"got {len(inputs)} positional inputs, but the model takes {len(slots)}: "
                    f"{', '.join(map(str, self.specs))}"
                )
            yield from zip(slots, inputs, strict=True)
            return
        if len(slots) == 1:
            yield slots[0], inputs
            return
        raise InputError(
            f"the model takes {len(slots)} inputs ({', '.join(map(str, self.specs))}); pass a "
            "dict name -> array or a sequence in that order"
        )

    def one(self, slot: Slot, value: Any) -> Array:
        """``value`` for ``slot`` as the engine takes it, or ``InputError``."""
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
            return contiguous(slot, array)
        if array is value:  # nothing converted: later calls with this shape take the hot path
            ok = slot.ok
            if len(ok) >= _SEEN:
                ok.clear()
            ok[shape] = None
        return array

    def _mismatch(self, slot: Slot, array: Array, what: str) -> InputError:
        hint = ""
        if array.dtype != slot.dtype:
            hint = f"; convert it with .astype({_dtype_expression(slot.dtype)})"
        elif slot.bounds is not None and not slot.bounds.is_fixed and not slot.choices:
            hint = f"; the model was compiled for {slot.bounds.describe()}"
        return InputError(
            f"input {slot.name!r} expects {slot.expected()}, got {what}{hint}", slot.name
        )

    def missing(self, slot: Slot, inputs: Mapping[Any, Any]) -> InputError:
        unknown = [k for k in inputs if k not in self.by_name]
        extra = f"; unknown names given: {', '.join(map(repr, unknown))}" if unknown else ""
        return InputError(f"missing input {slot.name!r} ({slot.expected()}){extra}", slot.name)

    def unknown(self, inputs: Mapping[Any, Any]) -> InputError:
        unknown = [k for k in inputs if k not in self.by_name]
        return InputError(
            f"unknown input name(s) {', '.join(map(repr, unknown))}; the model's inputs are "
            f"{', '.join(map(str, self.specs))}",
            str(unknown[0]) if unknown else None,
        )


def shared(value: Array, feeds: Mapping[str, Array]) -> bool:
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


def contiguous(slot: Slot, array: Array) -> Array:
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
    from . import model  # the documented setting lives there: unirun.model.MAX_COPY_BYTES

    if model.MAX_COPY_BYTES is not None:
        return model.MAX_COPY_BYTES
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


def _array_like(value: Any) -> bool:
    return isinstance(value, np.ndarray) or any(
        hasattr(value, attr) for attr in ("__dlpack__", "__array__", "__cuda_array_interface__")
    )
