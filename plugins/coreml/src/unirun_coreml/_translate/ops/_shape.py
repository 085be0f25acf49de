"""Shape-changing ops: Reshape, Transpose, Concat, Flatten, Squeeze/Unsqueeze, Expand, Tile,
Shape, Size, ConstantOfShape, Range, Split, Pad, DepthToSpace/SpaceToDepth, Constant."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from coremltools.converters.mil.mil import Builder as mb
from coremltools.converters.mil.mil.types.symbolic import is_symbolic

from .._context import Context
from .._mil import (
    Value,
    arg,
    cast,
    dim,
    dims_vector,
    is_const,
    is_float,
    normalize_axis,
    np_dtype,
    rank,
    scalar,
    shape,
    shape_tensor,
    static_shape,
    var,
)
from .._node import Node
from .._registry import lowering


def axes_of(ctx: Context, node: Node, since: int, index: int = 1) -> list[int] | None:
    """``axes`` moved from an attribute to an input at opset ``since``."""
    if node.opset >= since:
        value = ctx.const(node, index, "axes")
        return None if value is None else [int(a) for a in value.reshape(-1)]
    return node.ints("axes")


@lowering("Constant")
def _constant(ctx: Context, node: Node) -> Value:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in node.attrs:
            value = np.asarray(node.attrs[key])
            if key.startswith("value_int"):
                return value.astype(np.int64)
            return value.astype(np.float32) if key.startswith("value_float") else value
    raise node.error("only tensor, float(s) and int(s) constants are supported")


@lowering("Reshape")
def _reshape(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    target = ctx.input(node, 1) if node.opset >= 5 else np.array(node.ints("shape"))
    if target is None:
        raise node.error("needs a shape")
    keep_zero = bool(node.attr("allowzero", 0))
    if not is_const(target):
        return _reshape_at_run_time(ctx, node, x, target, keep_zero)
    dims = shape(x)
    entries = [dims[i] if t == 0 and not keep_zero else int(t) for i, t in enumerate(target)]
    return mb.reshape(x=x, shape=dims_vector(x, entries))


def _reshape_at_run_time(
    ctx: Context, node: Node, x: Value, target: Value, keep_zero: bool
) -> Value:
    # The output's rank is the target's length, static even when its values are not, and
    # what is known of the values (see _known) keeps the static dims static for MIL too.
    k = static_length(node, target, "the target shape")
    known = ctx.known_input(node, 1)
    entries: list[Any] = list(known.values) if known and known.values.shape == (k,) else [None] * k
    dims = shape(x)
    for i, v in enumerate(entries):
        if isinstance(v, int) and v == 0 and not keep_zero:
            entries[i] = dims[i] if i < len(dims) else None
    resolved = lambda: _resolved(x, target, k, keep_zero)  # noqa: E731
    return mb.reshape(x=x, shape=_vector(ctx, entries, resolved, like=x, infer_one=True))


def _resolved(x: Value, target: Value, k: int, keep_zero: bool) -> Value:
    """The run-time target as int32, ONNX's 0 ("copy this dim") resolved: MIL allows 0 only
    at equal ranks."""
    target = cast(target, np.int32)
    if keep_zero:
        return target
    dims = mb.shape(x=x)
    if k > rank(x):
        dims = mb.concat(values=[dims, np.ones(k - rank(x), np.int32)], axis=0)
    elif k < rank(x):
        dims = mb.slice_by_index(x=dims, begin=[0], end=[k])
    return mb.select(cond=mb.equal(x=target, y=np.int32(0)), a=dims, b=target)


def _vector(
    ctx: Context,
    entries: list[Any],
    runtime: Callable[[], Value],
    like: Value | None = None,
    infer_one: bool = False,
) -> Value:
    """A shape vector from entries that are ints, dim symbols, or None (taken from the
    run-time vector ``runtime()`` builds). Static entries become constants and symbols are
    sliced from a shape that has them (``like``'s first), so MIL's type inference sees both.
    ``infer_one``: a reshape target, where one open entry may be left to MIL as -1."""
    pieces: list[Any] = []
    for v in entries:
        if v is not None and not is_symbolic(v):
            pieces.append(int(v))
        elif v is not None and like is not None and v in shape(like):
            pieces.append((like, shape(like).index(v)))
        else:
            pieces.append(ctx.sources.get(v) if v is not None else None)
    if all(p is None for p in pieces):
        return runtime()
    open_ = [i for i, p in enumerate(pieces) if not isinstance(p, int)]
    if not open_ or (infer_one and len(open_) == 1 and -1 not in pieces):
        return np.array([p if isinstance(p, int) else -1 for p in pieces], np.int32)
    shapes: dict[int, Value] = {}
    full = None
    parts = []
    for i, p in enumerate(pieces):
        if isinstance(p, int):
            parts.append(np.array([p], np.int32))
        elif p is None:
            full = runtime() if full is None else full
            parts.append(mb.slice_by_index(x=full, begin=[i], end=[i + 1]))
        else:
            var, axis = p
            source = shapes.setdefault(id(var), mb.shape(x=var))
            parts.append(mb.slice_by_index(x=source, begin=[axis], end=[axis + 1]))
    return mb.concat(values=parts, axis=0)


def static_length(node: Node, vector: Value, what: str) -> int:
    """The length of a 1-D value computed at run time (a shape, repeats, sizes)."""
    length = shape(vector)[0] if rank(vector) == 1 else None
    if length is None or is_symbolic(length):
        raise node.error(
            f"the length of {what} is only known at run time, so the rank of the result is "
            "too; Core ML needs ranks at conversion time"
        )
    return int(length)


@lowering("Transpose")
def _transpose(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    perm = node.ints("perm") or list(reversed(range(rank(x))))
    return mb.transpose(x=x, perm=np.array(perm, np.int32))


@lowering("Concat")
def _concat(ctx: Context, node: Node) -> Value:
    values = [v for v in ctx.inputs(node) if v is not None]
    axis = normalize_axis(int(node.attr("axis")), rank(values[0]))
    # Drop empty constants (ONNX allows them; MIL does not).
    values = [v for v in values if not (is_const(v) and v.shape[axis] == 0)]
    if len(values) == 1:
        return values[0]
    return mb.concat(values=[arg(v) for v in values], axis=axis)


@lowering("Flatten")
def _flatten(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    axis = normalize_axis(int(node.attr("axis", 1)), rank(x))
    static = static_shape(x)
    if static is not None:
        flat = [int(np.prod(static[:axis])), int(np.prod(static[axis:]))]
        return mb.reshape(x=x, shape=np.array(flat, np.int32))
    if axis == 0:
        return mb.reshape(x=x, shape=np.array([1, -1], np.int32))
    return mb.flatten2d(x=x, axis=axis)


@lowering("Squeeze")
def _squeeze(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    axes = axes_of(ctx, node, 13)
    dims = shape(x)
    if axes is None:
        unknown = [i for i, d in enumerate(dims) if is_symbolic(d)]
        if unknown:
            raise node.error(
                f"without axes, ONNX removes every dimension of size 1, and dimension(s) "
                f"{unknown} of the input {_dims(dims)} are only known at run time, so the "
                "rank of the result is too; give the axes in the model, or fix those "
                "dimensions with shapes="
            )
        axes = [i for i, d in enumerate(dims) if int(d) == 1]
    axes = sorted(normalize_axis(a, rank(x)) for a in axes)
    if not axes:
        return x
    if any(is_symbolic(dims[a]) for a in axes):
        # ONNX requires these dims to be 1; MIL's squeeze keeps a dim it cannot see is 1,
        # and the rank with it. Reshape to the dims that stay instead.
        kept = [d for i, d in enumerate(dims) if i not in axes]
        if not kept:
            return mb.squeeze(x=mb.reshape(x=x, shape=np.ones(1, np.int32)), axes=[0])
        return mb.reshape(x=x, shape=dims_vector(x, kept))
    return mb.squeeze(x=x, axes=np.array(axes, np.int32))


@lowering("Unsqueeze")
def _unsqueeze(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    axes = axes_of(ctx, node, 13) or []
    out_rank = rank(x) + len(axes)
    axes = sorted(normalize_axis(a, out_rank) for a in axes)
    return mb.expand_dims(x=arg(x), axes=np.array(axes, np.int32))


def _dims(dims: tuple[object, ...]) -> str:
    return "(" + ", ".join("?" if is_symbolic(d) else str(d) for d in dims) + ")"


def _broadcast_to(x: Value, target: Value) -> Value:
    """numpy broadcasting of x against a shape vector (ONNX Expand)."""
    if is_const(target):
        wanted = [int(t) for t in target.reshape(-1)]
        out_rank = max(rank(x), len(wanted))
        wanted = [1] * (out_rank - len(wanted)) + wanted
        dims = [1] * (out_rank - rank(x)) + [dim(x, i) for i in range(rank(x))]
        # Decidable now unless a dim of x is unknown where the target asks for more than 1.
        if all(d is not None or w == 1 for d, w in zip(dims, wanted, strict=True)):
            if rank(x) < out_rank:
                x = mb.expand_dims(x=x, axes=np.arange(out_rank - rank(x), dtype=np.int32))
            reps = [w if d == 1 else 1 for d, w in zip(dims, wanted, strict=True)]
            if all(r == 1 for r in reps):
                return x
            return mb.tile(x=x, reps=np.array(reps, np.int32))
    # A runtime shape: tile by the target where x has a 1. (Not x + zeros(target):
    # coremltools' noop elimination drops that add, and the broadcast with it.)
    target = cast(target, np.int32)
    count = shape(target)[0] if rank(target) == 1 else None
    if count is None or is_symbolic(count):
        raise ValueError("the length of the target shape is only known at run time")
    count = int(count)
    out_rank = max(rank(x), count)
    if rank(x) < out_rank:
        x = mb.expand_dims(x=x, axes=np.arange(out_rank - rank(x), dtype=np.int32))
    if count < out_rank:
        target = mb.concat(values=[np.ones(out_rank - count, np.int32), target], axis=0)
    ones = np.ones(out_rank, np.int32)
    reps = mb.select(
        cond=mb.equal(x=arg(cast(shape_tensor(x), np.int32)), y=np.int32(1)), a=target, b=ones
    )
    return mb.tile(x=x, reps=reps)


def broadcast_like(x: Value, other: Value) -> Value:
    """x broadcast against other's shape (numpy rules)."""
    target = static_shape(other)
    if is_const(x) and target is not None:
        return np.broadcast_to(x, np.broadcast_shapes(x.shape, target)).copy()
    return _broadcast_to(var(x), shape_tensor(other))


@lowering("Expand")
def _expand(ctx: Context, node: Node) -> Value:
    return _broadcast_to(ctx.required(node, 0), ctx.required(node, 1))


@lowering("Tile")
def _tile(ctx: Context, node: Node) -> Value:
    x, reps = ctx.required(node, 0), ctx.required(node, 1)
    return mb.tile(x=arg(x), reps=cast(reps, np.int32))


@lowering("Shape")
def _shape(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    full = shape_tensor(x)
    start, end = int(node.attr("start", 0)), node.attr("end")
    r = rank(x)
    lo = min(max(normalize_axis(start, r), 0), r)
    hi = r if end is None else min(max(normalize_axis(int(end), r), 0), r)
    if is_const(full):
        return full[lo:hi]
    if (lo, hi) == (0, r):
        return full
    return mb.slice_by_index(x=full, begin=[lo], end=[hi])


@lowering("Size")
def _size(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    static = static_shape(x)
    if static is not None:
        return np.array(int(np.prod(static)), np.int64)
    return mb.reduce_prod(x=mb.shape(x=x), axes=[0], keep_dims=False)


@lowering("ConstantOfShape")
def _constant_of_shape(ctx: Context, node: Node) -> Value:
    target = ctx.required(node, 0)
    value = node.attr("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    known = ctx.known_input(node, 0)
    if known is not None and known.values.ndim == 1:  # keep the static dims static
        shape_ = _vector(ctx, list(known.values), lambda: cast(target, np.int32))
    else:
        shape_ = cast(target, np.int32)
    return mb.fill(shape=shape_, value=arg(fill[:1].reshape(())))


@lowering("Range")
def _range(ctx: Context, node: Node) -> Value:
    start, limit, delta = (arg(ctx.required(node, i)) for i in range(3))
    return mb.range_1d(start=start, end=limit, step=delta)


@lowering("Split")
def _split(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    axis = normalize_axis(int(node.attr("axis", 0)), rank(x))
    outputs = len(node.outputs)
    split = ctx.const(node, 1, "split") if node.opset >= 13 else node.attr("split")
    if outputs == 1:
        return [x]
    size = dim(x, axis)
    if split is not None and len(np.asarray(split).reshape(-1)):
        sizes = [int(s) for s in np.asarray(split).reshape(-1)]
    elif size is not None:
        chunk = math.ceil(size / outputs)
        sizes = [chunk] * (outputs - 1) + [size - chunk * (outputs - 1)]
    else:
        return mb.split(x=x, num_splits=outputs, axis=axis)
    return mb.split(x=x, split_sizes=np.array(sizes, np.int32), axis=axis)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}


def _pad_check(node: Node) -> str | None:
    mode = node.attr("mode", "constant")
    return None if mode in _PAD_MODES else f"Pad mode {mode!r} has no Core ML equivalent"


@lowering("Pad", check=_pad_check)
def _pad(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    r = rank(x)
    if node.opset >= 11:
        pads_in = ctx.const(node, 1, "pads")
        assert pads_in is not None
        pads = [int(p) for p in pads_in.reshape(-1)]
        value_in = ctx.const(node, 2, "constant_value")
        value = 0.0 if value_in is None or value_in.size == 0 else float(value_in.reshape(-1)[0])
        axes = axes_of(ctx, node, 18, index=3)
    else:
        pads = node.ints("pads") or []
        value, axes = float(node.attr("value", 0.0)), None
    axes = [normalize_axis(a, r) for a in (axes if axes is not None else range(r))]
    begin, end = [0] * r, [0] * r
    for i, a in enumerate(axes):
        begin[a], end[a] = pads[i], pads[i + len(axes)]
    if any(p < 0 for p in begin + end):  # negative pads crop
        x = mb.slice_by_index(
            x=x,
            begin=np.array([max(-b, 0) for b in begin], np.int32),
            end=np.array([-max(-e, 0) for e in end], np.int32),
            end_mask=[e >= 0 for e in end],
        )
        begin, end = [max(b, 0) for b in begin], [max(e, 0) for e in end]
    if not any(begin + end):
        return x
    first = next(i for i in range(r) if begin[i] or end[i])
    mode = _PAD_MODES[node.attr("mode", "constant")]
    if mode == "constant":
        first = 0  # constant mode may pad any dimension
    mil_pad = np.array([p for i in range(first, r) for p in (begin[i], end[i])], np.int32)
    source = x if is_float(x) else cast(x, np.float32)
    padded = mb.pad(x=source, pad=mil_pad, mode=mode, constant_val=scalar(value, source))
    return padded if is_float(x) else cast(padded, np_dtype(x))


@lowering("DepthToSpace")
def _depth_to_space(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    block = int(node.attr("blocksize"))
    if node.attr("mode", "DCR") == "DCR":
        return mb.depth_to_space(x=x, block_size=block)
    return mb.pixel_shuffle(x=x, upscale_factor=block)  # CRD = PyTorch's pixel_shuffle


@lowering("SpaceToDepth")
def _space_to_depth(ctx: Context, node: Node) -> Value:
    x, block = ctx.required(node, 0), int(node.attr("blocksize"))
    if node.attr("mode", "DCR") == "CRD":  # opset 28; the inverse of pixel_shuffle
        return mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(block))
    return mb.space_to_depth(x=x, block_size=block)
