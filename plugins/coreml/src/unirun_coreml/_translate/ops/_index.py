"""Indexing ops: Gather, GatherElements, GatherND, Slice, CumSum, TopK, ArgMax/ArgMin."""

from __future__ import annotations

from typing import Any

import numpy as np
from coremltools.converters.mil.mil import Builder as mb

from .._context import Context
from .._mil import Value, arg, cast, dim, is_bool, is_const, normalize_axis, rank
from .._node import Node
from .._registry import lowering

_BIG = 2**31 - 1


def _nonnegative(indices: Value, size: int | None) -> Value:
    if is_const(indices):
        idx = indices.astype(np.int64)
        return (np.where(idx < 0, idx + size, idx) if size is not None else idx).astype(np.int32)
    if size is None:
        return indices
    indices = cast(indices, np.int32)
    shifted = mb.add(x=indices, y=np.int32(size))
    return mb.select(cond=mb.less(x=indices, y=np.int32(0)), a=shifted, b=indices)


@lowering("Gather")
def _gather(ctx: Context, node: Node) -> Value:
    x, indices = ctx.required(node, 0), ctx.required(node, 1)
    axis = normalize_axis(int(node.attr("axis", 0)), rank(x))
    if is_const(indices):
        indices = _nonnegative(indices, dim(x, axis))
    return mb.gather(x=arg(x), indices=cast(indices, np.int32), axis=axis)


@lowering("GatherElements")
def _gather_elements(ctx: Context, node: Node) -> Value:
    x, indices = ctx.required(node, 0), ctx.required(node, 1)
    axis = normalize_axis(int(node.attr("axis", 0)), rank(x))
    indices = _nonnegative(indices, dim(x, axis))
    return mb.gather_along_axis(x=arg(x), indices=cast(indices, np.int32), axis=axis)


def _gather_nd_check(node: Node) -> str | None:
    return "GatherND with batch_dims > 0 is not supported" if node.attr("batch_dims", 0) else None


@lowering("GatherND", check=_gather_nd_check)
def _gather_nd(ctx: Context, node: Node) -> Value:
    x, indices = ctx.required(node, 0), ctx.required(node, 1)
    return mb.gather_nd(x=arg(x), indices=cast(indices, np.int32))


def _slice_params(ctx: Context, node: Node) -> tuple[Any, Any, list[int] | None, list[int] | None]:
    if node.opset < 10:
        return (np.array(node.ints("starts")), np.array(node.ints("ends")), node.ints("axes"), None)
    axes, steps = ctx.const(node, 3, "axes"), ctx.const(node, 4, "steps")
    return (
        ctx.required(node, 1),
        ctx.required(node, 2),
        None if axes is None else [int(a) for a in axes],
        None if steps is None else [int(s) for s in steps],
    )


def _clamped(start: int, end: int, step: int, size: int) -> tuple[int, int | None]:
    """ONNX's clamping of a slice on a dimension of known size; end None = to the edge."""
    start = start + size if start < 0 else start
    end = end + size if end < 0 else end
    if step > 0:
        return min(max(start, 0), size), min(max(end, 0), size)
    start, end = min(max(start, 0), size - 1), min(max(end, -1), size - 1)
    return start, None if end == -1 else end


@lowering("Slice")
def _slice(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    starts, ends, axes, steps = _slice_params(ctx, node)
    r = rank(x)
    count = len(starts) if is_const(starts) else int(starts.shape[0])
    axes = [normalize_axis(a, r) for a in (axes if axes is not None else range(count))]
    steps = steps or [1] * count
    begin, end, stride = [0] * r, [0] * r, [1] * r
    begin_mask, end_mask = [True] * r, [True] * r
    if not (is_const(starts) and is_const(ends)):
        return _dynamic_slice(x, starts, ends, axes, steps)
    for axis, s, e, st in zip(axes, starts.tolist(), ends.tolist(), steps, strict=True):
        stride[axis] = st
        size = dim(x, axis)
        if size is not None:
            lo, hi = _clamped(int(s), int(e), st, size)
            begin[axis], begin_mask[axis] = lo, False
            if hi is not None:
                end[axis], end_mask[axis] = hi, False
            continue
        # Unknown size: keep ONNX's "to the edge" sentinels as masks, pass the rest as is.
        if not ((st > 0 and s == 0) or (st < 0 and s >= _BIG)):
            begin[axis], begin_mask[axis] = int(np.clip(s, -_BIG, _BIG)), False
        if not ((st > 0 and e >= _BIG) or (st < 0 and e <= -_BIG)):
            end[axis], end_mask[axis] = int(np.clip(e, -_BIG, _BIG)), False
    return mb.slice_by_index(
        x=x,
        begin=np.array(begin, np.int32),
        end=np.array(end, np.int32),
        stride=np.array(stride, np.int32),
        begin_mask=begin_mask,
        end_mask=end_mask,
    )


def _dynamic_slice(
    x: Value, starts: Value, ends: Value, axes: list[int], steps: list[int]
) -> Value:
    r = rank(x)

    def vector(values: Value) -> Value:
        parts = []
        for axis in range(r):
            if axis in axes:
                j = axes.index(axis)
                parts.append(
                    values[j : j + 1].astype(np.int32)
                    if is_const(values)
                    else mb.slice_by_index(x=cast(values, np.int32), begin=[j], end=[j + 1])
                )
            else:
                parts.append(np.zeros(1, np.int32))
        return mb.concat(values=[arg(p) for p in parts], axis=0)

    stride = [steps[axes.index(a)] if a in axes else 1 for a in range(r)]
    return mb.slice_by_index(
        x=x,
        begin=vector(starts),
        end=vector(ends),
        stride=np.array(stride, np.int32),
        begin_mask=[a not in axes for a in range(r)],
        end_mask=[a not in axes for a in range(r)],
    )


@lowering("CumSum")
def _cumsum(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    axis_in = ctx.const(node, 1, "axis")
    assert axis_in is not None
    axis = normalize_axis(int(axis_in.reshape(-1)[0]), rank(x))
    return mb.cumsum(
        x=arg(x),
        axis=axis,
        exclusive=bool(node.attr("exclusive", 0)),
        reverse=bool(node.attr("reverse", 0)),
    )


@lowering("TopK")
def _topk(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    k_in = ctx.const(node, 1, "K") if node.opset >= 10 else np.array(node.attr("k"))
    assert k_in is not None
    axis = normalize_axis(int(node.attr("axis", -1)), rank(x))
    # sorted=0 leaves the order unspecified, so sorted output is always valid.
    values, indices = mb.topk(
        x=arg(x), k=int(k_in.reshape(-1)[0]), axis=axis, ascending=not node.attr("largest", 1)
    )
    return [values, indices]


def _arg_check(node: Node) -> str | None:
    if node.attr("select_last_index", 0):
        return "select_last_index=1 is not supported"
    return None


@lowering("ArgMax", "ArgMin", check=_arg_check)
def _argmax(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    axis = normalize_axis(int(node.attr("axis", 0)), rank(x))
    fn = mb.reduce_argmax if node.op_type == "ArgMax" else mb.reduce_argmin
    return fn(x=arg(x), axis=axis, keep_dims=bool(node.attr("keepdims", 1)))


_REDUCE = {
    "ReduceMean": "reduce_mean",
    "ReduceSum": "reduce_sum",
    "ReduceMax": "reduce_max",
    "ReduceMin": "reduce_min",
    "ReduceProd": "reduce_prod",
    "ReduceL1": "reduce_l1_norm",
    "ReduceL2": "reduce_l2_norm",
    "ReduceSumSquare": "reduce_sum_square",
    "ReduceLogSumExp": "reduce_log_sum_exp",
    "ReduceLogSum": "reduce_log_sum",
}


def _reduce(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    since = 13 if node.op_type == "ReduceSum" else 18
    if node.opset >= since:
        axes_in = ctx.const(node, 1, "axes")
        axes = None if axes_in is None else [int(a) for a in axes_in.reshape(-1)]
    else:
        axes = node.ints("axes")
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            return x
        axes = list(range(rank(x)))
    axes = sorted(normalize_axis(a, rank(x)) for a in axes)
    keep = bool(node.attr("keepdims", 1))
    fn = getattr(mb, _REDUCE[node.op_type])
    if is_bool(x):  # ReduceMax/Min of bools (opset 20) are any/all
        return cast(fn(x=cast(x, np.int32), axes=axes, keep_dims=keep), np.bool_)
    return fn(x=arg(x), axes=axes, keep_dims=keep)


lowering(*_REDUCE)(_reduce)
