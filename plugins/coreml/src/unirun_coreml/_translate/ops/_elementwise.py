"""Element-wise binary ops, comparisons, logic, Where, Clip and Cast."""

from __future__ import annotations

from functools import reduce
from typing import Any

import numpy as np
from coremltools.converters.mil.mil import Builder as mb
from coremltools.converters.mil.mil.types.symbolic import is_symbolic
from onnx import helper

from .._context import Context
from .._inputs import mil_dtype_for
from .._mil import Value, arg, cast, is_bool, is_const, is_float, np_dtype, rank, scalar, shape
from .._node import Node
from .._registry import lowering
from ._shape import broadcast_like

_ARITHMETIC = {"Add": "add", "Sub": "sub", "Mul": "mul"}
_COMPARE = {
    "Equal": "equal",
    "Less": "less",
    "Greater": "greater",
    "LessOrEqual": "less_equal",
    "GreaterOrEqual": "greater_equal",
}
_LOGIC = {"And": "logical_and", "Or": "logical_or", "Xor": "logical_xor"}


def _binary(op: str) -> Any:
    def lower(ctx: Context, node: Node) -> Value:
        a, b = ctx.required(node, 0), ctx.required(node, 1)
        return getattr(mb, op)(x=arg(a), y=arg(b))

    return lower


for _onnx, _mil_op in {**_ARITHMETIC, **_LOGIC}.items():
    lowering(_onnx)(_binary(_mil_op))


def _compare(op: str) -> Any:
    def lower(ctx: Context, node: Node) -> Value:
        a, b = ctx.required(node, 0), ctx.required(node, 1)
        if is_bool(a):  # MIL compares numbers only
            a, b = cast(a, np.int32), cast(b, np.int32)
        return getattr(mb, op)(x=arg(a), y=arg(b))

    return lower


for _onnx, _mil_op in _COMPARE.items():
    lowering(_onnx)(_compare(_mil_op))


@lowering("Div")
def _div(ctx: Context, node: Node) -> Value:
    a, b = arg(ctx.required(node, 0)), arg(ctx.required(node, 1))
    if is_float(a):
        return mb.real_div(x=a, y=b)
    return _trunc_div(a, b)


def _trunc_div(a: Value, b: Value) -> Value:
    # ONNX integer Div truncates toward zero; MIL floor_div floors. Add one back where the
    # remainder is non-zero and the operands' signs differ.
    q = mb.floor_div(x=a, y=b)
    r = mb.sub(x=a, y=mb.mul(x=q, y=b))
    negative = mb.logical_xor(x=mb.less(x=a, y=scalar(0, a)), y=mb.less(x=b, y=scalar(0, b)))
    fix = mb.logical_and(x=negative, y=mb.not_equal(x=r, y=scalar(0, r)))
    return mb.add(x=q, y=mb.cast(x=fix, dtype="int32"))


@lowering("Mod")
def _mod(ctx: Context, node: Node) -> Value:
    a, b = arg(ctx.required(node, 0)), arg(ctx.required(node, 1))
    if not node.attr("fmod", 0):
        return mb.mod(x=a, y=b)  # sign follows the divisor, like Python's %
    if is_float(a):
        q = mb.real_div(x=a, y=b)
        trunc = mb.select(cond=mb.less(x=q, y=scalar(0, q)), a=mb.ceil(x=q), b=mb.floor(x=q))
        return mb.sub(x=a, y=mb.mul(x=b, y=trunc))
    return mb.sub(x=a, y=mb.mul(x=b, y=_trunc_div(a, b)))


@lowering("Pow")
def _pow(ctx: Context, node: Node) -> Value:
    x, y = ctx.required(node, 0), ctx.required(node, 1)
    if is_const(y) and y.size == 1:
        exponent = float(y.reshape(-1)[0])
        # Core ML computes pow as exp(y·log x), which is NaN for a negative base; the
        # common exponents have exact forms (x² in a decomposed LayerNorm has negative x).
        if exponent == 1.0:
            return x
        if exponent == 2.0:
            return mb.mul(x=arg(x), y=arg(x))
        if exponent == 3.0:
            return mb.mul(x=mb.mul(x=arg(x), y=arg(x)), y=arg(x))
        if exponent == 0.5 and is_float(x):
            return mb.sqrt(x=arg(x))
        if exponent == -1.0 and is_float(x):
            return mb.real_div(x=scalar(1, x), y=arg(x))
    return mb.pow(x=arg(x), y=arg(cast(y, np_dtype(x))))


def _variadic(op: str, mean: bool = False) -> Any:
    def lower(ctx: Context, node: Node) -> Value:
        values = [arg(v) for v in ctx.inputs(node) if v is not None]
        if len(values) == 1:
            return values[0]
        out = reduce(lambda acc, v: getattr(mb, op)(x=acc, y=v), values)
        if mean:
            out = mb.real_div(x=out, y=scalar(len(values), out))
        return out

    return lower


lowering("Max")(_variadic("maximum"))
lowering("Min")(_variadic("minimum"))
lowering("Sum")(_variadic("add"))
lowering("Mean")(_variadic("add", mean=True))


@lowering("Not")
def _not(ctx: Context, node: Node) -> Value:
    return mb.logical_not(x=arg(ctx.required(node, 0)))


@lowering("Where")
def _where(ctx: Context, node: Node) -> Value:
    cond, a, b = (ctx.required(node, i) for i in range(3))
    if not _carries_shape(cond, a, b):
        # MIL's select takes its output shape from a and b only; broadcast a to cond first.
        a = broadcast_like(a, cond)
    return mb.select(cond=arg(cond), a=arg(a), b=arg(b))


def _carries_shape(cond: Value, a: Value, b: Value) -> bool:
    """Whether broadcasting a with b already gives the shape that cond would add."""
    if rank(cond) > max(rank(a), rank(b)):
        return False

    def is_one(d: Any) -> bool:
        return not is_symbolic(d) and int(d) == 1

    for i in range(1, rank(cond) + 1):
        others = [shape(v)[-i] for v in (a, b) if rank(v) >= i]
        if not is_one(shape(cond)[-i]) and all(is_one(d) for d in others):
            return False
    return True


@lowering("Clip")
def _clip(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    if node.opset < 11:
        bounds = [node.attr("min"), node.attr("max")]
        lo, hi = (None if b is None else scalar(b, x) for b in bounds)
    else:
        lo, hi = ctx.input(node, 1), ctx.input(node, 2)
    if lo is not None and hi is not None and is_const(lo) and is_const(hi) and is_float(x):
        low, high = float(lo), float(hi)
        if low == 0.0 and high == 6.0:
            return mb.relu6(x=x)
        return mb.clip(x=x, alpha=scalar(low, x), beta=scalar(high, x))
    out = x
    if lo is not None:
        out = mb.maximum(x=out, y=arg(cast(lo, np_dtype(x))))
    if hi is not None:
        out = mb.minimum(x=out, y=arg(cast(hi, np_dtype(x))))
    return out


def _cast_to(x: Value, onnx_elem_type: int) -> Value:
    return cast(x, mil_dtype_for(np.dtype(helper.tensor_dtype_to_np_dtype(onnx_elem_type))))


_CASTABLE = {
    "float32",
    "float16",
    "float64",
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
}


def _cast_check(node: Node) -> str | None:
    target = helper.tensor_dtype_to_np_dtype(int(node.attr("to", 0))) if node.attr("to") else None
    if target is not None and np.dtype(target).name not in _CASTABLE:
        return (
            f"Cast to {np.dtype(target).name} cannot be represented: Core ML computes in "
            "float32/float16/int32/bool"
        )
    return None


@lowering("Cast", check=_cast_check)
def _cast(ctx: Context, node: Node) -> Value:
    return _cast_to(ctx.required(node, 0), int(node.attr("to")))


@lowering("CastLike")
def _cast_like(ctx: Context, node: Node) -> Value:
    x, like = ctx.required(node, 0), ctx.required(node, 1)
    if is_const(like) and like.dtype.name not in _CASTABLE:
        raise node.error(f"CastLike to {like.dtype.name} cannot be represented in Core ML")
    return cast(x, np_dtype(like))
