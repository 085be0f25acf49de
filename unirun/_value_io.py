"""Feeds and outputs that are not plain tensors: sequences (lists), maps (dicts) and optionals
(None when absent), checked against their :mod:`unirun.values` type.

A :class:`~unirun.model.Model` whose inputs or outputs include such values is a
:class:`ValueModel`: the same model, whose ``infer`` also checks those values. Models of
tensors only never come here, so their hot path is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._calls import map_engine_error
from .dtypes import DType
from .errors import InferenceError, InputError, ModelClosedError
from .model import Model, _dtype_expression, _shared
from .tensor import TensorSpec, as_array
from .values import MapType, OptionalType, SequenceType, TensorType, ValueType

if TYPE_CHECKING:
    from .model import _Slot

__all__ = ["ValueModel", "ValueSlot", "accept", "feed_parts"]

Array = np.ndarray[Any, Any]
#: Checks one value at a path (``["item 2", "key 'a'"]``) and returns it as the engine takes it.
Checker = Callable[[Any, list[str]], Any]

_INT_RANGES = {
    DType.INT8: (-(2**7), 2**7 - 1),
    DType.INT16: (-(2**15), 2**15 - 1),
    DType.INT32: (-(2**31), 2**31 - 1),
    DType.INT64: (-(2**63), 2**63 - 1),
    DType.UINT8: (0, 2**8 - 1),
    DType.UINT16: (0, 2**16 - 1),
    DType.UINT32: (0, 2**32 - 1),
    DType.UINT64: (0, 2**64 - 1),
}


class ValueSlot:
    """One input that is not a tensor, with its checker built once at load."""

    __slots__ = ("check_at", "name", "optional", "spec")

    def __init__(self, spec: TensorSpec) -> None:
        assert spec.kind is not None
        self.spec = spec
        self.name = spec.name
        self.optional = isinstance(spec.kind, OptionalType)
        self.check_at = _checker(spec.kind, spec.name)

    def expected(self) -> str:
        return str(self.spec.kind)

    def check(self, value: Any) -> Any:
        """``value`` as the engine takes it (lists, dicts, C-contiguous arrays of the declared
        types, None), or ``InputError`` naming the element, key or item that does not fit."""
        return self.check_at(value, [])


def _where(name: str, path: list[str]) -> str:
    return f"input {name!r}" + "".join(f" {p}" for p in path)


def _checker(kind: ValueType, name: str) -> Checker:
    if isinstance(kind, TensorType):
        return _tensor_checker(kind, name, scalar=False)
    if isinstance(kind, OptionalType):
        inner = _checker(kind.element, name)

        def check_optional(value: Any, path: list[str]) -> Any:
            return None if value is None else inner(value, path)

        return check_optional
    if isinstance(kind, SequenceType):
        item = _checker(kind.element, name)

        def check_sequence(value: Any, path: list[str]) -> list[Any]:
            if not isinstance(value, (list, tuple)):
                hint = (
                    "; for the rows of an array, pass list(array)"
                    if isinstance(value, np.ndarray)
                    else ""
                )
                raise InputError(
                    f"{_where(name, path)} expects {kind}: a list, got "
                    f"{type(value).__name__}{hint}",
                    name,
                )
            return [item(v, [*path, f"item {i}"]) for i, v in enumerate(value)]

        return check_sequence
    key = _key_checker(kind, name)
    val = (
        _tensor_checker(kind.value, name, scalar=True)
        if isinstance(kind.value, TensorType)
        else _checker(kind.value, name)
    )

    def check_map(value: Any, path: list[str]) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            raise InputError(
                f"{_where(name, path)} expects {kind}: a dict, got {type(value).__name__}", name
            )
        out: dict[Any, Any] = {}
        for k, v in value.items():
            checked = key(k, path)
            out[checked] = val(v, [*path, f"key {checked!r}"])
        return out

    return check_map


def _key_checker(kind: MapType, name: str) -> Checker:
    if kind.key is DType.STRING:

        def string_key(key: Any, path: list[str]) -> str:
            if not isinstance(key, str):
                raise InputError(
                    f"{_where(name, path)} expects {kind}: key {key!r} is "
                    f"{type(key).__name__}, not a string",
                    name,
                )
            return str(key)

        return string_key
    low, high = _INT_RANGES[kind.key]

    def int_key(key: Any, path: list[str]) -> int:
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            raise InputError(
                f"{_where(name, path)} expects {kind}: key {key!r} is "
                f"{type(key).__name__}, not an integer",
                name,
            )
        if not low <= int(key) <= high:
            raise InputError(
                f"{_where(name, path)} expects {kind}: key {key} is out of the range of {kind.key}",
                name,
            )
        return int(key)

    return int_key


def _tensor_checker(kind: TensorType, name: str, *, scalar: bool) -> Checker:
    """A tensor inside another value: converted like a tensor feed (arrays must have the
    declared dtype, Python literals are cast), its rank and fixed dims checked when declared.
    ``scalar``: a map's value, handed on as a numpy scalar when it is 0-d."""
    dtype = kind.dtype.numpy
    shape = kind.shape

    def check_tensor(value: Any, path: list[str]) -> Any:
        where = _where(name, path)
        if type(value) is np.ndarray:
            array = value
        else:
            try:
                array = as_array(value, TensorSpec(name, kind.dtype, kind.shape))
            except InputError as exc:  # its message names the input, not the item
                text = str(exc).replace(f"input {name!r}", where, 1)
                raise InputError(text, name) from exc
        if array.dtype != dtype:
            raise InputError(
                f"{where} expects {kind}, got dtype {array.dtype}; convert it with "
                f".astype({_dtype_expression(dtype)})",
                name,
            )
        if shape is not None and (
            array.ndim != len(shape)
            or any(isinstance(d, int) and d != n for d, n in zip(shape, array.shape, strict=True))
        ):
            raise InputError(f"{where} expects {kind}, got shape {array.shape}", name)
        if scalar and array.ndim == 0:
            return array[()]
        return array if array.flags.c_contiguous else np.ascontiguousarray(array)

    return check_tensor


# -- outputs --------------------------------------------------------------------------------


def feed_parts(feeds: Mapping[str, Any]) -> tuple[dict[str, Array], set[int]]:
    """Every array in ``feeds`` (inside lists and dicts too), keyed by position, and the ids of
    the lists and dicts: what an output must not share with the caller's inputs."""
    arrays: dict[str, Array] = {}
    containers: set[int] = set()

    def walk(value: Any) -> None:
        if isinstance(value, np.ndarray):
            arrays[str(len(arrays))] = value
        elif isinstance(value, list):
            containers.add(id(value))
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            containers.add(id(value))
            for item in value.values():
                walk(item)

    for value in feeds.values():
        walk(value)
    return arrays, containers


def accept(
    spec: TensorSpec, value: Any, arrays: dict[str, Array], containers: set[int], backend: str
) -> Any:
    """An engine's output of a non-tensor ``spec``: checked for its form (a list, a dict, an
    array or scalar, None only where optional), with new containers and copies of arrays that
    share memory with a feed, so that the caller owns it. The maps of a sequence of maps (a
    classifier's probabilities, thousands of them) are checked by their first one."""
    assert spec.kind is not None
    return _Acceptor(spec, arrays, containers, backend).take(spec.kind, value, [])


class _Acceptor:
    def __init__(
        self, spec: TensorSpec, arrays: dict[str, Array], containers: set[int], backend: str
    ) -> None:
        self.spec, self.arrays, self.containers, self.backend = spec, arrays, containers, backend

    def take(self, kind: ValueType, value: Any, path: list[str]) -> Any:
        if isinstance(kind, OptionalType):
            return None if value is None else self.take(kind.element, value, path)
        if isinstance(kind, TensorType):
            if isinstance(value, np.ndarray):
                arrays = self.arrays
                return value.copy() if arrays and _shared(value, arrays) else value
            if isinstance(value, (np.generic, int, float, str, bool)):
                return value
            return self.wrong(kind, value, path)
        if isinstance(kind, SequenceType):
            if not isinstance(value, (list, tuple)):
                return self.wrong(kind, value, path)
            element = kind.element
            if (
                isinstance(element, MapType)
                and isinstance(element.value, TensorType)
                and not self.shared(value)
            ):
                if value:
                    self.take(element, value[0], [*path, "item 0"])
                return value if isinstance(value, list) else list(value)
            return [self.take(element, v, [*path, f"item {i}"]) for i, v in enumerate(value)]
        if not isinstance(value, dict):
            return self.wrong(kind, value, path)
        inner = kind.value
        if isinstance(inner, TensorType) and id(value) not in self.containers:
            for k, v in value.items():  # plain numbers, unless the engine gave arrays
                if not isinstance(v, (float, int)):
                    self.take(inner, v, [*path, f"key {k!r}"])
            return value
        return {k: self.take(inner, v, [*path, f"key {k!r}"]) for k, v in value.items()}

    def shared(self, value: Any) -> bool:
        containers = self.containers
        return bool(containers) and (
            id(value) in containers or any(id(v) in containers for v in value)
        )

    def wrong(self, kind: ValueType, value: Any, path: list[str]) -> Any:
        where = "".join(f" {p}" for p in path)
        raise InferenceError(
            f"backend {self.backend!r} returned {type(value).__name__} for output "
            f"{self.spec.name!r}{where}, where the model declares {kind} (the output is "
            f"{self.spec.kind}); the engine or its plugin is wrong"
        )


# -- the model ------------------------------------------------------------------------------


class ValueModel(Model):
    """A :class:`~unirun.model.Model` with inputs or outputs that are not plain tensors.

    Feeds: a sequence is a list (or tuple) of arrays, a map a dict, an absent optional None (an
    optional input may also be left out of the feeds). For a model with one input, anything
    but a dict is that input's value (so a list is the sequence itself). Outputs come back in
    the same forms; the caller owns them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._value_slots = {s.name: ValueSlot(s) for s in self.inputs if s.kind is not None}
        self._order: tuple[_Slot | ValueSlot, ...] = tuple(
            self._value_slots.get(slot.name, slot) for slot in self._slots
        )

    def infer(self, inputs: Any) -> dict[str, Any]:
        """Run the model; see :meth:`Model.infer` and the class docstring for the values."""
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
        arrays, containers = feed_parts(feeds)
        outputs: dict[str, Any] = {}
        for answer, value in zip(answers, results, strict=True):
            if answer.spec.kind is not None:
                value = accept(answer.spec, value, arrays, containers, self.backend)
            else:
                if arrays and _shared(value, arrays):
                    value = value.copy()
                if value.shape not in answer.seen:
                    self._check_answer(answer, value, feeds)
            outputs[answer.name] = value
        return outputs

    __call__ = infer

    def _feeds(self, inputs: Any) -> dict[str, Any]:
        if not self._value_slots:
            return super()._feeds(inputs)
        order = self._order
        if isinstance(inputs, Mapping):
            feeds: dict[str, Any] = {}
            for slot in order:
                if slot.name in inputs:
                    feeds[slot.name] = self._check_any(slot, inputs[slot.name])
                elif isinstance(slot, ValueSlot) and slot.optional:
                    feeds[slot.name] = None
                else:
                    raise self._missing(slot, inputs)  # type: ignore[arg-type]
            if any(k not in self._by_name for k in inputs):
                raise self._unknown(inputs)
            return feeds
        if len(order) == 1:
            return {order[0].name: self._check_any(order[0], inputs)}
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != len(order):
                raise InputError(
                    f"got {len(inputs)} positional inputs, but the model takes {len(order)}: "
                    f"{', '.join(map(str, self.inputs))}"
                )
            return {s.name: self._check_any(s, v) for s, v in zip(order, inputs, strict=True)}
        raise InputError(
            f"the model takes {len(order)} inputs ({', '.join(map(str, self.inputs))}); pass a "
            "dict name -> value or a sequence in that order"
        )

    def _check_any(self, slot: _Slot | ValueSlot, value: Any) -> Any:
        if isinstance(slot, ValueSlot):
            return slot.check(value)
        return self._check(slot, value)


def has_values(specs: Sequence[TensorSpec]) -> bool:
    return any(spec.kind is not None for spec in specs)
