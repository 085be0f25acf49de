"""Feeds and outputs that are not plain tensors: sequences (lists), maps (dicts) and optionals
(None when absent), checked against their :mod:`unirun.values` type; and the checks of the
tensor inputs beside them. Used by :class:`unirun._value_model.ValueModel` only, so models of
tensors only never come here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .dtypes import DType
from .errors import InferenceError, InputError
from .options import ShapeRange
from .tensor import TensorSpec, as_array
from .values import MapType, OptionalType, SequenceType, TensorType, ValueType

__all__ = ["InputCheck", "accept", "feed_parts", "input_check", "shares_memory"]

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


class InputCheck:
    """One input of a model with values that are not tensors: its name, what it expects, and
    a checker built once at load that returns the value as the engine takes it or raises an
    ``InputError`` naming the item or key that does not fit."""

    __slots__ = ("check", "expected", "name", "optional")

    def __init__(self, name: str, expected: str, optional: bool, check: Callable[[Any], Any]):
        self.name, self.expected, self.optional, self.check = name, expected, optional, check


def input_check(spec: TensorSpec, bounds: ShapeRange | None) -> InputCheck:
    """The check of input ``spec``: of its value type, or of a tensor within ``bounds`` (the
    compiled ``shapes``)."""
    if spec.kind is None:
        tensor = _tensor_checker(TensorType(spec.dtype, spec.shape), spec.name, scalar=False)
        expected = str(spec).split(": ", 1)[1]
        if bounds is None:
            return InputCheck(spec.name, expected, False, lambda value: tensor(value, []))
        within = _bounds_checker(spec, bounds)
        return InputCheck(spec.name, expected, False, lambda value: within(tensor(value, [])))
    check = _checker(spec.kind, spec.name)
    optional = isinstance(spec.kind, OptionalType)
    return InputCheck(spec.name, str(spec.kind), optional, lambda value: check(value, []))


def _bounds_checker(spec: TensorSpec, bounds: ShapeRange) -> Callable[[Array], Array]:
    choices = None if bounds.choices is None else set(bounds.choices)

    def within(array: Array) -> Array:
        shape = array.shape
        fits = len(shape) == bounds.rank and all(
            lo <= n <= hi for lo, n, hi in zip(bounds.min, shape, bounds.max, strict=True)
        )
        if not fits or (choices is not None and shape not in choices):
            raise InputError(
                f"input {spec.name!r} expects {spec.dtype} of shape {bounds.describe()}, got "
                f"shape {shape}; the model was compiled for {bounds.describe()}",
                spec.name,
            )
        return array

    return within


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
                f".astype({_dtype_name(dtype)})",
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


def feed_parts(feeds: Mapping[str, Any]) -> tuple[list[Array], set[int]]:
    """Every array in ``feeds`` (inside lists and dicts too) and the ids of the lists and
    dicts: what an output must not share with the caller's inputs."""
    arrays: list[Array] = []
    containers: set[int] = set()

    def walk(value: Any) -> None:
        if isinstance(value, np.ndarray):
            arrays.append(value)
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


def shares_memory(value: Array, arrays: list[Array]) -> bool:
    """Whether ``value`` may share memory with one of the feed ``arrays``."""
    return any(np.may_share_memory(value, a) for a in arrays)


def accept(
    spec: TensorSpec, value: Any, arrays: list[Array], containers: set[int], backend: str
) -> Any:
    """An engine's output of a non-tensor ``spec``: checked for its form (a list, a dict, an
    array or scalar, None only where optional), with new containers and copies of arrays that
    share memory with a feed, so that the caller owns it. The maps of a sequence of maps (a
    classifier's probabilities, thousands of them) are checked by their first one."""
    assert spec.kind is not None
    return _Acceptor(spec, arrays, containers, backend).take(spec.kind, value, [])


class _Acceptor:
    def __init__(
        self, spec: TensorSpec, arrays: list[Array], containers: set[int], backend: str
    ) -> None:
        self.spec, self.arrays, self.containers, self.backend = spec, arrays, containers, backend

    def take(self, kind: ValueType, value: Any, path: list[str]) -> Any:
        if isinstance(kind, OptionalType):
            return None if value is None else self.take(kind.element, value, path)
        if isinstance(kind, TensorType):
            if isinstance(value, np.ndarray):
                return value.copy() if shares_memory(value, self.arrays) else value
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


def _dtype_name(dtype: np.dtype[Any]) -> str:
    """How to name ``dtype`` in Python: ``numpy.float32``, ``object``, ``ml_dtypes.bfloat16``."""
    if dtype == np.dtype(object):
        return "object"
    module = "ml_dtypes" if dtype.type.__module__.startswith("ml_dtypes") else "numpy"
    return f"{module}.{dtype.name}"
