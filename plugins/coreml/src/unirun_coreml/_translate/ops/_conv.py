"""Conv, ConvTranspose, Gemm and MatMul."""

from __future__ import annotations

from typing import Any

import numpy as np
from coremltools.converters.mil.mil import Builder as mb

from .._context import Context
from .._mil import Value, arg, dim, is_const, np_dtype, rank, scalar
from .._node import Node
from .._quantized import weight
from .._registry import lowering

_AUTO_PAD = {"SAME_UPPER": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}


def interleave(pads: list[int], spatial: int) -> list[int]:
    """ONNX lists all begins then all ends; MIL wants [begin0, end0, begin1, end1, …]."""
    return [p for i in range(spatial) for p in (pads[i], pads[i + spatial])]


def pad_args(node: Node, spatial: int) -> dict[str, Any]:
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad in _AUTO_PAD:
        return {"pad_type": _AUTO_PAD[auto_pad]}
    pads = node.ints("pads", [0] * 2 * spatial) or [0] * 2 * spatial
    return {"pad_type": "custom", "pad": np.array(interleave(pads, spatial), np.int32)}


def _weight(value: Value, like: Value, int8: Value | None = None) -> Value:
    if int8 is not None:  # the int8 form of the same weight (see _quantized)
        return int8
    return value.astype(np_dtype(like)) if is_const(value) else value


@lowering("Conv")
def _conv(ctx: Context, node: Node) -> Value:
    x, w, b = ctx.required(node, 0), ctx.required(node, 1), ctx.input(node, 2)
    spatial = rank(x) - 2
    kwargs: dict[str, Any] = {
        "x": x,
        "weight": _weight(w, x, weight(ctx, node, 1, x)),
        "strides": np.array(node.ints("strides", [1] * spatial), np.int32),
        "dilations": np.array(node.ints("dilations", [1] * spatial), np.int32),
        "groups": np.int32(node.attr("group", 1)),
        **pad_args(node, spatial),
    }
    if b is not None:
        kwargs["bias"] = _weight(b, x)
    return mb.conv(**kwargs)


def _transpose_pads(node: Node, x: Value, kernel: tuple[int, ...]) -> list[tuple[int, int]]:
    spatial = len(kernel)
    strides = node.ints("strides", [1] * spatial) or [1] * spatial
    dilations = node.ints("dilations", [1] * spatial) or [1] * spatial
    extra = node.ints("output_padding", [0] * spatial) or [0] * spatial
    auto_pad = node.attr("auto_pad", "NOTSET")
    output_shape = node.ints("output_shape")
    if output_shape is None and auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        # output_padding grows the end of the output: take it back from the end padding.
        pads = node.ints("pads", [0] * 2 * spatial) or [0] * 2 * spatial
        return [(pads[i], pads[i + spatial] - extra[i]) for i in range(spatial)]
    result = []
    for i in range(spatial):
        size = dim(x, 2 + i)
        if size is None:
            raise node.error("output_shape/auto_pad need a static spatial input size")
        full = strides[i] * (size - 1) + extra[i] + (kernel[i] - 1) * dilations[i] + 1
        wanted = output_shape[-spatial + i] if output_shape else size * strides[i]
        total = full - wanted
        if not output_shape:  # like ONNX Runtime, auto_pad never grows the output
            total = max(total, 0)
        # ONNX: SAME_UPPER puts the odd pixel at the end; SAME_LOWER and an explicit
        # output_shape put it at the start. output_padding then comes off the end.
        head = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        result.append((head, total - head - extra[i]))
    return result


@lowering("ConvTranspose")
def _conv_transpose(ctx: Context, node: Node) -> Value:
    x, w, b = ctx.required(node, 0), ctx.const(node, 1, "weight"), ctx.input(node, 2)
    assert w is not None
    spatial = rank(x) - 2
    kernel = tuple(int(k) for k in w.shape[2:])
    # Negative padding means the output reaches past the full result: those cells get no
    # contribution (only the bias), so crop nothing there and zero-pad after the op.
    pads = _transpose_pads(node, x, kernel)
    mil_pads = [max(p, 0) for pair in pads for p in pair]
    grow = [max(-p, 0) for pair in pads for p in pair]
    kwargs: dict[str, Any] = {
        "x": x,
        "weight": _weight(w, x, weight(ctx, node, 1, x)),
        "strides": np.array(node.ints("strides", [1] * spatial), np.int32),
        "dilations": np.array(node.ints("dilations", [1] * spatial), np.int32),
        "groups": np.int32(node.attr("group", 1)),
        "pad_type": "custom",
        "pad": np.array(mil_pads, np.int32),
    }
    if b is not None and not any(grow):
        kwargs["bias"] = _weight(b, x)
    out = mb.conv_transpose(**kwargs)
    if any(grow):
        out = mb.pad(x=out, pad=np.array([0, 0, 0, 0, *grow], np.int32))
        if b is not None:
            bias = arg(b).reshape((-1,) + (1,) * spatial) if is_const(b) else b
            out = mb.add(x=out, y=bias)
    return out


@lowering("Gemm")
def _gemm(ctx: Context, node: Node) -> Value:
    a, b, c = ctx.required(node, 0), ctx.required(node, 1), ctx.input(node, 2)
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if node.attr("transA", 0):
        a = mb.transpose(x=arg(a), perm=[1, 0]) if not is_const(a) else a.T
    trans_b = bool(node.attr("transB", 0))
    bias: Value | None = None
    if c is not None and is_const(c):
        c_scaled = (beta * c.astype(np.float64)).astype(np_dtype(a))
        n = b.shape[0] if trans_b else b.shape[1]
        if is_const(b) and (c.size == 1 or c.shape in ((n,), (1, n))):
            bias, c = np.broadcast_to(c_scaled.reshape(-1), (n,)).copy(), None
        else:
            c = c_scaled
    elif c is not None and beta != 1.0:
        c = mb.mul(x=c, y=scalar(beta, c))
    if is_const(b):
        w = weight(ctx, node, 1, a, None if trans_b else (1, 0), alpha)
        if w is None:
            w = ((b if trans_b else b.T).astype(np.float64) * alpha).astype(np_dtype(a))
        kwargs: dict[str, Any] = {"x": arg(a), "weight": w}
        if bias is not None:
            kwargs["bias"] = bias
        out = mb.linear(**kwargs)
    else:
        out = mb.matmul(x=arg(a), y=b, transpose_y=trans_b)
        if alpha != 1.0:
            out = mb.mul(x=out, y=scalar(alpha, out))
        if bias is not None:
            out = mb.add(x=out, y=bias)
    if c is not None:
        out = mb.add(x=out, y=arg(c))
    return out


@lowering("MatMul")
def _matmul(ctx: Context, node: Node) -> Value:
    a, b = ctx.required(node, 0), ctx.required(node, 1)
    if is_const(b) and b.ndim == 2 and not is_const(a) and 1 <= rank(a) <= 3:
        # A constant 2-D right operand is a fully connected layer: `linear` (weight [N, K]).
        w = weight(ctx, node, 1, a, (1, 0))
        return mb.linear(x=a, weight=np.ascontiguousarray(arg(b).T) if w is None else w)
    int8 = weight(ctx, node, 1, a) if not is_const(a) else None
    if int8 is not None:
        b = int8
    left, right = rank(a) == 1, rank(b) == 1
    if left and right:  # a dot product
        return mb.reduce_sum(x=mb.mul(x=arg(a), y=arg(b)), axes=[0], keep_dims=False)
    if left or right:
        # numpy's 1-D promotion, spelled out: coremltools infers wrong shapes for it.
        a2 = mb.expand_dims(x=arg(a), axes=[0]) if left else arg(a)
        b2 = mb.expand_dims(x=arg(b), axes=[-1]) if right else arg(b)
        return mb.squeeze(x=mb.matmul(x=a2, y=b2), axes=[-2 if left else -1])
    return mb.matmul(x=arg(a), y=arg(b))
