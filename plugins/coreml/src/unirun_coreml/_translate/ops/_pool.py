"""MaxPool, AveragePool and the global pools."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from coremltools.converters.mil.mil import Builder as mb

from .._context import Context
from .._mil import Value, cast, dim, is_float, np_dtype, rank
from .._node import Node
from .._registry import lowering
from ._conv import interleave


def _pool_check(node: Node) -> str | None:
    if any(d != 1 for d in node.ints("dilations", []) or []):
        return "pooling with dilations > 1 has no Core ML equivalent"
    if node.op_type == "MaxPool" and len(node.outputs) > 1 and node.outputs[1]:
        return "MaxPool's Indices output is not supported"
    return None


def _ceil_extra(
    node: Node, x: Value, kernel: list[int], strides: list[int], pads: list[int]
) -> list[int]:
    """End padding that makes floor-mode pooling produce ceil_mode's output size."""
    spatial = len(kernel)
    extra = []
    for i in range(spatial):
        size = dim(x, 2 + i)
        if size is None:
            raise node.error("ceil_mode=1 needs static spatial input sizes")
        begin, end = pads[i], pads[i + spatial]
        span = size + begin + end - kernel[i]
        out = math.ceil(span / strides[i]) + 1
        if (out - 1) * strides[i] >= size + begin:  # a window may not start in the end padding
            out -= 1
        extra.append(max((out - 1) * strides[i] + kernel[i] - (size + begin + end), 0))
    return extra


def _pool(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    if not is_float(x):  # MIL pools take floats; max of small integers is exact in fp32
        return cast(_float_pool(node, cast(x, np.float32)), np_dtype(x))
    return _float_pool(node, x)


def _float_pool(node: Node, x: Value) -> Value:
    spatial = rank(x) - 2
    kernel = node.ints("kernel_shape") or []
    strides = node.ints("strides", [1] * spatial) or [1] * spatial
    is_max = node.op_type == "MaxPool"
    include_pad = bool(node.attr("count_include_pad", 0))
    common: dict[str, Any] = {
        "kernel_sizes": np.array(kernel, np.int32),
        "strides": np.array(strides, np.int32),
    }
    if not is_max:
        common["exclude_padding_from_average"] = not include_pad
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pad_type = "same" if auto_pad == "SAME_UPPER" else "same_lower"
        return (mb.max_pool if is_max else mb.avg_pool)(x=x, pad_type=pad_type, **common)
    pads = (
        [0] * 2 * spatial
        if auto_pad == "VALID"
        else (node.ints("pads", [0] * 2 * spatial) or [0] * 2 * spatial)
    )
    extra = [0] * spatial
    if node.attr("ceil_mode", 0):
        extra = _ceil_extra(node, x, kernel, strides, pads)
    if not is_max and include_pad and any(extra):
        # ceil_mode windows that run past the padded input divide by the cells inside the
        # padded input only: pad explicitly, then exclude just the extra cells.
        if any(pads):
            full = [0, 0] * (rank(x) - spatial) + interleave(pads, spatial)
            x = mb.pad(x=x, pad=np.array(full, np.int32))
            pads = [0] * 2 * spatial
        common["exclude_padding_from_average"] = True
    ends = [pads[spatial + i] + extra[i] for i in range(spatial)]
    mil_pad = np.array(interleave(pads[:spatial] + ends, spatial), np.int32)
    return (mb.max_pool if is_max else mb.avg_pool)(x=x, pad_type="custom", pad=mil_pad, **common)


lowering("MaxPool", "AveragePool", check=_pool_check)(_pool)


@lowering("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: Context, node: Node) -> Value:
    x = ctx.required(node, 0)
    axes = list(range(2, rank(x)))
    reduce = mb.reduce_mean if node.op_type == "GlobalAveragePool" else mb.reduce_max
    return reduce(x=x, axes=axes, keep_dims=True)
