"""Shape arithmetic on values known only in part at conversion time.

``Shape`` of a tensor with dynamic dims is a run-time value, but its length and its static
entries are known, and so are those of what is computed from it (``Cast``, ``Gather``,
``Slice``, ``Concat``, ``Unsqueeze``, ``Mul`` …). A known value is an object array of the ONNX
value's shape whose entries are Python ints or floats, sympy expressions of MIL's dim symbols,
or None (unknown). The translator keeps one for every such value: a ``Reshape`` whose target is
computed at run time then gets its rank and every static dim right, and a known value without
symbols is simply a constant.

MIL's own symbolic values do not survive ``cast``, ``expand_dims`` or ``select``, and ONNX's
data propagation stops at ``Cast`` (which paddle2onnx emits around every shape computation),
hence this small evaluator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy  # type: ignore[import-untyped]  # no stubs; comes with coremltools
from onnx import helper

from ._node import Node

MAX_ELEMENTS = 64  # shape vectors, axes and indices; larger tensors are not followed


@dataclass(frozen=True)
class Known:
    values: np.ndarray  # dtype object: int | float | sympy.Expr | None
    dtype: np.dtype[Any]  # the ONNX element type

    @property
    def constant(self) -> np.ndarray | None:
        """The value as a plain array when every entry is a number."""
        flat = self.values.reshape(-1)
        if all(isinstance(v, (int, float)) for v in flat):
            return np.array(self.values.tolist(), dtype=self.dtype).reshape(self.values.shape)
        return None


def known(values: Any, dtype: Any) -> Known:
    """A Known from an object array, or from the bare entry numpy returns for a 0-d result."""
    if isinstance(values, np.ndarray):
        array = values.astype(object)
    else:
        array = np.empty((), dtype=object)
        array[()] = values
    return Known(array, np.dtype(dtype))


def from_constant(array: np.ndarray) -> Known | None:
    if array.dtype.kind not in "iuf" or array.size > MAX_ELEMENTS:
        return None
    values = np.empty(array.shape, dtype=object)
    for index, v in np.ndenumerate(array):
        values[index] = int(v) if array.dtype.kind in "iu" else float(v)
    return known(values, array.dtype)


def from_dims(dims: Sequence[Any]) -> Known:
    """A Shape result: ints for static dims, the MIL symbols for the others."""
    values = np.empty(len(dims), dtype=object)
    for i, d in enumerate(dims):
        values[i] = d if isinstance(d, sympy.Basic) else int(d)
    return known(values, np.dtype(np.int64))


def size_of(dims: Sequence[Any]) -> Known:
    """A Size result: the product of the dims."""
    product = from_dims(dims).values.prod() if len(dims) else 1
    value = np.empty((), dtype=object)
    value[()] = _number(product)
    return known(value, np.dtype(np.int64))


Rule = Callable[[Node, list["Known | None"]], "Known | None"]
_RULES: dict[str, Rule] = {}


def rule(*op_types: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for op_type in op_types:
            _RULES[op_type] = fn
        return fn

    return register


def propagate(node: Node, inputs: list[Known | None]) -> Known | None:
    """The known value of the node's first output, if its rule can tell."""
    fn = _RULES.get(node.op_type) if not node.domain else None
    if fn is None:
        return None
    try:
        out = fn(node, inputs)
    except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError):
        return None  # not followed; the lowering still computes it at run time
    if out is None or out.values.size > MAX_ELEMENTS:
        return None
    return out


def _ints(value: Known | None) -> list[int] | None:
    if value is None:
        return None
    flat = value.values.reshape(-1).tolist()
    return [int(v) for v in flat] if all(isinstance(v, int) for v in flat) else None


@rule("Identity")
def _identity(node: Node, a: list[Known | None]) -> Known | None:
    return a[0]


@rule("Cast")
def _cast(node: Node, a: list[Known | None]) -> Known | None:
    x, to = a[0], np.dtype(helper.tensor_dtype_to_np_dtype(int(node.attr("to"))))
    if x is None or to.kind not in "iuf":
        return None

    def convert(v: Any) -> Any:
        if isinstance(v, (int, float)):
            return float(v) if to.kind == "f" else int(v)  # int(): ONNX truncates too
        return v if to.kind == "f" else _whole(v)

    return known(np.asarray(np.vectorize(convert, otypes=[object])(x.values), dtype=object), to)


@rule("Gather")
def _gather(node: Node, a: list[Known | None]) -> Known | None:
    x, indices = a[0], a[1]
    picked = _ints(indices)
    if x is None or picked is None or indices is None:
        return None
    where = np.array(picked, dtype=np.int64).reshape(indices.values.shape)
    axis = int(node.attr("axis", 0))
    return known(np.take(x.values, where, axis=axis), x.dtype)


@rule("Slice")
def _slice(node: Node, a: list[Known | None]) -> Known | None:
    x = a[0]
    if x is None:
        return None
    if node.opset < 10:
        starts, ends = node.ints("starts"), node.ints("ends")
        axes, steps = node.ints("axes"), None
    else:
        starts, ends = _ints(a[1]), _ints(a[2])
        axes = _ints(a[3]) if len(a) > 3 and a[3] is not None else None
        steps = _ints(a[4]) if len(a) > 4 and a[4] is not None else None
    if starts is None or ends is None:
        return None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps or [1] * len(starts)
    index = [slice(None)] * x.values.ndim
    for axis, s, e, step in zip(axes, starts, ends, steps, strict=True):
        index[axis] = slice(s, e, step)  # ONNX clamps starts and ends like Python does
    return known(x.values[tuple(index)], x.dtype)


@rule("Concat")
def _concat(node: Node, a: list[Known | None]) -> Known | None:
    if any(v is None for v in a):
        return None
    parts = [v for v in a if v is not None]
    return known(
        np.concatenate([p.values for p in parts], axis=int(node.attr("axis"))), parts[0].dtype
    )


def _axes(node: Node, a: list[Known | None], since: int) -> list[int] | None:
    if node.opset >= since:
        return _ints(a[1]) if len(a) > 1 and a[1] is not None else None
    return node.ints("axes")


@rule("Unsqueeze")
def _unsqueeze(node: Node, a: list[Known | None]) -> Known | None:
    x, axes = a[0], _axes(node, a, 13)
    if x is None or axes is None:
        return None
    rank = x.values.ndim + len(axes)
    values = x.values
    for axis in sorted(v + rank if v < 0 else v for v in axes):
        values = np.expand_dims(values, axis)
    return known(values, x.dtype)


@rule("Squeeze")
def _squeeze(node: Node, a: list[Known | None]) -> Known | None:
    x, axes = a[0], _axes(node, a, 13)
    if x is None:
        return None
    squeezed = np.squeeze(x.values) if axes is None else np.squeeze(x.values, tuple(axes))
    return known(np.asarray(squeezed, dtype=object).reshape(squeezed.shape), x.dtype)


@rule("Reshape")
def _reshape(node: Node, a: list[Known | None]) -> Known | None:
    x = a[0]
    target = _ints(a[1]) if node.opset >= 5 and len(a) > 1 else node.ints("shape")
    if x is None or target is None:
        return None
    keep_zero = bool(node.attr("allowzero", 0))
    dims = [x.values.shape[i] if t == 0 and not keep_zero else t for i, t in enumerate(target)]
    return known(x.values.reshape(dims), x.dtype)


def _elementwise(fn: Callable[[Any, Any], Any]) -> Rule:
    def apply(node: Node, a: list[Known | None]) -> Known | None:
        x, y = a[0], a[1]
        if x is None or y is None:
            return None

        def entry(p: Any, q: Any) -> Any:
            return None if p is None or q is None else _number(fn(p, q))

        out = np.vectorize(entry, otypes=[object])(x.values, y.values)
        return known(np.asarray(out, dtype=object), x.dtype)

    return apply


def _divide(p: Any, q: Any) -> Any:
    if isinstance(p, float) or isinstance(q, float):
        return p / q
    if isinstance(p, int) and isinstance(q, int):
        quotient = abs(p) // abs(q)  # ONNX's integer Div truncates toward zero
        return quotient if (p < 0) == (q < 0) else -quotient
    return _whole(sympy.expand(sympy.sympify(p) / q))  # exact only: C*H' / C = H'


def _whole(value: Any) -> Any:
    """An integer-valued expression (integer coefficients), else unknown."""
    if not isinstance(value, sympy.Basic):
        return value
    coefficients = value.as_coefficients_dict().values()
    return value if all(sympy.sympify(c).is_integer for c in coefficients) else None


def _number(value: Any) -> Any:
    """sympy numbers back to Python ones, so constants are recognised as such."""
    if isinstance(value, sympy.Basic) and value.is_number:
        return int(value) if value.is_integer else float(value)
    return value


rule("Add")(_elementwise(lambda p, q: p + q))
rule("Sub")(_elementwise(lambda p, q: p - q))
rule("Mul")(_elementwise(lambda p, q: p * q))
rule("Div")(_elementwise(_divide))


@rule("Neg")
def _neg(node: Node, a: list[Known | None]) -> Known | None:
    x = a[0]
    if x is None:
        return None
    negate = np.vectorize(lambda v: None if v is None else -v, otypes=[object])
    return known(np.asarray(negate(x.values), dtype=object), x.dtype)
